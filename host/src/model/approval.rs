//! A held call and its decisions, as they are kept until the call is done:
//! what a restart must not lose.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::audit::Via;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// The answer an agent gets once an approval is final, as an ordinary call
/// would have answered (status and JSON body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Value,
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
    pub via: Via,
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
    pub answer: Option<StoredAnswer>,
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
