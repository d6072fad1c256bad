//! An approval as JSON: what agents and reviewers see, and the state a
//! decision's audit record keeps before and after.

use serde_json::{json, Value};

use crate::audit::redact;
use crate::model::approval::{Approval, ApprovalState, Decision};
use crate::model::time::rfc3339_ms;

/// An approval's state and who had decided, as a decision's audit record
/// shows it before and after.
pub(super) fn decision_state(state: ApprovalState, decisions: &[Decision]) -> Value {
    json!({
        "state": state,
        "decisions": decisions.iter().map(|d| json!({ "by": d.by, "verdict": d.verdict })).collect::<Vec<_>>(),
    })
}

/// An approval as agents and reviewers see it: secret argument fields
/// redacted, times in RFC 3339.
pub fn view(approval: &Approval) -> Value {
    let decisions: Vec<Value> = approval
        .decisions
        .iter()
        .map(|d| json!({ "by": d.by, "verdict": d.verdict, "reason": d.reason, "at": rfc3339_ms(d.at) }))
        .collect();
    json!({
        "id": approval.id,
        "state": approval.state,
        "tool": approval.tool,
        "plugin_version": approval.plugin_version,
        "plugin_digest": approval.plugin_digest,
        "arguments": redact(&approval.arguments, &approval.secret_fields),
        "arguments_digest": approval.arguments_digest,
        "token": approval.token,
        "session": approval.session,
        "rule": approval.rule,
        "reason": approval.reason,
        "detail": approval.detail,
        "approvers": approval.approvers,
        "decisions": decisions,
        "created": rfc3339_ms(approval.created),
        "expires": rfc3339_ms(approval.expires),
        "held_audit_id": approval.held_audit_id,
        "call_audit_id": approval.call_audit_id,
        "run": approval.run,
        "step": approval.step,
        "wait": format!("/v1/approvals/{}?wait=60", approval.id),
    })
}
