//! How a call ends when it produces no result: one closed set of kinds,
//! each telling an agent whether a retry can help, and naming the audit
//! record's outcome.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::audit::Outcome;
use crate::model::effects::PendingRequest;

/// Why a call produced no result. Each kind has one status (the one its
/// problem carries, and the REST answer's) and tells an agent whether
/// retrying could help.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
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
    #[error("the connector reported {error}")]
    PluginError { error: ConnectorError },
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Its status (RFC 9110), as its problem (RFC 9457) and the REST
    /// answer carry it.
    pub fn status(&self) -> u16 {
        match self {
            CallError::NotFound { .. } => 404,
            CallError::InvalidInput { .. } => 422,
            CallError::Denied { .. } => 403,
            CallError::Timeout { .. } => 504,
            // No room now (429, with a retry after), or more than the grant
            // allows, which a retry does not change (507).
            CallError::ResourceExhausted { reason, .. } if reason.passes() => 429,
            CallError::ResourceExhausted { .. } => 507,
            CallError::PluginFault { .. } | CallError::Interrupted { .. } => 500,
            CallError::Unavailable { .. } => 503,
            CallError::PluginError { error } => error.status(),
            CallError::Cancelled { .. } => 409,
            // The problem's own status, when it is an error status.
            CallError::WorkflowFailed { problem } => problem["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (400..600).contains(s))
                .unwrap_or(500),
        }
    }

    /// In how many seconds a retry may succeed: a refusal for lack of room
    /// after a moment; a connector's `rate-limited(N)` after the N seconds
    /// its upstream asked for.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            CallError::ResourceExhausted { reason, .. } if reason.passes() => Some(1),
            CallError::PluginError {
                error: ConnectorError::RateLimited(Some(seconds)),
            } => Some(u64::from(*seconds)),
            _ => None,
        }
    }

    /// Whether it changed nothing and may pass, so a retry under the same
    /// idempotency key runs again rather than being told this again: a
    /// timeout, and a refusal for lack of room (a run's too, whose problem
    /// carries their statuses). A connector's own error is never
    /// transient here: the connector may have acted before it failed.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Timeout { .. } => true,
            CallError::ResourceExhausted { reason, .. } => reason.passes(),
            CallError::WorkflowFailed { .. } => matches!(self.status(), 429 | 504),
            _ => false,
        }
    }
}

/// The connector's own error: the contract's `error` variant
/// (`wit/types.wit`), written as agents read it, `{"<case>": payload}`. A
/// connector whose functions declare another error type is kept as it sent
/// it ([`ConnectorError::Other`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorError {
    InvalidInput(String),
    NotFound(String),
    Denied(String),
    /// Retry after this many seconds, if given.
    RateLimited(Option<u32>),
    Conflict(String),
    Upstream(UpstreamFailure),
    Internal(String),
    #[serde(untagged)]
    Other(Value),
}

/// The contract's `upstream-failure`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFailure {
    pub status: Option<u16>,
    pub message: String,
}

impl ConnectorError {
    /// The error as the connector's result carried it.
    pub fn from_json(value: Value) -> ConnectorError {
        // Read from a borrow: the error is kept as sent when it is no case
        // of the contract's, without a copy made first on every failure.
        ConnectorError::deserialize(&value).unwrap_or(ConnectorError::Other(value))
    }

    /// The contract's case name (`rate-limited`), or for another type
    /// its first key or its text.
    pub fn case(&self) -> String {
        match Value::from(self) {
            Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
            Value::String(s) => s,
            _ => "error".into(),
        }
    }

    /// The case's payload in words, if it has one.
    pub fn detail(&self) -> Option<String> {
        match self {
            ConnectorError::RateLimited(Some(seconds)) => return Some(format!("retry after {seconds} s")),
            ConnectorError::Upstream(UpstreamFailure {
                status: Some(status),
                message,
            }) => return Some(format!("HTTP {status}: {message}")),
            ConnectorError::Upstream(UpstreamFailure { status: None, message }) => return Some(message.clone()),
            _ => {}
        }
        match &Value::from(self)[&self.case()] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The status of a call that failed with it.
    fn status(&self) -> u16 {
        match self {
            ConnectorError::InvalidInput(_) => 422,
            ConnectorError::NotFound(_) => 404,
            ConnectorError::Denied(_) => 403,
            ConnectorError::RateLimited(_) => 429,
            ConnectorError::Conflict(_) => 409,
            ConnectorError::Internal(_) => 500,
            ConnectorError::Upstream(_) | ConnectorError::Other(_) => 502,
        }
    }

    /// Rewrite its text (the host masks the secrets it handed the
    /// connector out of what the connector answers).
    pub fn rewrite(&mut self, f: impl FnOnce(&mut Value)) {
        let mut value = Value::from(&*self);
        f(&mut value);
        *self = ConnectorError::from_json(value);
    }
}

/// The case and its payload in words (`not-found: customer not found`),
/// so that a message quotes the connector's words once, not its JSON.
impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.detail() {
            Some(detail) => write!(f, "{}: {detail}", self.case()),
            None => f.write_str(&self.case()),
        }
    }
}

impl From<&ConnectorError> for Value {
    fn from(e: &ConnectorError) -> Value {
        serde_json::to_value(e).unwrap_or(Value::Null)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connectors_error_reads_back_as_it_was_sent() {
        // The contract's cases, typed; anything else kept as sent.
        let cases = [
            (json!({ "invalid-input": "bad date" }), 422, Some("bad date")),
            (json!({ "rate-limited": 7 }), 429, Some("retry after 7 s")),
            (json!({ "rate-limited": null }), 429, None),
            (
                json!({ "upstream": { "status": 503, "message": "down" } }),
                502,
                Some("HTTP 503: down"),
            ),
            (
                json!({ "upstream": { "status": null, "message": "down" } }),
                502,
                Some("down"),
            ),
            (
                json!({ "upstream": { "status": 503, "message": "down", "extra": 1 } }),
                502,
                None,
            ),
            (json!({ "invalid-input": 5 }), 502, Some("5")),
            (json!("gone"), 502, None),
            (json!(null), 502, None),
        ];
        for (sent, status, detail) in cases {
            let error = ConnectorError::from_json(sent.clone());
            assert_eq!(Value::from(&error), sent, "{error:?}");
            let call = CallError::PluginError { error: error.clone() };
            assert_eq!(call.status(), status, "{sent}");
            if detail.is_some() || !sent.is_object() {
                assert_eq!(error.detail().as_deref(), detail, "{sent}");
            }
        }
        assert!(matches!(
            ConnectorError::from_json(json!({ "rate-limited": 7 })),
            ConnectorError::RateLimited(Some(7))
        ));
        assert!(matches!(
            ConnectorError::from_json(json!({ "upstream": { "status": 503, "message": "down", "extra": 1 } })),
            ConnectorError::Other(_)
        ));
        // The message quotes the connector's words once, never its JSON.
        let not_found = CallError::PluginError {
            error: ConnectorError::from_json(json!({ "not-found": "customer not found" })),
        };
        assert_eq!(
            not_found.to_string(),
            "the connector reported not-found: customer not found"
        );
        let limited = CallError::PluginError {
            error: ConnectorError::RateLimited(Some(7)),
        };
        assert_eq!(limited.retry_after(), Some(7));
        // A connector's own error is final even at 429: it may have acted.
        assert!(!limited.is_transient());
    }

    #[test]
    fn only_what_changed_nothing_and_may_pass_is_transient() {
        let exhausted = |reason| CallError::ResourceExhausted {
            reason,
            message: String::new(),
        };
        assert!(exhausted(Exhausted::Busy).is_transient());
        assert!(exhausted(Exhausted::Rate).is_transient());
        assert!(!exhausted(Exhausted::Memory).is_transient());
        assert!(CallError::Timeout {
            millis: 1,
            waiting_on: None
        }
        .is_transient());
        let failed = |status: u16| CallError::WorkflowFailed {
            problem: json!({ "status": status }),
        };
        assert!(failed(429).is_transient() && failed(504).is_transient());
        assert!(!failed(500).is_transient() && !failed(408).is_transient());
        assert!(!CallError::Denied { message: String::new() }.is_transient());
    }

    #[test]
    fn every_error_reads_back_as_written() {
        let errors = [
            CallError::Timeout {
                millis: 5,
                waiting_on: None,
            },
            CallError::ResourceExhausted {
                reason: Exhausted::HostResources,
                message: "m".into(),
            },
            CallError::PluginError {
                error: ConnectorError::Upstream(UpstreamFailure {
                    status: None,
                    message: "m".into(),
                }),
            },
            CallError::WorkflowFailed {
                problem: json!({ "type": "t", "status": 500 }),
            },
        ];
        for error in errors {
            let written = serde_json::to_value(&error).unwrap();
            let read: CallError = serde_json::from_value(written.clone()).unwrap();
            assert_eq!(serde_json::to_value(&read).unwrap(), written);
        }
    }
}
