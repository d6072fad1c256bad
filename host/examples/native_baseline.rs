//! The baseline for load tests: the REST invoke handler with the tool done
//! natively in Rust instead of in a wasm component. Same bearer check, same
//! JSON in and out, same audit record written durably before the reply; only
//! the call itself differs, so `toolhost serve` ÷ this = the cost of wasm.
//!
//! `cargo run --release -p toolhost --example native_baseline -- DATA_DIR`
//! prints `listening on http://ADDR` and serves `POST /v1/tools/echo.check/invoke`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use toolhost::audit::{AuditLog, Caller};
use toolhost::auth::Auth;
use toolhost::capabilities::Journal;
use toolhost::invoke::{CallOutcome, Timings};
use toolhost::storage::Storage;

struct Baseline {
    auth: Auth,
    audit: AuditLog,
}

/// What the echo guest's `check` does, natively.
fn check(args: &Value) -> Result<Value, String> {
    let ok = args["ok"].as_bool().ok_or("ok: expected a boolean")?;
    let message = args["message"].as_str().ok_or("message: expected a string")?;
    if ok {
        Ok(Value::from(message))
    } else {
        Err(message.to_string())
    }
}

async fn invoke(
    State(state): State<Arc<Baseline>>,
    headers: HeaderMap,
    Json(args): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let Some(principal) = token.and_then(|t| state.auth.check(t)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "kind": "unauthorized" } })),
        );
    };
    let started = Instant::now();
    let result = check(&args);
    let outcome = CallOutcome {
        tool: "echo.check".into(),
        plugin_version: Some("native".into()),
        plugin_digest: None,
        result: result
            .clone()
            .map_err(|e| toolhost::CallError::PluginError { error: Value::from(e) }),
        journal: Journal::default(),
        timings: Timings {
            total_us: started.elapsed().as_micros() as u64,
            ..Timings::default()
        },
    };
    let caller = Caller {
        via: "http",
        token: Some(principal.name.clone()),
        ..Caller::default()
    };
    let record = match state.audit.append(&caller, &args, &[], &outcome).await {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": e.to_string() })),
            )
        }
    };
    match result {
        Ok(v) => (StatusCode::OK, Json(json!({ "result": v, "audit_id": record.id }))),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": { "kind": "plugin_error", "error": e } })),
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data-baseline".into()));
    let storage = Storage::open(&data.join("db"))?;
    let (auth, _) = Auth::new(&[], u32::MAX, &data.join("tokens.json"))?;
    let state = Arc::new(Baseline {
        auth,
        audit: AuditLog::open(&storage)?,
    });
    let app = Router::new()
        .route("/v1/tools/echo.check/invoke", post(invoke))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
