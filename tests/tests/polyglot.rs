//! Connectors built with the Python and JavaScript toolchains
//! (componentize-py, componentize-js), served by the real binary: they load
//! although they import all of WASI (every interface granting nothing), and
//! grants, limits, secret masks and the audit trail hold for them exactly as
//! for Rust connectors. A bundle importing what the host does not offer is
//! refused before the compiler sees it.
//!
//! The probe guests (`tests/guests-polyglot`) say what they saw; these tests
//! decide whether the host answered as it must.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::*;

/// A secret value long enough to be masked; nothing else contains it.
const VALUE: &str = "s3cr3t-polyglot-0042";

const LANGS: [Lang; 2] = [Lang::Python, Lang::JavaScript];

/// An upstream on loopback that counts the requests it is sent.
async fn counted() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "fine"
        }
    });
    (serve(router).await, hits)
}

/// Both probe guests, each granted the secret `mine` and HTTP to `granted`.
/// The first call compiles them (18 and 13 MB, tens of seconds of CPU each)
/// into the tests' shared compile cache with one server, while the other
/// tests wait: started together, each of their servers would compile both
/// at once on CI's two cores.
fn start(granted: SocketAddr) -> ServerProcess {
    static COMPILED: std::sync::Once = std::sync::Once::new();
    COMPILED.call_once(|| drop(serving(granted)));
    serving(granted)
}

fn serving(granted: SocketAddr) -> ServerProcess {
    let mut config = String::new();
    for lang in LANGS {
        config.push_str(&format!(
            "[plugins.{name}]\nsecrets = {{ mine = {{ value = \"{VALUE}\" }} }}\nhttp = [{{ origin = \"http://{granted}\" }}]\n",
            name = lang.plugin()
        ));
    }
    let bundles: Vec<_> = LANGS.iter().map(|&lang| (lang, polyglot_guest(lang))).collect();
    ServerProcess::start_prepared(&config, |plugins| {
        for (lang, bundle) in bundles {
            copy_bundle(&bundle, &plugins.join(lang.plugin()));
        }
    })
}

async fn call(server: &ServerProcess, lang: Lang, function: &str, args: Value) -> (u16, Value) {
    let tool = format!("{}.{function}", lang.plugin());
    let (status, body) = invoke(server, AGENT_TOKEN, &tool, args).await;
    (status.as_u16(), body)
}

/// The result of a call that must succeed.
async fn ok(server: &ServerProcess, lang: Lang, function: &str, args: Value) -> Value {
    let (status, body) = call(server, lang, function, args).await;
    assert_eq!(status, 200, "{lang:?} {function}: {body}");
    body["result"].clone()
}

/// The newest audit record of a tool.
async fn last_record(server: &ServerProcess, tool: &str) -> Value {
    let (_, page) = get_json(server, ADMIN_TOKEN, &format!("/v1/audit?tool={tool}&limit=1")).await;
    page["records"][0].clone()
}

/// Wait until the host's log has a line holding every one of `parts`: the
/// log reaches its file through a pipe, after the call's answer.
async fn logged(server: &ServerProcess, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no log line with {parts:?} in:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_connectors_load_and_answer() {
    let (granted, _) = counted().await;
    let server = start(granted);
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    for lang in LANGS {
        assert!(
            named(&tools, &format!("{}.add", lang.plugin())).is_some(),
            "{lang:?}: {tools}"
        );
        assert_eq!(ok(&server, lang, "add", json!({ "a": 2, "b": 40 })).await, 42);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_files_environment_and_exit_give_a_connector_nothing() {
    let (granted, _) = counted().await;
    let server = start(granted);
    // A listener the probes are told to connect to: it must see nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();

    for lang in LANGS {
        // Refused as the WASI error for "not permitted", before a socket
        // exists.
        assert_eq!(
            ok(&server, lang, "socket", json!({ "address": target })).await,
            "create-tcp-socket: access-denied",
            "{lang:?}"
        );
        // The call has returned, so a connection it made would already be
        // in the listener's backlog.
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{lang:?}: the listener saw {other:?}"),
        }

        // No preopened directory, so no file to read.
        let file = ok(&server, lang, "file", json!({ "path": "/etc/hostname" })).await;
        let file = file.as_str().unwrap();
        assert!(file.starts_with("preopens=0 read="), "{lang:?}: {file}");
        assert!(!file.contains("bytes"), "{lang:?}: {file}");

        // No environment (the host's own has HOME), arguments or directory.
        assert_eq!(
            ok(&server, lang, "env", json!({ "name": "HOME" })).await,
            "vars=0 args=0 cwd=None HOME=None",
            "{lang:?}"
        );

        // stdout and stderr go into the connector's log, under its name.
        let text = format!("hello from {}", lang.plugin());
        assert_eq!(ok(&server, lang, "say", json!({ "text": text })).await, "written");
        logged(&server, &[&text, "stdout", lang.plugin()]).await;
        logged(&server, &[&text, "stderr", lang.plugin()]).await;

        // exit ends the call as a fault; the connector serves on.
        let (status, body) = call(&server, lang, "quit", json!({})).await;
        assert_eq!(status, 500, "{lang:?}: {body}");
        assert!(
            body.to_string().contains("wasi:cli/exit (status 1)"),
            "{lang:?}: {body}"
        );
        assert_eq!(ok(&server, lang, "add", json!({ "a": 1, "b": 1 })).await, 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_goes_exactly_where_the_grant_says_and_is_audited() {
    let (granted, granted_hits) = counted().await;
    let (other, other_hits) = counted().await;
    let server = start(granted);
    for (n, lang) in LANGS.into_iter().enumerate() {
        let tool = format!("{}.fetch", lang.plugin());
        assert_eq!(
            ok(&server, lang, "fetch", json!({ "url": format!("http://{granted}/ok") })).await,
            200,
            "{lang:?}"
        );
        assert_eq!(granted_hits.load(Ordering::SeqCst), n + 1);
        let record = last_record(&server, &tool).await;
        assert_eq!(record["outbound"][0]["origin"], format!("http://{granted}"), "{record}");
        assert_eq!(record["outbound"][0]["status"], 200, "{record}");

        // Another port of the same loopback address is not granted.
        // The guest's `err`, as wasi:http's `HTTP-request-denied` reached it.
        let (_, body) = call(&server, lang, "fetch", json!({ "url": format!("http://{other}/ok") })).await;
        let refused = body["error"]["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(refused.contains("denied"), "{lang:?}: {body}");
        assert_eq!(
            other_hits.load(Ordering::SeqCst),
            0,
            "{lang:?} reached the ungranted upstream"
        );
        let record = last_record(&server, &tool).await;
        assert_eq!(record["denials"][0]["capability"], "http", "{record}");
        assert!(
            record["denials"][0]["detail"]
                .as_str()
                .unwrap()
                .contains(&other.to_string()),
            "{record}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_masked_in_what_they_return_and_write() {
    let (granted, _) = counted().await;
    let server = start(granted);
    for lang in LANGS {
        let tool = format!("{}.leak", lang.plugin());
        assert_eq!(
            ok(&server, lang, "leak", json!({ "name": "mine" })).await,
            "[secret mine]",
            "{lang:?}"
        );
        logged(&server, &["[secret mine]", "stdout", lang.plugin()]).await;
        logged(&server, &["[secret mine]", "stderr", lang.plugin()]).await;
        let record = last_record(&server, &tool).await;
        let echoes = record["secret_echoes"].to_string();
        assert!(echoes.contains("\"into\":\"result\""), "{record}");
        assert!(echoes.contains("\"into\":\"log\""), "{record}");
    }
    assert!(!server.log().contains(VALUE), "the host's log shows the value");
    let export = get_text(&server, ADMIN_TOKEN, "/v1/audit/export").await;
    assert!(!export.contains(VALUE), "the audit trail shows the value");
}

/// A component importing `import` (an instance with one function) and
/// nothing else.
fn importing(import: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component (import "{import}" (instance (export "f" (func)))))"#
    ))
    .unwrap()
}

/// A component importing nothing and exporting `seven`.
fn self_contained() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 7))
            (core instance $i (instantiate $m))
            (func (export "seven") (result u32) (canon lift (core func $i "f"))))"#,
    )
    .unwrap()
}

fn bundle(plugins: &Path, name: &str, wasm: &[u8]) {
    let dir = plugins.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nvendor = \"toolhost tests\"\nworld = \"toolhost-test:tiny/tiny\"\n"
    );
    std::fs::write(dir.join("connector.toml"), manifest).unwrap();
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The compiled-code entries of a compile cache folder.
fn cache_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_importing_what_the_host_does_not_offer_is_refused_before_it_is_compiled() {
    // An unknown package, and a known interface at a version the host does
    // not have (0.3 is not semver-compatible with 0.2).
    let unknown = importing("foo:bar/baz@1.0.0");
    let future = importing("wasi:sockets/ip-name-lookup@0.3.0");
    let good = self_contained();
    // A cache of its own, which only this server writes to.
    let server = ServerProcess::start_prepared("[server]\ncompile-cache-dir = \"cache\"\n", |plugins| {
        bundle(plugins, "unknown-import", &unknown);
        bundle(plugins, "good", &good);
    });
    let dir = server.dir.path().join("cache");

    // Loaded at start, before the host listens: the good one was compiled
    // into the cache, the other refused naming its import, and not compiled.
    let entries = cache_entries(&dir);
    assert!(entries.iter().any(|e| e.contains(&sha256(&good))), "{entries:?}");
    assert!(!entries.iter().any(|e| e.contains(&sha256(&unknown))), "{entries:?}");
    let refusal = logged(
        &server,
        &["unknown-import", "imports something the host does not offer"],
    )
    .await;
    assert!(refusal.contains("foo:bar/baz@1.0.0"), "{refusal}");
    let log = server.log();
    assert_eq!(log.matches("compiling component").count(), 1, "{log}");

    // Uploaded: refused in the answer, naming the import, and not compiled.
    let manifest = "name = \"future-import\"\nversion = \"1.0.0\"\nvendor = \"toolhost tests\"\nworld = \"toolhost-test:tiny/tiny\"\n";
    let (status, body) = upload(&server, "future-import", manifest.into(), future.clone(), None).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("wasi:sockets/ip-name-lookup@0.3.0"), "{body}");
    let entries = cache_entries(&dir);
    assert!(!entries.iter().any(|e| e.contains(&sha256(&future))), "{entries:?}");
    let log = server.log();
    assert_eq!(log.matches("compiling component").count(), 1, "{log}");
}
