//! The tokens in force: listed (never the tokens themselves) and read again
//! from the configuration file while the host serves, on `POST
//! /v1/tokens/reload` or SIGHUP. That is how a token is added, revoked or
//! rotated without a restart: edit `[[tokens]]` (a `sha256` list lets the
//! old and the new token pass together while clients switch), then reload.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::auth::{Admin, Reader};
use super::bodies::Tokens;
use super::responses::Unprocessable;
use super::{ApiError, Shared};
use crate::app::operator::{self, Actor};
use crate::audit::ActionEvent;
use crate::config::Config;
use crate::model::audit::Action;

/// The tokens in force: names, roles and limits, never the tokens.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens in force.", body = Tokens),
        super::responses::RoleRefusals,
    )
)]
pub async fn list(_: Reader, State(state): State<Shared>) -> Json<Tokens> {
    Json(Tokens {
        tokens: state.app.auth.list(),
    })
}

/// Read the configuration file's tokens again and put them in force (as
/// SIGHUP does); on any error the tokens in force stay.
#[utoipa::path(
    post,
    path = "/v1/tokens/reload",
    tag = "tokens",
    operation_id = "reload_tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens now in force.", body = Tokens),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn reload(Admin(admin): Admin, State(state): State<Shared>) -> Result<Json<Tokens>, ApiError> {
    let (before, after) = reload_tokens(&state)
        .map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_tokens", message))?;
    let actor = Actor::api(&admin.name);
    operator::record(
        &state.app.runtime,
        &actor,
        Action::ReloadTokens,
        SUBJECT.into(),
        before,
        after,
    )
    .await;
    Ok(Json(Tokens {
        tokens: state.app.auth.list(),
    }))
}

/// What the audit trail names as the thing a reload changes.
const SUBJECT: &str = "(tokens)";

/// Read the configuration file again and put its tokens in force; the
/// tokens before and after. On any error the tokens in force stay.
fn reload_tokens(state: &Shared) -> Result<(Value, Value), String> {
    let configured = match &state.config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?.tokens,
        // No file: the environment's tokens (or the generated ones) only.
        None => Vec::new(),
    };
    let (before, after) = state.app.auth.reload(&configured).map_err(|e| e.to_string())?;
    let view = |tokens| serde_json::to_value(tokens).unwrap_or_default();
    Ok((view(before), view(after)))
}

/// SIGHUP reloads the tokens, as systemd's `ExecReload` sends it; the
/// host's own record names no token.
pub fn spawn_reload_on_hangup(state: &Shared) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; tokens reload through POST /v1/tokens/reload only");
        return;
    };
    let state = std::sync::Arc::downgrade(state);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(state) = state.upgrade() else { return };
            match reload_tokens(&state) {
                Ok((before, after)) => {
                    tracing::info!("SIGHUP: tokens reloaded");
                    let event = ActionEvent {
                        action: Action::ReloadTokens,
                        via: None,
                        by: None,
                        subject: SUBJECT.into(),
                        before,
                        after,
                    };
                    operator::record_event(&state.app.runtime, &event).await;
                }
                Err(e) => tracing::error!("SIGHUP: tokens not reloaded, those in force stay: {e}"),
            }
        }
    });
}
