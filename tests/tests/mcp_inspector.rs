//! The MCP Inspector's command line (`@modelcontextprotocol/inspector`
//! 2.12.0, `--cli`, on Node 22), a client nobody here wrote, against a real
//! `toolhost serve`, in both protocol eras it speaks (`modern`: 2026-07-28;
//! `legacy`: the initialize handshake): list the tools, call one, get
//! structured output, and follow a call held for approval to its result.

use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use toolhost_tests::{decide, mcp_inspector, node_path, ServerProcess, AGENT_TOKEN, APPROVER_TOKEN};

/// The Inspector's one JSON answer to `method` (with `extra` arguments).
fn inspect(server: &ServerProcess, era: &str, method: &str, extra: &[&str]) -> Value {
    let dir = mcp_inspector();
    let output = Command::new(dir.join("node_modules/.bin/mcp-inspector"))
        .arg("--cli")
        .arg(server.url("/mcp"))
        .args([
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--format",
            "json",
            "--quiet",
        ])
        .args(["--header", &format!("Authorization: Bearer {AGENT_TOKEN}")])
        .args(["--method", method])
        .args(extra)
        // Its catalog and stored state go to a scratch home, not the user's.
        .env("HOME", server.dir.path())
        .env("PATH", node_path(dir))
        .output()
        .expect("run the MCP Inspector");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A tool result with `isError` is printed, and the exit status says so (5).
    let is_error_result = output.status.code() == Some(5) && stdout.contains("\"isError\":true");
    assert!(
        output.status.success() || is_error_result,
        "{era} {method}: {}\n{stdout}\n{stderr}",
        output.status
    );
    let answer: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{era} {method}: not JSON ({e}): {stdout}\n{stderr}"));
    // `--format json` wraps the method's result: `{"result": ...}`.
    answer
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{era} {method}: no result: {answer}"))
}

fn call(server: &ServerProcess, era: &str, tool: &str, args: &Value) -> Value {
    let args = args.to_string();
    inspect(
        server,
        era,
        "tools/call",
        &["--tool-name", tool, "--tool-args-json", &args],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_inspector_cli_lists_calls_gets_structured_output_and_follows_a_held_call() {
    let config = "[[approvals.rules]]\nname = \"held\"\ntools = [\"echo.counter\"]\nhold = \"always\"\n";
    let server = ServerProcess::start(config, &["echo"]);
    mcp_inspector();
    let started = Instant::now();
    for era in ["modern", "legacy"] {
        let listed = inspect(&server, era, "tools/list", &[]);
        let tools = listed["tools"].as_array().unwrap_or_else(|| panic!("{era}: {listed}"));
        let echo = tools
            .iter()
            .find(|t| t["name"] == "echo.echo")
            .expect("echo.echo listed");
        assert_eq!(echo["outputSchema"]["type"], "object", "{era}: {echo}");
        assert!(tools.iter().any(|t| t["name"] == "toolhost.await-approval"), "{era}");

        let ok = call(&server, era, "echo.check", &json!({ "ok": true, "message": "hello" }));
        assert_ne!(ok["isError"], true, "{era}: {ok}");
        assert_eq!(ok["content"][0]["text"], "\"hello\"", "{era}: {ok}");

        let value = json!({
            "name": "parcel", "count": 4, "delta": -9, "ratio": 0.5, "initial": "é", "small": -128,
            "tags": ["a"], "color": "green", "perms": ["read"], "shape": { "circle": 1.5 },
            "maybe": null, "pair": ["left", 7], "outcome": { "ok": 3 }, "flag": true,
        });
        let structured = call(&server, era, "echo.echo", &json!({ "value": value }));
        assert_eq!(structured["structuredContent"], value, "{era}: {structured}");

        // The legacy handshake declares the tasks extension: the held call
        // is a task (its id the approval's); the modern one gets the
        // fallback result that names the approval.
        let held = call(&server, era, "echo.counter", &json!({}));
        let id = if era == "legacy" {
            assert_eq!(held["status"], "working", "{era}: {held}");
            held["taskId"].as_str().unwrap().to_string()
        } else {
            assert_eq!(held["isError"], true, "{era}: {held}");
            let text: Value = serde_json::from_str(held["content"][0]["text"].as_str().unwrap()).unwrap();
            assert_eq!(text["kind"], "approval_required", "{era}: {text}");
            text["approval"]["id"].as_str().unwrap().to_string()
        };
        assert_eq!(decide(&server, APPROVER_TOKEN, &id, "approve", "fine").await.0, 200);
        let done = call(&server, era, "toolhost.await-approval", &json!({ "approval": id }));
        assert_ne!(done["isError"], true, "{era}: {done}");
        assert!(
            done["content"][0]["text"].as_str().unwrap().parse::<u32>().is_ok(),
            "{era}: {done}"
        );
    }
    eprintln!("the Inspector's 10 runs took {:?}", started.elapsed());
}
