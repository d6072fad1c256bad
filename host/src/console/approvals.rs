//! The approval queue: each held call with its arguments (secret fields
//! redacted), the rule that held it and why, and a reason box with approve
//! and reject. The page follows the approvals' event stream, so a call held
//! or decided elsewhere appears or leaves without a reload.

use std::convert::Infallible;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::session::{Right, Viewer};
use super::{done, pretty, render, time_ms, Nav, Refusal, Section};
use crate::server::api::approvals::decide_and_carry_out;
use crate::server::api::{ApiError, Shared};
use crate::server::approvals::ApprovalError;
use crate::storage::approvals::{Approval, Verdict};
use crate::storage::audit::redact;

impl From<ApprovalError> for Refusal {
    fn from(e: ApprovalError) -> Refusal {
        Refusal::from(ApiError::from(e))
    }
}

/// A held call as a reviewer reads it.
pub struct HeldCall {
    pub id: String,
    pub tool: String,
    pub state: &'static str,
    pub token: String,
    pub session: Option<String>,
    pub held_at: String,
    pub expires: String,
    pub rule: String,
    /// Why the rule held it, in words.
    pub why: String,
    /// The arguments with secret fields redacted, indented.
    pub arguments: String,
    pub approvers: u8,
    /// Decisions so far: who, what, why.
    pub decisions: Vec<String>,
    /// The workflow run and step, when the call is a step of one.
    pub step: Option<String>,
}

impl HeldCall {
    fn of(a: &Approval) -> HeldCall {
        let why = match &a.detail {
            Some(detail) => format!("{}: {detail}", a.reason.describe()),
            None => a.reason.describe().to_string(),
        };
        HeldCall {
            id: a.id.clone(),
            tool: a.tool.clone(),
            state: a.state.as_str(),
            token: a.token.clone(),
            session: a.session.clone(),
            held_at: time_ms(a.created),
            expires: time_ms(a.expires),
            rule: a.rule.clone(),
            why,
            arguments: pretty(&redact(&a.arguments, &a.secret_fields)),
            approvers: a.approvers,
            decisions: a
                .decisions
                .iter()
                .map(|d| {
                    let verdict = match d.verdict {
                        Verdict::Approve => "approved",
                        Verdict::Reject => "rejected",
                    };
                    format!("{verdict} by {} at {}: {}", d.by, time_ms(d.at), d.reason)
                })
                .collect(),
            step: a.run.as_ref().map(|run| match &a.step {
                Some(step) => format!("{run} step {step}"),
                None => run.clone(),
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    queue: Vec<HeldCall>,
    recent: Vec<HeldCall>,
}

#[derive(Template)]
#[template(path = "console/approval_queue.html")]
struct QueueFragment {
    nav: Nav,
    queue: Vec<HeldCall>,
}

/// How many decided calls the page lists under the queue.
const RECENT: usize = 20;

async fn queue_of(state: &Shared) -> Result<Vec<HeldCall>, Refusal> {
    Ok(state.approvals.pending().await?.iter().map(HeldCall::of).collect())
}

pub async fn page(viewer: Viewer, State(state): State<Shared>) -> Result<Response, Refusal> {
    let recent = state
        .approvals
        .list(None, RECENT * 2)
        .await?
        .iter()
        .filter(|a| a.state.is_final())
        .take(RECENT)
        .map(HeldCall::of)
        .collect();
    Ok(render(&ApprovalsPage {
        nav: Nav::new(&viewer, Section::Approvals),
        queue: queue_of(&state).await?,
        recent,
    }))
}

/// The queue alone, for the page's script to merge in as it changes.
pub async fn queue(viewer: Viewer, State(state): State<Shared>) -> Result<Response, Refusal> {
    Ok(render(&QueueFragment {
        nav: Nav::keep_flash(&viewer, Section::Approvals),
        queue: queue_of(&state).await?,
    }))
}

/// Every change to an approval as an event named after it (`held`,
/// `approved`, ...) carrying the approval's id; `lagged` when some were
/// missed. The page re-reads the queue on each.
pub async fn stream(_: Viewer, State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let notices = tokio_stream::wrappers::BroadcastStream::new(state.approvals.subscribe());
    let events = notices
        .map(|notice| {
            Ok(match notice {
                Ok(notice) => Event::default().event(notice.event).data(notice.approval.id.clone()),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
            })
        })
        .take_until(state.stopping.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
pub struct Decision {
    csrf: String,
    verdict: Verdict,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    form: Result<Form<Decision>, FormRejection>,
) -> Result<Response, Refusal> {
    viewer.require(Right::Decide)?;
    let Form(decision) = form.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    viewer.check_csrf(&decision.csrf)?;
    let outcome = decide_and_carry_out(&state, &viewer.principal.name, &id, decision.verdict, &decision.reason)
        .await
        .map(|a| match decision.verdict {
            Verdict::Approve => format!("The call of {} is approved ({}).", a.tool, a.state.as_str()),
            Verdict::Reject => format!("The call of {} is rejected.", a.tool),
        })
        .map_err(Refusal::from);
    done(&viewer, "/console/approvals", outcome)
}
