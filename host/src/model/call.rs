//! How a call ends when it produces no result: one closed set of kinds,
//! each telling an agent whether a retry can help, and naming the audit
//! record's outcome.

use serde::Serialize;
use serde_json::Value;

use crate::model::audit::Outcome;
use crate::model::effects::PendingRequest;

/// Why a call produced no result. Each kind maps to one HTTP status and
/// tells an agent whether retrying could help.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallError {
    #[error("no tool named {tool:?}")]
    NotFound { tool: String },
    #[error("invalid input: {field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("denied: {message}")]
    Denied { message: String },
    /// Out of time; if an outbound request was still unanswered, the one
    /// that had waited longest.
    #[error("timed out after {millis} ms{}", waiting_on.as_ref().map(|w| format!(", while {w}")).unwrap_or_default())]
    Timeout {
        millis: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        waiting_on: Option<PendingRequest>,
    },
    /// No room for the call: `reason` says whether a retry can succeed.
    #[error("resource exhausted: {message}")]
    ResourceExhausted { reason: Exhausted, message: String },
    /// The connector returned its typed error (`toolhost:connector/types.error`).
    #[error("the connector reported an error: {error}")]
    PluginError { error: Value },
    /// The connector trapped (crashed); its instance was discarded. The
    /// message says how, in a sentence: a panic's message and location
    /// when it panicked (see `call::fault`).
    #[error("{message}")]
    PluginFault { message: String },
    /// The operator disabled the plugin.
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    /// The host stopped while the call ran (found so at the next start).
    #[error("interrupted: {message}")]
    Interrupted { message: String },
    /// A workflow's run ended in an error no `catch` handled: the problem
    /// (type, status, title, detail, the task it happened in).
    #[error("the workflow failed: {problem}")]
    WorkflowFailed { problem: Value },
    /// A workflow's run was cancelled.
    #[error("cancelled: {message}")]
    Cancelled { message: String },
}

/// What a call ran out of. Only [`Exhausted::Busy`] and [`Exhausted::Rate`]
/// pass: the others fail the same way on every retry of the same call,
/// until the operator changes the grant (or, for storage, the disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    /// Every slot is taken (the plugin's concurrency, the host's
    /// instances) or the plugin is being unloaded: a moment later there
    /// may be room.
    Busy,
    /// The caller's token is over its request rate (a workflow's step spends
    /// its caller's rate): a moment later it has room.
    Rate,
    /// The connector needed more memory than its grant.
    Memory,
    /// The result was larger than the grant's output bound.
    Output,
    /// The connector held more host resources at once than the host allows.
    HostResources,
    /// What the connector stored could not be made durable.
    Storage,
}

impl Exhausted {
    /// Whether the same call may succeed if retried in a moment.
    pub fn passes(self) -> bool {
        matches!(self, Exhausted::Busy | Exhausted::Rate)
    }
}

impl CallError {
    /// The `kind` of the error as agents and the audit trail name it.
    pub fn kind(&self) -> &'static str {
        Outcome::from(self).as_str()
    }
}

/// Where the time of a call went.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    pub instantiate_us: u64,
    pub execute_us: u64,
    pub total_us: u64,
}

impl From<&CallError> for Outcome {
    fn from(e: &CallError) -> Outcome {
        match e {
            CallError::NotFound { .. } => Outcome::NotFound,
            CallError::InvalidInput { .. } => Outcome::InvalidInput,
            CallError::Denied { .. } => Outcome::Denied,
            CallError::Timeout { .. } => Outcome::Timeout,
            CallError::ResourceExhausted { .. } => Outcome::ResourceExhausted,
            CallError::PluginError { .. } => Outcome::PluginError,
            CallError::PluginFault { .. } => Outcome::PluginFault,
            CallError::Unavailable { .. } => Outcome::Unavailable,
            CallError::Interrupted { .. } => Outcome::Interrupted,
            CallError::WorkflowFailed { .. } => Outcome::WorkflowFailed,
            CallError::Cancelled { .. } => Outcome::Cancelled,
        }
    }
}
