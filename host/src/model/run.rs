//! A workflow run and its journal of steps, as they are kept: what a run
//! needs to resume after a crash without repeating a step that finished.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::audit::Channel;
use crate::model::call::CallError;
use crate::model::problem::Problem;

/// Where a run stands.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunState {
    Running,
    /// A step waits for a reviewer (`waiting_on` names the approval).
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the host still has work to do for it.
    pub fn is_open(self) -> bool {
        matches!(self, RunState::Running | RunState::Waiting)
    }
}

/// One run of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Time-ordered (hex of the creation time, then random).
    pub id: String,
    pub workflow: String,
    pub version: String,
    /// sha256 of the workflow document that runs (a run resumes only on it).
    pub digest: String,
    pub state: RunState,
    /// As the caller sent it.
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<Problem>,
    pub via: Channel,
    pub token: String,
    pub session: Option<String>,
    /// The approval a step waits for, while `Waiting`.
    pub waiting_on: Option<String>,
    /// Unix milliseconds.
    pub created: u64,
    pub updated: u64,
    pub finished: Option<u64>,
    /// Who cancelled it, when someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    /// The audit record of the workflow call as a whole, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// The approval a rule held the workflow's call itself for (the run
    /// then has its id): the run's end is that approval's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// What a journaled step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A tool call.
    Call,
    /// A timer: a `wait` task, or the pause before a retry.
    Timer,
    /// When a `try` whose retry has a duration limit first began (its
    /// `started`): the budget a resumed run goes on spending.
    RetryBudget,
}

/// Where a journaled step stands.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepState {
    /// Begun; if a restart finds it so, it runs again with the same
    /// idempotency key.
    Started,
    /// Held for a reviewer.
    Held,
    Done,
    Failed,
}

/// One journaled step of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Order within the run, from 0.
    pub seq: u32,
    /// Stable across replays: the task's reference, with the loop indices
    /// (`[2]`) and retry attempt (`@2`) it ran in.
    pub key: String,
    /// The task's name and JSON Pointer in the document.
    pub task: String,
    pub reference: String,
    pub kind: StepKind,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Handed to the tool call; the same for every attempt of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The tool's arguments, as evaluated (secret fields redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The audit records of the call (one per time it ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_ids: Vec<String>,
    /// A timer's end, unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Unix milliseconds.
    pub started: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
}

impl Run {
    /// The error a call of the workflow answers with once its run failed
    /// or was cancelled; `None` while it goes on or once it completed.
    pub fn call_error(&self) -> Option<CallError> {
        match self.state {
            RunState::Cancelled => Some(CallError::Cancelled {
                message: self.error.as_ref().and_then(|p| p.detail.clone()).unwrap_or_default(),
            }),
            RunState::Failed => Some(CallError::WorkflowFailed {
                problem: serde_json::to_value(&self.error).unwrap_or_default(),
            }),
            RunState::Running | RunState::Waiting | RunState::Completed => None,
        }
    }
}
