//! In-process cost of tool calls, each beside its native Rust equivalent in
//! the same run (the ratio is what to read; absolute times vary by machine):
//!
//! - `instantiate`: a fresh instance from the `InstancePre`, nothing called;
//! - `trivial`: `echo.check` through `invoke` (JSON in, JSON out) vs. the same
//!   check on `serde_json::Value` natively;
//! - `large-record`: `echo.echo` with a record of 2,000 list items vs. a
//!   native JSON round trip of the same value;
//! - `kv-100`: a tool doing 100 kv writes vs. 100 writes to the same store
//!   (a plugin's `KvSpace`) natively;
//! - `coupon`: `coupon.validate-voucher`, a real connector doing a kv read;
//! - `approval-check`: the approval policy's verdict on a call that passes
//!   (what every call pays before it runs), with no rules, and with two CEL
//!   conditions and a sampling rule that all let it pass; read beside
//!   `trivial/wasm`.
//!
//! Needs the components built (`plugins/build.sh`).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use std::sync::Arc;

use toolhost::app::approvals::{Approvals, Call};
use toolhost::config::approvals::ApprovalConfig;
use toolhost::model::audit::Caller;
use toolhost::plugins::manifest::Risk;
use toolhost::policy::approvals::ApprovalPolicy;
use toolhost::policy::Policy;
use toolhost::{Runtime, RuntimeOptions};

// The allocator the `toolhost` binary uses, for both sides.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn runtime(rt: &tokio::runtime::Runtime, data: &Path) -> Runtime {
    let runtime = Runtime::new(RuntimeOptions::new(
        root().join("plugins"),
        data.to_path_buf(),
        Policy::default(),
    ))
    .expect("runtime");
    rt.block_on(async {
        runtime
            .plugins()
            .load_named("coupon")
            .await
            .expect("coupon built: run plugins/build.sh");
        for guest in ["echo", "kv-hog"] {
            runtime
                .plugins()
                .load_bundle(&root().join("tests/guests").join(guest))
                .await
                .expect("guests built: run plugins/build.sh");
        }
    });
    runtime
}

fn everything(n: usize) -> Value {
    json!({
        "name": "bench", "count": 7, "delta": -3, "ratio": 0.5, "initial": "b", "small": 1,
        "tags": (0..n).map(|i| format!("tag-{i}")).collect::<Vec<_>>(),
        "color": "blue", "perms": ["read"],
        "shape": { "polygon": (0..n).map(|i| json!({ "x": i as f64, "y": -(i as f64), "label": null })).collect::<Vec<_>>() },
        "maybe": null, "pair": ["p", 1], "outcome": { "ok": 1 }, "flag": false,
    })
}

/// What `echo.check` does, natively.
fn native_check(args: &Value) -> Result<Value, Value> {
    let message = args["message"].as_str().map(Value::from).unwrap_or_default();
    if args["ok"].as_bool().unwrap_or(false) {
        Ok(message)
    } else {
        Err(message)
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = std::env::temp_dir().join(format!("toolhost-bench-{}", std::process::id()));
    let runtime = runtime(&rt, &data);
    let native_kv = runtime.storage().kv().space("bench-native").unwrap();

    let mut group = c.benchmark_group("call");
    group.bench_function(BenchmarkId::new("instantiate", "wasm"), |b| {
        b.to_async(&rt)
            .iter(|| async { runtime.instantiate_only("echo").await.unwrap() })
    });

    let trivial = json!({ "ok": true, "message": "hi" });
    let trivial_text = trivial.to_string();
    group.bench_function(BenchmarkId::new("trivial", "wasm"), |b| {
        b.to_async(&rt).iter(|| async {
            let args: Value = serde_json::from_str(&trivial_text).unwrap();
            serde_json::to_string(&runtime.invoke("echo.check", &args).await.result.unwrap()).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("trivial", "native"), |b| {
        b.iter(|| {
            let args: Value = serde_json::from_str(&trivial_text).unwrap();
            serde_json::to_string(&native_check(&args).unwrap()).unwrap()
        })
    });

    let large = json!({ "value": everything(1000) });
    let large_text = large.to_string();
    group.bench_function(BenchmarkId::new("large-record", "wasm"), |b| {
        b.to_async(&rt).iter(|| async {
            let args: Value = serde_json::from_str(&large_text).unwrap();
            serde_json::to_string(&runtime.invoke("echo.echo", &args).await.result.unwrap()).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("large-record", "native"), |b| {
        b.iter(|| {
            let args: Value = serde_json::from_str(&large_text).unwrap();
            serde_json::to_string(&args["value"]).unwrap()
        })
    });

    let fill = json!({ "prefix": "k", "count": 100, "size": 10 });
    group.bench_function(BenchmarkId::new("kv-100", "wasm"), |b| {
        b.to_async(&rt)
            .iter(|| async { runtime.invoke("kv-hog.fill", &fill).await.result.unwrap() })
    });
    group.bench_function(BenchmarkId::new("kv-100", "native"), |b| {
        b.to_async(&rt).iter(|| async {
            for i in 0..100 {
                native_kv.put(&format!("k{i}"), &[7u8; 10], 4096, false).await.unwrap();
            }
            native_kv.flush().await.unwrap();
        })
    });

    let validate = json!({ "code": "V-NONE", "customer-id": "C-1" });
    group.bench_function(BenchmarkId::new("coupon", "wasm"), |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .invoke("coupon.validate-voucher", &validate)
                .await
                .result
                .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("approval-check");
    let caller = Caller {
        session: Some("conversation-42".into()),
        ..Default::default()
    };
    let call = Call {
        caller: &caller,
        token: "agent",
        tool: "echo.check",
        risk: Risk::Read,
        args: &trivial,
    };
    let rules: ApprovalConfig = toml::from_str(
        r#"
        [[rules]]
        name = "long messages"
        tools = ["echo.check"]
        when = "has(args.message) && size(args.message) > 100"
        [[rules]]
        name = "late in a conversation"
        tools = ["echo.*"]
        when = "session_calls > 1000000 && risk == 'high'"
        [[rules]]
        name = "spot checks"
        tools = ["*"]
        sample = 0.000001
        "#,
    )
    .unwrap();
    for (name, config) in [("no-rules", ApprovalConfig::default()), ("three-rules", rules)] {
        let approvals = Approvals::new(
            ApprovalPolicy::new(config).unwrap(),
            runtime.storage().clone(),
            runtime.audit().clone(),
            Arc::default(),
            None,
        );
        group.bench_function(BenchmarkId::new("passes", name), |b| {
            b.iter(|| assert!(approvals.check(&call).is_none()))
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&data);
}

criterion_group!(benches, calls);
criterion_main!(benches);
