//! What the end-to-end tests share: building the components and the binary
//! once, scratch folders, a runtime over real files, and upstream HTTP
//! servers on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod browser;
pub mod installed;
pub mod postgres;
pub mod process;
pub mod readme;
pub mod registry;
pub mod upstreams;

pub use installed::*;
pub use upstreams::*;

use toolhost::policy::Policy;
use toolhost::{Runtime, RuntimeOptions};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub(crate) fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Build the reference connectors and the test components (once per test
/// process; quick when nothing changed).
pub fn components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let mut build = Command::new(root.join("plugins/build.sh"));
        build.current_dir(&root);
        run(build, "plugins/build.sh");
        root
    })
}

pub fn guest(name: &str) -> PathBuf {
    components().join("tests/guests").join(name)
}

pub fn reference(name: &str) -> PathBuf {
    components().join("plugins").join(name)
}

/// The `toolhost` binary, built if needed (debug), or the one named by
/// `TOOLHOST_BIN` (a release build, for the tests that measure).
pub fn toolhost_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        if let Some(bin) = std::env::var_os("TOOLHOST_BIN") {
            return root.join(bin);
        }
        debug_bin("toolhost")
    })
}

/// The `sample-upstreams` binary (debug), built if needed.
pub fn sample_upstreams_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| debug_bin("sample-upstreams"))
}

/// Build the binary of the same name as its package (debug); its path.
fn debug_bin(package: &str) -> PathBuf {
    let root = repo_root();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--quiet", "-p", package, "--bin", package])
        .current_dir(&root);
    run(build, &format!("cargo build -p {package}"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join(package)
}

/// Copy a bundle folder (manifest, component, signature), not its sources.
pub fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name == "connector.toml" || name.ends_with(".wasm") || name == "connector.sig" {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// A folder removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("toolhost-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime with its data in `data` and the given policy (TOML).
pub fn runtime_in(data: &Path, policy: &str) -> Runtime {
    let mut options = RuntimeOptions::new(
        components().join("tests/guests"),
        data.to_path_buf(),
        Policy::parse(policy, "test policy").expect("test policy parses"),
    );
    options.compile_cache_dir = shared_compile_cache();
    Runtime::new(options).expect("runtime starts")
}

/// Serve `router` on a free port of 127.0.0.1 for the rest of the test.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A `toolhost serve` process on a free port of 127.0.0.1, stopped (with
/// SIGTERM, then a wait) when dropped.
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pub base: String,
    pub dir: Scratch,
    /// The open-file limit (soft and hard) it runs under, if not the test's.
    nofile: Option<u64>,
}

/// The server's stderr, kept in its scratch folder.
const SERVER_LOG: &str = "server.log";

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const AGENT_TOKEN: &str = "test-agent-token-0123456789";
/// The token of `TOOLHOST_APPROVER_TOKEN`: a reviewer named `approver`.
pub const APPROVER_TOKEN: &str = "test-approver-token-0123456789";
/// What `TOOLHOST_WEBHOOK_SECRET` holds in a test server's environment (for
/// `[approvals.webhook] secret-env = "TOOLHOST_WEBHOOK_SECRET"`).
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

impl ServerProcess {
    /// Start with `config` as toolhost.toml in a scratch folder whose
    /// `plugins` holds the given bundles (test components by name, or
    /// `plugins/<name>` for reference connectors).
    pub fn start(config: &str, bundles: &[&str]) -> ServerProcess {
        ServerProcess::start_prepared(config, |plugins| ServerProcess::link_bundles(plugins, bundles))
    }

    /// Start after `prepare` has filled the plugins folder.
    pub fn start_prepared(config: &str, prepare: impl FnOnce(&Path)) -> ServerProcess {
        ServerProcess::start_limited(config, prepare, None)
    }

    /// Start after `prepare`, under an open-file limit of `nofile` (soft and
    /// hard, so the host cannot raise it), if given.
    pub fn start_limited(config: &str, prepare: impl FnOnce(&Path), nofile: Option<u64>) -> ServerProcess {
        let dir = Scratch::new("server");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        prepare(&plugins);
        std::fs::write(dir.path().join("toolhost.toml"), config).unwrap();
        let (child, base) = spawn_server(dir.path(), nofile);
        ServerProcess {
            child: Some(child),
            base,
            dir,
            nofile,
        }
    }

    /// Link the given bundles (as [`ServerProcess::start`] names them) into
    /// `plugins`.
    pub fn link_bundles(plugins: &Path, bundles: &[&str]) {
        for b in bundles {
            let source = match b.strip_prefix("plugins/") {
                Some(name) => reference(name),
                None => guest(b),
            };
            let name = source.file_name().unwrap().to_owned();
            std::os::unix::fs::symlink(&source, plugins.join(name)).unwrap();
        }
    }

    /// Stop and start again over the same files.
    pub fn restart(&mut self) {
        assert!(self.stop().success(), "toolhost did not stop cleanly");
        self.start_again();
    }

    /// `kill -9`: no chance to finish anything or flush.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL toolhost");
        child.wait().expect("wait for toolhost");
    }

    /// Start over the same files after `crash` or `stop`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        let (child, base) = spawn_server(self.dir.path(), self.nofile);
        self.child = Some(child);
        self.base = base;
    }

    /// The server process's id (names of its temporary files carry it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server has logged so far (all its runs in this folder).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(SERVER_LOG)).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send SIGTERM and wait for the exit status. A host that has not
    /// stopped within [`STOP_TIMEOUT`] is killed, and the test fails: a
    /// shutdown that hangs is a bug to see, not a CI run that never ends.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for toolhost") {
                return status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                // Not a second panic while one unwinds (that would abort).
                if !std::thread::panicking() {
                    panic!("toolhost did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed");
                }
                return std::process::ExitStatus::default();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// How long a test host may take to stop after SIGTERM: its drain, the
/// calls it lets finish and the storage flush take well under this.
pub const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One compile cache for every host the tests start: the cache is keyed
/// by component digest and engine fingerprint and checksummed, so sharing
/// it is what several hosts on one machine may do, and each component is
/// compiled once for the whole suite rather than once per server start.
pub fn shared_compile_cache() -> PathBuf {
    repo_root().join("target/test-compile-cache")
}

fn spawn_server(dir: &Path, nofile: Option<u64>) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut command = Command::new(toolhost_bin());
    // A test about the cache itself names its own in its configuration.
    let config = std::fs::read_to_string(dir.join("toolhost.toml")).unwrap_or_default();
    if config.contains("compile-cache-dir") {
        command.env_remove("TOOLHOST_COMPILE_CACHE_DIR");
    } else {
        command.env("TOOLHOST_COMPILE_CACHE_DIR", shared_compile_cache());
    }
    if let Some(files) = nofile {
        use std::os::unix::process::CommandExt;
        let limit = libc::rlimit {
            rlim_cur: files as libc::rlim_t,
            rlim_max: files as libc::rlim_t,
        };
        // SAFETY: setrlimit is async-signal-safe and touches only the
        // child's own limit, between fork and exec.
        unsafe {
            command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("TOOLHOST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOOLHOST_AGENT_TOKEN", AGENT_TOKEN)
        .env("TOOLHOST_APPROVER_TOKEN", APPROVER_TOKEN)
        .env("TOOLHOST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env_remove("TOOLHOST_LISTEN")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .env_remove("TOOLHOST_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start toolhost serve");
    // The log goes to the test's stderr as before, and into server.log so
    // that a test can read what the host logged.
    let stderr = child.stderr.take().expect("piped stderr");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(SERVER_LOG))
        .expect("open server.log");
    std::thread::spawn(move || {
        use std::io::Write;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = writeln!(log, "{line}");
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let base = line
        .trim()
        .strip_prefix("toolhost listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// A Python script of the tests' run with the MCP SDK's Python, printing
/// one JSON line per step: the process, and `next(step)`, which reads its
/// next line and asserts it is that step (blocking: call it off the
/// test's runtime when the script waits on the test).
pub fn python_steps(
    script: &str,
    args: &[&str],
) -> (
    std::process::Child,
    impl FnMut(&str) -> serde_json::Value + Send + 'static,
) {
    use std::io::BufRead;
    let mut child = Command::new(mcp_python())
        .arg(repo_root().join(script))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let next = move |step: &str| -> serde_json::Value {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the client ended before {step}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(v["step"], step, "{v}");
        v
    };
    (child, next)
}

/// `PUT /v1/plugins/{name}` as the admin: a connector bundle (manifest,
/// component, optional signature). The status and the JSON body.
pub async fn upload(
    server: &ServerProcess,
    name: &str,
    manifest: String,
    wasm: Vec<u8>,
    signature: Option<String>,
) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::text(manifest))
        .part("component", reqwest::multipart::Part::bytes(wasm).file_name("c.wasm"));
    if let Some(sig) = signature {
        form = form.part("signature", reqwest::multipart::Part::text(sig));
    }
    let r = client()
        .put(server.url(&format!("/v1/plugins/{name}")))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
}

/// An HTTP client for talking to a test server.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// `POST /v1/tools/{tool}/invoke` with `args`: the status and the JSON body.
pub async fn invoke(
    server: &ServerProcess,
    token: &str,
    tool: &str,
    args: serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let r = client()
        .post(server.url(&format!("/v1/tools/{tool}/invoke")))
        .bearer_auth(token)
        .json(&args)
        .send()
        .await
        .expect("the server answers");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `POST /v1/tools/{tool}/invoke` with `args` as the agent, on a task of its
/// own whose answer nobody waits for (a workflow's run, followed by id,
/// or a call that a kill cuts short).
pub fn invoke_in_background(
    server: &ServerProcess,
    tool: &str,
    args: serde_json::Value,
) -> tokio::task::JoinHandle<()> {
    let url = server.url(&format!("/v1/tools/{tool}/invoke"));
    tokio::spawn(async move {
        let _ = client().post(url).bearer_auth(AGENT_TOKEN).json(&args).send().await;
    })
}

/// `GET path` as `token`: the status and the JSON body.
pub async fn get_json(server: &ServerProcess, token: &str, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let r = client()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `PUT /v1/plugins/{plugin}/grants` as the admin: the status and the body.
pub async fn put_grant(server: &ServerProcess, plugin: &str, grant: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = client()
        .put(server.url(&format!("/v1/plugins/{plugin}/grants")))
        .bearer_auth(ADMIN_TOKEN)
        .json(grant)
        .send()
        .await
        .expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `GET path` as `token`: the body as text (metrics, JSON Lines).
pub async fn get_text(server: &ServerProcess, token: &str, path: &str) -> String {
    client()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers")
        .text()
        .await
        .expect("a text body")
}

/// An upstream on 127.0.0.1: `GET /ok` answers at once, `GET /slow` after
/// `delay` — for calls that must still be in flight while something happens.
pub async fn upstream_with_slow(delay: std::time::Duration) -> SocketAddr {
    use axum::routing::get;
    serve(axum::Router::new().route("/ok", get(|| async { "fine" })).route(
        "/slow",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "late"
        }),
    ))
    .await
}

/// An upstream that counts the POSTs to `/effect` (the side effect a held
/// call must not have until it is approved); `GET /ok` answers too.
pub async fn counting_upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    counting_upstream_slow(std::time::Duration::ZERO).await
}

/// [`counting_upstream`], whose `/effect` answers `delay` after counting
/// (a call still in flight, its effect already had).
pub async fn counting_upstream_slow(
    delay: std::time::Duration,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let effects = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = effects.clone();
    let router = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "fine" }))
        .route(
            "/effect",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    "done"
                }
            }),
        );
    (serve(router).await, effects)
}

/// `POST /v1/approvals/{id}/{verdict}` (`approve` or `reject`) as `token`.
pub async fn decide(
    server: &ServerProcess,
    token: &str,
    id: &str,
    verdict: &str,
    reason: &str,
) -> (u16, serde_json::Value) {
    let r = client()
        .post(server.url(&format!("/v1/approvals/{id}/{verdict}")))
        .bearer_auth(token)
        .json(&serde_json::json!({ "reason": reason }))
        .send()
        .await
        .expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `POST /v1/runs/{run}/cancel` as `token`: the status.
pub async fn cancel_run(server: &ServerProcess, token: &str, run: &str) -> reqwest::StatusCode {
    client()
        .post(server.url(&format!("/v1/runs/{run}/cancel")))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers")
        .status()
}

/// The newest workflow run's id, once there is one (within 5 s).
pub async fn newest_run(server: &ServerProcess) -> String {
    for _ in 0..100 {
        let (_, runs) = get_json(server, ADMIN_TOKEN, "/v1/runs?limit=1").await;
        if let Some(id) = runs["runs"][0]["id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no run was started");
}

/// The approval id of a held call's 202 answer.
pub fn held_id(body: &serde_json::Value) -> String {
    body["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not held: {body}"))
        .to_string()
}

/// The operator grant letting the netprobe test component reach `addr`.
pub fn netprobe_grant(addr: SocketAddr) -> String {
    format!("[plugins.netprobe]\nhttp = [{{ origin = \"http://{addr}\" }}]\n")
}

/// `echo.check` with `ok: true`: the call tests make to see a server serve.
pub async fn echo_check(server: &ServerProcess, token: &str) -> (reqwest::StatusCode, serde_json::Value) {
    invoke(
        server,
        token,
        "echo.check",
        serde_json::json!({ "ok": true, "message": "m" }),
    )
    .await
}

/// The element of a JSON array whose `name` is `name`.
pub fn named<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    list.as_array()?.iter().find(|item| item["name"] == name)
}

/// One string field of every element of a JSON array.
pub fn field<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|item| item[key].as_str()).collect())
        .unwrap_or_default()
}

/// `POST /mcp` as the agent, by hand (streamable HTTP), within `session`.
pub async fn mcp_post(
    server: &ServerProcess,
    client: &reqwest::Client,
    session: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    mcp_request(server, client, session, body)
        .send()
        .await
        .expect("MCP answers")
}

/// A `POST /mcp` of `body` as the agent, in `session` if one is given, not
/// yet sent: for a test that sends it its own way (a client that gives up).
pub fn mcp_request(
    server: &ServerProcess,
    client: &reqwest::Client,
    session: Option<&str>,
    body: serde_json::Value,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    request
}

/// One JSON-RPC request to `/mcp` as the agent, in `session` if given: the
/// session id the answer names (an `initialize`'s), and the answer, read
/// from a JSON body or an event stream alike.
pub async fn mcp_rpc(
    server: &ServerProcess,
    session: Option<&str>,
    body: serde_json::Value,
) -> (Option<String>, serde_json::Value) {
    let response = mcp_post(server, &client(), session, body).await;
    assert!(response.status().is_success(), "{}", response.status());
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let answer = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {text:?}"));
    (session, answer)
}

/// `tasks/get` of task `id` in `session`, polled until it is no longer
/// `working` (within 30 s): its last answer.
pub async fn mcp_task_ended(server: &ServerProcess, session: Option<&str>, id: &str) -> serde_json::Value {
    for n in 0..300u64 {
        let get =
            serde_json::json!({ "jsonrpc": "2.0", "id": 1000 + n, "method": "tasks/get", "params": { "taskId": id } });
        let (_, polled) = mcp_rpc(server, session, get).await;
        if polled["result"]["status"] != "working" {
            return polled;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("task {id} still working after 30 s");
}

/// `notifications/initialized` in `session`, which ends its handshake.
pub async fn mcp_initialized(server: &ServerProcess, session: &str) {
    let initialized = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let response = mcp_post(server, &client(), Some(session), initialized).await;
    assert!(response.status().is_success(), "{}", response.status());
}

/// `tools/call` of `tool` with `arguments` under MCP protocol 2026-07-28,
/// which has no sessions: the version and the client's capabilities ride in
/// the request's `_meta`, its method and tool in headers (SEP-2243).
pub async fn mcp_stateless_call(server: &ServerProcess, tool: &str, arguments: serde_json::Value) -> reqwest::Response {
    const VERSION: &str = "2026-07-28";
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "toolhost-tests", "version": "0" },
        } } });
    client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body)
        .send()
        .await
        .expect("MCP answers")
}

/// Open an MCP session by hand (initialize, then initialized): its id, or
/// the response that refused it. Enough for a test to hold sessions open or
/// walk away from them.
pub async fn mcp_open(server: &ServerProcess) -> Result<String, reqwest::Response> {
    let client = client();
    let init = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "toolhost-tests", "version": "0" } } });
    let response = mcp_post(server, &client, None, init).await;
    if response.status() != reqwest::StatusCode::OK {
        return Err(response);
    }
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = response.text().await;
    let initialized = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let response = mcp_post(server, &client, Some(&session), initialized).await;
    assert!(response.status().is_success(), "{}", response.status());
    Ok(session)
}
