//! A connector's progress reports (the contract's `progress` import) reach
//! an MCP client that sent a progress token, as `notifications/progress`
//! before the call's answer; bounded, increasing and masked whatever the
//! connector does; and a call that reports nothing keeps its one-piece
//! answer.

use std::process::Command;

use serde_json::{json, Value};
use toolhost::capabilities::{MAX_PROGRESS_MESSAGE, MAX_PROGRESS_REPORTS};
use toolhost_tests::{client, invoke, mcp_open, mcp_post, mcp_python, repo_root, ServerProcess, AGENT_TOKEN};

const VALUE: &str = "progress-secret-value-0123456789";

fn config() -> String {
    format!("[plugins.secret-thief]\nsecrets = {{ mine = {{ value = \"{VALUE}\" }} }}\n")
}

/// What came back for a `tools/call` of `tool` in `session` with a
/// progress token: the content type, the progress notifications for the
/// token, and the messages in the order they came (the answer last).
struct Heard {
    content_type: String,
    progress: Vec<Value>,
    messages: Vec<Value>,
}

async fn call_with_token(server: &ServerProcess, session: &str, tool: &str, arguments: Value) -> Heard {
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments, "_meta": { "progressToken": "tok-1" } } });
    let response = mcp_post(server, &client(), Some(session), body).await;
    assert!(response.status().is_success(), "{}", response.status());
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    let text = response.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .collect();
    let progress = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"].clone())
        .collect::<Vec<_>>();
    assert!(progress.iter().all(|p| p["progressToken"] == "tok-1"), "{progress:?}");
    Heard {
        content_type,
        progress,
        messages,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_reports_reaches_the_client_bounded_increasing_and_before_the_answer() {
    let server = ServerProcess::start("", &["spin", "echo"]);
    let session = mcp_open(&server).await.unwrap();

    // 10,000 reports, each followed by one that goes back, with 1 KB
    // messages, as fast as the guest can make them.
    let args = json!({ "reports": 10_000, "message-bytes": 1000 });
    let heard = call_with_token(&server, &session, "spin.flood-progress", args.clone()).await;
    assert!(
        heard.content_type.starts_with("text/event-stream"),
        "{}",
        heard.content_type
    );
    let answer = heard.messages.last().unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "20000", "{answer}");
    let count = heard.progress.len();
    assert!((1..=MAX_PROGRESS_REPORTS as usize).contains(&count), "{count} reports");
    let done: Vec<f64> = heard.progress.iter().map(|p| p["progress"].as_f64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "not increasing: {done:?}");
    for p in &heard.progress {
        let message = p["message"].as_str().unwrap();
        assert!(
            message.len() <= MAX_PROGRESS_MESSAGE + '…'.len_utf8(),
            "{} bytes",
            message.len()
        );
        // A report going back passes when the one before it was dropped
        // (the client had no room): it is still larger than the last sent.
        assert!(matches!(p["total"].as_f64(), Some(10_000.0) | None), "{p}");
    }
    // Every notification came before the answer.
    let answered_at = heard.messages.iter().position(|m| m.get("result").is_some()).unwrap();
    assert_eq!(answered_at, heard.messages.len() - 1);

    // The same call without a token, and a call of a connector that never
    // reports (echo does not import `progress`), with one: answered in one
    // piece (the shortcut), no progress.
    let (status, body) = invoke(&server, AGENT_TOKEN, "spin.flood-progress", args).await;
    assert_eq!((status.as_u16(), &body["result"]), (200, &json!(20_000)), "{body}");
    let heard = call_with_token(&server, &session, "echo.check", json!({ "ok": true, "message": "hi" })).await;
    assert!(
        heard.content_type.starts_with("application/json"),
        "{}",
        heard.content_type
    );
    assert!(heard.progress.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_progress_message_is_masked() {
    let server = ServerProcess::start(&config(), &["secret-thief"]);
    let session = mcp_open(&server).await.unwrap();
    let args = json!({ "name": "mine", "how": "progress", "arg": " after", "pad": 0 });
    let heard = call_with_token(&server, &session, "secret-thief.probe", args).await;
    assert_eq!(heard.progress.len(), 1, "{:?}", heard.messages);
    assert_eq!(heard.progress[0]["message"], "[secret mine] after");
    let everything = serde_json::to_string(&heard.messages).unwrap();
    assert!(!everything.contains(VALUE), "{everything}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_sdks_default_client_shows_a_tools_progress_in_both_protocols() {
    let server = ServerProcess::start("", &["conformance"]);
    for mode in ["auto", "legacy"] {
        let out = Command::new(mcp_python())
            .arg(repo_root().join("tests/mcp_default_client.py"))
            .args([server.base.as_str(), AGENT_TOKEN, mode, "test.tool-with-progress", "{}"])
            .output()
            .expect("run the MCP client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mode {mode}: {stderr}");
        let called: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
        assert_eq!(called["is_error"], false, "mode {mode}: {called}");
        let progress: Vec<(f64, f64)> = called["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["progress"].as_f64().unwrap(), p["total"].as_f64().unwrap()))
            .collect();
        assert_eq!(progress, [(0.0, 100.0), (50.0, 100.0), (100.0, 100.0)], "mode {mode}");
    }
}
