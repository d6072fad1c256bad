//! MCP through a real client library this project did not write: the
//! official Python SDK, against `toolhost serve`.

use std::process::Command;

use serde_json::Value;
use toolhost_tests::{get_json, mcp_python, python_steps, repo_root, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_client_lists_calls_and_hears_of_changes() {
    let server = ServerProcess::start("", &["echo", "spin"]);
    let (mut client, mut next) = python_steps("tests/mcp_client.py", &[&server.base, AGENT_TOKEN]);

    let init = next("initialized");
    assert_eq!(init["server"], "toolhost");
    assert_eq!(init["list_changed"], true);

    let tools = next("tools");
    let names: Vec<&str> = tools["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo.check") && names.contains(&"spin.quick"),
        "{names:?}"
    );
    assert_eq!(tools["check_schema"]["required"], serde_json::json!(["ok", "message"]));

    let ok = next("call_ok");
    assert_eq!(ok["is_error"], false);
    assert_eq!(ok["text"], "\"hello\"");

    let failed = next("call_error");
    assert_eq!(failed["is_error"], true);
    assert!(failed["text"].as_str().unwrap().contains("plugin_error"), "{failed}");

    let invalid = next("call_invalid");
    assert_eq!(invalid["is_error"], true);
    assert!(invalid["text"].as_str().unwrap().contains("invalid_input"), "{invalid}");

    next("waiting_for_change");
    let r = reqwest::Client::new()
        .post(server.url("/v1/plugins/spin/disable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed = tokio::task::spawn_blocking(move || next("changed")).await.unwrap();
    let names: Vec<&str> = changed["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("spin.")), "{names:?}");
    assert!(client.wait().unwrap().success());

    // MCP calls are audited like any other, marked as such.
    let (_, audit) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["via"] == "mcp" && r["token"] == "agent"));
    // The echo manifest marks `check`'s message secret.
    assert!(
        records.iter().all(|r| r["arguments"]["message"] == "[redacted]"),
        "{records:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_needs_a_token() {
    let server = ServerProcess::start("", &["echo"]);
    let r = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The SDK's default client as an agent gets it without configuring
/// anything (`mcp.Client(url)`: protocol 2026-07-28 through
/// `server/discover`), and its legacy handshake: both list the tools and
/// call one. The default client refuses a result that lacks what its
/// revision requires (a `tools/list` without `resultType` failed here); the
/// legacy one closes its session as the SDK expects.
#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_sdks_default_client_lists_and_calls_in_both_protocols() {
    let server = ServerProcess::start("", &["echo"]);
    for mode in ["auto", "legacy"] {
        let out = Command::new(mcp_python())
            .arg(repo_root().join("tests/mcp_default_client.py"))
            .args([server.base.as_str(), AGENT_TOKEN, mode])
            .output()
            .expect("run the MCP client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mode {mode}: {stderr}");
        // The legacy handshake's session is closed with DELETE on the way
        // out; the SDK warns of any answer but 200 or 204.
        assert!(!stderr.contains("Session termination failed"), "mode {mode}: {stderr}");
        let steps: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        assert_eq!(steps.len(), 2, "mode {mode}: {steps:?} {stderr}");
        let names = steps[0]["names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "echo.check"), "mode {mode}: {names:?}");
        assert_eq!(steps[1]["is_error"], false, "mode {mode}: {}", steps[1]);
    }
}
