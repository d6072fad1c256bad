//! `toolhost dev`: build a connector project, serve it on loopback with a
//! development grant, and rebuild and reload it whenever its sources change.
//!
//! The server is the real one (`server::serve_on`), over a plugins folder
//! and a data folder of its own under the project's `target/toolhost-dev/`.
//! Each successful build is copied there, and the server's folder watcher
//! loads it the way it loads any bundle dropped into its folder; a failed
//! build leaves the last good one serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::build::{Build, BuildError};
use crate::config::grants::{HttpGrant, PluginPolicy, PrivateTargets, SecretSource};
use crate::config::{Config, Digests, Role, TokenConfig};
use crate::plugins::bundle::{Bundle, Contents};
use crate::plugins::error::LoadError;
use crate::plugins::manifest::{Manifest, ManifestError};
use crate::policy::PolicyError;
use crate::server::ServeError;

/// Where `toolhost dev` serves by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The settings file beside `connector.toml`.
pub const DEV_TOML: &str = "dev.toml";
/// Sources quiet this long are built: an editor's save is several events.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("no connector.toml in {0} or its subfolders: run toolhost dev in a connector project (toolhost new makes one) or a workspace of them")]
    NoProject(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    DevSettings(PolicyError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("the built bundle in {path}: {source}")]
    Bundle { path: String, source: LoadError },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot listen on {addr}: {source} (choose another address with --listen)")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot watch the sources: {0}")]
    Watch(#[from] notify::Error),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What to develop and where to serve it.
pub struct Dev {
    /// A connector project, or a workspace whose members are.
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// How to build (its folders are `dir`).
    pub build: Build,
    /// The token to accept; a new random one when not given.
    pub token: Option<String>,
}

/// One connector of the project.
struct Connector {
    dir: PathBuf,
    manifest: Manifest,
}

/// The folders holding a `connector.toml`: `dir` itself, or its members.
fn find_connectors(dir: &Path) -> Result<Vec<Connector>, DevError> {
    let mut dirs = Vec::new();
    if dir.join("connector.toml").is_file() {
        dirs.push(dir.to_path_buf());
    } else {
        let entries = std::fs::read_dir(dir).map_err(io(dir))?;
        let mut members: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("connector.toml").is_file())
            .collect();
        members.sort();
        dirs.extend(members);
    }
    if dirs.is_empty() {
        return Err(DevError::NoProject(dir.display().to_string()));
    }
    dirs.into_iter()
        .map(|dir| {
            let manifest = Manifest::load(&dir.join("connector.toml"))?;
            Ok(Connector { dir, manifest })
        })
        .collect()
}

/// The grant `toolhost dev` gives a connector: `dev.toml` (written like an
/// operator's `[plugins.<name>]`), and whatever it leaves out as the
/// manifest requests it. Outbound HTTP, unless `dev.toml` lists it, goes
/// to the manifest's origins, with `*` meaning the origins of the config
/// values that are URLs; loopback and private addresses are allowed, since
/// development upstreams are local.
fn dev_grant(connector: &Connector) -> Result<PluginPolicy, DevError> {
    let path = connector.dir.join(DEV_TOML);
    let mut grant: PluginPolicy = match std::fs::read_to_string(&path) {
        Ok(text) => crate::policy::parse_toml(&text, &path.display().to_string()).map_err(DevError::DevSettings)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PluginPolicy::default(),
        Err(e) => return Err(io(&path)(e)),
    };
    let requested = &connector.manifest.capabilities;
    if grant.http.is_empty() {
        for request in &requested.http {
            let origins: Vec<String> = if request.origin == "*" {
                grant.config.values().filter_map(|v| origin_of(v)).collect()
            } else {
                vec![request.origin.clone()]
            };
            for origin in origins {
                grant.http.push(HttpGrant {
                    origin,
                    methods: request.methods.clone(),
                    allow_private: PrivateTargets::Any,
                });
            }
        }
    }
    grant.kv_quota_bytes = grant.kv_quota_bytes.or(Some(requested.kv_quota_bytes));
    grant.memory_mb = grant.memory_mb.or(requested.memory_mb);
    grant.timeout_ms = grant.timeout_ms.or(requested.timeout_ms);
    Ok(grant)
}

/// `scheme://host[:port]` of a URL, if the value is one.
fn origin_of(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The grant in a few lines, for the developer to check.
fn describe(name: &str, connector: &Connector, grant: &PluginPolicy) -> String {
    let mut lines = vec![format!(
        "{name} {} ({}) from {}",
        connector.manifest.version,
        connector.manifest.world,
        connector.dir.display()
    )];
    for h in &grant.http {
        let methods = if h.methods.is_empty() {
            "any method".to_string()
        } else {
            h.methods.join(", ")
        };
        lines.push(format!("  http   {} ({methods})", h.origin));
    }
    if grant.http.is_empty() && !connector.manifest.capabilities.http.is_empty() {
        lines.push(
            "  http   nothing granted: put the upstream's URL in dev.toml's [config], or list http = [...] there"
                .to_string(),
        );
    }
    for (key, value) in &grant.config {
        lines.push(format!("  config {key} = {value}"));
    }
    for (key, source) in &grant.secrets {
        let how = match source {
            SecretSource::Env { env } => match std::env::var_os(env) {
                Some(_) => format!("from ${env} (set)"),
                None => format!("from ${env}, which is NOT SET: calls that need it fail until you set it and restart"),
            },
            SecretSource::Value { .. } => "from dev.toml".to_string(),
            SecretSource::Kept { .. } => "kept".to_string(),
        };
        lines.push(format!("  secret {key} {how}"));
    }
    let requested = &connector.manifest.capabilities;
    for key in requested.config.iter().filter(|k| !grant.config.contains_key(*k)) {
        lines.push(format!("  config {key} is requested but dev.toml does not set it"));
    }
    for key in requested.secrets.iter().filter(|k| !grant.secrets.contains_key(*k)) {
        lines.push(format!("  secret {key} is requested but dev.toml does not give it"));
    }
    lines.join("\n")
}

/// Copy each connector's manifest and component into the dev plugins
/// folder, component first, each through a hidden temporary name (which the
/// folder watcher ignores), so the watcher sees the bundle whole.
fn publish(connectors: &[Connector], plugins: &Path) -> Result<(), DevError> {
    for connector in connectors {
        let bundle = Bundle::read(&connector.dir).map_err(|source| DevError::Bundle {
            path: connector.dir.display().to_string(),
            source,
        })?;
        let Contents::Connector { manifest, wasm } = &bundle.contents else {
            continue;
        };
        let target = plugins.join(&bundle.name);
        std::fs::create_dir_all(&target).map_err(io(&target))?;
        for (file, bytes) in [
            (manifest.component_file(), wasm.as_slice()),
            ("connector.toml".to_string(), bundle.manifest_text.as_bytes()),
        ] {
            let path = target.join(&file);
            let temporary = target.join(format!(".{file}.new"));
            std::fs::write(&temporary, bytes).map_err(io(&temporary))?;
            std::fs::rename(&temporary, &path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// A token for the development server: 32 random bytes, hex.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Build, serve, and rebuild on change until SIGINT or SIGTERM.
pub async fn run(dev: Dev) -> Result<(), DevError> {
    let dir = std::fs::canonicalize(&dev.dir).map_err(io(&dev.dir))?;
    let connectors = find_connectors(&dir)?;
    let build = Build {
        dirs: vec![dir.clone()],
        ..dev.build
    };
    let started = Instant::now();
    build.run().await?;
    eprintln!("toolhost dev: built in {:.1} s", started.elapsed().as_secs_f64());

    let home = dir.join("target/toolhost-dev");
    let plugins = home.join("plugins");
    // Only what this project builds now: no stale bundle of a renamed one.
    if plugins.exists() {
        std::fs::remove_dir_all(&plugins).map_err(io(&plugins))?;
    }
    std::fs::create_dir_all(&plugins).map_err(io(&plugins))?;
    publish(&connectors, &plugins)?;

    let token = dev.token.unwrap_or_else(new_token);
    let mut config = Config::default();
    config.server.listen = dev.listen;
    config.server.plugins_dir = plugins.clone();
    config.server.data_dir = home.join("data");
    config.server.watch = true;
    config.tokens = vec![TokenConfig {
        name: "dev".into(),
        role: Role::Admin,
        sha256: Some(Digests::One(hex::encode(Sha256::digest(token.as_bytes())))),
        env: None,
        file: None,
        tools: Vec::new(),
        rate_per_minute: 0,
    }];
    for connector in &connectors {
        let name = connector.manifest.name.clone();
        let grant = dev_grant(connector)?;
        println!("toolhost dev: {}", describe(&name, connector, &grant));
        config.plugins.insert(name, grant);
    }
    config.policy().map_err(DevError::DevSettings)?;

    let listener = tokio::net::TcpListener::bind(dev.listen)
        .await
        .map_err(|source| DevError::Listen {
            addr: dev.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(io(Path::new("the listening socket")))?;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut server = tokio::spawn(crate::server::serve_on(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    let base = format!("http://{addr}");
    tokio::select! {
        tools = list_tools(&base, &token) => print_try(&base, &token, &tools),
        served = &mut server => return Ok(crate::server::served(served)?),
    }

    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let _watcher = watch_sources(&dir, &connectors, tx)?;
    println!("toolhost dev: watching the sources; Ctrl-C stops");
    let shutdown = crate::server::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            served = &mut server => return Ok(crate::server::served(served)?),
            Some(first) = changes.recv() => {
                // Wait for the editor to finish writing.
                let mut last = first;
                while let Ok(Some(path)) = tokio::time::timeout(QUIET, changes.recv()).await {
                    last = path;
                }
                if last.file_name().is_some_and(|f| f == DEV_TOML) {
                    eprintln!("toolhost dev: {} changed: restart toolhost dev to grant what it says now", last.display());
                    continue;
                }
                eprintln!("toolhost dev: {} changed; building", last.display());
                let started = Instant::now();
                match build.run().await {
                    // As the manifests say now: one may have changed.
                    Ok(()) => match find_connectors(&dir).and_then(|c| publish(&c, &plugins)) {
                        Ok(()) => eprintln!(
                            "toolhost dev: built in {:.1} s; the server loads it now",
                            started.elapsed().as_secs_f64()
                        ),
                        Err(e) => eprintln!("toolhost dev: {e}; still serving the last good build"),
                    },
                    Err(e) => eprintln!("toolhost dev: {e}; still serving the last good build"),
                }
            }
        }
    }
    stop.cancel();
    Ok(crate::server::served(server.await)?)
}

/// Watch what a build reads: each connector's `src/` and the manifests and
/// cargo files beside it (not `target/`, nor the component the build writes).
fn watch_sources(
    dir: &Path,
    connectors: &[Connector],
    tx: tokio::sync::mpsc::UnboundedSender<PathBuf>,
) -> Result<notify::RecommendedWatcher, DevError> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        use notify::event::{EventKind, ModifyKind};
        let Ok(event) = event else { return };
        if !matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
        ) {
            return;
        }
        for path in event.paths {
            if is_source(&path) {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    for connector in connectors {
        if connector.dir != dir {
            watcher.watch(&connector.dir, RecursiveMode::NonRecursive)?;
        }
        let src = connector.dir.join("src");
        if src.is_dir() {
            watcher.watch(&src, RecursiveMode::Recursive)?;
        }
    }
    Ok(watcher)
}

fn is_source(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|f| f.to_str())
        .is_none_or(|f| f.starts_with('.') || f.ends_with('~'));
    !hidden
        && (path.extension().is_some_and(|e| e == "rs" || e == "wit")
            || path
                .file_name()
                .is_some_and(|f| f == "Cargo.toml" || f == "connector.toml" || f == DEV_TOML))
}

/// `GET base+path` with the token: the status and the body, `None` when
/// the server cannot be reached.
async fn get(base: &str, path: &str, token: &str) -> Option<(http::StatusCode, bytes::Bytes)> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::get(format!("{base}{path}"))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::new())
        .ok()?;
    let response = client.request(request).await.ok()?;
    let status = response.status();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// Until the server at `base` says it is ready (it answers `starting`
/// while it loads the plugins).
pub(crate) async fn wait_ready(base: &str) {
    while !matches!(get(base, "/readyz", "").await, Some((status, _)) if status.is_success()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tools the server serves, asked of it as a client would once it says
/// it is ready.
pub(crate) async fn list_tools(base: &str, token: &str) -> Vec<Value> {
    wait_ready(base).await;
    match get(base, "/v1/tools", token).await {
        Some((status, body)) if status.is_success() => serde_json::from_slice(&body).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The token, and a `curl` calling one tool (a read-only one if there is
/// one) with arguments its schema accepts.
fn print_try(base: &str, token: &str, tools: &[Value]) {
    println!("toolhost dev: token {token}");
    println!("toolhost dev: tools: curl -sS {base}/v1/tools -H 'Authorization: Bearer {token}'");
    let tool = tools.iter().find(|t| t["risk"] == "read").or_else(|| tools.first());
    match tool {
        Some(tool) => {
            let name = tool["name"].as_str().unwrap_or_default();
            let args = example(&tool["parameters"]).to_string().replace('\'', "'\\''");
            println!(
                "toolhost dev: try: curl -sS -X POST {base}/v1/tools/{name}/invoke -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{args}'"
            );
        }
        None => println!("toolhost dev: no tools are served: the messages above say why"),
    }
}

/// A value the JSON Schema accepts: the first case of a choice, `null` for
/// what may be absent, the smallest allowed number, and a placeholder string.
fn example(schema: &Value) -> Value {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(choices) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        if choices.iter().any(|c| c["type"] == "null") {
            return Value::Null;
        }
        return choices.first().map(example).unwrap_or(Value::Null);
    }
    match schema["type"].as_str() {
        Some("object") => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let fields: BTreeMap<String, Value> = schema["properties"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .filter(|(k, _)| required.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), example(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!(fields)
        }
        Some("array") => json!([]),
        Some("string") => json!("example"),
        Some("integer") | Some("number") => {
            let low = schema["minimum"].as_i64().unwrap_or(0).max(1);
            json!(schema["maximum"].as_i64().map_or(low, |high| low.min(high)))
        }
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_satisfy_their_schemas() {
        let schema = json!({
            "type": "object",
            "properties": {
                "code": { "type": "string" },
                "days": { "type": "integer", "minimum": 0, "maximum": 730 },
                "status": { "anyOf": [{ "type": "string", "enum": ["open"] }, { "type": "null" }] },
                "query": { "oneOf": [{ "type": "object", "properties": { "by-id": { "type": "string" } }, "required": ["by-id"] }] },
            },
            "required": ["code", "days", "query"],
        });
        assert_eq!(
            example(&schema),
            json!({ "code": "example", "days": 1, "query": { "by-id": "example" } })
        );
    }

    #[test]
    fn origins_of_config_urls() {
        assert_eq!(
            origin_of("http://127.0.0.1:9000/crm/v1").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            origin_of("https://api.example.com").as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(origin_of("EUR"), None);
        assert_eq!(origin_of("ftp://x/"), None);
    }

    #[test]
    fn only_sources_start_a_build() {
        assert!(is_source(Path::new("/p/src/lib.rs")));
        assert!(is_source(Path::new("/p/connector.toml")));
        assert!(!is_source(Path::new("/p/my-connector.wasm")));
        assert!(!is_source(Path::new("/p/.my-connector.wasm.tmp")));
        assert!(!is_source(Path::new("/p/Cargo.lock")));
        assert!(!is_source(Path::new("/p/src/.lib.rs.swp")));
    }
}
