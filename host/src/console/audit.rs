//! The audit trail in the console: a search by session, tool, outcome and
//! time; one conversation's decision path as a timeline; and the calls as
//! they finish (live).

use std::convert::Infallible;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::session::Viewer;
use super::{pretty, render, Nav, Refusal, Section};
use crate::audit::{AuditError, AuditFilter, MAX_PAGE};
use crate::model::audit::{AuditRecord, Outcome};
use crate::server::api::Shared;

/// Records on one page of the search.
const PAGE: usize = 50;

/// One audit record as the console shows it.
pub struct Row {
    pub id: String,
    pub time: String,
    /// What kind of step in a conversation this was, in words.
    pub kind: &'static str,
    pub tool: String,
    pub outcome: &'static str,
    /// `ok`, `held` or `failed`, for the outcome's colour.
    pub tone: &'static str,
    pub via: &'static str,
    pub token: Option<String>,
    pub session: Option<String>,
    /// How long the call took; none for what is not a call (a hold, a
    /// decision, a plugin change).
    pub duration: Option<String>,
    pub version: Option<String>,
    pub approval: Option<String>,
    pub run: Option<String>,
    pub step: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub arguments: Option<String>,
    /// Upstream requests: method, URL, status or error, time.
    pub outbound: Vec<String>,
    /// Capability uses the grant refused.
    pub denials: Vec<String>,
}

impl Row {
    fn of(r: &AuditRecord) -> Row {
        let kind = match r.outcome {
            Outcome::Held => "Held for review",
            Outcome::Approved => "Approved by a reviewer",
            Outcome::Rejected => "Rejected by a reviewer",
            Outcome::Expired | Outcome::Lapsed => "Approval ended",
            Outcome::Loaded | Outcome::Refused | Outcome::Unloaded => "Plugin change",
            _ if r.step.is_some() => "Workflow step",
            _ if r.run.is_some() => "Workflow run",
            _ if !r.denials.is_empty() => "Tool call with denials",
            _ => "Tool call",
        };
        let tone = match r.outcome {
            Outcome::Ok | Outcome::Approved | Outcome::Loaded => "ok",
            Outcome::Held | Outcome::Running => "held",
            _ => "failed",
        };
        let error = r.error.as_ref().map(|e| match e {
            serde_json::Value::String(s) => s.clone(),
            other => other["message"]
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string),
        });
        Row {
            id: r.id.clone(),
            time: r.time.clone(),
            kind,
            tool: r.tool.clone(),
            outcome: r.outcome.as_str(),
            tone,
            via: r.via.as_str(),
            token: r.token.clone(),
            session: r.session.clone(),
            duration: (r.duration_us > 0).then(|| format!("{:.1} ms", r.duration_us as f64 / 1000.0)),
            version: r.plugin_version.clone(),
            approval: r.approval.clone(),
            run: r.run.clone(),
            step: r.step.clone(),
            reason: r.reason.clone(),
            error,
            arguments: (!r.arguments.is_null()).then(|| pretty(&r.arguments)),
            outbound: r
                .outbound
                .iter()
                .map(|o| {
                    let answer = match (&o.status, &o.error) {
                        (Some(status), _) => status.to_string(),
                        (None, Some(e)) => e.clone(),
                        (None, None) => "no answer".to_string(),
                    };
                    format!(
                        "{} {}{} → {answer} ({:.1} ms)",
                        o.method,
                        o.origin,
                        o.path,
                        o.micros as f64 / 1000.0
                    )
                })
                .collect(),
            denials: r
                .denials
                .iter()
                .map(|d| format!("{}: {}", d.capability.as_str(), d.detail))
                .collect(),
        }
    }
}

/// The search form as sent: empty fields mean any.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    #[serde(default)]
    session: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A browser's `datetime-local` value (`2026-12-04T05:06`, no zone) read
/// as UTC, as the form says; RFC 3339 and Unix seconds pass as they are.
fn as_utc(s: &str) -> Option<String> {
    let s = given(s)?;
    let bare = s.len() >= 16 && s.as_bytes()[10] == b'T' && !s.ends_with('Z') && !s[10..].contains(['+', '-']);
    Some(match (bare, s.len()) {
        (true, 16) => format!("{s}:00Z"),
        (true, _) => format!("{s}Z"),
        (false, _) => s,
    })
}

impl Search {
    fn filter(&self) -> Result<AuditFilter, String> {
        let outcome = match given(&self.outcome) {
            Some(name) => Some(Outcome::named(&name).ok_or_else(|| format!("there is no outcome {name:?}"))?),
            None => None,
        };
        Ok(AuditFilter {
            session: given(&self.session),
            tool: given(&self.tool),
            outcome,
            since: as_utc(&self.since),
            until: as_utc(&self.until),
            before: given(&self.before),
            limit: Some(PAGE),
            ..AuditFilter::default()
        })
    }

    /// This search's query string with `before` set to `next`.
    fn next_page(&self, next: &str) -> String {
        let mut query = form_urlencoded(&[
            ("session", &self.session),
            ("tool", &self.tool),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]);
        query.push_str("&before=");
        query.push_str(next);
        query
    }
}

fn form_urlencoded(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encode all but unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    nav: Nav,
    search: Search,
    outcomes: Vec<&'static str>,
    rows: Vec<Row>,
    /// The query string of the next (older) page.
    next: Option<String>,
    problem: Option<String>,
}

pub async fn page(
    viewer: Viewer,
    State(state): State<Shared>,
    query: Result<Query<Search>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(search) = query.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let found = match search.filter() {
        Ok(filter) => state.app.runtime.audit().query(&filter).await.map_err(|e| match e {
            AuditError::BadFilter { .. } => e.to_string(),
            other => {
                tracing::error!("console: audit query: {other}");
                "the audit trail could not be read".to_string()
            }
        }),
        Err(problem) => Err(problem),
    };
    let (rows, next, problem) = match found {
        Ok((records, next)) => (
            records.iter().map(Row::of).collect(),
            next.map(|n| search.next_page(&n)),
            None,
        ),
        Err(problem) => (Vec::new(), None, Some(problem)),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AuditPage {
        nav: Nav::new(&viewer, Section::Audit),
        search,
        outcomes: <Outcome as strum::VariantArray>::VARIANTS
            .iter()
            .map(|o| o.as_str())
            .collect(),
        rows,
        next,
        problem,
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Template)]
#[template(path = "console/timeline.html")]
struct TimelinePage {
    nav: Nav,
    session: String,
    rows: Vec<Row>,
    /// The conversation has more records than one page shows.
    truncated: bool,
}

/// One conversation (an agent's session) from its first record to its
/// last: tool calls with their upstream requests, denials, holds and
/// reviewers' decisions, workflow steps.
/// Whose timeline: a query parameter, not a path segment, since an agent's
/// session id may hold `/` or be `..`, which a path would misroute.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    session: String,
}

pub async fn timeline(
    viewer: Viewer,
    State(state): State<Shared>,
    query: Result<Query<Conversation>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(Conversation { session }) = query.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = AuditFilter {
        session: Some(session.clone()),
        limit: Some(MAX_PAGE),
        ..AuditFilter::default()
    };
    let (records, next) = state
        .app
        .runtime
        .audit()
        .query(&filter)
        .await
        .map_err(|e| Refusal::page(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(render(&TimelinePage {
        nav: Nav::new(&viewer, Section::Audit),
        session,
        rows: records.iter().rev().map(Row::of).collect(),
        truncated: next.is_some(),
    }))
}

#[derive(Template)]
#[template(path = "console/live.html")]
struct LivePage {
    nav: Nav,
}

pub async fn live(viewer: Viewer) -> Response {
    render(&LivePage {
        nav: Nav::new(&viewer, Section::Live),
    })
}

/// Each record as it becomes final, as a `call` event with a summary the
/// page adds to its table; `lagged` when some were missed.
pub async fn live_stream(_: Viewer, State(state): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let records = tokio_stream::wrappers::BroadcastStream::new(state.app.runtime.audit().subscribe());
    let events = records
        .map(|record| {
            Ok(match record {
                Ok(r) => Event::default().event("call").data(
                    json!({
                        "id": r.id,
                        "time": r.time,
                        "tool": r.tool,
                        "outcome": r.outcome,
                        "via": r.via,
                        "token": r.token,
                        "session": r.session,
                        "ms": format!("{:.1}", r.duration_us as f64 / 1000.0),
                    })
                    .to_string(),
                ),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
            })
        })
        .take_until(state.app.stopping.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_local_time_is_read_as_utc() {
        assert_eq!(as_utc("2026-12-04T05:06").as_deref(), Some("2026-12-04T05:06:00Z"));
        assert_eq!(as_utc("2026-12-04T05:06:07").as_deref(), Some("2026-12-04T05:06:07Z"));
        assert_eq!(
            as_utc("2026-12-04T05:06:07+01:00").as_deref(),
            Some("2026-12-04T05:06:07+01:00")
        );
        assert_eq!(as_utc("1764824767").as_deref(), Some("1764824767"));
        assert_eq!(as_utc("  "), None);
    }

    #[test]
    fn an_unknown_outcome_is_refused_by_name() {
        let search = Search {
            outcome: "okay".into(),
            ..Search::default()
        };
        assert!(search.filter().unwrap_err().contains("okay"));
    }

    #[test]
    fn the_next_page_keeps_the_search() {
        let search = Search {
            session: "case 7/a".into(),
            ..Search::default()
        };
        assert_eq!(
            search.next_page("42"),
            "session=case%207%2Fa&tool=&outcome=&since=&until=&before=42"
        );
    }
}
