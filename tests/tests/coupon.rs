//! The reference coupon connector against a real ledger service on
//! 127.0.0.1: HTTP with a granted secret, kv, idempotency, typed errors.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use toolhost::policy::Policy;
use toolhost::{CallError, Runtime, RuntimeOptions};
use toolhost_tests::{reference, serve, Scratch};

/// What the ledger received: the Authorization header and the event.
type Events = Vec<(Option<String>, Value)>;

#[derive(Clone, Default)]
struct Ledger {
    events: Arc<Mutex<Events>>,
    fail: Arc<Mutex<bool>>,
}

async fn record(State(ledger): State<Ledger>, headers: HeaderMap, Json(event): Json<Value>) -> StatusCode {
    if *ledger.fail.lock().unwrap() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ledger.events.lock().unwrap().push((auth, event));
    StatusCode::CREATED
}

fn issue(key: &str, amount: i64) -> Value {
    json!({ "request": {
        "idempotency-key": key,
        "customer-id": "C-1001",
        "value": { "amount-minor": amount, "currency": "EUR" },
        "reason": "late delivery of SO-1001",
        "order-id": "SO-1001",
        "valid-days": 90,
    }})
}

async fn coupon_runtime(data: &Scratch, ledger_port: u16) -> Runtime {
    let policy = format!(
        r#"[plugins.coupon]
http = [{{ origin = "http://127.0.0.1:{ledger_port}", methods = ["POST"] }}]
secrets = {{ ledger-token = {{ value = "tok-123" }} }}
config = {{ ledger-url = "http://127.0.0.1:{ledger_port}/ledger" }}"#
    );
    let runtime = Runtime::new(RuntimeOptions::new(
        reference("coupon").parent().unwrap().to_path_buf(),
        data.path().to_path_buf(),
        Policy::parse(&policy, "test").unwrap(),
    ))
    .unwrap();
    runtime.plugins().load_named("coupon").await.unwrap();
    runtime
}

#[tokio::test(flavor = "multi_thread")]
async fn vouchers_are_issued_once_reported_to_the_ledger_and_redeemed_once() {
    let ledger = Ledger::default();
    let addr = serve(
        Router::new()
            .route("/ledger/events", post(record))
            .with_state(ledger.clone()),
    )
    .await;
    let data = Scratch::new("coupon");
    let runtime = coupon_runtime(&data, addr.port()).await;

    let first = runtime.invoke("coupon.issue-voucher", &issue("case-77", 1500)).await;
    assert_eq!(first.journal.outbound.len(), 1);
    assert_eq!(first.journal.outbound[0].status, Some(201));
    assert_eq!(first.journal.outbound[0].method, "POST");
    let voucher = first.result.unwrap();
    assert_eq!(voucher["status"], "active");
    assert_eq!(voucher["value"], json!({ "amount-minor": 1500, "currency": "EUR" }));
    let code = voucher["code"].as_str().unwrap().to_string();
    {
        let events = ledger.events.lock().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0.as_deref(), Some("Bearer tok-123"));
        assert_eq!(events[0].1["event"], "issued");
        assert_eq!(events[0].1["code"], code.as_str());
    }

    // A retry with the same key: the same voucher, and no second ledger entry.
    let again = runtime
        .invoke("coupon.issue-voucher", &issue("case-77", 1500))
        .await
        .result
        .unwrap();
    assert_eq!(again["code"], code.as_str());
    assert_eq!(ledger.events.lock().unwrap().len(), 1);
    // The same key for another amount is a conflict, not a second voucher.
    match runtime
        .invoke("coupon.issue-voucher", &issue("case-77", 9900))
        .await
        .result
    {
        Err(CallError::PluginError { error }) => {
            let error = serde_json::Value::from(&error);
            assert!(error["conflict"].is_string(), "{error}")
        }
        other => panic!("{other:?}"),
    }

    let valid = runtime
        .invoke(
            "coupon.validate-voucher",
            &json!({ "code": code, "customer-id": "C-1001" }),
        )
        .await;
    assert_eq!(valid.result.unwrap()["valid"], true);
    let foreign = runtime
        .invoke(
            "coupon.validate-voucher",
            &json!({ "code": code, "customer-id": "C-2" }),
        )
        .await;
    let foreign = foreign.result.unwrap();
    assert_eq!(foreign["valid"], false);
    assert_eq!(foreign["voucher"], Value::Null);

    let redeem = json!({ "code": code, "order-id": "SO-2002", "idempotency-key": "redeem-1" });
    let redeemed = runtime.invoke("coupon.redeem-voucher", &redeem).await.result.unwrap();
    assert_eq!(redeemed["status"], "redeemed");
    assert_eq!(
        runtime.invoke("coupon.redeem-voucher", &redeem).await.result.unwrap()["status"],
        "redeemed"
    );
    let twice = json!({ "code": code, "order-id": "SO-3003", "idempotency-key": "redeem-2" });
    assert!(matches!(
        runtime.invoke("coupon.redeem-voucher", &twice).await.result,
        Err(CallError::PluginError { .. })
    ));

    let listed = runtime
        .invoke("coupon.list-vouchers", &json!({ "customer-id": "C-1001" }))
        .await
        .result
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(ledger.events.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_ledger_is_a_typed_upstream_error_and_issues_nothing() {
    let ledger = Ledger::default();
    *ledger.fail.lock().unwrap() = true;
    let addr = serve(
        Router::new()
            .route("/ledger/events", post(record))
            .with_state(ledger.clone()),
    )
    .await;
    let data = Scratch::new("coupon-down");
    let runtime = coupon_runtime(&data, addr.port()).await;

    match runtime
        .invoke("coupon.issue-voucher", &issue("case-1", 500))
        .await
        .result
    {
        Err(CallError::PluginError { error }) => {
            let error = serde_json::Value::from(&error);
            assert_eq!(error["upstream"]["status"], 503, "{error}")
        }
        other => panic!("{other:?}"),
    }
    let listed = runtime
        .invoke("coupon.list-vouchers", &json!({ "customer-id": "C-1001" }))
        .await
        .result
        .unwrap();
    assert_eq!(listed, json!([]));

    // The ledger recovers; the same key now issues.
    *ledger.fail.lock().unwrap() = false;
    assert!(runtime
        .invoke("coupon.issue-voucher", &issue("case-1", 500))
        .await
        .result
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_grant_the_ledger_is_out_of_reach() {
    let ledger = Ledger::default();
    let addr = serve(
        Router::new()
            .route("/ledger/events", post(record))
            .with_state(ledger.clone()),
    )
    .await;
    let data = Scratch::new("coupon-nogrant");
    let runtime = Runtime::new(RuntimeOptions::new(
        reference("coupon").parent().unwrap().to_path_buf(),
        data.path().to_path_buf(),
        Policy::parse(
            &format!("[plugins.coupon]\nsecrets = {{ ledger-token = {{ value = \"t\" }} }}\nconfig = {{ ledger-url = \"http://127.0.0.1:{}/ledger\" }}", addr.port()),
            "t",
        )
        .unwrap(),
    ))
    .unwrap();
    runtime.plugins().load_named("coupon").await.unwrap();
    let outcome = runtime.invoke("coupon.issue-voucher", &issue("k", 100)).await;
    match outcome.result {
        Err(CallError::PluginError { error }) => {
            let error = serde_json::Value::from(&error);
            assert!(error["denied"].is_string(), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.journal.denials.len(), 1);
    assert!(ledger.events.lock().unwrap().is_empty());
}
