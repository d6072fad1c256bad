//! How long an agent waits once a reviewer approves: `toolhost serve` on
//! 127.0.0.1 with the echo test component and a rule that holds
//! `echo.check` unless its message is `plain`. Each round, an agent's call is
//! held (202), the agent long-polls `GET /v1/approvals/{id}?wait=30`, and a
//! reviewer approves: the time from sending the approve request to the
//! long-poll returning the call's result. Beside it, in the same run, the
//! same call that no rule holds, end to end over HTTP.
//!
//! `plugins/build.sh && cargo run --release -p toolhost --example approval_latency [ROUNDS]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost::config::Config;

const AGENT: &str = "latency-agent-token-0123456789";
const REVIEWER: &str = "latency-reviewer-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(300), |n| n.parse())?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let echo = root.join("tests/guests/echo");
    anyhow::ensure!(
        echo.join("echo.wasm").is_file(),
        "tests/guests/echo is not built: run plugins/build.sh first"
    );
    let work = std::env::temp_dir().join(format!("toolhost-approval-latency-{}", std::process::id()));
    std::fs::create_dir_all(work.join("plugins"))?;
    std::os::unix::fs::symlink(&echo, work.join("plugins/echo"))?;
    let mut config = Config::parse(
        "[server]\nrate-per-minute = 10000000\n\n[[approvals.rules]]\nname = \"all but plain\"\n\
         tools = [\"echo.check\"]\nwhen = \"args.message != 'plain'\"\n",
        "latency",
    )?;
    config.server.plugins_dir = work.join("plugins");
    config.server.data_dir = work.join("data");
    config.server.watch = false;
    // Nothing else runs yet; the server reads them at start.
    std::env::set_var("TOOLHOST_AGENT_TOKEN", AGENT);
    std::env::set_var("TOOLHOST_APPROVER_TOKEN", REVIEWER);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(toolhost::server::serve_on(listener, config, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let call = |message: String| {
        http.post(format!("{base}/v1/tools/echo.check/invoke"))
            .bearer_auth(AGENT)
            .json(&json!({ "ok": true, "message": message }))
            .send()
    };
    while call("plain".into()).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut approve_to_result = Vec::with_capacity(rounds);
    let mut plain_call = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let t = Instant::now();
        let r = call("plain".into()).await?;
        anyhow::ensure!(r.status() == 200, "plain call: {}", r.status());
        r.bytes().await?;
        plain_call.push(t.elapsed());

        let held: Value = call(format!("round {round}")).await?.json().await?;
        let id = held["approval"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("not held: {held}"))?
            .to_string();
        let waiting = tokio::spawn(
            http.get(format!("{base}/v1/approvals/{id}?wait=30"))
                .bearer_auth(AGENT)
                .send(),
        );
        // Let the long-poll reach the server and park.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/approvals/{id}/approve"))
            .bearer_auth(REVIEWER)
            .json(&json!({ "reason": "measured" }))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "approve: {}", r.status());
        let answer = waiting.await??;
        anyhow::ensure!(answer.status() == 200, "long-poll: {}", answer.status());
        answer.bytes().await?;
        approve_to_result.push(t.elapsed());
    }
    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&work);

    println!("{rounds} rounds on 127.0.0.1:");
    for (what, times) in [
        ("approve → long-poll returns the result", &mut approve_to_result),
        ("the same call, not held (baseline)", &mut plain_call),
    ] {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "  {what:<42} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
            at(0.5),
            at(0.9),
            at(0.99)
        );
    }
    Ok(())
}
