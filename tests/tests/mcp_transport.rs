//! The MCP transport's security rules, through the real server: `Origin`
//! and `Host` checked (DNS rebinding), the body limit, and a stop that is
//! not held up by a client's open event stream.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::*;

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "toolhost-tests", "version": "0" } } })
}

/// `POST /mcp` with an initialize request and extra `headers`: the status.
async fn initialize_with(server: &ServerProcess, headers: &[(&str, String)]) -> u16 {
    let mut request = client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("the server answers").status().as_u16()
}

/// `host:port` the server listens on.
fn authority(server: &ServerProcess) -> String {
    server.base.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn origins_other_than_the_hosts_own_are_refused() {
    let server = ServerProcess::start("", &["echo"]);
    let own = format!("http://{}", authority(&server));
    assert_eq!(initialize_with(&server, &[]).await, 200, "no Origin: not a browser");
    assert_eq!(
        initialize_with(&server, &[("origin", own)]).await,
        200,
        "a page of this host"
    );
    let evil = [("origin", "http://evil.example.com".to_string())];
    assert_eq!(initialize_with(&server, &evil).await, 403);
    let port = authority(&server).rsplit_once(':').unwrap().1.to_string();
    let other_port = [(
        "origin",
        format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1),
    )];
    assert_eq!(
        initialize_with(&server, &other_port).await,
        403,
        "another port is another origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_names_allowed_origins_and_hosts() {
    let config = "[server]\nmcp-allowed-origins = [\"https://console.example.com:443\"]\n\
                  mcp-allowed-hosts = [\"toolhost.internal\"]\n";
    let server = ServerProcess::start(config, &["echo"]);
    let port = authority(&server).rsplit_once(':').unwrap().1.to_string();
    let host = [("host", format!("toolhost.internal:{port}"))];
    assert_eq!(initialize_with(&server, &host).await, 200, "a named host");
    let console = [
        ("host", format!("toolhost.internal:{port}")),
        ("origin", "https://console.example.com".to_string()),
    ];
    assert_eq!(initialize_with(&server, &console).await, 200, "a named origin");
    let elsewhere = [
        ("host", format!("toolhost.internal:{port}")),
        ("origin", "https://evil.example.com".to_string()),
    ];
    assert_eq!(initialize_with(&server, &elsewhere).await, 403);
    // The list replaces the default: the bare address is no longer a name
    // this host answers MCP to.
    assert_eq!(initialize_with(&server, &[]).await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_bodies_are_bounded_by_max_body_bytes() {
    let server = ServerProcess::start("[server]\nmax-body-bytes = 4096\n", &["echo"]);
    let session = mcp_open(&server).await.expect("a session opens");
    let call = |message: String| {
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo.check", "arguments": { "ok": true, "message": message } } })
    };
    let small = mcp_post(&server, &client(), Some(&session), call("m".repeat(100))).await;
    assert_eq!(small.status(), 200);
    let large = mcp_post(&server, &client(), Some(&session), call("m".repeat(64 * 1024))).await;
    assert_eq!(large.status(), 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_is_not_held_up_by_an_open_event_stream() {
    let mut server = ServerProcess::start("", &["echo"]);
    let session = mcp_open(&server).await.expect("a session opens");
    // The standalone event stream (GET), read until it ends.
    let stream = client()
        .get(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let reader = tokio::spawn(async move {
        let mut stream = stream;
        while let Ok(Some(_)) = stream.chunk().await {}
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    // Well within the 10 s the host would otherwise wait for the client.
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the event stream ended")
        .unwrap();
}
