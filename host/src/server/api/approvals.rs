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
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, Agent, Reviewer};
use super::bodies::{ApprovalAnswer, ApprovalPage, ApprovedAndRan};
use super::error::ErrorBody;
use super::responses::{BadRequest, Conflict, NotFound, Unprocessable};
use super::Answer;
use super::{ApiError, Shared};
use crate::app::approvals::{view, ApprovalError, SetRulesError, MAX_WAIT};
use crate::app::calls::spawn_execution;
use crate::config::approvals::ApprovalConfig;
use crate::config::Role;
use crate::model::approval::{ApprovalState, Verdict};
use crate::model::audit::Action;
use crate::policy::approvals::ApprovalPolicy;

/// What a call refused for its token's share of held calls is told to
/// wait: reviewers decide in minutes, not seconds.
const PENDING_RETRY_AFTER_SECS: u64 = 60;

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> ApiError {
        let (status, kind) = match &e {
            ApprovalError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApprovalError::Decided { .. } => (StatusCode::CONFLICT, "approval_decided"),
            ApprovalError::OwnCall { .. } => (StatusCode::FORBIDDEN, "separation_of_duties"),
            ApprovalError::AlreadyApproved { .. } => (StatusCode::CONFLICT, "already_approved"),
            ApprovalError::Reason => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            // Waiting helps: a reviewer's decision frees a place.
            ApprovalError::TooManyPending { .. } => {
                let mut refused = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_pending_approvals",
                    e.to_string(),
                );
                refused.body["error"]["retry_after"] = Value::from(PENDING_RETRY_AFTER_SECS);
                return refused.retry_after(PENDING_RETRY_AFTER_SECS);
            }
            ApprovalError::Storage(_) | ApprovalError::Audit(_) => return ApiError::internal(e),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Wait {
    /// Seconds to wait for the decision and the result.
    wait: Option<u64>,
}

/// An approval: once final, the call's own answer (as the call would have
/// answered, or the typed error of a rejection, expiry or lapse); until
/// then `202` with the approval as it stands. An agent sees only the calls
/// it made; another's id is not found.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    tag = "approvals",
    operation_id = "get_approval",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The approval's id."), Wait),
    responses(
        (status = 200, description = "Approved and run: the call's own answer, with `approval` and `decisions` beside it. A rejected, expired or lapsed call answers its typed error (403, 409, ...) the same way.", body = ApprovedAndRan),
        (status = 202, description = "Not decided yet: the approval as it stands.", body = ApprovalAnswer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, description = "Nobody decided in time: `approval_expired`.", body = ErrorBody),
        super::responses::RoleRefusals,
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
    // The agent's own, checked before waiting, so nobody waits on another's.
    let first = state.app.approvals.get(&id).await?;
    if principal.role == Role::Agent && first.token != principal.name {
        return Err(ApprovalError::NotFound(id).into());
    }
    let approval = if first.state.is_final() {
        first
    } else {
        state.app.approvals.wait(&id, wait).await?
    };
    match &approval.answer {
        Some(answered) if approval.state.is_final() => {
            let Answer { status, mut body, .. } = Answer::answered(answered);
            // Beside the call's own answer: which approval, and who decided.
            if let Value::Object(map) = &mut body {
                map.insert("approval".into(), Value::from(approval.id.clone()));
                map.insert("decisions".into(), view(&approval)["decisions"].take());
            }
            Ok((status, Json(body)).into_response())
        }
        _ => Ok((
            StatusCode::ACCEPTED,
            Json(ApprovalAnswer {
                approval: view(&approval),
            }),
        )
            .into_response()),
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// Pending only.
    #[default]
    Pending,
    All,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending` (the queue, oldest first; the default) or `all` (newest
    /// first); both paged.
    #[serde(default)]
    state: Which,
    /// With `state=all`: only approvals older than this id (the `next` of
    /// the previous page).
    before: Option<String>,
    /// With `state=pending`: only held calls after this id (the `next` of
    /// the previous page).
    after: Option<String>,
    /// Approvals on a page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The queue (pending, oldest first, paged by `after`), or every approval
/// (newest first, paged by `before`).
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    operation_id = "list_approvals",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of approvals.", body = ApprovalPage),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn list(
    _: Reviewer,
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let Query(query) = query?;
    let limit = super::page_size(query.limit, 100, 1000)?;
    let (approvals, more) = match query.state {
        Which::Pending => {
            let found = state.app.approvals.pending_page(query.after.as_deref(), limit).await?;
            (found.page, found.more)
        }
        Which::All => {
            let page = state.app.approvals.list(query.before.as_deref(), limit).await?;
            let full = page.len() == limit;
            (page, full)
        }
    };
    let next = more.then(|| approvals.last().map(|a| a.id.clone())).flatten();
    Ok(Json(ApprovalPage {
        approvals: approvals.iter().map(view).collect(),
        next,
    }))
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why, for the audit trail and the caller: 1 to 2048 bytes, not only
    /// spaces.
    #[schema(min_length = 1, max_length = 2048)]
    reason: String,
}

/// Approve a held call: once enough reviewers have, it runs.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "approvals",
    operation_id = "approve",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The approval's id.")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The decision is recorded: the approval as it stands.", body = ApprovalAnswer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn approve(
    Reviewer(reviewer): Reviewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<ApprovalAnswer>, ApiError> {
    decide(reviewer.name.clone(), state, id, body, Verdict::Approve).await
}

/// Reject a held call: it never runs, and its caller gets a typed error.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/reject",
    tag = "approvals",
    operation_id = "reject",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The approval's id.")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The decision is recorded: the approval as it stands.", body = ApprovalAnswer),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn reject(
    Reviewer(reviewer): Reviewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<ApprovalAnswer>, ApiError> {
    decide(reviewer.name.clone(), state, id, body, Verdict::Reject).await
}

async fn decide(
    reviewer: String,
    state: Shared,
    id: String,
    body: Result<Json<DecisionBody>, JsonRejection>,
    verdict: Verdict,
) -> Result<Json<ApprovalAnswer>, ApiError> {
    let Json(body) = body?;
    let approval = decide_and_carry_out(&state, &reviewer, &id, verdict, &body.reason).await?;
    Ok(Json(ApprovalAnswer {
        approval: view(&approval),
    }))
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
) -> Result<std::sync::Arc<crate::model::approval::Approval>, ApprovalError> {
    let approval = state.app.approvals.decide(id, reviewer, verdict, reason).await?;
    // A workflow step's approval is carried out by its run, which waits for it.
    if approval.state == ApprovalState::Approved && approval.run.is_none() {
        spawn_execution(&state.app, approval.id.clone());
    }
    Ok(approval)
}

/// Every change to an approval as it happens, as server-sent events named
/// after what happened (`held`, `approved`, ...), each carrying the
/// approval. Ends when the host stops.
#[utoipa::path(
    get,
    path = "/v1/approvals/stream",
    tag = "approvals",
    operation_id = "stream_approvals",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-sent events: `held`, `approved`, `rejected`, ... each with the approval as JSON data; `lagged` when some were missed.", body = String, content_type = "text/event-stream"),
        super::responses::RoleRefusals,
    )
)]
pub async fn stream(_: Reviewer, State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let notices = tokio_stream::wrappers::BroadcastStream::new(state.app.approvals.subscribe());
    let events = notices
        .filter_map(|notice| async move {
            match notice {
                Ok(notice) => Some(
                    Event::default()
                        .event(<&str>::from(notice.event))
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
        .take_until(state.app.stopping.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The approval rules in force.
#[utoipa::path(
    get,
    path = "/v1/approvals/rules",
    tag = "approvals",
    operation_id = "get_approval_rules",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rules in force.", body = ApprovalConfig),
        super::responses::RoleRefusals,
    )
)]
pub async fn rules(_: Reviewer, State(state): State<Shared>) -> Json<ApprovalConfig> {
    Json(state.app.approvals.rules())
}

/// Replace the rules: checked (422 naming the rule at fault), durable, and
/// applied to the next call. They replace the file's from then on, across
/// restarts.
#[utoipa::path(
    put,
    path = "/v1/approvals/rules",
    tag = "approvals",
    operation_id = "set_approval_rules",
    security(("bearer" = [])),
    request_body = ApprovalConfig,
    responses(
        (status = 200, description = "The rules now in force.", body = ApprovalConfig),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn set_rules(
    Admin(admin): Admin,
    State(state): State<Shared>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ApprovalConfig>, ApiError> {
    let rules: ApprovalConfig = super::error::object_body(body)?;
    let before = serde_json::to_value(state.app.approvals.rules()).unwrap_or_default();
    // Held to the bounds of rules given now (the store's are only used).
    let checked = ApprovalPolicy::accept(ApprovalConfig {
        webhook: None,
        ..rules.clone()
    });
    let set = match checked {
        Ok(_) => state.app.approvals.set_rules(rules).await,
        Err(e) => Err(SetRulesError::Invalid(e)),
    };
    match set {
        Ok(rules) => {
            let after = serde_json::to_value(&rules).unwrap_or_default();
            let actor = crate::app::operator::Actor::api(&admin.name);
            let subject = "(approval rules)".to_string();
            crate::app::operator::record(&state.app.runtime, &actor, Action::SetRules, subject, before, after).await;
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
