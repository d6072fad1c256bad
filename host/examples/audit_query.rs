//! The audit trail at size, on each backend: RECORDS call records written
//! through the store (as the host writes them: one per call, ids in time
//! order, sessions of 100 calls each), then searches by session (the
//! console's and the API's most common query: one conversation's trail),
//! timed. Prints a Markdown table.
//!
//! `cargo run --release -p toolhost --example audit_query -- --records 1000000 \
//!    --sled /tmp/audit-sled [--postgres postgres://user@127.0.0.1:5432/db]`
//! (host/benches/nodes.sh runs it against a PostgreSQL of its own).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use toolhost::model::audit::AuditRecord;
use toolhost::storage::audit::{AuditQuery, Mark};
use toolhost::storage::Storage;

/// Calls per session: one conversation's trail.
const PER_SESSION: u64 = 100;
/// Searches timed per backend.
const SEARCHES: usize = 200;
/// Writes in flight at once (the nodes' calls run concurrently).
const WRITERS: u64 = 32;

fn record(id: u64, n: u64) -> AuditRecord {
    let tools = [
        "crm.get-customer",
        "erp.get-order",
        "logistics.track-shipment",
        "coupon.issue-voucher",
    ];
    serde_json::from_value(json!({
        "id": id.to_string(), "time": "2026-12-04T00:00:00Z", "via": "http", "token": "agent",
        "session": format!("case-{}", n / PER_SESSION), "idempotency_key": null,
        "tool": tools[(n % 4) as usize], "plugin_version": "0.1.0", "plugin_digest": "d",
        "arguments": { "order-id": format!("SO-{n}") }, "outcome": if n % 50 == 0 { "plugin_error" } else { "ok" },
        "error": null, "duration_us": 900, "instantiate_us": 40, "execute_us": 700,
        "outbound": [{ "method": "GET", "origin": "http://127.0.0.1:8081", "path": "/erp/v1/orders", "status": 200, "error": null, "micros": 300 }],
        "denials": [],
    }))
    .expect("a record")
}

async fn fill(storage: &Storage, records: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let storage = Arc::new(storage.clone());
    let writers = (0..WRITERS).map(|w| {
        let storage = storage.clone();
        tokio::spawn(async move {
            let mut n = w;
            while n < records {
                // Ids as the host makes them: time-ordered, low byte the node.
                let id = (1_700_000_000_000_000 + n) << 8;
                storage.audit().put(id, &record(id, n), Mark::None).await?;
                n += WRITERS;
            }
            anyhow::Ok(())
        })
    });
    for writer in futures_util::future::join_all(writers).await {
        writer??;
    }
    storage.flush().await?;
    Ok(start.elapsed())
}

async fn search(storage: &Storage, records: u64) -> anyhow::Result<(Vec<Duration>, usize)> {
    let sessions = records.div_ceil(PER_SESSION);
    let mut times = Vec::with_capacity(SEARCHES);
    let mut found = 0;
    for i in 0..SEARCHES as u64 {
        // Spread over the whole trail, old and new conversations alike.
        let session = (i * 7919) % sessions;
        let query = AuditQuery {
            after: 0,
            before: u64::MAX,
            limit: 1000,
            tool: None,
            via: None,
            outcome: None,
            session: Some(format!("case-{session}")),
            token: None,
            approval: None,
            run: None,
            action: None,
        };
        let start = Instant::now();
        found += storage.audit().query(&query).await?.len();
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times, found))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut records = 1_000_000u64;
    let (mut sled, mut postgres) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--records" => records = value()?.parse()?,
            "--sled" => sled = Some(value()?),
            "--postgres" => postgres = Some(value()?),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let mut backends = Vec::new();
    if let Some(dir) = sled {
        let _ = std::fs::remove_dir_all(&dir);
        backends.push(("sled", Storage::open(std::path::Path::new(&dir))?));
    }
    if let Some(url) = postgres {
        let store = toolhost::storage::postgres::Postgres::connect(&url, "audit-bench").await?;
        backends.push(("PostgreSQL", Storage::with(Arc::new(store))));
    }
    println!("| backend | records | written in | records/s | search by session p50 ms | p99 ms | max ms | found per search |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, storage) in backends {
        let took = fill(&storage, records).await?;
        let (times, found) = search(&storage, records).await?;
        println!(
            "| {name} | {records} | {:.1} s | {:.0} | {} | {} | {} | {} |",
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64(),
            ms(times[times.len() / 2]),
            ms(times[times.len() * 99 / 100]),
            ms(times[times.len() - 1]),
            found / SEARCHES
        );
    }
    Ok(())
}
