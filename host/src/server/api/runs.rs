//! Workflow runs over HTTP: an agent follows its own (`GET
//! /v1/runs/{id}?wait=`) and may cancel it; reviewers and admins see and
//! cancel every run.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Agent, AuditReader};
use super::calls::Answer;
use super::{ApiError, Shared};
use crate::config::Role;
use crate::server::auth::Principal;
use crate::server::runs::{self, RunError, MAX_WAIT};
use crate::storage::runs::Run;

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match &e {
            RunError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            RunError::Ended { .. } => ApiError::new(StatusCode::CONFLICT, "run_ended", e.to_string()),
            RunError::Storage(_) => ApiError::internal(e),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Seconds to wait for the run to end.
    wait: Option<u64>,
}

/// The run, if `principal` may see it: an agent sees only its own runs
/// (another's id is not found).
async fn visible(state: &Shared, principal: &Principal, id: &str) -> Result<Run, ApiError> {
    let run = runs::get(state, id).await?;
    if principal.role == Role::Agent && run.token != principal.name {
        return Err(RunError::NotFound(id.to_string()).into());
    }
    Ok(run)
}

/// A run, with each step; `?wait=N` waits up to N seconds for it to end.
/// Ended: `200` (or the run's typed error status) with its result beside
/// the run; still going: `202`.
pub async fn get(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    // Checked before waiting, so nobody waits on another's run.
    visible(&state, &principal, &id).await?;
    let run = runs::wait(&state, &id, wait, false).await?;
    let steps = state
        .runtime
        .storage()
        .runs()
        .steps(&id)
        .await
        .map_err(ApiError::internal)?;
    let answer = Answer::run(&run);
    let mut body = answer.body;
    body["run"] = runs::view(&state, &run, &steps);
    Ok((answer.status, Json(body)).into_response())
}

/// Cancel a run that has not ended.
pub async fn cancel(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if matches!(principal.role, Role::Approver | Role::Observer) {
        // Reviewers decide steps and observers read; stopping a run is its
        // caller's or an admin's.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            format!("an {} token may not cancel runs", principal.role.as_str()),
        ));
    }
    visible(&state, &principal, &id).await?;
    let run = runs::cancel(&state, &id, &principal.name).await?;
    Ok(Json(json!({ "run": runs::view(&state, &run, &[]) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// Runs, newest first (`?before=` the last id of the previous page).
pub async fn list(
    _: AuditReader,
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let (page, next) = runs::page(&state, query.before.as_deref(), limit).await?;
    let runs: Vec<_> = page.iter().map(|r| runs::view(&state, r, &[])).collect();
    Ok(Json(json!({ "runs": runs, "next": next })))
}
