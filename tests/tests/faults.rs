//! When a connector fails, the agent and the operator hear what failed, in
//! words they can act on, through a real `toolhost serve`: a panic's message
//! and location (not `unreachable` and `<wasm function N>`), a connector's
//! `rate-limited(N)` as 429 with `Retry-After: N`, and a timeout's record
//! naming the upstream request the call was waiting on.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Value};
use toolhost_tests::*;

/// The newest audit record of `tool`.
async fn last_record(server: &ServerProcess, tool: &str) -> Value {
    let (status, audit) = get_json(server, ADMIN_TOKEN, &format!("/v1/audit?tool={tool}")).await;
    assert_eq!(status, 200, "{audit}");
    audit["records"][0].clone()
}

/// `tools/call` over MCP: the tool result (`isError`, and the error or
/// result as JSON from its text content).
async fn mcp_call(server: &ServerProcess, tool: &str, arguments: Value) -> (bool, Value) {
    let session = mcp_open(server).await.expect("an MCP session opens");
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": tool, "arguments": arguments } });
    let text = mcp_post(server, &client(), Some(&session), call)
        .await
        .text()
        .await
        .expect("an MCP answer");
    // A JSON body, or an event stream whose `data:` line carries it.
    let message: Value = std::iter::once(text.as_str())
        .chain(text.lines().filter_map(|l| l.strip_prefix("data:")))
        .find_map(|candidate| serde_json::from_str::<Value>(candidate.trim()).ok())
        .filter(|m| m.get("result").is_some())
        .unwrap_or_else(|| panic!("no tools/call result in {text}"));
    let result = &message["result"];
    let content = result["content"][0]["text"].as_str().expect("text content");
    (
        result["isError"] == true,
        serde_json::from_str(content).expect("JSON content"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_reaches_the_agent_the_audit_trail_and_the_log_with_its_message_and_location() {
    let server = ServerProcess::start("", &["panicker"]);
    let args = json!({ "items": ["a", "b", "c"], "at": 10 });
    let expected = "index out of bounds: the len is 3 but the index is 10";

    let (status, body) = invoke(&server, AGENT_TOKEN, "panicker.pick", args.clone()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["kind"], "plugin_fault", "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("the connector panicked at panicker/src/lib.rs:") && message.ends_with(expected),
        "{message}"
    );
    assert!(
        !message.contains("wasm function") && !message.contains("unreachable"),
        "{message}"
    );

    // The audit record says the same.
    let record = last_record(&server, "panicker.pick").await;
    assert_eq!(record["outcome"], "plugin_fault", "{record}");
    assert_eq!(record["error"]["message"], message.as_str(), "{record}");

    // So does the host's log, in one line with the plugin's name.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("plugin=panicker") && l.contains(&message)),
        "{log}"
    );

    // And MCP.
    let (is_error, error) = mcp_call(&server, "panicker.pick", args).await;
    assert!(is_error);
    assert_eq!(error["kind"], "plugin_fault");
    assert_eq!(error["message"], message.as_str(), "{error}");

    // The fault cost the host nothing: the next call is served.
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "panicker.pick",
        json!({ "items": ["a"], "at": 0 }),
    )
    .await;
    assert_eq!((status.as_u16(), &body["result"]), (200, &json!("a")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_found_after_more_stderr_than_the_log_takes() {
    let server = ServerProcess::start("", &["panicker"]);
    // 300 lines of stderr (over the log's 256 lines a call and the 4 KiB
    // the host keeps), then the panic.
    let before = vec!["x".repeat(40); 300].join("\n");
    let args = json!({ "before": before, "message": "the order had no lines" });
    let (status, body) = invoke(&server, AGENT_TOKEN, "panicker.fail", args).await;
    assert_eq!(status, 500, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the connector panicked at panicker/src/lib.rs:"),
        "{message}"
    );
    assert!(message.ends_with(": the order had no lines"), "{message}");
}

/// An upstream that answers every request with `answer`.
async fn upstream(answer: fn() -> axum::response::Response) -> SocketAddr {
    serve(Router::new().fallback(move || async move { answer() })).await
}

/// The reference logistics connector, pointed at `addr`, with a call
/// timeout of `timeout_ms`.
fn logistics_config(addr: SocketAddr, timeout_ms: u64) -> String {
    let origin = format!("http://127.0.0.1:{}", addr.port());
    format!(
        "[plugins.logistics]\nhttp = [{{ origin = \"{origin}\", methods = [\"GET\"] }}]\n\
         secrets = {{ api-key = {{ value = \"key-0123456789\" }} }}\n\
         config = {{ base-url = \"{origin}\" }}\ntimeout-ms = {timeout_ms}\n"
    )
}

const TRACK: &str = "logistics.track-shipment";

/// `TRACK` over REST as the agent: the whole response, headers included.
async fn track_over_rest(server: &ServerProcess) -> reqwest::Response {
    client()
        .post(server.url(&format!("/v1/tools/{TRACK}/invoke")))
        .bearer_auth(AGENT_TOKEN)
        .json(&track())
        .send()
        .await
        .unwrap()
}

fn track() -> Value {
    json!({ "tracking-number": "NP-1001" })
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_from_a_connector_is_429_with_retry_after_over_rest_and_mcp() {
    // The upstream asks for 30 s; the SDK turns that into `rate-limited(30)`.
    let slow_down = upstream(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "30")],
            "slow down",
        )
            .into_response()
    })
    .await;
    let server = ServerProcess::start(&logistics_config(slow_down, 8000), &["plugins/logistics"]);

    let r = track_over_rest(&server).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()[header::RETRY_AFTER], "30");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "plugin_error", "{body}");
    assert_eq!(body["error"]["error"], json!({ "rate-limited": 30 }), "{body}");
    assert_eq!(body["error"]["retry_after"], 30, "{body}");

    let (is_error, error) = mcp_call(&server, TRACK, track()).await;
    assert!(is_error);
    assert_eq!(error["retry_after"], 30, "{error}");

    // Without a number from upstream: 429, and no Retry-After to make up.
    let no_number = upstream(|| StatusCode::TOO_MANY_REQUESTS.into_response()).await;
    let server = ServerProcess::start(&logistics_config(no_number, 8000), &["plugins/logistics"]);
    let r = track_over_rest(&server).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get(header::RETRY_AFTER).is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["error"], json!({ "rate-limited": null }), "{body}");
    assert!(body["error"].get("retry_after").is_none(), "{body}");
}

/// Call `TRACK` against `hung` with a 700 ms timeout: the 504's error and
/// the call's audit record.
async fn time_out_on(hung: SocketAddr) -> (Value, Value) {
    let server = ServerProcess::start(&logistics_config(hung, 700), &["plugins/logistics"]);
    let (status, body) = invoke(&server, AGENT_TOKEN, TRACK, track()).await;
    assert_eq!(status, 504, "{body}");
    (body["error"].clone(), last_record(&server, TRACK).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_names_the_upstream_request_that_never_answered() {
    let hung = serve(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "too late"
    }))
    .await;
    let origin = format!("http://127.0.0.1:{}", hung.port());
    let (error, record) = time_out_on(hung).await;

    assert_eq!(error["kind"], "timeout");
    let waiting = &error["waiting_on"];
    assert_eq!(waiting["method"], "GET", "{error}");
    assert_eq!(waiting["origin"], origin.as_str(), "{error}");
    assert!(waiting["path"].as_str().unwrap().contains("NP-1001"), "{error}");
    assert_eq!(waiting["waiting_for"], "response", "{error}");
    assert!(waiting["waited_ms"].as_u64().unwrap() > 0, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("timed out after 700 ms, while GET ")
            && message.contains(&origin)
            && message.ends_with("ms for its response"),
        "{message}"
    );

    // The record names it in its error, and lists the request as cut short.
    assert_eq!(record["outcome"], "timeout", "{record}");
    assert_eq!(record["error"]["waiting_on"], *waiting, "{record}");
    let outbound = record["outbound"].as_array().unwrap();
    assert_eq!(outbound.len(), 1, "{record}");
    assert_eq!(outbound[0]["origin"], origin.as_str());
    assert_eq!(outbound[0]["status"], Value::Null);
    assert!(
        outbound[0]["error"]
            .as_str()
            .unwrap()
            .contains("when the call timed out"),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_names_the_upstream_request_whose_body_stalled() {
    // Headers and the start of a body, then nothing.
    let stalled = serve(Router::new().fallback(|| async {
        let start = futures::stream::once(async { Ok::<_, std::io::Error>("{\"awb\":".to_string()) });
        let body = axum::body::Body::from_stream(futures::StreamExt::chain(start, futures::stream::pending()));
        ([(header::CONTENT_TYPE, "application/json")], body)
    }))
    .await;
    let (error, record) = time_out_on(stalled).await;

    assert_eq!(error["waiting_on"]["waiting_for"], "body", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .ends_with("for the rest of its response body"),
        "{error}"
    );
    // Its response came (200), so the record lists it as answered.
    assert_eq!(record["error"]["waiting_on"], error["waiting_on"]);
    assert_eq!(record["outbound"][0]["status"], 200, "{record}");
}
