//! Everything a connector or a client can make the host hold has a bound:
//! a call's denials and its log lines, the host resources an instance holds,
//! metric series, MCP sessions, idle instances kept for reuse. Each test
//! pushes one of them far past its bound through the real server.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::*;

/// `/metrics` as the admin.
async fn metrics(server: &ServerProcess) -> String {
    get_text(server, ADMIN_TOKEN, "/metrics").await
}

/// The value of the metric line that starts with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Lines of the server's log that contain every one of `parts`.
fn log_lines(server: &ServerProcess, parts: &[&str]) -> usize {
    server
        .log()
        .lines()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .count()
}

async fn invoke_in_session(server: &ServerProcess, tool: &str, args: Value, session: &str) -> (u16, Value) {
    let r = client()
        .post(server.url(&format!("/v1/tools/{tool}/invoke")))
        .bearer_auth(AGENT_TOKEN)
        .header("x-session-id", session)
        .json(&args)
        .send()
        .await
        .expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_looping_on_a_refused_secret_leaves_a_bounded_record_and_log() {
    let server = ServerProcess::start("", &["secret-thief"]);
    let (status, body) = invoke(
        &server,
        AGENT_TOKEN,
        "secret-thief.steal-repeatedly",
        json!({ "name": "crm-api-key", "times": 100_000 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], 100_000, "every attempt was refused");

    // The record keeps the first 32 denials and counts them all.
    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=secret-thief.steal-repeatedly").await;
    let record = &page["records"][0];
    assert_eq!(record["denials"].as_array().unwrap().len(), 32, "{}", record["denials"]);
    assert_eq!(record["denials_total"], 100_000);
    assert_eq!(record["denials"][0]["capability"], "secret");

    // The log: at most eight of them one by one, then one line for the rest.
    let one_by_one = log_lines(&server, &["capability denied", "secret-thief"]);
    assert!((1..=8).contains(&one_by_one), "{one_by_one} denials logged one by one");
    assert_eq!(
        log_lines(&server, &["not logged one by one", "unlogged=99992", "secret-thief"]),
        1
    );

    // Across calls the plugin's log budget holds too: 40 calls at once,
    // each refused 50 times, reach the log as a burst of at most 64 lines
    // plus 16 a second, not 40 × 9.
    let started = Instant::now();
    let calls = (0..40).map(|_| {
        let server = &server;
        async move {
            invoke(
                server,
                AGENT_TOKEN,
                "secret-thief.steal-repeatedly",
                json!({ "name": "x", "times": 50 }),
            )
            .await
        }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let logged = log_lines(&server, &["capability denied", "secret-thief"])
        + log_lines(&server, &["not logged one by one", "secret-thief"]);
    let bound = 64.0 + 16.0 * (elapsed + 1.0);
    assert!(
        (logged as f64) <= bound,
        "{logged} lines in {elapsed:.1} s (bound {bound})"
    );

    // The metrics count every denial, logged or not.
    let text = metrics(&server).await;
    assert_eq!(
        metric(
            &text,
            r#"toolhost_denials_total{plugin="secret-thief",capability="secret"}"#
        ),
        Some(100_000.0 + 40.0 * 50.0)
    );

    // A denial names what was asked for, cut at 256 bytes however long.
    let (status, _) = invoke(
        &server,
        AGENT_TOKEN,
        "secret-thief.steal-repeatedly",
        json!({ "name": "n".repeat(100_000), "times": 1 }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, page) = get_json(
        &server,
        ADMIN_TOKEN,
        "/v1/audit?tool=secret-thief.steal-repeatedly&limit=1",
    )
    .await;
    let detail = page["records"][0]["denials"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        (100..=260).contains(&detail.len()),
        "a detail of {} bytes",
        detail.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_cannot_hold_more_than_its_share_of_host_resources() {
    let server = ServerProcess::start("", &["membomb"]);
    let (status, body) = invoke(&server, AGENT_TOKEN, "membomb.handles", json!({ "count": 1000 })).await;
    assert_eq!(status, 200, "a thousand are fine: {body}");
    assert_eq!(body["result"], 1000);

    // 507, not 429: the same call fails the same way on every retry.
    let (status, body) = invoke(&server, AGENT_TOKEN, "membomb.handles", json!({ "count": 1_000_000 })).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["reason"], "host_resources", "{body}");
    assert_eq!(body["error"]["kind"], "resource_exhausted", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("4096 host resources"), "{message}");

    let (status, _) = invoke(&server, AGENT_TOKEN, "membomb.handles", json!({ "count": 10 })).await;
    assert_eq!(status, 200, "the plugin serves again");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tool_names_do_not_create_metric_series() {
    let server = ServerProcess::start("", &["echo"]);
    for i in 0..50 {
        let (status, _) = invoke(&server, AGENT_TOKEN, &format!("made.up-{i}"), json!({})).await;
        assert_eq!(status, 404);
    }
    echo_check(&server, AGENT_TOKEN).await;
    let text = metrics(&server).await;
    assert!(!text.contains("made.up"), "a requested name became a label");
    assert_eq!(
        metric(&text, r#"toolhost_calls_total{tool="(refused)",outcome="not_found"}"#),
        Some(50.0)
    );
    assert_eq!(
        metric(&text, r#"toolhost_calls_total{tool="echo.check",outcome="ok"}"#),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_sessions_are_capped_and_idle_ones_closed() {
    let server = ServerProcess::start(
        "[server]\nmax-mcp-sessions = 3\nmcp-idle-secs = 2\nmax-body-bytes = 4096\n",
        &["echo"],
    );
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(mcp_open(&server).await.expect("under the cap"));
    }
    let refused = mcp_open(&server).await.expect_err("a fourth is over the cap");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "too_many_sessions", "{body}");
    assert_eq!(metric(&metrics(&server).await, "toolhost_mcp_sessions"), Some(3.0));
    // At the cap the host reads a request without a session to tell an
    // `initialize` from a stateless call; it reads no more than the body
    // limit (its own 413, not the transport's, which comes after).
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "pad": "x".repeat(8192) } });
    let refused = mcp_post(&server, &client(), None, big).await;
    assert_eq!(refused.status(), 413);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "payload_too_large", "{body}");
    // A call under the protocol without sessions opens none, so the cap
    // does not turn it away.
    let stateless = mcp_stateless_call(&server, "echo.check", json!({ "ok": true, "message": "hi" })).await;
    assert_eq!(stateless.status(), 200);
    let body: Value = stateless.json().await.unwrap();
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(metric(&metrics(&server).await, "toolhost_mcp_sessions"), Some(3.0));

    // A closed session gives its place back.
    let closed = client()
        .delete(server.url("/mcp"))
        .bearer_auth(AGENT_TOKEN)
        .header("mcp-session-id", open.pop().unwrap())
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    open.push(mcp_open(&server).await.expect("a place was freed"));

    // Sessions that go quiet are closed after the idle time.
    let started = Instant::now();
    while metric(&metrics(&server).await, "toolhost_mcp_sessions") != Some(0.0) {
        assert!(started.elapsed() < Duration::from_secs(15), "idle sessions stayed open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ping = json!({ "jsonrpc": "2.0", "id": 9, "method": "ping" });
    let stale = mcp_post(&server, &client(), Some(&open[0]), ping).await;
    assert_eq!(stale.status(), 404, "a closed session is gone");
    mcp_open(&server).await.expect("new sessions open again");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_kept_for_reuse_are_capped_host_wide_and_expire() {
    let slow = upstream_with_slow(Duration::from_millis(800)).await;
    // Four instances in the pool: a quarter (one) may idle for reuse.
    let config = format!(
        "[server]\nmax-instances = 4\nwarm-idle-secs = 2\n\n[plugins.echo]\nreuse-instances = 100\n\n{}",
        netprobe_grant(slow)
    );
    let server = ServerProcess::start(&config, &["echo", "netprobe"]);
    for session in 0..8 {
        let (status, body) = invoke_in_session(&server, "echo.counter", json!({}), &format!("s{session}")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(metric(&metrics(&server).await, "toolhost_instances_idle"), Some(1.0));

    // Three fresh calls at once still find room in the pool.
    let fetch = json!({ "method": "GET", "url": format!("http://{slow}/slow"), "host-header": null });
    let calls = (0..3).map(|_| invoke(&server, AGENT_TOKEN, "netprobe.fetch", fetch.clone()));
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "a fresh call found no slot: {body}");
    }

    // The one kept serves its caller again, until it has idled too long.
    let (_, body) = invoke_in_session(&server, "echo.counter", json!({}), "s0").await;
    assert_eq!(body["result"], 2, "s0's instance was kept: {body}");
    let started = Instant::now();
    while metric(&metrics(&server).await, "toolhost_instances_idle") != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the idle instance was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = invoke_in_session(&server, "echo.counter", json!({}), "s0").await;
    assert_eq!(body["result"], 1, "after the idle time a fresh instance: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_stdout_and_stderr_reach_the_host_log_within_the_call_budget() {
    let server = ServerProcess::start("", &["echo"]);
    let print = |lines: u32, size: u32, tail: &str| {
        invoke(
            &server,
            AGENT_TOKEN,
            "echo.print",
            json!({ "lines": lines, "size": size, "tail": tail }),
        )
    };
    let (status, body) = print(2, 5, "no newline at the end").await;
    assert_eq!(status, 200, "{body}");
    for (text, stream) in [
        ("out 0 ooooo", "stdout"),
        ("out 1 ooooo", "stdout"),
        ("err 0 ooooo", "stderr"),
        ("err 1 ooooo", "stderr"),
        ("no newline at the end", "stdout"),
    ] {
        let stream = format!("stream=\"{stream}\"");
        assert_eq!(
            log_lines(&server, &[text, "plugin=\"echo\"", &stream]),
            1,
            "{text} on {stream}"
        );
    }

    // 2 × 1000 lines of 5 KiB: 256 lines a call, none over 2 KiB.
    let (status, body) = print(1000, 5000, "").await;
    assert_eq!(status, 200, "{body}");
    let log = server.log();
    let flood: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin=\"echo\"") && l.contains("ooooo") && !l.contains("ooooo plugin"))
        .collect();
    assert_eq!(flood.len(), 256, "lines of the flooding call");
    let longest = flood.iter().map(|l| l.len()).max().unwrap_or(0);
    assert!(longest < 2048 + 200, "a line of {longest} bytes");
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => folder_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A refused call's arguments are neither echoed nor stored whole: 50 calls
/// with a 900 KiB key name (each a 422) added 222 MB to the data folder.
/// Now the error quotes a bounded excerpt, the audit record keeps the
/// arguments' digest and a prefix, and the folder grows by records, not
/// by arguments.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_refused_argument_is_neither_echoed_nor_stored_whole() {
    let server = ServerProcess::start("", &["echo"]);
    echo_check(&server, AGENT_TOKEN).await;
    let data = server.dir.path().join("data");
    let before = folder_bytes(&data);
    const CALLS: u64 = 20;
    const KEY: usize = 900 * 1024;
    let mut args = serde_json::Map::new();
    args.insert("k".repeat(KEY), json!(1));
    let args = Value::Object(args);
    for _ in 0..CALLS {
        let r = client()
            .post(server.url("/v1/tools/echo.check/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .json(&args)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let body = r.text().await.unwrap();
        assert!(body.len() < 2048, "an error of {} bytes", body.len());
        assert!(body.contains("unknown argument"), "{body}");
    }

    let (_, page) = get_json(
        &server,
        ADMIN_TOKEN,
        "/v1/audit?tool=echo.check&outcome=invalid_input&limit=1",
    )
    .await;
    let record = &page["records"][0];
    let kept = &record["arguments"];
    assert_eq!(kept["truncated"], true, "{kept}");
    assert_eq!(kept["digest"], record["arguments_digest"]);
    assert!(kept["bytes"].as_u64().unwrap() > KEY as u64, "{kept}");
    assert!(kept["prefix"].as_str().unwrap().starts_with("{\"kkk"), "{kept}");
    let size = record.to_string().len();
    assert!(size < 8 * 1024, "a record of {size} bytes");

    // Each call stored whole was ~2 KEY (arguments and error); bounded, the
    // 20 records take well under one argument's size.
    let grown = folder_bytes(&data).saturating_sub(before);
    assert!(
        grown < KEY as u64,
        "the data folder grew by {grown} bytes in {CALLS} calls"
    );
}
