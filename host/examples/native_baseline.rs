//! The baseline for load tests: the REST invoke handler with the tool done
//! natively in Rust instead of in a wasm component. Same bearer check, same
//! JSON in and out, same audit record written durably before the reply; only
//! the call itself differs, so `toolhost serve` ÷ this = the cost of wasm.
//!
//! `cargo run --release -p toolhost --example native_baseline -- DATA_DIR`
//! prints `listening on http://ADDR` and serves `POST /v1/tools/{tool}/invoke`
//! for two tools: `echo.check` (what the echo test component does) and,
//! with `CRM_BASE_URL` and `CRM_API_KEY` set, `crm.get-customer` (what the
//! reference CRM connector does: one GET to the CRM over a kept-alive
//! connection, its fields mapped to the contract's `customer`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use toolhost::app::auth::Auth;
use toolhost::audit::AuditLog;
use toolhost::call::invoke::CallOutcome;
use toolhost::capabilities::Journal;
use toolhost::model::audit::Caller;
use toolhost::model::call::Timings;
use toolhost::storage::Storage;

// The same allocator as `toolhost`, so only the tool differs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Baseline {
    auth: Auth,
    audit: AuditLog,
    http: reqwest::Client,
    /// The CRM's base URL and API key.
    crm: Option<(String, String)>,
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

/// What the reference CRM connector's `get-customer` does, natively.
async fn get_customer(state: &Baseline, args: &Value) -> Result<Value, String> {
    let id = args["customer-id"].as_str().ok_or("customer-id: expected a string")?;
    let (base, key) = state.crm.as_ref().ok_or("CRM_BASE_URL and CRM_API_KEY are not set")?;
    let response = state
        .http
        .get(format!("{base}/customers/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the CRM answered {}", response.status()));
    }
    let customer: Value = response.json().await.map_err(|e| e.to_string())?;
    let field = |name: &str| {
        customer[name]
            .as_str()
            .map(Value::from)
            .ok_or_else(|| format!("`{name}` missing"))
    };
    Ok(json!({
        "customer-id": field("id")?,
        "name": field("name")?,
        "email": field("email")?,
        "country": field("country")?,
        "tier": field("tier")?,
        "created-at": field("created")?,
    }))
}

async fn invoke(
    State(state): State<Arc<Baseline>>,
    Path(tool): Path<String>,
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
    let result = match tool.as_str() {
        "echo.check" => check(&args),
        "crm.get-customer" => get_customer(&state, &args).await,
        _ => return (StatusCode::NOT_FOUND, Json(json!({ "error": { "kind": "not_found" } }))),
    };
    let outcome = CallOutcome {
        tool,
        plugin_version: Some("native".into()),
        plugin_digest: None,
        result: result.clone().map_err(|e| toolhost::CallError::PluginError {
            error: toolhost::model::call::ConnectorError::from_json(Value::from(e)),
        }),
        journal: Journal::default(),
        timings: Timings {
            total_us: started.elapsed().as_micros() as u64,
            ..Timings::default()
        },
        effects: false,
    };
    let caller = Caller {
        via: toolhost::model::audit::Channel::Http,
        token: Some(principal.name.clone()),
        ..Caller::default()
    };
    let record = match state.audit.append(&caller, &args, &[], &outcome.ending()).await {
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
    let crm = std::env::var("CRM_BASE_URL")
        .ok()
        .zip(std::env::var("CRM_API_KEY").ok());
    let state = Arc::new(Baseline {
        auth,
        audit: AuditLog::open(&storage)?,
        http: reqwest::Client::new(),
        crm,
    });
    let app = Router::new()
        .route("/v1/tools/{tool}/invoke", post(invoke))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
