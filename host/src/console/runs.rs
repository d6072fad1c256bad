//! Workflow runs: the newest first, and one run with each of its steps.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::session::{Right, Viewer};
use super::{done, pretty, render, Nav, Refusal, Section};
use crate::app::runs;
use crate::server::api::{ApiError, Shared};

/// Runs on one page.
const PAGE: usize = 50;

/// A run, or one of its steps, as the pages show it: taken from the runs
/// API's own view, so secret fields are redacted the same way.
pub struct RunRow {
    pub id: String,
    pub workflow: String,
    pub version: String,
    pub state: String,
    pub token: String,
    pub session: Option<String>,
    pub created: String,
    pub finished: Option<String>,
    pub waiting_on: Option<String>,
}

pub struct StepRow {
    pub seq: u64,
    pub key: String,
    pub kind: String,
    pub state: String,
    pub tool: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    pub arguments: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub approval: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn optional(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| text(v))
}

fn json_of(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| pretty(v))
}

impl RunRow {
    fn of(view: &Value) -> RunRow {
        RunRow {
            id: text(&view["id"]),
            workflow: text(&view["workflow"]),
            version: text(&view["version"]),
            state: text(&view["state"]),
            token: text(&view["token"]),
            session: optional(&view["session"]),
            created: text(&view["created"]),
            finished: optional(&view["finished"]),
            waiting_on: optional(&view["waiting_on"]),
        }
    }
}

impl StepRow {
    fn of(view: &Value) -> StepRow {
        StepRow {
            seq: view["seq"].as_u64().unwrap_or_default(),
            key: text(&view["key"]),
            kind: text(&view["kind"]),
            state: text(&view["state"]),
            tool: optional(&view["tool"]),
            started: text(&view["started"]),
            finished: optional(&view["finished"]),
            arguments: json_of(&view["arguments"]),
            output: json_of(&view["output"]),
            error: json_of(&view["error"]),
            approval: optional(&view["approval"]),
        }
    }
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    nav: Nav,
    runs: Vec<RunRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    before: Option<String>,
}

pub async fn list(
    viewer: Viewer,
    State(state): State<Shared>,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Response, Refusal> {
    let Query(paging) = query.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (page, next) = runs::page(&state.app, paging.before.as_deref(), PAGE)
        .await
        .map_err(ApiError::from)?;
    Ok(render(&RunsPage {
        nav: Nav::new(&viewer, Section::Runs),
        runs: page
            .iter()
            .map(|r| RunRow::of(&runs::view(&state.app, r, &[])))
            .collect(),
        next,
    }))
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    nav: Nav,
    run: RunRow,
    input: String,
    output: Option<String>,
    error: Option<String>,
    steps: Vec<StepRow>,
    /// The run has not ended, so it can be cancelled.
    open: bool,
}

pub async fn page(viewer: Viewer, State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, Refusal> {
    let run = runs::get(&state.app, &id).await.map_err(ApiError::from)?;
    let steps = state
        .app
        .runtime
        .storage()
        .runs()
        .steps(&id)
        .await
        .map_err(ApiError::internal)?;
    let view = runs::view(&state.app, &run, &steps);
    let steps = view["steps"]
        .as_array()
        .map_or_else(Vec::new, |s| s.iter().map(StepRow::of).collect());
    Ok(render(&RunPage {
        nav: Nav::new(&viewer, Section::Runs),
        input: pretty(&view["input"]),
        output: json_of(&view["output"]),
        error: json_of(&view["error"]),
        open: run.finished.is_none(),
        run: RunRow::of(&view),
        steps,
    }))
}

#[derive(Deserialize)]
pub struct Cancel {
    csrf: String,
}

pub async fn cancel(
    viewer: Viewer,
    State(state): State<Shared>,
    Path(id): Path<String>,
    form: Result<Form<Cancel>, FormRejection>,
) -> Result<Response, Refusal> {
    viewer.require(Right::CancelRuns)?;
    let Form(form) = form.map_err(|e| Refusal::page(StatusCode::BAD_REQUEST, e.body_text()))?;
    viewer.check_csrf(&form.csrf)?;
    let outcome = runs::cancel(&state.app, &id, &viewer.principal.name)
        .await
        .map(|r| format!("Run {} of {} is cancelled.", r.id, r.workflow))
        .map_err(|e| Refusal::from(ApiError::from(e)));
    done(&viewer, &format!("/console/runs/{id}"), outcome)
}
