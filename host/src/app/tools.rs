//! The tools a principal may use, as every adapter lists them (REST's
//! `/v1/tools`, MCP's `tools/list`), each with whether its calls may wait
//! for a person, as the approval rules in force decide it.

use super::auth::Principal;
use super::calls::WORKFLOW_RISK;
use super::App;
use crate::plugins::kind::Kind;
use crate::policy::approvals::ApprovalSummary;
use crate::runtime::ToolInfo;

/// The tools `principal` may use, in name order, each with its approval
/// summary.
pub fn visible(app: &App, principal: &Principal) -> Vec<ToolInfo> {
    app.runtime
        .tools()
        .into_iter()
        .filter(|t| principal.may_use(&t.name))
        .map(|mut t| {
            t.approval = Some(approval(app, &t));
            t
        })
        .collect()
}

/// What happens to `tool`'s calls. A connector's call waits as the rules
/// judge it. A workflow's call waits only if a rule names it (see
/// `calls::hold_run`); otherwise its run starts at once, and may wait at a
/// step the rules hold, depending on the data it meets: its caller then
/// waits for the run, so that is said as `conditional`.
fn approval(app: &App, tool: &ToolInfo) -> ApprovalSummary {
    if tool.kind == Kind::Connector {
        return app.approvals.summary(&tool.name, tool.risk);
    }
    let own = app.approvals.summary(&tool.name, WORKFLOW_RISK);
    if own != ApprovalSummary::Never {
        return own;
    }
    let Some(workflow) = app.runtime.plugins().registry().workflow(&tool.name) else {
        return own;
    };
    let step_may_wait = workflow.definition.tools.iter().any(|step| {
        let risk = app
            .runtime
            .find(step)
            .map(|found| found.tool().risk)
            .unwrap_or_default();
        app.approvals.summary(step, risk) != ApprovalSummary::Never
    });
    if step_may_wait {
        ApprovalSummary::Conditional
    } else {
        ApprovalSummary::Never
    }
}
