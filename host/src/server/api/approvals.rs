//! Held calls over HTTP. Agents wait for their own (`GET
//! /v1/approvals/{id}?wait=`); reviewers (approver and admin tokens) list,
//! follow (`/v1/approvals/stream`, SSE) and decide them; admins set the
//! rules.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Admin, Agent, Reviewer};
use super::calls::spawn_execution;
use super::{ApiError, Shared};
use crate::config::Role;
use crate::policy::approvals::ApprovalConfig;
use crate::server::approvals::{view, ApprovalError, SetRulesError, MAX_WAIT};
use crate::storage::approvals::{ApprovalState, Verdict};
use crate::storage::audit::Action;

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> ApiError {
        let (status, kind) = match &e {
            ApprovalError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApprovalError::Decided { .. } => (StatusCode::CONFLICT, "approval_decided"),
            ApprovalError::OwnCall { .. } => (StatusCode::FORBIDDEN, "separation_of_duties"),
            ApprovalError::AlreadyApproved { .. } => (StatusCode::CONFLICT, "already_approved"),
            ApprovalError::Reason => (StatusCode::BAD_REQUEST, "bad_request"),
            ApprovalError::Storage(_) | ApprovalError::Audit(_) => return ApiError::internal(e),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Seconds to wait for the decision and the result.
    wait: Option<u64>,
}

/// An approval: once final, the call's own answer (as the call would have
/// answered, or the typed error of a rejection, expiry or lapse); until
/// then `202` with the approval as it stands. An agent sees only the calls
/// it made; another's id is not found.
pub async fn get(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    // The agent's own, checked before waiting, so nobody waits on another's.
    let first = state.approvals.get(&id).await?;
    if principal.role == Role::Agent && first.token != principal.name {
        return Err(ApprovalError::NotFound(id).into());
    }
    let approval = if first.state.is_final() {
        first
    } else {
        state.approvals.wait(&id, wait).await?
    };
    match &approval.answer {
        Some(answer) if approval.state.is_final() => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let mut body = answer.body.clone();
            // Beside the call's own answer: which approval, and who decided.
            if let Value::Object(map) = &mut body {
                map.insert("approval".into(), Value::from(approval.id.clone()));
                map.insert("decisions".into(), view(&approval)["decisions"].take());
            }
            Ok((status, Json(body)).into_response())
        }
        _ => Ok((StatusCode::ACCEPTED, Json(json!({ "approval": view(&approval) }))).into_response()),
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// Pending only.
    #[default]
    Pending,
    All,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    state: Which,
    before: Option<String>,
    limit: Option<usize>,
}

/// The queue (pending, oldest first), or every approval (newest first,
/// paged by `before`).
pub async fn list(
    _: Reviewer,
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let approvals = match query.state {
        Which::Pending => state.approvals.pending().await?,
        Which::All => state.approvals.list(query.before.as_deref(), limit).await?,
    };
    let next = (matches!(query.state, Which::All) && approvals.len() == limit)
        .then(|| approvals.last().map(|a| a.id.clone()))
        .flatten();
    let views: Vec<Value> = approvals.iter().take(limit).map(view).collect();
    Ok(Json(json!({ "approvals": views, "next": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    reason: String,
}

pub async fn approve(
    Reviewer(reviewer): Reviewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(reviewer.name.clone(), state, id, body, Verdict::Approve).await
}

pub async fn reject(
    Reviewer(reviewer): Reviewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    decide(reviewer.name.clone(), state, id, body, Verdict::Reject).await
}

async fn decide(
    reviewer: String,
    state: Shared,
    id: String,
    body: Result<Json<DecisionBody>, JsonRejection>,
    verdict: Verdict,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let approval = decide_and_carry_out(&state, &reviewer, &id, verdict, &body.reason).await?;
    Ok(Json(json!({ "approval": view(&approval) })))
}

/// Record `reviewer`'s decision; once approved, the call runs (here, or in
/// the workflow run whose step it is). The API and the console decide
/// through this one path.
pub async fn decide_and_carry_out(
    state: &Shared,
    reviewer: &str,
    id: &str,
    verdict: Verdict,
    reason: &str,
) -> Result<std::sync::Arc<crate::storage::approvals::Approval>, ApprovalError> {
    let approval = state.approvals.decide(id, reviewer, verdict, reason).await?;
    // A workflow step's approval is carried out by its run, which waits for it.
    if approval.state == ApprovalState::Approved && approval.run.is_none() {
        spawn_execution(state, approval.id.clone());
    }
    Ok(approval)
}

/// Every change to an approval as it happens, as server-sent events named
/// after what happened (`held`, `approved`, ...), each carrying the
/// approval. Ends when the host stops.
pub async fn stream(_: Reviewer, State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let notices = tokio_stream::wrappers::BroadcastStream::new(state.approvals.subscribe());
    let events = notices
        .filter_map(|notice| async move {
            match notice {
                Ok(notice) => Some(
                    Event::default()
                        .event(notice.event)
                        .json_data(view(&notice.approval))
                        .ok()?,
                ),
                // A slow reader missed some: say so, so a console re-reads the list.
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Event::default().event("lagged").data(n.to_string()))
                }
            }
        })
        .map(Ok)
        .take_until(state.stopping.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

pub async fn rules(_: Reviewer, State(state): State<Shared>) -> Json<ApprovalConfig> {
    Json(state.approvals.rules())
}

/// Replace the rules: checked (422 naming the rule at fault), durable, and
/// applied to the next call. They replace the file's from then on, across
/// restarts.
pub async fn set_rules(
    Admin(admin): Admin,
    State(state): State<Shared>,
    body: Result<Json<ApprovalConfig>, JsonRejection>,
) -> Result<Json<ApprovalConfig>, ApiError> {
    let Json(rules) =
        body.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules", e.body_text()))?;
    let before = serde_json::to_value(state.approvals.rules()).unwrap_or_default();
    match state.approvals.set_rules(rules).await {
        Ok(rules) => {
            let after = serde_json::to_value(&rules).unwrap_or_default();
            let actor = super::admin::Actor::api(&admin.name);
            let subject = "(approval rules)".to_string();
            super::admin::record_admin(&state, &actor, Action::SetRules, subject, before, after).await;
            Ok(Json(rules))
        }
        Err(SetRulesError::Invalid(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rules",
            e.to_string(),
        )),
        Err(SetRulesError::Storage(e)) => Err(ApiError::internal(e)),
    }
}
