//! The operator API: what is loaded, what it may do, and switching it off.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Admin;
use super::{ApiError, Shared};
use crate::plugin::Plugin;
use crate::policy::PluginPolicy;
use crate::runtime::RuntimeError;

fn describe(state: &Shared, p: &Plugin) -> Value {
    let g = &p.context.grant;
    json!({
        "name": p.manifest.name,
        "version": p.manifest.version.to_string(),
        "vendor": p.manifest.vendor,
        "world": p.manifest.world,
        "digest": p.digest,
        "state": if state.runtime.is_disabled(&p.manifest.name) { "disabled" } else { "enabled" },
        "tools": p.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "effective_grant": {
            "http": g.http.iter().map(|r| json!({
                "origin": format!("{:?}", r.origin),
                "methods": r.methods,
                "allow_private": r.allow_private,
            })).collect::<Vec<_>>(),
            "secrets": g.secrets.keys().collect::<Vec<_>>(),
            "config": g.config.keys().collect::<Vec<_>>(),
            "kv_quota_bytes": g.kv_quota_bytes,
            "memory_bytes": g.memory_bytes,
            "timeout_ms": g.timeout.as_millis() as u64,
            "max_concurrency": g.max_concurrency,
        },
    })
}

fn plugin(state: &Shared, name: &str) -> Result<std::sync::Arc<Plugin>, ApiError> {
    state
        .runtime
        .registry()
        .get(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no plugin named {name:?}")))
}

pub async fn list(_: Admin, State(state): State<Shared>) -> Json<Vec<Value>> {
    Json(
        state
            .runtime
            .registry()
            .snapshot()
            .values()
            .map(|p| describe(&state, p))
            .collect(),
    )
}

pub async fn grants(_: Admin, State(state): State<Shared>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let p = plugin(&state, &name)?;
    let operator = serde_json::to_value(state.runtime.operator_grant(&name)).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "plugin": name,
        "operator": operator,
        "plugin_state": describe(&state, &p),
    })))
}

/// Replace the operator's grant; the secrets' values are never echoed back.
pub async fn set_grants(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
    body: Result<Json<PluginPolicy>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(grant) = body?;
    plugin(&state, &name)?;
    let p = state.runtime.set_grant(&name, grant).await.map_err(|e| match e {
        RuntimeError::Policy(e) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", e.to_string()),
        other => ApiError::internal(other),
    })?;
    tracing::info!(admin = %admin.name, plugin = %name, "grant changed");
    Ok(Json(describe(&state, &p)))
}

async fn set_enabled(admin: &str, state: &Shared, name: &str, enabled: bool) -> Result<Json<Value>, ApiError> {
    let p = plugin(state, name)?;
    state
        .runtime
        .set_enabled(name, enabled)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(admin, plugin = %name, enabled, "plugin state changed");
    Ok(Json(describe(state, &p)))
}

pub async fn disable(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&admin.name, &state, &name, false).await
}

pub async fn enable(
    Admin(admin): Admin,
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&admin.name, &state, &name, true).await
}
