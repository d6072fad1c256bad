//! The HTTP API: agents list and call tools (REST and MCP), operators manage
//! plugins and grants and read the audit trail. Handlers are small; the work
//! is in [`calls`] (one call: permission, invoke, metrics, audit) and below.

pub mod admin;
pub mod approvals;
mod audit;
mod auth;
mod calls;
mod error;
pub mod grants;
pub mod mcp;
mod runs;
pub mod tokens;
pub mod tools;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;

use crate::server::auth::Auth;
use crate::server::metrics::{Holdings, Metrics};
use crate::storage::idempotency::Idempotency;
use crate::Runtime;

pub use calls::{detached, execute_call, hold, refuse, spawn_execution, Answer};
pub use error::ApiError;
pub use tools::settle_interrupted;

/// What every handler shares.
pub struct AppState {
    pub runtime: Runtime,
    pub auth: Auth,
    pub idempotency: Arc<Idempotency>,
    pub metrics: Arc<Metrics>,
    pub mcp_sessions: mcp::Sessions,
    pub approvals: Arc<crate::server::approvals::Approvals>,
    pub runs: crate::server::runs::Runs,
    /// The operator console's signed-in sessions.
    pub console: crate::console::Sessions,
    /// Cancelled when the host begins to stop: long-lived responses (event
    /// streams) end.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The configuration file the host was started with: tokens are read
    /// from it again on reload.
    pub config_path: Option<std::path::PathBuf>,
    /// Set when a stop begins: `/readyz` answers `draining`.
    pub draining: crate::server::readiness::Draining,
}

pub type Shared = Arc<AppState>;

/// Every route; `mcp` says what the MCP transport checks and when its
/// streams end.
pub fn router(state: Shared, max_body_bytes: usize, mcp: mcp::Transport) -> Router {
    let mcp = Router::new()
        .nest_service("/mcp", mcp::service(state.clone(), mcp))
        .layer(axum::middleware::from_fn_with_state(state.clone(), mcp::limit_sessions))
        .layer(axum::middleware::from_fn_with_state(state.clone(), mcp::authenticate));
    Router::new()
        .merge(mcp)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tools", get(tools::list))
        .route("/v1/tools/{tool}/invoke", post(tools::invoke))
        .route("/v1/plugins", get(admin::list))
        .route(
            "/v1/plugins/{name}",
            put(admin::upload).delete(admin::unload).layer(DefaultBodyLimit::max(
                crate::plugins::bundle::MAX_COMPONENT_BYTES as usize + 1024 * 1024,
            )),
        )
        .route("/v1/plugins/{name}/rollback", post(admin::rollback))
        .route("/v1/plugins/{name}/versions", get(admin::versions))
        .route(
            "/v1/plugins/{name}/grants",
            get(grants::show)
                .put(grants::replace)
                .patch(grants::patch)
                .delete(grants::reset),
        )
        .route("/v1/plugins/{name}/disable", post(admin::disable))
        .route("/v1/plugins/{name}/enable", post(admin::enable))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/stream", get(approvals::stream))
        .route("/v1/approvals/rules", get(approvals::rules).put(approvals::set_rules))
        .route("/v1/approvals/{id}", get(approvals::get))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/tokens", get(tokens::list))
        .route("/v1/tokens/reload", post(tokens::reload))
        .route("/v1/audit", get(audit::query))
        .route("/v1/audit/export", get(audit::export))
        .merge(crate::console::router())
        .route(
            "/v1/{*rest}",
            put(not_found).get(not_found).post(not_found).delete(not_found),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the plugins folder has been loaded (even if some bundles
/// failed: those are reported, the rest serve; before that the port answers
/// `starting`, see [`crate::server::readiness`]), until a stop begins
/// (`draining`), and, where nodes share a database, while it answers: a
/// node that cannot reach it cannot record a call, so a balancer should
/// send calls elsewhere.
async fn readyz(State(state): State<Shared>) -> impl IntoResponse {
    let plugins = state.runtime.plugins().registry().snapshot().len();
    let storage = state.runtime.storage();
    let phase = state.draining.phase();
    let (mut status, database) = match storage.status().await {
        Ok(pool) => (StatusCode::OK, serde_json::json!({ "ok": true, "pool": pool })),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ok": false, "error": e.to_string() }),
        ),
    };
    if phase == crate::server::readiness::Phase::Draining {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = serde_json::json!({
        "ready": status == StatusCode::OK,
        "state": phase,
        "plugins": plugins,
        "storage": {
            "backend": if storage.is_shared() { "postgres" } else { "sled" },
            "node": storage.node(),
            "database": database,
        },
    });
    (status, axum::Json(body))
}

async fn metrics(_reader: auth::Reader, State(state): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(Holdings {
            warm_instances: state.runtime.warm_instances(),
            mcp_sessions: state.mcp_sessions.count().await,
            approvals_pending: state.approvals.pending().await.map_or(0, |p| p.len()),
            pool: state.runtime.storage().status().await.ok().flatten(),
        }),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
