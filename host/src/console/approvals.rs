//! The approval queue: each held call with its arguments (secret fields
//! redacted), the rule that held it and why, and a reason box with approve
//! and reject, [`PAGE`] calls to a page, oldest first, with a link to the
//! next. The page follows the approvals' event stream item by item: a call
//! held, changed or decided elsewhere is fetched alone
//! (`/console/approvals/queue/{id}`) or removed, so no event makes a
//! browser read the whole queue again.

use std::convert::Infallible;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::session::{Right, Viewer};
use super::{done, pretty, render, Nav, Refusal, Section};
use crate::app::approvals::happened::Happened;
use crate::app::approvals::{ApprovalError, Notice};
use crate::audit::redact;
use crate::model::approval::{Approval, ApprovalState, Verdict};
use crate::model::time::rfc3339_secs;
use crate::server::api::approvals::decide_and_carry_out;
use crate::server::api::{ApiError, Shared};

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
            held_at: rfc3339_secs(a.created),
            expires: rfc3339_secs(a.expires),
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
                    format!("{verdict} by {} at {}: {}", d.by, rfc3339_secs(d.at), d.reason)
                })
                .collect(),
            step: a.run.as_ref().map(|run| match &a.step {
                Some(step) => format!("{run} step {step}"),
                None => run.clone(),
            }),
        }
    }
}

/// Held calls on one page of the queue: enough to decide from, few enough
/// that a page stays small whatever waits (5,000 calls held at once made
/// a 7.3 MB page before it was paged).
pub const PAGE: usize = 50;

/// One page of the queue, as the page and its script show it.
pub struct QueuePage {
    pub calls: Vec<HeldCall>,
    /// The page's `after`, if it is not the first.
    pub after: Option<String>,
    /// The next page's `after`, if more wait.
    pub next: Option<String>,
    /// How many wait in all.
    pub total: usize,
    pub size: usize,
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    queue: QueuePage,
    recent: Vec<HeldCall>,
}

#[derive(Template)]
#[template(path = "console/approval_queue.html")]
struct QueueFragment {
    nav: Nav,
    queue: QueuePage,
}

#[derive(Template)]
#[template(path = "console/approval_item.html")]
struct ItemFragment {
    nav: Nav,
    a: HeldCall,
}

/// How many decided calls the page lists under the queue.
const RECENT: usize = 20;

/// Which page of the queue: the held calls after this id.
#[derive(Deserialize)]
pub struct Paging {
    after: Option<String>,
}

async fn queue_of(state: &Shared, after: Option<String>) -> Result<QueuePage, Refusal> {
    let found = state.app.approvals.pending_page(after.as_deref(), PAGE).await?;
    let next = found.more.then(|| found.page.last().map(|a| a.id.clone())).flatten();
    Ok(QueuePage {
        calls: found.page.iter().map(HeldCall::of).collect(),
        after,
        next,
        total: found.total,
        size: PAGE,
    })
}

pub async fn page(
    viewer: Viewer,
    State(state): State<Shared>,
    Query(paging): Query<Paging>,
) -> Result<Response, Refusal> {
    let recent = state
        .app
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
        queue: queue_of(&state, paging.after).await?,
        recent,
    }))
}

/// One page of the queue alone, for the page's script to merge in after it
/// may have missed events (a reconnect, a lag).
pub async fn queue(
    viewer: Viewer,
    State(state): State<Shared>,
    Query(paging): Query<Paging>,
) -> Result<Response, Refusal> {
    Ok(render(&QueueFragment {
        nav: Nav::keep_flash(&viewer, Section::Approvals),
        queue: queue_of(&state, paging.after).await?,
    }))
}

/// One held call alone, as the queue shows it, while it waits for a
/// decision (404 once it does not), for the page's script to add or update.
pub async fn item(viewer: Viewer, State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Refusal> {
    let approval = state.app.approvals.get(&id).await?;
    if approval.state != ApprovalState::Pending {
        return Err(Refusal::not_found(format!("{id} no longer waits for a decision")));
    }
    Ok(render(&ItemFragment {
        nav: Nav::keep_flash(&viewer, Section::Approvals),
        a: HeldCall::of(&approval),
    }))
}

/// What a change to an approval does to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueChange {
    /// Held: it joins the queue's end.
    Joined,
    /// Still waiting, with a decision more (the first of two).
    Changed,
    /// Decided, expired or withdrawn: it leaves the queue.
    Left,
}

impl QueueChange {
    /// `None` for changes after it left (executing, done).
    fn of(notice: &Notice) -> Option<QueueChange> {
        let approval = &notice.approval;
        match (notice.event, approval.state) {
            (_, ApprovalState::Pending) if approval.decisions.is_empty() => Some(QueueChange::Joined),
            (_, ApprovalState::Pending) => Some(QueueChange::Changed),
            (Happened::Approved | Happened::Rejected | Happened::Expired, _) => Some(QueueChange::Left),
            // Lapsed while it still waited (its run was cancelled), not
            // after it was approved (which already took it out).
            (Happened::Lapsed, _) => {
                let approvals = approval
                    .decisions
                    .iter()
                    .filter(|d| d.verdict == Verdict::Approve)
                    .count();
                (approvals < usize::from(approval.approvers)).then_some(QueueChange::Left)
            }
            _ => None,
        }
    }

    fn event(self) -> &'static str {
        match self {
            QueueChange::Joined => "joined",
            QueueChange::Changed => "changed",
            QueueChange::Left => "left",
        }
    }
}

/// The queue's changes as events (`joined`, `changed`, `left`) carrying
/// the approval's id; `lagged` when some were missed (the page then reads
/// its page of the queue again).
pub async fn stream(_: Viewer, State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let notices = tokio_stream::wrappers::BroadcastStream::new(state.app.approvals.subscribe());
    let events = notices
        .filter_map(|notice| {
            std::future::ready(match notice {
                Ok(notice) => QueueChange::of(&notice)
                    .map(|change| Event::default().event(change.event()).data(notice.approval.id.clone())),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Event::default().event("lagged").data(n.to_string()))
                }
            })
        })
        .map(Ok)
        .take_until(state.app.stopping.clone().cancelled_owned());
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
