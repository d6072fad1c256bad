//! The agent API: the tools a token may use, and calling one.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Agent;
use super::calls::call;
use super::{ApiError, Shared};
use crate::audit::Caller;
use crate::idempotency::{Lookup, MAX_KEY_LEN};
use crate::runtime::ToolInfo;

/// Header carrying the caller's conversation or session id into the audit.
pub const SESSION_HEADER: &str = "x-session-id";

pub async fn list(Agent(principal): Agent, State(state): State<Shared>) -> Json<Vec<ToolInfo>> {
    Json(
        state
            .runtime
            .tools()
            .into_iter()
            .filter(|t| principal.may_use(&t.name))
            .collect(),
    )
}

fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= MAX_KEY_LEN => Ok(Some(s.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "header {name} must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))),
        },
    }
}

pub async fn invoke(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(args) = body?;
    let caller = Caller {
        via: "http",
        token: Some(principal.name.clone()),
        session: header(&headers, SESSION_HEADER)?,
        idempotency_key: header(&headers, "idempotency-key")?,
    };
    let guard = match &caller.idempotency_key {
        None => None,
        Some(key) => match state
            .idempotency
            .lookup(&principal.name, &tool, key, &args)
            .await
            .map_err(ApiError::internal)?
        {
            Lookup::Replay(stored) => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                let mut response = (status, Json(stored.body)).into_response();
                response
                    .headers_mut()
                    .insert("idempotent-replay", "true".parse().expect("static header"));
                return Ok(response);
            }
            Lookup::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_mismatch",
                    "this Idempotency-Key was used with different arguments",
                ))
            }
            Lookup::Run(guard) => Some(guard),
        },
    };

    let (outcome, record) = call(&state, &principal, &tool, &args, &caller).await?;
    let (status, body) = match &outcome.result {
        Ok(value) => (
            StatusCode::OK,
            json!({ "result": value, "audit_id": record.id, "plugin_version": outcome.plugin_version }),
        ),
        Err(e) => {
            let mut err = ApiError::from_call(e);
            if let Value::Object(map) = &mut err.body {
                map.insert("audit_id".into(), Value::from(record.id.clone()));
            }
            if e.kind() == "resource_exhausted" || e.kind() == "timeout" {
                // Not a final answer: a retry should run again, not replay it.
                return Ok(err.into_response());
            }
            (err.status, err.body)
        }
    };
    if let Some(guard) = guard {
        state
            .idempotency
            .store(guard, status.as_u16(), &body, &args)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok((status, Json(body)).into_response())
}
