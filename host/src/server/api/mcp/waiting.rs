//! Calls that do not end at once, over MCP: a call held for a person's
//! approval, and a workflow's run that waits at a step or outlasts the
//! call. A client that takes tasks (SEP-2663, `io.modelcontextprotocol/tasks`)
//! gets a task whose id is the approval's or the run's, and polls
//! `tasks/get` for the call's own result. Any other client gets a result
//! marked `isError` that says what it waits on and which tool waits for
//! it: [`AWAIT_TOOL`] for a held call, [`AWAIT_RUN_TOOL`] for a run. Both
//! are only tool calls, so every MCP client can follow them.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, Task, TaskPayload, TaskStatus, Tool,
};
use rmcp::ErrorData;
use serde_json::{json, Value};

use super::super::error::call_error_body;
use super::{result, McpServer};
use crate::app::approvals::{self, ApprovalError};
use crate::app::auth::Principal;
use crate::app::runs::{self, RunError};
use crate::config::Role;
use crate::model::approval::{Answered, Approval, ApprovalState};
use crate::model::run::{Run, RunState};
use crate::model::time::rfc3339_ms;

/// The tool an agent calls to wait for a held call's result.
pub const AWAIT_TOOL: &str = "toolhost.await-approval";
/// The tool an agent calls to wait for a workflow run's end.
pub const AWAIT_RUN_TOOL: &str = "toolhost.await-run";

/// How long a waiting tool waits when the agent does not say.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The waiting tools, as `tools/list` shows them. Each answers the call's
/// (or the run's) own result once it is there, which may be any value, so
/// their output schema is the empty one: it promises nothing, and lets a
/// client take the result as structured content.
pub fn tools() -> Result<Vec<Tool>, ErrorData> {
    let waiting = |name: &str, description: &str, id: &str, id_description: &str, max: Duration| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": {
                "type": "object",
                "properties": {
                    id: { "type": "string", "description": id_description },
                    "wait_secs": {
                        "type": "integer", "minimum": 0, "maximum": max.as_secs(),
                        "description": format!("How long to wait, in seconds (default {})", DEFAULT_WAIT.as_secs()),
                    },
                },
                "required": [id],
                "additionalProperties": false,
            },
            "outputSchema": {},
            "annotations": { "readOnlyHint": true },
        })
    };
    [
        waiting(
            AWAIT_TOOL,
            "Wait for a call that was held for a human reviewer's approval, and get its result once it is decided \
             and has run (or why it did not run). Give the approval id the held call returned.",
            "approval",
            "The approval id of the held call",
            approvals::MAX_WAIT,
        ),
        waiting(
            AWAIT_RUN_TOOL,
            "Wait for a workflow's run to end, and get its output (or the error it ended with). Give the run id \
             the workflow call returned.",
            "run",
            "The run id the workflow call returned",
            runs::MAX_WAIT,
        ),
    ]
    .into_iter()
    .map(|tool| serde_json::from_value(tool).map_err(|e| ErrorData::internal_error(e.to_string(), None)))
    .collect()
}

/// A waiting tool's failure: a result with `isError`, which the model
/// reads, as any tool's failure is.
fn failed(kind: &str, message: String, field: (&str, Option<&str>)) -> CallToolResult {
    let mut error = json!({ "kind": kind, "message": message });
    if let (name, Some(value)) = field {
        error[name] = Value::from(value);
    }
    result(error, true, false)
}

/// The wait an agent asked for, within `max`.
fn wait_of(args: &Value, max: Duration) -> Duration {
    args["wait_secs"]
        .as_u64()
        .map_or(DEFAULT_WAIT, Duration::from_secs)
        .min(max)
}

/// The answer to a held call: what to do next, in words an LLM follows.
pub fn held(approval: &Approval) -> CallToolResult {
    result(
        json!({
            "kind": "approval_required",
            "message": format!(
                "This call was not run: it waits for a human reviewer's approval (rule {:?}). \
                 Call the tool {AWAIT_TOOL} with {{\"approval\": \"{}\"}} to wait for the decision and get the result.",
                approval.rule, approval.id
            ),
            "approval": approvals::view(approval),
        }),
        true,
        false,
    )
}

/// A run that has not ended: where it stands, and how to wait for it.
fn run_pending(run: &Run) -> CallToolResult {
    let why = match &run.waiting_on {
        Some(approval) => format!("waits for a human reviewer's approval of a step (approval {approval})"),
        None => "is still running".to_string(),
    };
    result(
        json!({
            "kind": "run_pending",
            "message": format!(
                "The workflow {} has started and {why}; it has no output yet. Call the tool {AWAIT_RUN_TOOL} \
                 with {{\"run\": \"{}\"}} to wait for its end and get its output.",
                run.workflow, run.id
            ),
            "run": run.id,
            "workflow": run.workflow,
            "state": run.state,
            "waiting_on": run.waiting_on,
        }),
        true,
        false,
    )
}

impl McpServer {
    /// A workflow call's answer: the run's own result if it has ended; else
    /// a task for a client that takes tasks, or where the run stands.
    pub(super) fn started(&self, run: &Run, supports_tasks: bool) -> CallToolResponse {
        match self.run_final(run, self.structured(&run.workflow)) {
            Some(done) => done.into(),
            None if supports_tasks => {
                CallToolResponse::Task(CreateTaskResult::new(run_task(run, TaskPayload::Working).task))
            }
            None => run_pending(run).into(),
        }
    }

    /// An ended run as its call's result: its output (as structured
    /// content if `structured`), or the error it ended with (naming the
    /// run). `None` while it goes on.
    fn run_final(&self, run: &Run, structured: bool) -> Option<CallToolResult> {
        if run.state.is_open() {
            return None;
        }
        Some(match run.call_error() {
            None => result(run.output.clone().unwrap_or_default(), false, structured),
            Some(error) => {
                let mut body = call_error_body(&error);
                body["run"] = Value::from(run.id.clone());
                result(body, true, false)
            }
        })
    }

    /// The approval `id` if `principal` may see it (an agent only its own:
    /// another's is as unknown as one that never was).
    async fn approval(&self, principal: &Principal, id: &str) -> Result<Option<Arc<Approval>>, ErrorData> {
        let approval = match self.state.app.approvals.get(id).await {
            Ok(a) => a,
            Err(ApprovalError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(ErrorData::internal_error(e.to_string(), None)),
        };
        if approval.token != principal.name && principal.role == Role::Agent {
            return Ok(None);
        }
        Ok(Some(approval))
    }

    /// The run `id` if `principal` may see it.
    async fn run(&self, principal: &Principal, id: &str) -> Result<Option<Run>, ErrorData> {
        match runs::visible(&self.state.app, principal, id).await {
            Ok(run) => Ok(Some(run)),
            Err(RunError::NotFound(_)) => Ok(None),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }

    /// [`AWAIT_TOOL`]: the held call's own result once it is decided and
    /// has run, or that it still waits.
    pub(super) async fn await_approval(
        &self,
        principal: &Principal,
        args: &Value,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(id) = args["approval"].as_str() else {
            let message = "`approval` (the approval id the held call returned) is required".to_string();
            return Ok(failed("invalid_input", message, ("field", Some("approval"))));
        };
        if self.approval(principal, id).await?.is_none() {
            return Ok(failed(
                "not_found",
                format!("no approval {id:?}"),
                ("approval", Some(id)),
            ));
        }
        let approval = self
            .state
            .app
            .approvals
            .wait(id, wait_of(args, approvals::MAX_WAIT))
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        // A waiting tool's result is always structured: its output schema
        // is the empty one, and a client holds it to it.
        Ok(match self.final_result(&approval, true) {
            Some(done) => done,
            None => result(
                json!({
                    "kind": "approval_pending",
                    "message": format!("Still waiting for a reviewer (state: {}). Call {AWAIT_TOOL} again to keep waiting.", approval.state.as_str()),
                    "approval": approvals::view(&approval),
                }),
                true,
                false,
            ),
        })
    }

    /// [`AWAIT_RUN_TOOL`]: the run's own result once it has ended, or where
    /// it stands.
    pub(super) async fn await_run(&self, principal: &Principal, args: &Value) -> Result<CallToolResult, ErrorData> {
        let Some(id) = args["run"].as_str() else {
            let message = "`run` (the run id the workflow call returned) is required".to_string();
            return Ok(failed("invalid_input", message, ("field", Some("run"))));
        };
        // Checked before waiting, so nobody waits on another's run.
        if self.run(principal, id).await?.is_none() {
            return Ok(failed("not_found", format!("no run {id:?}"), ("run", Some(id))));
        }
        let run = runs::wait(&self.state.app, id, wait_of(args, runs::MAX_WAIT), false)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(self.run_final(&run, true).unwrap_or_else(|| run_pending(&run)))
    }

    /// A final approval's answer as the call's own tool result: its result
    /// (as structured content if `structured`), or why it did not run.
    /// `None` while it is not final.
    fn final_result(&self, approval: &Approval, structured: bool) -> Option<CallToolResult> {
        let answered = approval.answer.as_ref().filter(|_| approval.state.is_final())?;
        if let Answered::Ran { result: value, .. } = answered {
            return Some(result(value.clone(), false, structured));
        }
        let mut body = super::super::Answer::answered(answered).body["error"].take();
        body["approval"] = Value::from(approval.id.clone());
        Some(result(body, true, false))
    }

    /// `tasks/get`: a held call's task (working until it is decided and has
    /// run, then completed with the call's own result; a rejection, expiry
    /// or lapse is a completed result with `isError`, as over the fallback),
    /// or a workflow run's (completed with the run's result once it ends).
    pub(super) async fn task(&self, principal: &Principal, id: &str) -> Result<DetailedTask, ErrorData> {
        // An approved workflow call's run has the approval's id: the
        // approval is answered when the run ends, so it speaks for both.
        if let Some(approval) = self.approval(principal, id).await? {
            let payload = payload(self.final_result(&approval, self.structured(&approval.tool)))?;
            return Ok(approval_task(&approval, payload));
        }
        let run = self
            .run(principal, id)
            .await?
            .ok_or_else(|| ErrorData::invalid_params(format!("no task {id:?}"), None))?;
        let payload = match run.state {
            RunState::Cancelled => TaskPayload::Cancelled,
            _ => payload(self.run_final(&run, self.structured(&run.workflow)))?,
        };
        Ok(run_task(&run, payload))
    }

    /// `tasks/cancel`: a run's task cancels the run, as `POST
    /// /v1/runs/{id}/cancel` does; a held call is its reviewer's to decide.
    pub(super) async fn cancel_task(&self, principal: &Principal, id: &str) -> Result<(), ErrorData> {
        if matches!(principal.role, Role::Approver | Role::Observer) {
            let message = format!("an {} token may not cancel runs", principal.role.as_str());
            return Err(ErrorData::invalid_request(message, None));
        }
        if self.run(principal, id).await?.is_none() {
            if self.approval(principal, id).await?.is_some() {
                let message = "a held call waits for its reviewer's decision; it cannot be cancelled";
                return Err(ErrorData::invalid_params(message, None));
            }
            return Err(ErrorData::invalid_params(format!("no task {id:?}"), None));
        }
        match runs::cancel(&self.state.app, id, &principal.name).await {
            // Cancelled, or it had ended already: either way it no longer runs.
            Ok(_) | Err(RunError::Ended { .. }) => Ok(()),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }
}

/// A task's payload: working, or the call's own result, in the shape a
/// `tools/call` answer had before protocol 2026-07-28.
fn payload(done: Option<CallToolResult>) -> Result<TaskPayload, ErrorData> {
    let Some(mut done) = done else {
        return Ok(TaskPayload::Working);
    };
    done.result_type = None;
    match serde_json::to_value(done) {
        Ok(Value::Object(result)) => Ok(TaskPayload::Completed { result }),
        _ => Err(ErrorData::internal_error("a tool result is not an object", None)),
    }
}

/// A held call as a task: the task id is the approval id.
pub fn approval_task(approval: &Approval, payload: TaskPayload) -> DetailedTask {
    let message = match approval.state {
        ApprovalState::Pending => format!("waiting for a reviewer's approval (rule {:?})", approval.rule),
        ApprovalState::Approved | ApprovalState::Executing => "approved; running".to_string(),
        state => state.as_str().to_string(),
    };
    let updated = approval.finished.unwrap_or(approval.created);
    detailed(&approval.id, approval.created, updated, message, payload)
}

/// A workflow's run as a task: the task id is the run id.
fn run_task(run: &Run, payload: TaskPayload) -> DetailedTask {
    let message = match (&run.state, &run.waiting_on) {
        (RunState::Waiting, Some(approval)) => format!("a step waits for a reviewer's approval ({approval})"),
        (state, _) => state.as_str().to_string(),
    };
    detailed(&run.id, run.created, run.updated, message, payload)
}

fn detailed(id: &str, created: u64, updated: u64, message: String, payload: TaskPayload) -> DetailedTask {
    let base = Task::new(
        id.to_string(),
        TaskStatus::Working,
        rfc3339_ms(created),
        rfc3339_ms(updated),
    )
    .with_status_message(message)
    .with_poll_interval_ms(1000);
    DetailedTask::new(base, payload)
}
