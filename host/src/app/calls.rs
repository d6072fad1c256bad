//! One call on behalf of a caller, whichever way it came in (REST or MCP):
//! permission → approval policy (a held call is stored, not run) → the
//! runtime's recorded call → metrics. A workflow's tool starts a run
//! instead (see `app::runs`), whose steps come back here through
//! [`hold`] and [`execute_call`] under the workflow's grant. Entry points
//! run it with [`detached`], so that a client that hangs up cannot cut a
//! call short between its effects and its audit record. [`execute`] runs a
//! held call once it is approved.

use std::sync::Arc;

use serde_json::Value;

use super::approvals::{self, Serving};
use super::auth::Principal;
use super::recorded::{execute_call, hold, refuse, AppError};
use super::runs;
use super::App;
use crate::call::invoke::CallOutcome;
use crate::call::names;
use crate::model::approval::{Answered, Approval};
use crate::model::audit::{AuditRecord, Caller};
use crate::model::call::CallError;
use crate::model::run::Run;
use crate::plugins::manifest::Risk;
use crate::plugins::registry::ToolRef;
use crate::workflow::Workflow;

/// What became of a call.
pub enum Called {
    /// It ran (or was refused), and was recorded.
    Ran(Box<(CallOutcome, AuditRecord)>),
    /// It waits for a person; nothing ran.
    Held(Arc<Approval>),
    /// A workflow's run: ended, or still going (running, or a step waits
    /// for a person).
    Started(Box<Run>),
}

impl Called {
    /// Whether a retry under the same idempotency key is told this again
    /// rather than run: all but an error that changed nothing and may
    /// pass (see [`CallError::is_transient`]).
    pub fn is_final(&self) -> bool {
        match self {
            Called::Ran(ran) => ran.0.effects || !ran.0.result.as_ref().is_err_and(CallError::is_transient),
            Called::Held(_) => true,
            Called::Started(run) => !run.call_error().is_some_and(|e| e.is_transient()),
        }
    }
}

pub async fn call(
    app: &Arc<App>,
    principal: &Principal,
    tool: &str,
    args: &Value,
    caller: &Caller,
) -> Result<Called, AppError> {
    let canonical = names::canonical(tool);
    let tool = canonical.as_deref().unwrap_or(tool);
    if let Some(workflow) = app.runtime.plugins().registry().workflow(tool) {
        // A strict function-calling client sends `null` for what it leaves
        // out (see `call::strict`): the run reads it as left out.
        let mut input = args.clone();
        crate::call::strict::drop_absent_nulls(&workflow.definition.input_schema, &mut input);
        let args = &input;
        let refusal = if !principal.may_use(tool) {
            Some(CallError::Denied {
                message: format!("token {:?} may not use {tool}", principal.name),
            })
        } else if app.runtime.plugins().is_disabled(tool) {
            Some(CallError::Unavailable {
                message: format!("workflow {tool:?} is disabled by the operator"),
            })
        } else {
            workflow.check_input(args).err()
        };
        if let Some(error) = refusal {
            return Ok(Called::Ran(Box::new(refuse(app, tool, args, caller, error).await?)));
        }
        if let Some(approval) = hold_run(app, &principal.name, &workflow, args, caller).await? {
            return Ok(Called::Held(approval));
        }
        let run = runs::start(app, workflow, &principal.name, caller, args)
            .await
            .map_err(AppError::internal)?;
        return Ok(Called::Started(Box::new(run)));
    }
    // The tool is resolved once: the hold judges, the guest runs and the
    // record redacts this version, whatever an upgrade swaps in meanwhile.
    let found = app.runtime.find(tool);
    if let (true, Some(found)) = (principal.may_use(tool), &found) {
        if let Some(approval) = hold(app, &principal.name, found, args, caller).await? {
            return Ok(Called::Held(approval));
        }
    }
    let (outcome, record) = run(app, principal, tool, found, args, caller).await?;
    Ok(Called::Ran(Box::new((outcome, record))))
}

/// The risk the approval rules judge a workflow's own call by: the lowest.
/// Each of its steps goes through the rules on its own, so a workflow is
/// not held for what its steps may do, only when a rule names it.
pub const WORKFLOW_RISK: Risk = Risk::Read;

/// Hold a workflow's call itself if the approval rules name it (by name or
/// pattern), judged at [`WORKFLOW_RISK`].
async fn hold_run(
    app: &Arc<App>,
    token: &str,
    workflow: &Workflow,
    args: &Value,
    caller: &Caller,
) -> Result<Option<Arc<Approval>>, AppError> {
    let call = approvals::Call {
        caller,
        token,
        tool: workflow.name(),
        risk: WORKFLOW_RISK,
        args,
    };
    let Some(held) = app.approvals.check(&call) else {
        return Ok(None);
    };
    let version = workflow.definition.version.to_string();
    let serving = Serving {
        version: &version,
        digest: &workflow.digest,
        secret_fields: Vec::new(),
    };
    let approval = app.approvals.hold(&call, held, serving).await?;
    Ok(Some(approval))
}

/// Run the call now if `principal` may, or record its refusal.
async fn run(
    app: &Arc<App>,
    principal: &Principal,
    tool: &str,
    found: Option<ToolRef>,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), AppError> {
    if principal.may_use(tool) {
        execute_call(app, &principal.name, tool, found, args, caller).await
    } else {
        let error = CallError::Denied {
            message: format!("token {:?} may not use {tool}", principal.name),
        };
        refuse(app, tool, args, caller, error).await
    }
}

/// Run an approved call, once: with the arguments that were approved, on
/// the plugin version that was approved, for a caller who may still make
/// it. If the plugin changed or the caller's token is gone, the approval
/// lapses and nothing runs. The answer is kept for the agent.
pub async fn execute(app: &Arc<App>, id: &str) -> Result<(), AppError> {
    let Some(approval) = app.approvals.begin_execution(id).await.map_err(AppError::internal)? else {
        return Ok(());
    };
    if let Some(workflow) = app.runtime.plugins().registry().workflow(&approval.tool) {
        return start_approved(app, approval, workflow).await;
    }
    let principal = app.auth.named(&approval.token);
    // Resolved once: the version checked against the approval is the one
    // that runs.
    let found = app.runtime.find(&approval.tool);
    let lapsed = match (&found, &principal) {
        (None, _) => Some(format!("{} is no longer loaded", approval.tool)),
        (Some(found), _) if found.plugin.digest != approval.plugin_digest => Some(changed_since(
            "plugin",
            &approval,
            &found.plugin.manifest.version.to_string(),
            &found.plugin.digest,
        )),
        (_, None) => Some(format!("token {:?} is no longer configured", approval.token)),
        _ => None,
    };
    let (Some(principal), None) = (principal, &lapsed) else {
        let why = lapsed.unwrap_or_default();
        app.approvals.lapse(approval, why).await.map_err(AppError::internal)?;
        return Ok(());
    };
    let caller = caller_of(&approval);
    let (outcome, record) = run(app, &principal, &approval.tool, found, &approval.arguments, &caller).await?;
    let answered = Answered::of(&outcome.result, &record.id, outcome.plugin_version.clone());
    app.approvals
        .finish(approval, answered, record.id)
        .await
        .map_err(AppError::internal)?;
    Ok(())
}

/// An approved workflow call: its run starts under the approval's id, on the
/// version that was approved, and answers the approval when it ends (see
/// `runs::close`). If the workflow changed or the caller's token is gone,
/// the approval lapses and nothing runs.
async fn start_approved(app: &Arc<App>, approval: Approval, workflow: Arc<Workflow>) -> Result<(), AppError> {
    let lapsed = if workflow.digest != approval.plugin_digest {
        Some(changed_since(
            "workflow",
            &approval,
            &workflow.definition.version.to_string(),
            &workflow.digest,
        ))
    } else if !app
        .auth
        .named(&approval.token)
        .is_some_and(|p| p.may_use(&approval.tool))
    {
        Some(format!(
            "token {:?} may no longer call {}",
            approval.token, approval.tool
        ))
    } else {
        None
    };
    if let Some(why) = lapsed {
        app.approvals.lapse(approval, why).await.map_err(AppError::internal)?;
        return Ok(());
    }
    let caller = caller_of(&approval);
    runs::begin(app, workflow, &approval.token, &caller, &approval.arguments)
        .await
        .map_err(AppError::internal)?;
    Ok(())
}

/// Run [`execute`] detached, so a stop waits for it; failures are logged
/// (the approval stays `executing`, and the next start closes it).
pub fn spawn_execution(app: &Arc<App>, id: String) {
    let runner = app.clone();
    drop(app.runtime.detach(async move {
        if let Err(e) = execute(&runner, &id).await {
            tracing::error!(approval = %id, "running an approved call failed: {e}");
        }
    }));
}

/// The caller of an approved call, as it was when the call was held.
fn caller_of(approval: &Approval) -> Caller {
    Caller {
        via: approval.via,
        token: Some(approval.token.clone()),
        session: approval.session.clone(),
        idempotency_key: approval.idempotency_key.clone(),
        approval: Some(approval.id.clone()),
        ..Default::default()
    }
}

/// Why an approval lapses when what serves is no longer what was approved.
fn changed_since(what: &str, approval: &Approval, version: &str, digest: &str) -> String {
    let short = |d: &str| d.get(..12).unwrap_or(d).to_string();
    format!(
        "the {what} changed after the approval (approved: version {} {}, serving: version {version} {})",
        approval.plugin_version,
        short(&approval.plugin_digest),
        short(digest)
    )
}
