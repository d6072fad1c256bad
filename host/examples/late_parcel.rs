//! The late-parcel scenario as a demo: starts the SAMPLE upstream systems and
//! toolhost (with the reference connectors from `plugins/`, built by
//! `plugins/build.sh`) on 127.0.0.1, then lets a scripted agent handle three
//! complaints and prints what it did and the audit trail. The demo operator
//! holds vouchers over 50.00 for a reviewer; a scripted reviewer here
//! approves them as they come.
//!
//! `cargo run --release -p toolhost --example late_parcel`

use std::path::PathBuf;
use std::time::Duration;

use sample_upstreams::scenario::{handle_complaint, toolhost_config};
use toolhost::config::Config;
use toolhost::storage::audit::AuditFilter;

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
    let (upstreams, _task) =
        sample_upstreams::start(&work.join("upstreams"), "127.0.0.1:0".parse()?, Default::default()).await?;
    println!("sample upstreams (CRM, ERP, Nordpost, Swiftline) on http://{upstreams}");

    let keys = sample_upstreams::Keys::default();
    let mut config = Config::parse(&toolhost_config(upstreams, "/nordpost/v2", &keys.nordpost), "demo")?;
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
    let mut sessions = Vec::new();
    for (order, text) in complaints {
        println!("\ncomplaint about {order}: \"{text}\"");
        let o = handle_complaint(&base, AGENT_TOKEN, order, text).await?;
        for (tool, status) in &o.calls {
            println!("  {status} {tool}");
        }
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
        if let Some(review) = &o.review {
            for (by, reason) in &review.by {
                let verdict = if review.approved { "approved" } else { "rejected" };
                println!("  (the voucher waited for a reviewer: {by} {verdict} it, \"{reason}\")");
            }
        }
        let lateness = if o.lost {
            "lost".to_string()
        } else {
            format!("{} h late", o.hours_late)
        };
        println!(
            "  → {lateness}; {verdict}; case {} resolved; {} calls in {:.1} ms",
            o.case_id,
            o.calls.len(),
            o.elapsed.as_secs_f64() * 1e3
        );
        sessions.push(o.session);
    }
    let _ = stop.send(());
    server.await??;

    // The audit trail, straight from toolhost's store.
    let storage = toolhost::storage::Storage::open(&work.join("toolhost/db"))?;
    let audit = toolhost::storage::audit::AuditLog::open(&storage)?;
    println!("\naudit trail of the first complaint (oldest first):");
    let filter = AuditFilter {
        session: Some(sessions[0].clone()),
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
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
