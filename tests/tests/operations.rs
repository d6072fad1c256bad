//! Running the host as an operator does, through the real binary: readiness
//! that says starting, ready and draining; JSON logs; the agent's
//! conversation id on MCP; the systemd unit as `systemd-analyze` reads it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use toolhost_tests::process::free_port;
use toolhost_tests::*;

/// `toolhost serve` in `dir` on `port`, its log to `dir/server.log`,
/// without waiting for anything.
fn spawn(dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Command::new(toolhost_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env("TOOLHOST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOOLHOST_AGENT_TOKEN", AGENT_TOKEN)
        .envs(env.iter().copied())
        .env_remove("TOOLHOST_LOG")
        .env_remove("TOOLHOST_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start toolhost serve")
}

async fn get(url: &str, token: &str) -> Option<(u16, Option<String>, Value)> {
    let r = client().get(url).bearer_auth(token).send().await.ok()?;
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    Some((status, retry, r.json().await.unwrap_or(Value::Null)))
}

/// Poll `url` until `done` says so (10 s at most); the last answer.
async fn until(url: &str, done: impl Fn(&(u16, Option<String>, Value)) -> bool) -> (u16, Option<String>, Value) {
    for _ in 0..200 {
        if let Some(answer) = get(url, AGENT_TOKEN).await {
            if done(&answer) {
                return answer;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered as expected");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_reports_starting_then_ready_then_draining() {
    // A registry that accepts and never answers holds the start in pulling
    // the plugin's source, until it hangs up.
    let registry = TcpListener::bind("127.0.0.1:0").unwrap();
    let registry_addr = registry.local_addr().unwrap();
    let (hang_up, hung_up) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (held, _) = registry.accept().unwrap();
        hung_up.recv().ok();
        drop(held);
    });

    let dir = Scratch::new("readiness");
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    copy_bundle(&guest("echo"), &dir.path().join("plugins/echo"));
    let config =
        format!("[server]\nshutdown-delay-secs = 2\n\n[sources]\nnetprobe = \"oci://{registry_addr}/netprobe:1\"\n");
    std::fs::write(dir.path().join("toolhost.toml"), config).unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}");

    // The port answers at once: alive, not ready, and other requests are
    // told to come back.
    until(&format!("{base}/healthz"), |(s, _, _)| *s == 200).await;
    let (status, _, body) = get(&format!("{base}/readyz"), AGENT_TOKEN).await.unwrap();
    assert_eq!((status, &body["state"]), (503, &json!("starting")), "{body}");
    let (status, retry, body) = get(&format!("{base}/v1/tools"), AGENT_TOKEN).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["kind"], "starting");

    // The registry hangs up: the start goes on without that source.
    hang_up.send(()).unwrap();
    holder.join().unwrap();
    let (_, _, body) = until(&format!("{base}/readyz"), |(s, _, _)| *s == 200).await;
    assert_eq!(body["state"], "ready", "{body}");
    let (status, _, tools) = get(&format!("{base}/v1/tools"), AGENT_TOKEN).await.unwrap();
    assert_eq!(status, 200);
    assert!(named(&tools, "echo.check").is_some(), "{tools}");

    // A stop: not ready for the delay, while calls are still served.
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let (_, _, body) = until(&format!("{base}/readyz"), |(s, _, _)| *s == 503).await;
    assert_eq!(body["state"], "draining", "{body}");
    let r = client()
        .post(format!("{base}/v1/tools/echo.check/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .json(&json!({ "ok": true, "message": "still here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a call while draining is served");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_with_a_time_when_asked() {
    let dir = Scratch::new("json-logs");
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    copy_bundle(&guest("echo"), &dir.path().join("plugins/echo"));
    std::fs::write(dir.path().join("toolhost.toml"), "").unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port, &[("TOOLHOST_LOG_FORMAT", "json")]);
    let base = format!("http://127.0.0.1:{port}");
    until(&format!("{base}/readyz"), |(s, _, _)| *s == 200).await;
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());

    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "start, loaded and stop are logged: {log}");
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let time = event["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(time.starts_with("20") && time.contains('T'), "{line}");
        assert!(event["level"].is_string(), "{line}");
    }
    let messages: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["fields"]["message"].to_string())
        .collect();
    assert!(messages.iter().any(|m| m.contains("plugin(s) loaded")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("stopped; storage flushed")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_conversation_id_names_mcp_calls_in_the_trail() {
    let server = ServerProcess::start("", &["echo"]);
    let session = mcp_open(&server).await.expect("a session");
    let call = |id: u32, conversation: Option<&'static str>| {
        let mut request = client()
            .post(server.url("/mcp"))
            .bearer_auth(AGENT_TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .json(&json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": { "name": "echo_check", "arguments": { "ok": true, "message": "m" } } }));
        if let Some(c) = conversation {
            request = request.header("x-session-id", c);
        }
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let answer = call(2, Some("conversation-42")).await;
    assert!(answer.contains("\"result\""), "{answer}");
    call(3, None).await;

    let (_, named_by_agent) = get_json(&server, ADMIN_TOKEN, "/v1/audit?session=conversation-42").await;
    let records = named_by_agent["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{named_by_agent}");
    assert_eq!(records[0]["via"], "mcp");
    let (_, by_session) = get_json(&server, ADMIN_TOKEN, &format!("/v1/audit?session={session}")).await;
    assert_eq!(
        by_session["records"].as_array().map(Vec::len),
        Some(1),
        "without X-Session-Id the MCP session names the call: {by_session}"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = repo_root().join("host/deploy/toolhost@.service");
    // A root holding what the unit names: the toolhost binary where it says,
    // the tools its Exec lines run, and this machine's systemd units.
    let root = Scratch::new("systemd-root");
    let at = |p: &str| root.path().join(p);
    for d in ["usr/local/bin", "usr/bin", "usr/lib", "etc/systemd/system"] {
        std::fs::create_dir_all(at(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", at("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/systemd", at("usr/lib/systemd")).unwrap();
    for tool in ["mkdir", "kill"] {
        std::fs::copy(format!("/usr/bin/{tool}"), at(&format!("usr/bin/{tool}"))).unwrap();
    }
    let binary = at("usr/local/bin/toolhost");
    if std::fs::hard_link(toolhost_bin(), &binary).is_err() {
        std::fs::copy(toolhost_bin(), &binary).unwrap();
    }
    std::fs::copy(&unit, at("etc/systemd/system/toolhost@.service")).unwrap();

    // Debian's systemd package brings it, if the machine lacks it.
    let lock = repo_root().join("target/.apt.lock");
    let install = format!(
        "set -e; exec 9>'{}'; flock 9; export DEBIAN_FRONTEND=noninteractive; \
         command -v systemd-analyze >/dev/null || apt-get install -y -q systemd >&2 || \
         (apt-get update -q >&2 && apt-get install -y -q systemd >&2)",
        lock.display()
    );
    assert!(
        Command::new("bash").args(["-c", &install]).status().unwrap().success(),
        "installing systemd failed"
    );
    let out = Command::new("systemd-analyze")
        .args([
            "verify",
            &format!("--root={}", root.path().display()),
            "toolhost@a.service",
        ])
        .output()
        .expect("systemd-analyze (Debian's systemd) is installed");
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // This machine's own units, read through the root, may point outside
    // it; only what concerns our unit counts.
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains("toolhost@")).collect();
    assert!(out.status.success(), "{said}");
    assert!(about_ours.is_empty(), "systemd-analyze on the unit: {about_ours:#?}");
}
