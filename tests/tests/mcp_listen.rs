//! MCP 2026-07-28 as a client of that revision sees it: it hears of a
//! hot-load on `subscriptions/listen` (the official Python SDK's default
//! client), every result it gets has what the revision requires (checked
//! against the revision's schema as the SDK ships it), and a listen stream
//! is bounded like a session: it takes a place of the token's share while
//! open, gives it back when its client goes, and ends after the idle time.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::{client, mcp_python, python_steps, repo_root, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdks_default_client_hears_of_a_hot_load_on_subscriptions_listen() {
    let server = ServerProcess::start("", &["echo", "spin"]);
    let (mut listener, mut next) = python_steps("tests/mcp_listen_client.py", &[&server.base, AGENT_TOKEN]);

    let listening = tokio::task::spawn_blocking(move || (next("listening"), next))
        .await
        .unwrap();
    let (listening, mut next) = listening;
    assert_eq!(listening["honored"], json!({ "toolsListChanged": true }), "{listening}");

    let r = client()
        .post(server.url("/v1/plugins/spin/disable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed = tokio::task::spawn_blocking(move || next("changed")).await.unwrap();
    assert_eq!(changed["event"], "ToolsListChanged", "{changed}");
    let names = changed["names"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "echo.check"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.as_str().unwrap().starts_with("spin.")),
        "{names:?}"
    );
    assert!(listener.wait().unwrap().success());
}

/// Each kind of result a 2026-07-28 client gets (discovery, the tool list,
/// a call's result, a failed one, a held one, the await tool's, a listen
/// stream's final result and its acknowledgment) validates against the
/// revision's schema: a `tools/list` without `resultType` failed here.
#[tokio::test(flavor = "multi_thread")]
async fn every_result_of_protocol_2026_07_28_has_what_the_revision_requires() {
    let config = "[server]\nmcp-idle-secs = 1\n\n\
                  [[approvals.rules]]\nname = \"held\"\ntools = [\"echo.counter\"]\nhold = \"always\"\n";
    let server = ServerProcess::start(config, &["echo"]);
    let out = Command::new(mcp_python())
        .arg(repo_root().join("tests/mcp_result_shapes.py"))
        .args([server.base.as_str(), AGENT_TOKEN, "echo.counter"])
        .output()
        .expect("run the result checker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let kinds: Vec<&str> = results.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "server/discover",
            "tools/list",
            "tools/call",
            "tools/call isError",
            "tools/call held",
            "tools/call await",
            "subscriptions/listen",
            "notifications/subscriptions/acknowledged"
        ],
        "{stderr}"
    );
    for result in &results {
        assert_eq!(result["valid"], true, "{result:#}");
    }
    // The calls are what they claim to be.
    assert_eq!(results[3]["result"]["isError"], true);
    assert!(results[4]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("approval_required"));
}

/// A `subscriptions/listen` request of protocol 2026-07-28, as one JSON body.
fn listen_request() -> Value {
    json!({
        "jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen",
        "params": {
            "notifications": { "toolsListChanged": true },
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    })
}

async fn listen(server: &ServerProcess) -> reqwest::Response {
    client()
        .post(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .json(&listen_request())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listen_stream_holds_a_session_place_until_its_client_goes_or_the_idle_time_ends_it() {
    let config = "[server]\nmax-mcp-sessions-per-principal = 1\nmcp-idle-secs = 2\n";
    let server = ServerProcess::start(config, &["echo"]);

    // Open: the token's one place is taken, by a listen stream as by a session.
    let first = listen(&server).await;
    assert_eq!(first.status(), 200);
    let second = listen(&server).await;
    assert_eq!(second.status(), 429, "{:?}", second.text().await);

    // The client goes: the place is free again (the host notices the
    // closed connection; wait for it, within the idle time).
    drop(first);
    let again = listen_once_free(&server).await;
    assert_eq!(again.status(), 200);

    // Left open, it ends after the idle time with the revision's final
    // result, and the place is free again.
    let started = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(10), again.text())
        .await
        .expect("the stream ends after the idle time")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    let last = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == "listen-1")
        .unwrap_or_else(|| panic!("no final result in {body}"));
    assert_eq!(last["result"]["resultType"], "complete", "{last}");
    assert_eq!(listen_once_free(&server).await.status(), 200);
}

/// A listen request once the place is free again (the host notices the end
/// of a stream when its connection closes): asked until it is answered 200,
/// for up to a second.
async fn listen_once_free(server: &ServerProcess) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let r = listen(server).await;
        if r.status() == 200 || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
