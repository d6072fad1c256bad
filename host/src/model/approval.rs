//! A held call and its decisions, as they are kept until the call is done:
//! what a restart must not lose.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::audit::Channel;
use crate::model::call::CallError;
use crate::model::run::{Run, RunState};

/// Where a held call stands.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a decision.
    Pending,
    /// Approved by enough reviewers; about to run.
    Approved,
    /// Running (a restart that finds it so does not run it again).
    Executing,
    /// Ran; the answer is the call's.
    Done,
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// Approved, but what was approved no longer exists as it was (the
    /// plugin was upgraded, the caller's token removed): nothing ran.
    Lapsed,
}

impl ApprovalState {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the agent has its answer: nothing will change any more.
    pub fn is_final(self) -> bool {
        !self.is_open()
    }

    /// Whether the host still has work to do for it (decide, run).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ApprovalState::Pending | ApprovalState::Approved | ApprovalState::Executing
        )
    }
}

#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

/// One reviewer's decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// The reviewer's token name.
    pub by: String,
    pub verdict: Verdict,
    pub reason: String,
    /// Unix milliseconds.
    pub at: u64,
}

/// What a held call came to, kept typed on its approval: each adapter
/// tells it the agent waiting on it its own way (REST, MCP, a workflow's
/// step).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answered", rename_all = "snake_case")]
pub enum Answered {
    /// It ran and returned `result`, recorded as `audit_id` (a workflow's
    /// call: as its `run`).
    Ran {
        result: Value,
        audit_id: String,
        plugin_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
    },
    /// It ran (or was refused when its turn came, or cut short by a stop)
    /// and failed; recorded as `audit_id` if a record was taken.
    Failed {
        error: CallError,
        audit_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plugin_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
    },
    /// It never ran, and why.
    NotRun { why: NotRun, message: String },
}

/// Why a held call never ran.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NotRun {
    /// A reviewer rejected it.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// What was approved changed before it ran.
    Lapsed,
}

impl NotRun {
    /// The error kind agents are told (`approval_rejected`).
    pub fn kind(self) -> String {
        format!("approval_{}", <&str>::from(self))
    }

    /// Its status, as the call's problem and REST answer carry it.
    pub fn status(self) -> u16 {
        match self {
            NotRun::Rejected => 403,
            NotRun::Expired => 410,
            NotRun::Lapsed => 409,
        }
    }
}

impl Answered {
    /// What a call that ran came to, recorded as `audit_id`.
    pub fn of(result: &Result<Value, CallError>, audit_id: &str, plugin_version: Option<String>) -> Answered {
        match result {
            Ok(value) => Answered::Ran {
                result: value.clone(),
                audit_id: audit_id.to_string(),
                plugin_version,
                run: None,
            },
            Err(error) => Answered::Failed {
                error: error.clone(),
                audit_id: Some(audit_id.to_string()),
                plugin_version: None,
                run: None,
            },
        }
    }

    /// What a workflow's call came to once its `run` ended; `None` while
    /// it goes on.
    pub fn of_run(run: &Run) -> Option<Answered> {
        if run.state == RunState::Completed {
            return Some(Answered::Ran {
                result: run.output.clone().unwrap_or_default(),
                audit_id: run.audit_id.clone().unwrap_or_default(),
                plugin_version: Some(run.version.clone()),
                run: Some(run.id.clone()),
            });
        }
        Some(Answered::Failed {
            error: run.call_error()?,
            audit_id: run.audit_id.clone(),
            plugin_version: Some(run.version.clone()),
            run: Some(run.id.clone()),
        })
    }
}

/// An approval's answer as it is stored now, or as hosts before the typed
/// answer stored it (the REST status and body): read either way, so an
/// upgrade loses no answer an agent is still to fetch.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredAnswer {
    Typed(Answered),
    Rest { status: u16, body: Value },
}

impl From<StoredAnswer> for Answered {
    fn from(stored: StoredAnswer) -> Answered {
        let (status, body) = match stored {
            StoredAnswer::Typed(answered) => return answered,
            StoredAnswer::Rest { status, body } => (status, body),
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        if status == 200 {
            return Answered::Ran {
                result: body["result"].clone(),
                audit_id: text(&body["audit_id"]).unwrap_or_default(),
                plugin_version: text(&body["plugin_version"]),
                run: text(&body["run"]),
            };
        }
        let message = text(&body["error"]["message"]).unwrap_or_default();
        let why = match body["error"]["kind"].as_str() {
            Some("approval_rejected") => Some(NotRun::Rejected),
            Some("approval_expired") => Some(NotRun::Expired),
            Some("approval_lapsed") => Some(NotRun::Lapsed),
            _ => None,
        };
        if let Some(why) = why {
            return Answered::NotRun { why, message };
        }
        Answered::Failed {
            error: serde_json::from_value(body["error"].clone()).unwrap_or(CallError::Interrupted { message }),
            audit_id: text(&body["audit_id"]),
            plugin_version: text(&body["plugin_version"]),
            run: text(&body["run"]),
        }
    }
}

fn read_answer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Answered>, D::Error> {
    Ok(Option::<StoredAnswer>::deserialize(d)?.map(Answered::from))
}

/// A held call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// Time-ordered (hex of the creation time, then random): also the
    /// paging cursor.
    pub id: String,
    pub state: ApprovalState,
    pub tool: String,
    /// The plugin version and component that would have served the call:
    /// approving binds them, so an upgrade in between lapses the approval.
    pub plugin_version: String,
    pub plugin_digest: String,
    /// Exactly as the agent sent them.
    pub arguments: Value,
    /// SHA-256 of `arguments`.
    pub arguments_digest: String,
    /// Argument paths the manifest marks secret, redacted in every view.
    #[serde(default)]
    pub secret_fields: Vec<String>,
    pub via: Channel,
    pub token: String,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
    pub rule: String,
    pub reason: HoldReason,
    /// Why a condition failed, when it did.
    pub detail: Option<String>,
    /// Distinct approvals needed.
    pub approvers: u8,
    /// Unix milliseconds.
    pub created: u64,
    pub expires: u64,
    pub decisions: Vec<Decision>,
    /// The audit record of the hold, and of the execution once it ran.
    pub held_audit_id: String,
    pub call_audit_id: Option<String>,
    #[serde(default, deserialize_with = "read_answer")]
    pub answer: Option<Answered>,
    /// When it became final (unix milliseconds).
    pub finished: Option<u64>,
    /// The workflow run whose step was held: the run, not the approvals
    /// service, carries it out once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The node that took it for running (nodes sharing a store each close
    /// only their own when they start again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// Why a call was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The rule holds every call.
    Always,
    /// The rule's condition was true.
    Condition,
    /// The condition could not be evaluated for this call.
    ConditionFailed,
    /// Drawn for review at the rule's sampling rate.
    Sampled,
    /// A high-risk tool no rule names.
    HighRisk,
}

impl HoldReason {
    /// Why, in words a reviewer reads.
    pub fn describe(self) -> &'static str {
        match self {
            HoldReason::Always => "always held",
            HoldReason::Condition => "its condition is true",
            HoldReason::ConditionFailed => "its condition could not be evaluated",
            HoldReason::Sampled => "drawn for review",
            HoldReason::HighRisk => "a high-risk tool no rule names",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(answer: Value) -> Answered {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "read_answer")]
            answer: Option<Answered>,
        }
        let holder: Holder = serde_json::from_value(json!({ "answer": answer })).unwrap();
        holder.answer.expect("an answer")
    }

    #[test]
    fn answers_read_back_typed_and_as_earlier_hosts_stored_them() {
        let typed = Answered::Failed {
            error: CallError::Denied { message: "no".into() },
            audit_id: Some("a1".into()),
            plugin_version: None,
            run: Some("r1".into()),
        };
        let again = read(serde_json::to_value(&typed).unwrap());
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&typed).unwrap()
        );
        // The REST status and body earlier hosts kept.
        let ran = read(
            json!({ "status": 200, "body": { "result": { "x": 1 }, "audit_id": "a2", "plugin_version": "1.0.0" } }),
        );
        assert!(
            matches!(&ran, Answered::Ran { result, audit_id, plugin_version, .. }
                if result == &json!({ "x": 1 }) && audit_id == "a2" && plugin_version.as_deref() == Some("1.0.0")),
            "{ran:?}"
        );
        let rejected = read(
            json!({ "status": 403, "body": { "error": { "kind": "approval_rejected", "message": "m" }, "approval": "p" } }),
        );
        assert!(
            matches!(
                rejected,
                Answered::NotRun {
                    why: NotRun::Rejected,
                    ..
                }
            ),
            "{rejected:?}"
        );
        let failed = read(
            json!({ "status": 504, "body": { "error": { "kind": "timeout", "millis": 30, "message": "timed out" }, "audit_id": "a3" } }),
        );
        assert!(
            matches!(&failed, Answered::Failed { error: CallError::Timeout { millis: 30, .. }, audit_id: Some(a), .. } if a == "a3"),
            "{failed:?}"
        );
        let cut = read(json!({ "status": 500, "body": { "error": { "kind": "interrupted", "message": "stopped" } } }));
        assert!(
            matches!(
                cut,
                Answered::Failed {
                    error: CallError::Interrupted { .. },
                    audit_id: None,
                    ..
                }
            ),
            "{cut:?}"
        );
    }
}
