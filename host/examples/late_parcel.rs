//! The late-parcel scenario as a demo: starts the SAMPLE upstream systems and
//! toolhost (with the reference connectors and the `late-parcel` workflow
//! from `plugins/`, built by `plugins/build.sh`) on 127.0.0.1. Each of three
//! complaints is handled by one call of the workflow, then by a scripted
//! agent making the nine calls itself, for comparison (vouchers are keyed by
//! order, so both end with the same voucher). It prints the run's steps and
//! the audit trail. The demo operator holds vouchers over 50.00 for a
//! reviewer; a scripted reviewer here approves them as they come.
//!
//! Then it measures: ROUNDS (default 20) interleaved pairs of the same
//! complaint (SO-1001) handled by the workflow and by the scripted agent,
//! and the engine's own time per step (a run's time less the time inside
//! its tool calls, from the audit trail).
//!
//! `cargo run --release -p toolhost --example late_parcel [ROUNDS]`

use std::path::PathBuf;
use std::time::Duration;

use sample_upstreams::scenario::{demo_config, handle_complaint};
use serde_json::{json, Value};
use toolhost::audit::AuditFilter;
use toolhost::config::Config;

const AGENT_TOKEN: &str = "demo-agent-token-0123456789";
const REVIEWER_TOKEN: &str = "demo-reviewer-token-0123456789";

/// A reviewer at the approvals queue, approving each held call with a reason.
async fn review(http: reqwest::Client, base: String) {
    loop {
        let queue = http
            .get(format!("{base}/v1/approvals"))
            .bearer_auth(REVIEWER_TOKEN)
            .send()
            .await;
        let queue: serde_json::Value = match queue {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => return,
        };
        for approval in queue["approvals"].as_array().into_iter().flatten() {
            let id = approval["id"].as_str().unwrap_or_default();
            let _ = http
                .post(format!("{base}/v1/approvals/{id}/approve"))
                .bearer_auth(REVIEWER_TOKEN)
                .json(&serde_json::json!({ "reason": "compensation matches the contract terms" }))
                .send()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = root.join("plugins");
    for name in ["crm", "erp", "logistics", "coupon"] {
        anyhow::ensure!(
            plugins.join(name).join(format!("{name}.wasm")).is_file(),
            "plugins/{name} is not built: run plugins/build.sh first"
        );
    }
    let work = std::env::temp_dir().join(format!("toolhost-late-parcel-{}", std::process::id()));
    let upstreams = sample_upstreams::start(&work.join("upstreams"), "127.0.0.1:0".parse()?, Default::default())
        .await?
        .addr;
    println!("sample upstreams (CRM, ERP, Nordpost, Swiftline) on http://{upstreams}");

    let mut config = Config::parse(&demo_config(upstreams), "demo")?;
    config.server.plugins_dir = plugins;
    config.server.data_dir = work.join("toolhost");
    config.server.watch = false;
    // SAFETY of set_var: nothing else runs yet; the server reads it at start.
    std::env::set_var("TOOLHOST_AGENT_TOKEN", AGENT_TOKEN);
    std::env::set_var("TOOLHOST_APPROVER_TOKEN", REVIEWER_TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(toolhost::server::serve_on(listener, config.clone(), async {
        let _ = stopped.await;
    }));
    // Ready once the tools are listed.
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let ready = http
            .get(format!("{base}/v1/tools"))
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::spawn(review(http.clone(), base.clone()));

    let complaints = [
        (
            "SO-1001",
            "Hi, my parcel from Hamburg was promised for the 6th and only came two days later. I paid for priority!",
        ),
        ("SO-1002", "Hello, has my second order shipped on time?"),
        (
            "SO-1003",
            "My third parcel never arrived. The tracking says nothing for days.",
        ),
    ];
    let mut runs = Vec::new();
    for (order, text) in complaints {
        println!("\ncomplaint about {order}: \"{text}\"");
        let (run, took) = run_workflow(&http, &base, order, text).await?;
        for step in run["run"]["steps"].as_array().into_iter().flatten() {
            if let Some(tool) = step["tool"].as_str() {
                println!("  {:<9} {tool}", step["state"].as_str().unwrap_or_default());
            }
        }
        let result = &run["result"];
        println!(
            "  → workflow run {} ({}) in {:.1} ms: {}",
            run["run"]["id"].as_str().unwrap_or_default(),
            run["run"]["state"].as_str().unwrap_or_default(),
            took.as_secs_f64() * 1e3,
            result["decision"].as_str().unwrap_or("no decision")
        );
        runs.push(run["run"]["id"].as_str().unwrap_or_default().to_string());

        let o = handle_complaint(&base, AGENT_TOKEN, order, text).await?;
        let verdict = match &o.voucher {
            Some(code) => format!(
                "voucher {code} for {}.{:02} {} ({} bps of the order)",
                o.compensation_minor / 100,
                o.compensation_minor % 100,
                o.currency,
                o.compensation_bps
            ),
            None => "no compensation due".into(),
        };
        println!(
            "  → the scripted agent, for comparison: {verdict}; {} calls in {:.1} ms",
            o.calls.len(),
            o.elapsed.as_secs_f64() * 1e3
        );
        if o.voucher.is_some() && o.voucher.as_deref() != result["voucher"].as_str() {
            anyhow::bail!("the workflow and the scripted agent disagree on {order}'s voucher");
        }
    }
    // Measured: interleaved pairs, so both see the same machine.
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("ROUNDS must be a number, not {n:?}"))?,
        None => 20,
    };
    let (mut workflow_ms, mut scripted_ms, mut measured) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (run, took) = run_workflow(&http, &base, "SO-1001", "Late again!").await?;
        workflow_ms.push(took.as_secs_f64() * 1e3);
        measured.push(run["run"]["id"].as_str().unwrap_or_default().to_string());
        let o = handle_complaint(&base, AGENT_TOKEN, "SO-1001", "Late again!").await?;
        scripted_ms.push(o.elapsed.as_secs_f64() * 1e3);
    }
    let _ = stop.send(());
    server.await??;

    // The audit trail, straight from toolhost's store.
    let storage = toolhost::storage::Storage::open(&work.join("toolhost/db"))?;
    let audit = toolhost::audit::AuditLog::open(&storage)?;
    println!("\naudit trail of the first complaint's workflow run (oldest first):");
    let filter = AuditFilter {
        run: Some(runs[0].clone()),
        ..Default::default()
    };
    let (records, _) = audit.query(&filter).await?;
    let total: u64 = records.iter().map(|r| r.duration_us).sum();
    let upstream: u64 = records.iter().flat_map(|r| &r.outbound).map(|o| o.micros).sum();
    println!(
        "  {} calls: {:.1} ms in toolhost's call path, of which {:.1} ms waiting on the upstreams and {:.1} ms toolhost's own",
        records.len(),
        total as f64 / 1e3,
        upstream as f64 / 1e3,
        total.saturating_sub(upstream) as f64 / 1e3
    );
    for r in records.iter().rev() {
        let upstream: Vec<String> = r
            .outbound
            .iter()
            .map(|o| {
                format!(
                    "{} {}{} → {}",
                    o.method,
                    o.origin,
                    o.path,
                    o.status.map_or("-".into(), |s| s.to_string())
                )
            })
            .collect();
        println!(
            "  {} {:<26} {:<4} {:>6} µs  {}",
            r.time,
            r.tool,
            r.outcome,
            r.duration_us,
            upstream.join("; ")
        );
    }
    if rounds > 0 {
        // Per run: its own record's time, and its steps' records' times.
        let mut engine_us_per_step = Vec::new();
        for run in &measured {
            let filter = AuditFilter {
                run: Some(run.clone()),
                ..Default::default()
            };
            let (records, _) = audit.query(&filter).await?;
            let (own, steps): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.tool == "late-parcel");
            let run_us = own.first().map_or(0, |r| r.duration_us);
            let inside: u64 = steps.iter().map(|r| r.duration_us).sum();
            engine_us_per_step.push(run_us.saturating_sub(inside) as f64 / steps.len().max(1) as f64);
        }
        let (w, s, e) = (
            median(&mut workflow_ms),
            median(&mut scripted_ms),
            median(&mut engine_us_per_step),
        );
        println!("\n{rounds} interleaved rounds of SO-1001 (medians):");
        println!("  the workflow, one call (its run followed to the end): {w:.1} ms");
        println!("  the scripted agent, nine calls:                       {s:.1} ms");
        println!("  workflow / scripted agent: {:.2}", w / s);
        println!("  engine's own time per step (run less its tool calls): {:.0} µs", e);
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One call of the `late-parcel` workflow; a run that waits (for the
/// reviewer) is followed until it ends. The run as last shown, and the time.
async fn run_workflow(
    http: &reqwest::Client,
    base: &str,
    order: &str,
    text: &str,
) -> anyhow::Result<(Value, Duration)> {
    let started = std::time::Instant::now();
    let response = http
        .post(format!("{base}/v1/tools/late-parcel/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .header("x-session-id", format!("demo-workflow-{order}"))
        .json(&json!({ "order-id": order, "complaint": text }))
        .send()
        .await?;
    let (mut status, mut body) = (response.status().as_u16(), response.json::<Value>().await?);
    let id = body["run"]
        .as_str()
        .or(body["run"]["id"].as_str())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(!id.is_empty(), "late-parcel answered {status} without a run: {body}");
    loop {
        let shown = http
            .get(format!("{base}/v1/runs/{id}?wait=30"))
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await?;
        status = shown.status().as_u16();
        body = shown.json().await?;
        if status != 202 {
            break;
        }
    }
    anyhow::ensure!(status == 200, "run {id} ended with {status}: {body}");
    Ok((body, started.elapsed()))
}
