//! The MCP transport through the real server: its security rules (`Origin`
//! and `Host` checked against DNS rebinding, the body limit), a stop that is
//! not held up by a client's open event stream, answers not held back by
//! Nagle's algorithm, sessions kept open by the calls they make, and plain
//! tool calls and calls without a session answered as JSON, the former
//! checked as every request is.

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

/// The median of `times`.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_on_one_connection_are_not_held_back_by_nagle() {
    // An answer that leaves in more than one write (an SSE stream: the
    // priming event, then the result) is where Nagle's algorithm meets the
    // client's delayed ACK: each later write waits for it, some 40 ms. Every
    // accepted connection sets TCP_NODELAY; without it, the tool lists
    // below take 40 ms or more each, once the connection's first few
    // exchanges (which Linux acknowledges at once) are past.
    let server = ServerProcess::start("", &["echo"]);
    let session = mcp_open(&server).await.expect("a session");
    // One keep-alive connection, which sends at once itself.
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let (mut lists, mut calls) = (Vec::new(), Vec::new());
    for id in 0..25 {
        // A tool list goes through the session's worker as a stream of two
        // events, in two writes; a tool call is answered directly, as one.
        for n in 0..2 {
            let started = Instant::now();
            let list = json!({ "jsonrpc": "2.0", "id": 100 + 2 * id + n, "method": "tools/list" });
            let answer = mcp_post(&server, &client, Some(&session), list).await;
            assert_eq!(answer.status(), 200);
            assert!(answer.text().await.unwrap().contains("echo.check"));
            lists.push(started.elapsed());
        }

        let started = Instant::now();
        let call = json!({ "jsonrpc": "2.0", "id": 200 + id, "method": "tools/call",
            "params": { "name": "echo.check", "arguments": { "ok": true, "message": "hi" } } });
        let answer = mcp_post(&server, &client, Some(&session), call).await;
        assert_eq!(answer.status(), 200);
        assert!(answer.text().await.unwrap().contains(r#""isError":false"#));
        calls.push(started.elapsed());
    }
    // The median, so that a slow moment of a busy machine does not decide;
    // held back by Nagle, every request would be over the bound.
    let bound = Duration::from_millis(20);
    let (list, call) = (median(&mut lists), median(&mut calls));
    assert!(list < bound, "tools/list took {list:?} (median of 50)");
    assert!(call < bound, "tools/call took {call:?} (median of 25)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_that_only_calls_tools_is_not_idle() {
    // Tool calls are answered without the session's worker, so the host
    // keeps the idle timer itself; a session in use must stay open.
    let server = ServerProcess::start("[server]\nmcp-idle-secs = 2\n", &["echo"]);
    let session = mcp_open(&server).await.expect("a session");
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo.check", "arguments": { "ok": true, "message": "hi" } } });
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let answer = mcp_post(&server, &client(), Some(&session), call.clone()).await;
        assert_eq!(answer.status(), 200, "the session was closed while in use");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Once it goes quiet, it is closed.
    let started = Instant::now();
    loop {
        let answer = mcp_post(&server, &client(), Some(&session), call.clone()).await;
        if answer.status() == 404 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the quiet session stayed open"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_a_session_is_answered_as_json() {
    let server = ServerProcess::start("", &["echo"]);
    let answer = mcp_stateless_call(&server, "echo.check", json!({ "ok": true, "message": "hello" })).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    assert!(!answer.headers().contains_key("mcp-session-id"));
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "\"hello\"", "{body}");

    // Audited as an MCP call, with no conversation to file it under.
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(records[0]["via"], "mcp");
    assert!(records[0]["session"].is_null(), "{audit}");
}

/// A `tools/call` of echo.check in `session`, with the headers a client
/// sends and then `headers` (which replace those of the same name), its
/// body changed by `edit`: the status and content type.
async fn call_in_session(
    server: &ServerProcess,
    session: &str,
    headers: &[(&str, &str)],
    edit: impl FnOnce(&mut Value),
) -> (u16, String) {
    let mut body = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": { "name": "echo.check", "arguments": { "ok": true, "message": "hi" } } });
    edit(&mut body);
    let mut plain = reqwest::header::HeaderMap::new();
    plain.insert("accept", "application/json, text/event-stream".parse().unwrap());
    plain.insert("content-type", "application/json".parse().unwrap());
    plain.insert("mcp-session-id", session.parse().unwrap());
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        plain.insert(name, value.parse().unwrap());
    }
    let answer = client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .headers(plain)
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .expect("the server answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = answer.text().await.unwrap();
    if status == 200 {
        assert!(text.contains(r#""isError":false"#), "{text}");
    }
    (status, content_type)
}

/// The call as a client sends it.
fn as_sent(_: &mut Value) {}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_tool_call_is_answered_as_json_and_checked_like_any_request() {
    // The host answers a plain tool call in a session before rmcp reads it,
    // as JSON; every check rmcp makes of a request still holds for it. Each
    // request below is such a call but for one header or field, so a check
    // the shortcut skipped would show as a 200.
    let server = ServerProcess::start("", &["echo"]);
    let session = mcp_open(&server).await.expect("a session");
    let own = authority(&server);
    let json = (200, "application/json".to_string());
    assert_eq!(call_in_session(&server, &session, &[], as_sent).await, json);
    let origin = format!("http://{own}");
    let this_host = [("origin", origin.as_str()), ("mcp-protocol-version", "2025-06-18")];
    assert_eq!(call_in_session(&server, &session, &this_host, as_sent).await, json);

    let port = own.rsplit_once(':').unwrap().1;
    let evil_host = format!("evil.example.com:{port}");
    for (headers, status) in [
        ([("host", evil_host.as_str())], 403),
        ([("origin", "http://evil.example.com")], 403),
        ([("accept", "application/json")], 406),
        ([("content-type", "text/plain")], 415),
        ([("mcp-protocol-version", "1999-01-01")], 400),
        // The revision whose requests must carry `_meta` and more headers.
        ([("mcp-protocol-version", "2026-07-28")], 400),
        ([("mcp-session-id", "no-such-session")], 404),
    ] {
        let (got, _) = call_in_session(&server, &session, &headers, as_sent).await;
        assert_eq!(got, status, "{headers:?}");
    }
    let (got, _) = call_in_session(&server, &session, &[], |b| b["jsonrpc"] = json!("1.0")).await;
    assert_eq!(got, 400, "not JSON-RPC 2.0: a JSON-RPC error, not a media-type refusal");

    // A progress token is the one `_meta` a plain call may carry. What the
    // shortcut does not take, rmcp still answers: a call with other
    // `_meta`, a weighted `Accept`; a field the shortcut does not know is
    // left to rmcp to judge.
    let progress = |b: &mut Value| b["params"]["_meta"] = json!({ "progressToken": 1 });
    assert_eq!(call_in_session(&server, &session, &[], progress).await, json);
    let sse = (200, "text/event-stream".to_string());
    let traced = |b: &mut Value| b["params"]["_meta"] = json!({ "progressToken": 2, "example.com/trace": "t-1" });
    assert_eq!(call_in_session(&server, &session, &[], traced).await, sse);
    let weighted = [("accept", "application/json;q=0.9, text/event-stream")];
    assert_eq!(call_in_session(&server, &session, &weighted, as_sent).await, sse);
    let unknown = |b: &mut Value| b["extra"] = json!(true);
    let judged = call_in_session(&server, &session, &[], unknown).await;
    assert_ne!(judged, json);
    let by_name = format!("localhost:{port}");
    assert_eq!(
        call_in_session(&server, &session, &[("host", by_name.as_str())], as_sent).await,
        json
    );

    // Every call above that was answered ran once and was recorded.
    let answered = 6 + usize::from(judged.0 == 200);
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    assert_eq!(audit["records"].as_array().unwrap().len(), answered, "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_is_not_one_json_rpc_message_is_a_400_with_a_json_rpc_error_at_any_depth() {
    // rmcp answers any body it cannot read as a message 415, as if the
    // media type were wrong; the host answers 400 with a JSON-RPC error,
    // with a session and without, and a 50,000-deep `params` is refused
    // the same way (serde_json stops at 128 levels) while the host serves on.
    let server = ServerProcess::start("", &["echo"]);
    let session = mcp_open(&server).await.expect("a session");
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#.to_string();
    for (what, body, code) in [
        ("a batch", batch, -32600),
        ("not JSON", "{\"jsonrpc\": \"2.0\", ".to_string(), -32700),
        ("50,000 deep", deep, -32600),
    ] {
        for session in [None, Some(session.as_str())] {
            let mut request = client()
                .post(server.url("/mcp"))
                .bearer_auth(AGENT_TOKEN)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(session) = session {
                request = request.header("mcp-session-id", session);
            }
            let answer = request.send().await.expect("the server answers");
            assert_eq!(answer.status(), 400, "{what}, session {session:?}");
            let error: Value = answer.json().await.expect("a JSON-RPC error");
            assert_eq!(error["jsonrpc"], "2.0", "{error}");
            assert_eq!(error["id"], Value::Null, "{error}");
            assert_eq!(error["error"]["code"], code, "{what}: {error}");
        }
    }
    let (status, _) = echo_check(&server, AGENT_TOKEN).await;
    assert_eq!(status, 200, "the host still serves");
}
