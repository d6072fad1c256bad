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
use utoipa::IntoParams;

use super::auth::{Agent, AuditReader};
use super::bodies::{RunAnswer, RunFinished, RunPage, RunUnderWay};
use super::responses::{BadRequest, Conflict, NotFound, Unprocessable};
use super::Answer;
use super::{ApiError, Shared};
use crate::app::runs::{self, RunError, MAX_WAIT};
use crate::config::Role;

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match &e {
            RunError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            RunError::Ended { .. } => ApiError::new(StatusCode::CONFLICT, "run_ended", e.to_string()),
            RunError::Storage(_) => ApiError::internal(e),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Wait {
    /// Seconds to wait for the run to end.
    wait: Option<u64>,
}

/// A run, with each step; `?wait=N` waits up to N seconds for it to end.
/// Ended: `200` (or the run's typed error status) with its result beside
/// the run; still going: `202`.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    operation_id = "get_run",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id."), Wait),
    responses(
        (status = 200, description = "The run completed: `result` and the run with its steps (a failed or cancelled run answers its typed error's status, with the run beside the error).", body = RunFinished),
        (status = 202, description = "Still going: the run with its steps so far.", body = RunUnderWay),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        super::responses::AnyTokenRefusals,
    )
)]
pub async fn get(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    // Checked before waiting, so nobody waits on another's run.
    runs::visible(&state.app, &principal, &id).await?;
    let run = runs::wait(&state.app, &id, wait, false).await?;
    let steps = state
        .app
        .runtime
        .storage()
        .runs()
        .steps(&id)
        .await
        .map_err(ApiError::internal)?;
    let answer = Answer::run(&run);
    let mut body = answer.body;
    body["run"] = runs::view(&state.app, &run, &steps);
    Ok((answer.status, Json(body)).into_response())
}

/// Cancel a run that has not ended.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    tag = "runs",
    operation_id = "cancel_run",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "Cancelled: the run.", body = RunAnswer),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        super::responses::RoleRefusals,
    )
)]
pub async fn cancel(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<RunAnswer>, ApiError> {
    if matches!(principal.role, Role::Approver | Role::Observer) {
        // Reviewers decide steps and observers read; stopping a run is its
        // caller's or an admin's.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            format!("an {} token may not cancel runs", principal.role.as_str()),
        ));
    }
    runs::visible(&state.app, &principal, &id).await?;
    let run = runs::cancel(&state.app, &id, &principal.name).await?;
    Ok(Json(RunAnswer {
        run: runs::view(&state.app, &run, &[]),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs older than this id (the `next` of the previous page).
    before: Option<String>,
    /// Runs on a page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Runs, newest first (`?before=` the last id of the previous page).
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    operation_id = "list_runs",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of runs, newest first.", body = RunPage),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn list(
    _: AuditReader,
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(query) = query?;
    let limit = super::page_size(query.limit, 50, 500)?;
    let (page, next) = runs::page(&state.app, query.before.as_deref(), limit).await?;
    Ok(Json(RunPage {
        runs: page.iter().map(|r| runs::view(&state.app, r, &[])).collect(),
        next,
    }))
}
