//! In-process cost of one tool call: instantiate a fresh instance from the
//! `InstancePre` and call it, through the same `invoke` path the CLI and the
//! server use (JSON in, JSON out). Needs the components built
//! (`plugins/build.sh`).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use toolhost::policy::Policy;
use toolhost::{Runtime, RuntimeOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn runtime(rt: &tokio::runtime::Runtime, data: &Path) -> Runtime {
    let runtime = Runtime::new(RuntimeOptions {
        plugins_dir: root().join("plugins"),
        data_dir: data.to_path_buf(),
        policy: Policy::default(),
        engine: Default::default(),
    })
    .expect("runtime");
    rt.block_on(async {
        runtime
            .load_named("coupon")
            .await
            .expect("coupon built: run plugins/build.sh");
        runtime
            .load_bundle(&root().join("tests/guests/echo"))
            .await
            .expect("echo built: run plugins/build.sh");
    });
    runtime
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = std::env::temp_dir().join(format!("toolhost-bench-{}", std::process::id()));
    let runtime = runtime(&rt, &data);
    let args = json!({ "code": "V-NONE", "customer-id": "C-1" });
    let trivial = json!({ "ok": true, "message": "hi" });

    let mut group = c.benchmark_group("invoke");
    group.bench_function("coupon.validate-voucher (kv read)", |b| {
        b.to_async(&rt)
            .iter(|| async { runtime.invoke("coupon.validate-voucher", &args).await.result.unwrap() })
    });
    group.bench_function("echo.check (trivial)", |b| {
        b.to_async(&rt)
            .iter(|| async { runtime.invoke("echo.check", &trivial).await.result.unwrap() })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&data);
}

criterion_group!(benches, calls);
criterion_main!(benches);
