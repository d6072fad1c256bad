//! The HTTP API: agents list and call tools (REST and MCP), operators manage
//! plugins and grants and read the audit trail. Handlers are small; the work
//! is in [`calls`] (one call: permission, invoke, metrics, audit) and below.

pub mod admin;
pub mod approvals;
mod audit;
mod auth;
pub use auth::BearerFailures;
mod answer;
pub mod bodies;
pub mod error;
pub mod grants;
pub mod mcp;
pub mod openapi;
pub mod responses;
mod runs;
mod schemas;
pub mod tokens;
pub mod tools;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::put;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::app::metrics::Holdings;
use crate::app::App;

pub use answer::Answer;
pub use error::ApiError;
pub use tools::settle_interrupted;

/// What every handler shares: the application, and what only the HTTP
/// adapter keeps (MCP and console sessions, readiness, bearer failures).
pub struct AppState {
    pub app: Arc<App>,
    pub mcp_sessions: mcp::Sessions,
    /// The operator console's signed-in sessions.
    pub console: crate::console::store::Sessions,
    /// The configuration file the host was started with: tokens are read
    /// from it again on reload.
    pub config_path: Option<std::path::PathBuf>,
    /// Set when a stop begins: `/readyz` answers `draining`.
    pub draining: crate::server::readiness::Draining,
    /// Failed bearer checks, counted and slowed per source.
    pub bearer_failures: BearerFailures,
}

pub type Shared = Arc<AppState>;

/// Every route, with the console's `pages` beside the API's; `mcp` says
/// what the MCP transport checks and when its streams end.
pub fn router(state: Shared, max_body_bytes: usize, mcp: mcp::Transport, pages: Router<Shared>) -> Router {
    let mcp = Router::new()
        .route("/mcp", mcp::service(state.clone(), mcp))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), max_body_bytes),
            mcp::limit_sessions,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), mcp::authenticate));
    let (rest, _) = documented().split_for_parts();
    Router::new()
        .merge(mcp)
        .merge(rest)
        .merge(pages)
        .route(
            "/v1/{*rest}",
            put(not_found).get(not_found).post(not_found).delete(not_found),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(method_not_allowed_in_json))
        .with_state(state)
}

/// A method a path does not have: axum's 405 (with `Allow`) carries no
/// body; it gets the API's JSON error body, as every other refusal.
async fn method_not_allowed_in_json(response: axum::response::Response) -> axum::response::Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    // axum adds `Allow` on the way out, to this answer as to its own.
    ApiError::rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method; `Allow` names those it takes",
    )
    .into_response()
}

/// The REST routes, each registered with its OpenAPI description (`routes!`
/// takes the handler's `#[utoipa::path]`: a handler without one does not
/// compile here). A route added with a plain `.route` would be served
/// undocumented, which tests/tests/openapi.rs refuses.
fn documented() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(tools::list))
        .routes(routes!(tools::invoke))
        .routes(routes!(admin::list))
        .routes(routes!(admin::upload, admin::unload).layer(DefaultBodyLimit::max(
            crate::plugins::bundle::MAX_COMPONENT_BYTES as usize + 1024 * 1024,
        )))
        .routes(routes!(admin::rollback))
        .routes(routes!(admin::versions))
        .routes(routes!(grants::show, grants::replace, grants::patch, grants::reset))
        .routes(routes!(admin::disable))
        .routes(routes!(admin::enable))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::stream))
        .routes(routes!(approvals::rules, approvals::set_rules))
        .routes(routes!(approvals::get))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::cancel))
        .routes(routes!(tokens::list))
        .routes(routes!(tokens::reload))
        .routes(routes!(audit::query))
        .routes(routes!(audit::export))
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the plugins folder has been loaded (even if some bundles
/// failed: those are reported, the rest serve; before that the port answers
/// `starting`, see [`crate::server::readiness`]), until a stop begins
/// (`draining`), and, where nodes share a database, while it answers: a
/// node that cannot reach it cannot record a call, so a balancer should
/// send calls elsewhere.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    summary = "Ready: loaded, not draining, and the shared database (if any) answers.",
    responses(
        (status = 200, description = "Ready.", body = bodies::Readiness),
        (status = 503, description = "Not ready: `state` is `starting` or `draining`, or the shared database does not answer.", body = bodies::Readiness),
    )
)]
async fn readyz(State(state): State<Shared>) -> impl IntoResponse {
    let plugins = state.app.runtime.plugins().registry().snapshot().len();
    let storage = state.app.runtime.storage();
    let phase = state.draining.phase();
    let (mut status, database) = match storage.status().await {
        Ok(pool) => (
            StatusCode::OK,
            bodies::DatabaseReadiness {
                ok: true,
                pool: Some(serde_json::json!(pool)),
                error: None,
            },
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            bodies::DatabaseReadiness {
                ok: false,
                pool: None,
                error: Some(e.to_string()),
            },
        ),
    };
    if phase == crate::server::readiness::Phase::Draining {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = bodies::Readiness {
        ready: status == StatusCode::OK,
        state: phase,
        plugins: Some(plugins),
        storage: Some(bodies::StorageReadiness {
            backend: if storage.is_shared() { "postgres" } else { "sled" },
            node: storage.node().to_string(),
            database,
        }),
    };
    (status, axum::Json(body))
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The host's metrics.", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        responses::RoleRefusals,
    )
)]
async fn metrics(_reader: auth::Reader, State(state): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.render(Holdings {
            warm_instances: state.app.runtime.warm_instances(),
            mcp_sessions: state.mcp_sessions.count().await,
            approvals_pending: state.app.approvals.pending().await.map_or(0, |p| p.len()),
            pool: state.app.runtime.storage().status().await.ok().flatten(),
        }),
    )
}

/// A page's size as a query asked for it: `default` when not given; one
/// outside 1 to `max` is refused (422), not quietly changed.
pub(crate) fn page_size(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("limit must be 1 to {max}, not {n}"),
        )),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
