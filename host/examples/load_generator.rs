//! A closed-loop load generator for one tool, over REST or MCP, so that the
//! two call paths (and the native baseline) are driven by the same client
//! and their ratio measures the servers, not the clients.
//!
//! Each session is its own keep-alive connection (`TCP_NODELAY`, as an
//! agent's HTTP client sets it) with one call in flight: it sends the next
//! call when the last answer has been read whole, as an agent does. All
//! sessions are opened (for MCP: `initialize` and `notifications/initialized`)
//! before the clock starts; then they call for `--warmup`, unmeasured, and
//! for `--duration`, every call's latency kept, so the percentiles are
//! exact rather than bucketed.
//!
//! The protocols:
//!
//! - `rest`: `POST /v1/tools/{tool}/invoke`; a call succeeds on 200.
//! - `mcp`: streamable HTTP at `/mcp` with a session (`Mcp-Session-Id`,
//!   protocol 2025-06-18, what agent clients speak today); a call succeeds
//!   on a `tools/call` result whose `isError` is false, answered as one SSE
//!   event or as JSON.
//! - `mcp-stateless`: the same call under protocol 2026-07-28, which has no
//!   session: the protocol version and client capabilities ride in each
//!   request's `_meta`.
//!
//! `cargo run --release -p toolhost --example load_generator -- --protocol mcp
//! --url http://127.0.0.1:PORT --token T --tool echo.check --arguments '{"ok":true}'
//! --sessions 64 --duration 8s` prints one line for scripts,
//! `RESULT calls/s p50 p99 p99.9 failed` (latencies in µs), and a line for
//! people on standard error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Rest,
    Mcp,
    McpStateless,
}

#[derive(Parser)]
struct Options {
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// The server's base URL, `http://127.0.0.1:PORT`.
    #[arg(long)]
    url: String,
    /// An agent's bearer token.
    #[arg(long)]
    token: String,
    #[arg(long)]
    tool: String,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// Sessions, each one connection with one call in flight.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "8s")]
    duration: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    warmup: Duration,
    /// Client threads (default: one per session, at most 2, as wrk runs in
    /// load.sh).
    #[arg(long)]
    threads: Option<usize>,
}

/// The MCP protocol a session negotiates in `initialize`.
const SESSION_PROTOCOL: &str = "2025-06-18";
/// The MCP protocol without sessions.
const STATELESS_PROTOCOL: &str = "2026-07-28";

/// One agent: its connection and, over MCP with sessions, its session.
struct Session {
    connection: SendRequest<Full<Bytes>>,
    mcp_session: Option<String>,
    next_id: u64,
}

/// What every session sends: where, as whom, and the call itself.
struct Target {
    protocol: Protocol,
    addr: SocketAddr,
    authority: String,
    authorization: String,
    tool: String,
    arguments: serde_json::Value,
    /// The REST body, the same for every call.
    rest_body: Bytes,
}

impl Target {
    fn new(options: &Options) -> anyhow::Result<Target> {
        let uri: hyper::Uri = options.url.parse().context("--url")?;
        let authority = uri.authority().context("--url has no host")?.to_string();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)?
            .next()
            .context("--url does not resolve")?;
        let arguments: serde_json::Value = serde_json::from_str(&options.arguments).context("--arguments")?;
        Ok(Target {
            protocol: options.protocol,
            addr,
            authority,
            authorization: format!("Bearer {}", options.token),
            tool: options.tool.clone(),
            rest_body: Bytes::from(serde_json::to_vec(&arguments)?),
            arguments,
        })
    }

    fn post(&self, path: &str, body: Bytes) -> hyper::http::request::Builder {
        let builder = Request::post(path)
            .header("host", &self.authority)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .header("content-length", body.len());
        match self.protocol {
            Protocol::Rest => builder,
            Protocol::Mcp => builder.header("accept", "application/json, text/event-stream"),
            // SEP-2243: from this protocol on, a request names its method
            // and tool in headers too, for proxies that route on them.
            Protocol::McpStateless => builder
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", STATELESS_PROTOCOL)
                .header("mcp-method", "tools/call")
                .header("mcp-name", &self.tool),
        }
    }

    /// The `tools/call` request numbered `id`.
    fn mcp_call(&self, id: u64) -> Bytes {
        let mut params = serde_json::json!({ "name": self.tool, "arguments": self.arguments });
        if self.protocol == Protocol::McpStateless {
            params["_meta"] = serde_json::json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": "load_generator", "version": "0" },
            });
        }
        let request = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params });
        Bytes::from(serde_json::to_vec(&request).expect("a JSON value serializes"))
    }
}

/// Send `request` and read the whole answer.
async fn exchange(
    connection: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

impl Session {
    async fn open(target: &Target) -> anyhow::Result<Session> {
        let stream = tokio::net::TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let (connection, driver) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(driver);
        let mut session = Session {
            connection,
            mcp_session: None,
            next_id: 1,
        };
        if target.protocol == Protocol::Mcp {
            session.initialize(target).await?;
        }
        Ok(session)
    }

    async fn initialize(&mut self, target: &Target) -> anyhow::Result<()> {
        let init = serde_json::json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": SESSION_PROTOCOL, "capabilities": {},
            "clientInfo": { "name": "load_generator", "version": "0" } } });
        let body = Bytes::from(serde_json::to_vec(&init)?);
        let request = target.post("/mcp", body.clone()).body(Full::new(body))?;
        let (status, headers, body) = exchange(&mut self.connection, request).await?;
        if status != StatusCode::OK {
            bail!("initialize: {status}: {}", String::from_utf8_lossy(&body));
        }
        let id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("initialize: no Mcp-Session-Id")?;
        self.mcp_session = Some(id.to_string());
        let initialized = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let request = target
            .post("/mcp", initialized.clone())
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", SESSION_PROTOCOL)
            .body(Full::new(initialized))?;
        let (status, _, body) = exchange(&mut self.connection, request).await?;
        if !status.is_success() {
            bail!(
                "notifications/initialized: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// One call, answered whole; an error says why it failed.
    async fn call(&mut self, target: &Target) -> anyhow::Result<()> {
        let request = match target.protocol {
            Protocol::Rest => {
                let body = target.rest_body.clone();
                target
                    .post(&format!("/v1/tools/{}/invoke", target.tool), body.clone())
                    .body(Full::new(body))?
            }
            Protocol::Mcp | Protocol::McpStateless => {
                self.next_id += 1;
                let body = target.mcp_call(self.next_id);
                let mut builder = target.post("/mcp", body.clone());
                if let Some(id) = &self.mcp_session {
                    builder = builder
                        .header("mcp-session-id", id)
                        .header("mcp-protocol-version", SESSION_PROTOCOL);
                }
                builder.body(Full::new(body))?
            }
        };
        let (status, _, body) = exchange(&mut self.connection, request).await?;
        if status != StatusCode::OK {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        // A tool result, not an error: the same check whether it came as
        // JSON or as an SSE event, without parsing the JSON (whose cost
        // would be the client's, not the server's).
        if target.protocol != Protocol::Rest && memchr::memmem::find(&body, br#""isError":false"#).is_none() {
            bail!("not a successful tool result: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// What one session measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failed: u64,
    first_failure: Option<String>,
}

async fn drive(target: std::sync::Arc<Target>, mut session: Session, warm_until: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    loop {
        let started = Instant::now();
        if started >= end {
            return tally;
        }
        let outcome = session.call(&target).await;
        let measured = started >= warm_until;
        match outcome {
            Ok(()) if measured => tally.latencies.push(started.elapsed()),
            Ok(()) => {}
            Err(e) => {
                if measured {
                    tally.failed += 1;
                }
                tally.first_failure.get_or_insert_with(|| format!("{e:#}"));
                // A connection the server closed is opened again, as a
                // client would; one that cannot be is given a moment.
                if session.connection.is_closed() {
                    match Session::open(&target).await {
                        Ok(again) => session = again,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        }
    }
}

/// The latency at `percent` by nearest rank over every call measured.
fn percentile(sorted: &[Duration], percent: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(options: Options) -> anyhow::Result<()> {
    let target = std::sync::Arc::new(Target::new(&options)?);
    // Every session ready before any call is timed.
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..options.sessions {
        let target = target.clone();
        opening.spawn(async move { Session::open(&target).await });
    }
    let mut sessions = Vec::with_capacity(options.sessions);
    while let Some(opened) = opening.join_next().await {
        sessions.push(opened?.context("opening a session")?);
    }
    let warm_until = Instant::now() + options.warmup;
    let end = warm_until + options.duration;
    let mut driving = tokio::task::JoinSet::new();
    for session in sessions {
        driving.spawn(drive(target.clone(), session, warm_until, end));
    }
    let mut latencies = Vec::new();
    let (mut failed, mut first_failure) = (0, None);
    while let Some(tally) = driving.join_next().await {
        let tally = tally?;
        latencies.extend(tally.latencies);
        failed += tally.failed;
        first_failure = first_failure.or(tally.first_failure);
    }
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / options.duration.as_secs_f64();
    let [p50, p99, p999] = [50.0, 99.0, 99.9].map(|p| percentile(&latencies, p).as_micros());
    if latencies.is_empty() {
        return Err(anyhow!("no call succeeded: {}", first_failure.unwrap_or_default()));
    }
    if let Some(failure) = first_failure {
        eprintln!("load_generator: {failed} call(s) failed; the first: {failure}");
    }
    eprintln!(
        "load_generator: {:?} {} at {} session(s): {rate:.0} calls/s, p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs, \
         {} calls measured",
        options.protocol,
        options.tool,
        options.sessions,
        latencies.len()
    );
    println!("RESULT {rate:.1} {p50} {p99} {p999} {failed}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    let threads = options.threads.unwrap_or(options.sessions.min(2)).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(run(options))
}
