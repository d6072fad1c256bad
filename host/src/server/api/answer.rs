//! A call's answer over REST: the status and body an agent gets for what
//! the application says a call came to ([`crate::app::calls::Called`], an
//! approval's [`Answered`], a run).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::ApiError;
use crate::app::approvals;
use crate::call::invoke::CallOutcome;
use crate::model::approval::{Answered, Approval};
use crate::model::call::CallError;
use crate::model::run::{Run, RunState};

/// The REST answer to a call: status and body, and the `Retry-After` of a
/// refusal for lack of room.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn of(outcome: &CallOutcome, audit_id: &str) -> Answer {
        match &outcome.result {
            Ok(value) => Answer::ran(value, audit_id, outcome.plugin_version.as_deref()),
            Err(e) => Answer::failed(e, Some(audit_id)),
        }
    }

    /// The answer to a held call that came to an end.
    pub fn answered(answered: &Answered) -> Answer {
        match answered {
            Answered::Ran {
                result,
                audit_id,
                plugin_version,
                run,
            } => Answer::ran(result, audit_id, plugin_version.as_deref()).with_run(run.as_deref(), None),
            Answered::Failed {
                error,
                audit_id,
                plugin_version,
                run,
            } => Answer::failed(error, audit_id.as_deref()).with_run(run.as_deref(), plugin_version.as_deref()),
            Answered::NotRun { why, message } => Answer {
                status: StatusCode::from_u16(why.status()).unwrap_or(StatusCode::CONFLICT),
                body: json!({ "error": { "kind": why.kind(), "message": message } }),
                retry_after: None,
            },
        }
    }

    /// A workflow's answer names its run and the version it ran on.
    fn with_run(mut self, run: Option<&str>, plugin_version: Option<&str>) -> Answer {
        if let Value::Object(map) = &mut self.body {
            if let Some(run) = run {
                map.insert("run".into(), Value::from(run));
            }
            if let Some(version) = plugin_version {
                map.insert("plugin_version".into(), Value::from(version));
            }
        }
        self
    }

    fn ran(value: &Value, audit_id: &str, plugin_version: Option<&str>) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: json!({ "result": value, "audit_id": audit_id, "plugin_version": plugin_version }),
            retry_after: None,
        }
    }

    fn failed(e: &CallError, audit_id: Option<&str>) -> Answer {
        let mut err = ApiError::from_call(e);
        if let (Value::Object(map), Some(audit_id)) = (&mut err.body, audit_id) {
            map.insert("audit_id".into(), Value::from(audit_id));
        }
        Answer {
            status: err.status,
            body: err.body,
            retry_after: err.retry_after,
        }
    }

    /// The answer to a held call: 202, the approval and where to wait.
    pub fn held(approval: &Approval) -> Answer {
        Answer {
            status: StatusCode::ACCEPTED,
            body: json!({
                "approval": approvals::view(approval),
                "wait": format!("/v1/approvals/{}?wait=60", approval.id),
                "message": format!(
                    "this call waits for a reviewer's approval (rule {:?}); GET the wait URL for its result",
                    approval.rule
                ),
            }),
            retry_after: None,
        }
    }

    /// The answer to a workflow call: its output once the run completed,
    /// its typed error once it failed, and until then `202` with the run
    /// and where to wait.
    pub fn run(run: &Run) -> Answer {
        let base = json!({ "run": run.id, "audit_id": run.audit_id, "plugin_version": run.version });
        let with = |mut body: Value| {
            if let (Value::Object(body), Value::Object(base)) = (&mut body, &base) {
                body.extend(base.clone());
            }
            body
        };
        match run.state {
            RunState::Completed => Answer {
                status: StatusCode::OK,
                body: with(json!({ "result": run.output })),
                retry_after: None,
            },
            RunState::Failed | RunState::Cancelled => {
                let error = run.call_error().unwrap_or(CallError::Interrupted {
                    message: "the run ended without its error".into(),
                });
                let err = ApiError::from_call(&error);
                Answer {
                    status: err.status,
                    body: with(err.body),
                    retry_after: None,
                }
            }
            RunState::Running | RunState::Waiting => Answer {
                status: StatusCode::ACCEPTED,
                body: with(json!({
                    "state": run.state,
                    "waiting_on": run.waiting_on,
                    "wait": format!("/v1/runs/{}?wait=60", run.id),
                    "message": match &run.waiting_on {
                        Some(a) => format!("the run waits for a reviewer's approval ({a}); GET the wait URL for its result"),
                        None => "the run is still going; GET the wait URL for its result".to_string(),
                    },
                })),
                retry_after: None,
            },
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        ApiError {
            status: self.status,
            body: self.body,
            retry_after: self.retry_after,
        }
        .into_response()
    }
}
