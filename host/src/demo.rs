//! `toolhost demo`: a new user's first command serves a working system.
//!
//! The SAMPLE vendor systems (`tests/sample-upstreams`: a CRM, an ERP, two
//! carriers, a voucher ledger) start in this process on a free port of
//! loopback and write the configuration that points the reference
//! connectors at them, with the late-parcel workflow's grant and the
//! operator's voucher rule (the same file the README's walkthrough uses).
//! The real server (`server::serve_on`) then serves the plugins folder
//! under that configuration, and the command prints what to try. Its data
//! is a folder of its own (`./demo`), never a deployment's; `serve` starts
//! no sample system.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::app::auth::Generated;
use crate::config::Config;
use crate::policy::PolicyError;
use crate::server::ServeError;

/// Where the demo serves by default: where `serve` does.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The demo's folder: the host's data, the generated tokens, the sample
/// systems' store and the grants file.
pub const DEFAULT_DIR: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr}: {source} (choose another address with --listen)")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("no plugins folder at {0}: run toolhost demo from the repository's root after plugins/build.sh, or name the folder with --plugins-dir")]
    NoPlugins(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the sample systems: {0:#}")]
    Samples(anyhow::Error),
    #[error(transparent)]
    Config(#[from] PolicyError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Where to serve, what, and where to keep it.
pub struct Demo {
    pub listen: SocketAddr,
    pub plugins_dir: PathBuf,
    /// The demo's folder ([`DEFAULT_DIR`]).
    pub dir: PathBuf,
}

/// Start the sample systems, serve the plugins with their grants, print
/// what to try, and stop both on Ctrl-C or SIGTERM.
pub async fn run(demo: Demo) -> Result<(), DemoError> {
    if !demo.plugins_dir.is_dir() {
        return Err(DemoError::NoPlugins(demo.plugins_dir.display().to_string()));
    }
    // The port first: a busy one is said before anything starts.
    let listener = tokio::net::TcpListener::bind(demo.listen)
        .await
        .map_err(|source| DemoError::Listen {
            addr: demo.listen,
            source,
        })?;
    std::fs::create_dir_all(&demo.dir).map_err(|source| DemoError::Io {
        path: demo.dir.display().to_string(),
        source,
    })?;
    // Handled from now on, so that a Ctrl-C while the host starts also
    // stops both cleanly.
    let stop = tokio_util::sync::CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        signalled.cancel();
    });
    let grants = demo.dir.join("grants.toml");
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let samples = sample_upstreams::start_with_grants(&demo.dir.join("sample-upstreams"), loopback, &grants)
        .await
        .map_err(DemoError::Samples)?;
    println!(
        "toolhost demo: SAMPLE CRM, ERP, carriers and voucher ledger on http://{}; their grants, the late-parcel workflow's and the voucher rule in {}",
        samples.addr,
        grants.display()
    );
    let served = match config(&demo, &grants) {
        Ok(config) => serve(listener, config, &demo.dir, stop).await,
        Err(e) => Err(e),
    };
    let stopped = samples.stop().await.map_err(DemoError::Samples);
    served?;
    stopped?;
    println!("toolhost demo: stopped, and the sample systems with it");
    Ok(())
}

/// The grants the sample systems wrote, serving the plugins folder with
/// the demo's folder as the host's data.
fn config(demo: &Demo, grants: &Path) -> Result<Config, DemoError> {
    let mut config = Config::load(grants)?;
    config.server.listen = demo.listen;
    config.server.plugins_dir = demo.plugins_dir.clone();
    config.server.data_dir = demo.dir.clone();
    Ok(config)
}

/// Serve until `stop`; once the host is ready, say what to try.
async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    dir: &Path,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), DemoError> {
    let addr = listener.local_addr().map_err(|source| DemoError::Io {
        path: "the listening socket".into(),
        source,
    })?;
    let plugins = config.server.plugins_dir.clone();
    let mut server = tokio::spawn(crate::server::serve_on(listener, config, stop.cancelled_owned()));
    let base = format!("http://{addr}");
    tokio::select! {
        () = guide(&base, &plugins, dir) => {}
        served = &mut server => return Ok(crate::server::served(served)?),
    }
    Ok(crate::server::served(server.await)?)
}

/// Once the host is ready: what it serves, the tokens, and the lines to try.
async fn guide(base: &str, plugins: &Path, dir: &Path) {
    crate::devkit::dev::wait_ready(base).await;
    let file = dir.join("tokens.json");
    let tokens = match Generated::read(&file) {
        Ok(tokens) => tokens,
        Err(e) => {
            // TOOLHOST_ADMIN_TOKEN and the like are in force instead.
            println!("toolhost demo: {e}: the tokens are those of your environment; use them below");
            Generated::default()
        }
    };
    let tools = crate::devkit::dev::list_tools(base, &tokens.agent).await;
    if tools.is_empty() {
        println!(
            "toolhost demo: no tools are served from {}: build the connectors first (plugins/build.sh), then start again",
            plugins.display()
        );
    } else {
        println!("toolhost demo: {} tools from {}", tools.len(), plugins.display());
    }
    println!("toolhost demo: the console: {base}/console (sign in with the admin token)");
    println!("toolhost demo: admin token {}", tokens.admin);
    println!("toolhost demo: agent token {}", tokens.agent);
    println!("toolhost demo: try, in another terminal:\n");
    println!("{}", try_lines(base, &file));
    println!("toolhost demo: Ctrl-C stops it");
}

/// A read call, the late-parcel workflow, and a voucher held by the
/// operator's rule, approved: the README's block after the first command
/// is these lines for 127.0.0.1:8080 (tests/tests/demo.rs checks it).
fn try_lines(base: &str, tokens: &Path) -> String {
    let tokens = tokens.display();
    let read = |role: &str| format!("python3 -c 'import json; print(json.load(open(\"{tokens}\"))[\"{role}\"])'");
    let agent = "curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json'";
    let voucher = r#"{"request":{"idempotency-key":"demo-1","customer-id":"C-1001","value":{"amount-minor":8000,"currency":"EUR"},"reason":"lost parcel","order-id":"SO-1003","valid-days":90}}"#;
    [
        format!("TOKEN=$({})", read("agent")),
        format!("ADMIN=$({})", read("admin")),
        "# a read call: an order, as the sample ERP has it".into(),
        format!("{agent} \\\n  -d '{{\"order-id\":\"SO-1001\"}}' {base}/v1/tools/erp.get-order/invoke; echo"),
        "# the late-parcel workflow: order, customer, parcel, delay, SLA, case, voucher, note".into(),
        format!("{agent} \\\n  -d '{{\"order-id\":\"SO-1001\",\"complaint\":\"late\"}}' {base}/v1/tools/late-parcel/invoke; echo"),
        "# a voucher over 50.00 waits for a reviewer: 202, and the approval".into(),
        format!("HELD=$({agent} \\\n  -d '{voucher}' \\\n  {base}/v1/tools/coupon.issue-voucher/invoke); echo \"$HELD\""),
        "ID=$(echo \"$HELD\" | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"approval\"][\"id\"])')".into(),
        "# approve it as the admin (or on the console's Approvals page); the agent's wait returns the voucher".into(),
        format!("curl -s -H \"Authorization: Bearer $ADMIN\" -H 'Content-Type: application/json' \\\n  -d '{{\"reason\":\"checked the order\"}}' {base}/v1/approvals/$ID/approve > /dev/null"),
        format!("curl -s -H \"Authorization: Bearer $TOKEN\" \"{base}/v1/approvals/$ID?wait=30\"; echo"),
    ]
    .join("\n")
}
