//! Hostile components, each trying one thing it was not granted; after each,
//! the host must still serve the next call.

use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use toolhost::{CallError, Runtime};
use toolhost_tests::{guest, netprobe_grant, runtime_in, serve, upstream_with_slow, Scratch};

async fn ok(runtime: &Runtime, tool: &str, args: Value) -> Value {
    let outcome = runtime.invoke(tool, &args).await;
    outcome.result.unwrap_or_else(|e| panic!("{tool} failed: {e}"))
}

async fn err(runtime: &Runtime, tool: &str, args: Value) -> CallError {
    match runtime.invoke(tool, &args).await.result {
        Ok(v) => panic!("{tool} should have failed, returned {v}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_times_out_and_the_host_serves_on() {
    let data = Scratch::new("spin");
    let runtime = runtime_in(data.path(), "");
    runtime.plugins().load_bundle(&guest("spin")).await.unwrap();

    let started = std::time::Instant::now();
    let e = err(&runtime, "spin.spin", json!({ "seed": 7 })).await;
    assert!(matches!(e, CallError::Timeout { millis: 300, .. }), "{e:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the deadline fired late"
    );

    assert_eq!(ok(&runtime, "spin.quick", json!({})).await, json!("still here"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_grant_and_the_host_serves_on() {
    let data = Scratch::new("membomb");
    let runtime = runtime_in(data.path(), "");
    runtime.plugins().load_bundle(&guest("membomb")).await.unwrap();

    match err(&runtime, "membomb.hold", json!({ "megabytes": 64 })).await {
        CallError::ResourceExhausted { message, .. } => {
            assert!(message.contains("16 MiB memory grant"), "{message}")
        }
        other => panic!("expected resource_exhausted, got {other:?}"),
    }
    // Within the grant it works, on a fresh instance.
    assert_eq!(ok(&runtime, "membomb.hold", json!({ "megabytes": 4 })).await, json!(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_can_lower_memory_below_the_request() {
    let data = Scratch::new("membomb-op");
    let runtime = runtime_in(data.path(), "[plugins.membomb]\nmemory-mb = 4");
    runtime.plugins().load_bundle(&guest("membomb")).await.unwrap();
    assert!(matches!(
        err(&runtime, "membomb.hold", json!({ "megabytes": 8 })).await,
        CallError::ResourceExhausted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_reaches_only_what_is_granted() {
    let upstream = serve(
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route("/ok", post(|| async { "posted" }))
            .route("/big", get(|| async { "y".repeat(64 * 1024) })),
    )
    .await;
    let other = serve(Router::new().route("/ok", get(|| async { "other" }))).await;
    let granted = format!("http://127.0.0.1:{}", upstream.port());
    let data = Scratch::new("netprobe");
    let runtime = runtime_in(
        data.path(),
        &format!(
            "[limits]\nhttp-response-bytes = 16384\n[plugins.netprobe]\nhttp = [{{ origin = \"{granted}\", methods = [\"GET\"] }}, {{ origin = \"http://localhost:{}\" }}]",
            upstream.port()
        ),
    );
    runtime.plugins().load_bundle(&guest("netprobe")).await.unwrap();
    let fetch =
        |method: &str, url: String, host: Option<String>| json!({ "method": method, "url": url, "host-header": host });

    // Granted origin and method: through.
    let outcome = runtime
        .invoke("netprobe.fetch", &fetch("GET", format!("{granted}/ok"), None))
        .await;
    assert_eq!(outcome.result.unwrap(), json!(200));
    assert_eq!(outcome.journal.outbound.len(), 1);
    assert_eq!(outcome.journal.outbound[0].status, Some(200));

    // Another port on the same machine: denied, and the denial is on record.
    let outcome = runtime
        .invoke(
            "netprobe.fetch",
            &fetch("GET", format!("http://127.0.0.1:{}/ok", other.port()), None),
        )
        .await;
    assert_eq!(outcome.result.unwrap_err().kind(), "plugin_error");
    assert!(
        outcome.journal.denials[0].detail.contains("not among the origins"),
        "{:?}",
        outcome.journal.denials
    );

    // Granted origin, method not granted.
    let outcome = runtime
        .invoke("netprobe.fetch", &fetch("POST", format!("{granted}/ok"), None))
        .await;
    assert!(
        matches!(outcome.result, Err(CallError::PluginError { ref error }) if serde_json::Value::from(error) == "denied")
    );
    assert!(outcome.journal.denials[0].detail.contains("method POST"));

    // A granted *name* that resolves to loopback is refused without allow-private.
    let outcome = runtime
        .invoke(
            "netprobe.fetch",
            &fetch("GET", format!("http://localhost:{}/ok", upstream.port()), None),
        )
        .await;
    assert!(outcome.result.is_err());
    assert!(
        outcome.journal.denials[0].detail.contains("loopback"),
        "{:?}",
        outcome.journal.denials
    );

    // Cloud metadata is not granted, whatever the URL says.
    let outcome = runtime
        .invoke(
            "netprobe.fetch",
            &fetch("GET", "http://169.254.169.254/latest/meta-data/".into(), None),
        )
        .await;
    assert!(outcome.result.is_err());
    assert_eq!(outcome.journal.denials.len(), 1);

    // A response larger than the grant's bound is cut off.
    match err(
        &runtime,
        "netprobe.fetch-size",
        json!({ "url": format!("{granted}/big") }),
    )
    .await
    {
        CallError::PluginError { error } => {
            let error = serde_json::Value::from(&error);
            assert!(error.as_str().unwrap().contains("exceeds limit: 16384"), "{error}")
        }
        other => panic!("expected the body limit, got {other:?}"),
    }

    // And the host still serves.
    assert_eq!(
        ok(&runtime, "netprobe.fetch", fetch("GET", format!("{granted}/ok"), None)).await,
        json!(200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_requested_and_granted_secrets_are_handed_out() {
    let data = Scratch::new("thief");
    let runtime = runtime_in(
        data.path(),
        "[plugins.secret-thief]\nsecrets = { mine = { value = \"s3cret\" }, theirs = { value = \"nope\" } }",
    );
    runtime.plugins().load_bundle(&guest("secret-thief")).await.unwrap();

    assert_eq!(
        ok(&runtime, "secret-thief.steal", json!({ "name": "mine" })).await,
        json!("s3cret")
    );

    // Granted by the operator, but the manifest never asked: refused.
    let outcome = runtime.invoke("secret-thief.steal", &json!({ "name": "theirs" })).await;
    assert!(matches!(outcome.result, Err(CallError::PluginError { .. })));
    assert!(outcome.journal.denials[0]
        .detail
        .contains("manifest does not request it"));

    // Requested, but this operator grants nothing.
    let stingy = Scratch::new("thief-stingy");
    let runtime = runtime_in(stingy.path(), "");
    runtime.plugins().load_bundle(&guest("secret-thief")).await.unwrap();
    let outcome = runtime.invoke("secret-thief.steal", &json!({ "name": "mine" })).await;
    assert!(outcome.journal.denials[0].detail.contains("operator did not grant"));
    assert!(!serde_json::to_string(&outcome).unwrap().contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_beyond_quota_is_refused_and_what_was_written_survives_a_restart() {
    let data = Scratch::new("hog");
    {
        let runtime = runtime_in(data.path(), "");
        runtime.plugins().load_bundle(&guest("kv-hog")).await.unwrap();
        let result = ok(
            &runtime,
            "kv-hog.fill",
            json!({ "prefix": "k", "count": 100, "size": 100 }),
        )
        .await;
        let written = result[0].as_u64().unwrap();
        assert!((30..40).contains(&written), "{result}");
        assert!(result[1].as_str().unwrap().contains("QuotaExceeded"), "{result}");
        // The quota holds across calls, not just within one.
        let again = ok(
            &runtime,
            "kv-hog.fill",
            json!({ "prefix": "z", "count": 5, "size": 100 }),
        )
        .await;
        assert_eq!(again[0], json!(0));
        assert_eq!(ok(&runtime, "kv-hog.size-of", json!({ "key": "k0" })).await, json!(100));
    }
    // A new host over the same files: the data and the accounting are there.
    let runtime = runtime_in(data.path(), "");
    runtime.plugins().load_bundle(&guest("kv-hog")).await.unwrap();
    assert_eq!(ok(&runtime, "kv-hog.size-of", json!({ "key": "k0" })).await, json!(100));
    assert_eq!(
        ok(
            &runtime,
            "kv-hog.fill",
            json!({ "prefix": "y", "count": 5, "size": 100 })
        )
        .await[0],
        json!(0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_kv_grant_means_no_storage() {
    let data = Scratch::new("hog-none");
    let runtime = runtime_in(data.path(), "[plugins.kv-hog]\nkv-quota-bytes = 0");
    runtime.plugins().load_bundle(&guest("kv-hog")).await.unwrap();
    let outcome = runtime
        .invoke("kv-hog.fill", &json!({ "prefix": "k", "count": 1, "size": 1 }))
        .await;
    assert_eq!(
        outcome.result.unwrap()[1].as_str().map(|s| s.contains("Denied")),
        Some(true)
    );
    assert!(outcome.journal.denials[0]
        .detail
        .contains("operator granted no kv quota"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_result_is_refused() {
    let data = Scratch::new("blob");
    let runtime = runtime_in(data.path(), "");
    runtime.plugins().load_bundle(&guest("echo")).await.unwrap();
    assert!(matches!(
        err(&runtime, "echo.blob", json!({ "bytes": 2_000_000 })).await,
        CallError::ResourceExhausted { .. }
    ));
    assert_eq!(ok(&runtime, "echo.blob", json!({ "bytes": 3 })).await, json!("xxx"));

    // 400 kB on the wire, four times that as JSON: refused from its size
    // alone, before any of its JSON is built (hence "more than").
    match err(&runtime, "echo.bytes", json!({ "count": 400_000 })).await {
        CallError::ResourceExhausted { message, .. } => {
            assert!(message.contains("more than 1048576"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Under the limit as JSON: served.
    let served = ok(&runtime, "echo.bytes", json!({ "count": 200_000 })).await;
    assert_eq!(served.as_array().map(Vec::len), Some(200_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_concurrency_cap_turns_calls_away_quickly_instead_of_queueing() {
    let upstream = upstream_with_slow(std::time::Duration::from_millis(1500)).await;
    let data = Scratch::new("cap");
    let runtime = runtime_in(
        data.path(),
        &format!(
            "[plugins.netprobe]\nmax-concurrency = 1\nhttp = [{{ origin = \"http://127.0.0.1:{}\" }}]",
            upstream.port()
        ),
    );
    runtime.plugins().load_bundle(&guest("netprobe")).await.unwrap();
    let args =
        json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/slow", upstream.port()), "host-header": null });
    let first = {
        let (runtime, args) = (runtime.clone(), args.clone());
        tokio::spawn(async move { runtime.invoke("netprobe.fetch", &args).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    match runtime.invoke("netprobe.fetch", &args).await.result {
        Err(CallError::ResourceExhausted { message, .. }) => {
            assert!(message.contains("1 calls in flight"), "{message}")
        }
        other => panic!("the second call should be turned away, got {other:?}"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1000),
        "turned away only after {:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().result.unwrap(), json!(200));
    // Once the slot is free, calls reach the plugin again (this one is then
    // denied its destination, which is the plugin's answer, not the cap's).
    let again = runtime
        .invoke(
            "netprobe.fetch",
            &json!({ "method": "GET", "url": "http://127.0.0.1:1/", "host-header": null }),
        )
        .await;
    assert!(
        matches!(again.result, Err(CallError::PluginError { .. })),
        "{:?}",
        again.result
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_requests_are_bounded_in_number_and_time() {
    let upstream = upstream_with_slow(std::time::Duration::from_millis(3000)).await;
    let data = Scratch::new("http-bounds");
    let runtime = runtime_in(
        data.path(),
        &format!(
            "[limits]\nhttp-requests-per-call = 5\nhttp-timeout-ms = 300\n[plugins.netprobe]\nhttp = [{{ origin = \"http://127.0.0.1:{}\" }}]",
            upstream.port()
        ),
    );
    runtime.plugins().load_bundle(&guest("netprobe")).await.unwrap();

    let outcome = runtime
        .invoke(
            "netprobe.fetch-many",
            &json!({ "url": format!("http://127.0.0.1:{}/ok", upstream.port()), "times": 10 }),
        )
        .await;
    assert_eq!(outcome.result.unwrap(), json!([5, "denied"]));
    assert_eq!(outcome.journal.outbound.len(), 5);
    assert!(
        outcome.journal.denials[0].detail.contains("more than 5 requests"),
        "{:?}",
        outcome.journal.denials
    );

    // The guest asks for 10 s (the SDK's default); the grant's 300 ms wins.
    let started = std::time::Instant::now();
    let slow =
        json!({ "method": "GET", "url": format!("http://127.0.0.1:{}/slow", upstream.port()), "host-header": null });
    match runtime.invoke("netprobe.fetch", &slow).await.result {
        Err(CallError::PluginError { error }) => {
            let error = serde_json::Value::from(&error);
            assert!(error.as_str().unwrap().contains("timed out"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2000),
        "took {:?}",
        started.elapsed()
    );

    // An upstream that sends the headers and half the body, then stalls:
    // the grant's 300 ms bounds the gap between bytes too.
    let stalling = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalling_addr = stalling.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = stalling.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let _ = socket.write_all(b"world").await;
            });
        }
    });
    let data = Scratch::new("http-stall");
    let runtime = runtime_in(
        data.path(),
        &format!(
            "[limits]\nhttp-timeout-ms = 300\n[plugins.netprobe]\nhttp = [{{ origin = \"http://{stalling_addr}\" }}]"
        ),
    );
    runtime.plugins().load_bundle(&guest("netprobe")).await.unwrap();
    let started = std::time::Instant::now();
    match runtime
        .invoke(
            "netprobe.fetch-size",
            &json!({ "url": format!("http://{stalling_addr}/") }),
        )
        .await
        .result
    {
        Err(CallError::PluginError { error }) => {
            let error = serde_json::Value::from(&error);
            assert!(error.as_str().unwrap().contains("timed out"), "{error}")
        }
        other => panic!("a stalled body should time out, got {other:?}"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2000),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_connections_are_kept_alive_for_one_plugin_and_its_grant() {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    // An upstream that notes the client port of every request it serves.
    let peers = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new()
        .route(
            "/peer",
            get(
                |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
                 axum::extract::State(peers): axum::extract::State<Arc<Mutex<Vec<u16>>>>| async move {
                    peers.lock().unwrap().push(peer.port());
                    "ok"
                },
            ),
        )
        .with_state(peers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await },
    );
    let data = Scratch::new("keep-alive");
    let runtime = runtime_in(data.path(), &netprobe_grant(addr));
    runtime.plugins().load_bundle(&guest("netprobe")).await.unwrap();
    let url = format!("http://{addr}/peer");
    let fetch = json!({ "method": "GET", "url": url, "host-header": null });

    for _ in 0..3 {
        assert_eq!(ok(&runtime, "netprobe.fetch", fetch.clone()).await, json!(200));
    }
    assert_eq!(
        ok(&runtime, "netprobe.fetch-many", json!({ "url": url, "times": 3 })).await,
        json!([3, null])
    );
    let first: Vec<u16> = peers.lock().unwrap().drain(..).collect();
    assert_eq!(first.len(), 6);
    assert!(
        first.iter().all(|p| *p == first[0]),
        "one connection across calls: {first:?}"
    );

    // A new grant starts without the old grant's connections.
    let policy = toolhost::policy::Policy::parse(&netprobe_grant(addr), "test").unwrap();
    let owner = runtime.plugins().own("netprobe").await;
    runtime
        .plugins()
        .set_grant(&owner, policy.plugins["netprobe"].clone(), &[])
        .await
        .unwrap();
    drop(owner);
    assert_eq!(ok(&runtime, "netprobe.fetch", fetch).await, json!(200));
    let after = peers.lock().unwrap().clone();
    assert!(
        !after.contains(&first[0]),
        "the old connection was reused after a grant change: {after:?}"
    );
}
