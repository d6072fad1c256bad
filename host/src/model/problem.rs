//! An error as the workflow DSL describes one (RFC 7807 problem details):
//! what a `catch` filters on, what a failed step or run records and answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An error as the DSL describes one (RFC 7807 problem details): what a
/// `catch` filters on and what a failed run answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of error; see [`kinds`].
    #[serde(rename = "type")]
    pub kind: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The task it happened in (JSON Pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The tool's own error, when a tool call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<Value>>,
}

/// Error types. The DSL's own where one fits; `toolhost:errors/…` for what
/// a tool call can end in.
pub mod kinds {
    pub const TIMEOUT: &str = "https://serverlessworkflow.io/spec/1.0.0/errors/timeout";
    pub const VALIDATION: &str = "https://serverlessworkflow.io/spec/1.0.0/errors/validation";
    pub const EXPRESSION: &str = "https://serverlessworkflow.io/spec/1.0.0/errors/expression";
    pub const AUTHORIZATION: &str = "https://serverlessworkflow.io/spec/1.0.0/errors/authorization";
    pub const RUNTIME: &str = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime";
    /// A run's expressions spent their budget (422: the same run would
    /// again); no `catch` handles it.
    pub const BUDGET: &str = "toolhost:errors/workflow-budget";
    /// `toolhost:errors/<kind>` for a tool's failure of that kind.
    pub const TOOL_PREFIX: &str = "toolhost:errors/";
}

impl Problem {
    pub fn new(kind: impl Into<String>, status: u16, title: impl Into<String>) -> Problem {
        Problem {
            kind: kind.into(),
            status,
            title: Some(title.into()),
            detail: None,
            instance: None,
            error: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    /// Whether it has every property of `with`, as JSON.
    pub fn matches(&self, with: &Map<String, Value>) -> bool {
        let me = serde_json::to_value(self).unwrap_or(Value::Null);
        with.iter().all(|(k, v)| &me[k] == v)
    }
}
