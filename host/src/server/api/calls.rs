//! One call on behalf of a caller, whichever way it came in (REST or MCP):
//! permission → approval policy (a held call is stored, not run) → the
//! runtime's recorded call → metrics. A workflow's tool starts a run
//! instead (see `server::runs`), whose steps come back here through
//! [`hold`] and [`execute_call`] under the workflow's grant. Entry points
//! run it with [`detached`], so that a client that hangs up cannot cut a
//! call short between its effects and its audit record. [`execute`] runs a
//! held call once it is approved.

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{ApiError, Shared};
use crate::call::invoke::{check_arguments, CallOutcome};
use crate::call::names;
use crate::model::approval::{Answered, Approval};
use crate::model::audit::{AuditRecord, Caller};
use crate::model::call::CallError;
use crate::model::run::{Run, RunState};
use crate::plugins::manifest::Risk;
use crate::plugins::registry::ToolRef;
use crate::server::approvals::{self, Serving};
use crate::server::auth::Principal;
use crate::server::runs;
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
    state: &Shared,
    principal: &Principal,
    tool: &str,
    args: &Value,
    caller: &Caller,
) -> Result<Called, ApiError> {
    let canonical = names::canonical(tool);
    let tool = canonical.as_deref().unwrap_or(tool);
    if let Some(workflow) = state.runtime.plugins().registry().workflow(tool) {
        let refusal = if !principal.may_use(tool) {
            Some(CallError::Denied {
                message: format!("token {:?} may not use {tool}", principal.name),
            })
        } else if state.runtime.plugins().is_disabled(tool) {
            Some(CallError::Unavailable {
                message: format!("workflow {tool:?} is disabled by the operator"),
            })
        } else {
            workflow.check_input(args).err()
        };
        if let Some(error) = refusal {
            return Ok(Called::Ran(Box::new(refuse(state, tool, args, caller, error).await?)));
        }
        if let Some(approval) = hold_run(state, &principal.name, &workflow, args, caller).await? {
            return Ok(Called::Held(approval));
        }
        let run = runs::start(state, workflow, &principal.name, caller, args)
            .await
            .map_err(ApiError::internal)?;
        return Ok(Called::Started(Box::new(run)));
    }
    // The tool is resolved once: the hold judges, the guest runs and the
    // record redacts this version, whatever an upgrade swaps in meanwhile.
    let found = state.runtime.find(tool);
    if let (true, Some(found)) = (principal.may_use(tool), &found) {
        if let Some(approval) = hold(state, &principal.name, found, args, caller).await? {
            return Ok(Called::Held(approval));
        }
    }
    let (outcome, record) = run(state, principal, tool, found, args, caller).await?;
    Ok(Called::Ran(Box::new((outcome, record))))
}

/// Hold the call (made with `token`'s name) if the approval rules say so. A
/// call for a tool that does not exist, of a disabled plugin, or whose
/// arguments could never run goes on to be refused as it would be without
/// rules: a person should only be asked about calls that can run.
pub async fn hold(
    state: &Shared,
    token: &str,
    found: &ToolRef,
    args: &Value,
    caller: &Caller,
) -> Result<Option<Arc<Approval>>, ApiError> {
    let tool = found.tool().name.as_str();
    let plugin = &found.plugin;
    if state.runtime.plugins().is_disabled(&plugin.manifest.name) {
        return Ok(None);
    }
    let call = approvals::Call {
        caller,
        token,
        tool,
        risk: found.tool().risk,
        args,
    };
    let Some(held) = state.approvals.check(&call) else {
        return Ok(None);
    };
    if check_arguments(found, args).is_err() {
        return Ok(None);
    }
    let version = plugin.manifest.version.to_string();
    let serving = Serving {
        version: &version,
        digest: &plugin.digest,
        secret_fields: found.secret_fields().to_vec(),
    };
    let approval = state
        .approvals
        .hold(&call, held, serving)
        .await
        .map_err(ApiError::from)?;
    Ok(Some(approval))
}

/// Hold a workflow's call itself if the approval rules name it (by name or
/// pattern). Its risk does not hold it: each of its steps goes through the
/// rules on its own, so a workflow is not held for what its steps may do.
async fn hold_run(
    state: &Shared,
    token: &str,
    workflow: &Workflow,
    args: &Value,
    caller: &Caller,
) -> Result<Option<Arc<Approval>>, ApiError> {
    let call = approvals::Call {
        caller,
        token,
        tool: workflow.name(),
        risk: Risk::Read,
        args,
    };
    let Some(held) = state.approvals.check(&call) else {
        return Ok(None);
    };
    let version = workflow.definition.version.to_string();
    let serving = Serving {
        version: &version,
        digest: &workflow.digest,
        secret_fields: Vec::new(),
    };
    let approval = state
        .approvals
        .hold(&call, held, serving)
        .await
        .map_err(ApiError::from)?;
    Ok(Some(approval))
}

/// Run the call now if `principal` may, or record its refusal.
async fn run(
    state: &Shared,
    principal: &Principal,
    tool: &str,
    found: Option<ToolRef>,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), ApiError> {
    if principal.may_use(tool) {
        execute_call(state, &principal.name, tool, found, args, caller).await
    } else {
        let error = CallError::Denied {
            message: format!("token {:?} may not use {tool}", principal.name),
        };
        refuse(state, tool, args, caller, error).await
    }
}

/// Run a permitted call (made with `token`'s name) of `tool`, resolved as
/// `found`, now: recorded, counted.
pub async fn execute_call(
    state: &Shared,
    token: &str,
    tool: &str,
    found: Option<ToolRef>,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), ApiError> {
    let _in_flight = state.metrics.start();
    // Never two tokens or two sessions on one instance.
    let reuse = format!("{token}\u{0}{}", caller.session.as_deref().unwrap_or(""));
    let (outcome, record) = state
        .runtime
        .call_resolved(caller, tool, found, args, Some(&reuse))
        .await
        .map_err(ApiError::internal)?;
    state.metrics.record(&outcome);
    Ok((outcome, record))
}

/// Record a call refused before it ran.
pub async fn refuse(
    state: &Shared,
    tool: &str,
    args: &Value,
    caller: &Caller,
    error: CallError,
) -> Result<(CallOutcome, AuditRecord), ApiError> {
    let outcome = CallOutcome::refused(tool, error);
    let record = state
        .runtime
        .record_outcome(caller, args, &outcome)
        .await
        .map_err(ApiError::internal)?;
    state.metrics.record(&outcome);
    Ok((outcome, record))
}

/// Run an approved call, once: with the arguments that were approved, on
/// the plugin version that was approved, for a caller who may still make
/// it. If the plugin changed or the caller's token is gone, the approval
/// lapses and nothing runs. The answer is kept for the agent.
pub async fn execute(state: &Shared, id: &str) -> Result<(), ApiError> {
    let Some(approval) = state.approvals.begin_execution(id).await.map_err(ApiError::internal)? else {
        return Ok(());
    };
    if let Some(workflow) = state.runtime.plugins().registry().workflow(&approval.tool) {
        return start_approved(state, approval, workflow).await;
    }
    let principal = state.auth.named(&approval.token);
    // Resolved once: the version checked against the approval is the one
    // that runs.
    let found = state.runtime.find(&approval.tool);
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
        state.approvals.lapse(approval, why).await.map_err(ApiError::internal)?;
        return Ok(());
    };
    let caller = caller_of(&approval);
    let (outcome, record) = run(state, &principal, &approval.tool, found, &approval.arguments, &caller).await?;
    let answered = Answered::of(&outcome.result, &record.id, outcome.plugin_version.clone());
    state
        .approvals
        .finish(approval, answered, record.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

/// An approved workflow call: its run starts under the approval's id, on the
/// version that was approved, and answers the approval when it ends (see
/// `runs::close`). If the workflow changed or the caller's token is gone,
/// the approval lapses and nothing runs.
async fn start_approved(state: &Shared, approval: Approval, workflow: Arc<Workflow>) -> Result<(), ApiError> {
    let lapsed = if workflow.digest != approval.plugin_digest {
        Some(changed_since(
            "workflow",
            &approval,
            &workflow.definition.version.to_string(),
            &workflow.digest,
        ))
    } else if !state
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
        state.approvals.lapse(approval, why).await.map_err(ApiError::internal)?;
        return Ok(());
    }
    let caller = caller_of(&approval);
    runs::begin(state, workflow, &approval.token, &caller, &approval.arguments)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Run [`execute`] detached, so a stop waits for it; failures are logged
/// (the approval stays `executing`, and the next start closes it).
pub fn spawn_execution(state: &Shared, id: String) {
    let runner = state.clone();
    drop(state.runtime.detach(async move {
        if let Err(e) = execute(&runner, &id).await {
            tracing::error!(approval = %id, "running an approved call failed: {}", e.body);
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

/// Run `work` (a call and what must follow it) detached from the request,
/// so that it runs to its end whether or not the client is still there to
/// hear it.
pub async fn detached<T, F>(state: &Shared, work: impl FnOnce(Shared) -> F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    state
        .runtime
        .detach(work(Arc::clone(state)))
        .await
        .map_err(|e| ApiError::internal(format!("the call's task failed: {e}")))?
}

/// The REST answer to a call: status and body, and the `Retry-After` of a
/// refusal for lack of room.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn of(outcome: &CallOutcome, audit_id: &str) -> Answer {
        match &outcome.result {
            Ok(value) => Answer::ran(value, audit_id, outcome.plugin_version.as_deref()),
            Err(e) => Answer::failed(e, Some(audit_id)),
        }
    }

    /// The answer to a held call that came to an end.
    pub fn answered(answered: &Answered) -> Answer {
        match answered {
            Answered::Ran {
                result,
                audit_id,
                plugin_version,
                run,
            } => Answer::ran(result, audit_id, plugin_version.as_deref()).with_run(run.as_deref(), None),
            Answered::Failed {
                error,
                audit_id,
                plugin_version,
                run,
            } => Answer::failed(error, audit_id.as_deref()).with_run(run.as_deref(), plugin_version.as_deref()),
            Answered::NotRun { why, message } => Answer {
                status: StatusCode::from_u16(why.status()).unwrap_or(StatusCode::CONFLICT),
                body: json!({ "error": { "kind": why.kind(), "message": message } }),
                retry_after: None,
            },
        }
    }

    /// A workflow's answer names its run and the version it ran on.
    fn with_run(mut self, run: Option<&str>, plugin_version: Option<&str>) -> Answer {
        if let Value::Object(map) = &mut self.body {
            if let Some(run) = run {
                map.insert("run".into(), Value::from(run));
            }
            if let Some(version) = plugin_version {
                map.insert("plugin_version".into(), Value::from(version));
            }
        }
        self
    }

    fn ran(value: &Value, audit_id: &str, plugin_version: Option<&str>) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: json!({ "result": value, "audit_id": audit_id, "plugin_version": plugin_version }),
            retry_after: None,
        }
    }

    fn failed(e: &CallError, audit_id: Option<&str>) -> Answer {
        let mut err = ApiError::from_call(e);
        if let (Value::Object(map), Some(audit_id)) = (&mut err.body, audit_id) {
            map.insert("audit_id".into(), Value::from(audit_id));
        }
        Answer {
            status: err.status,
            body: err.body,
            retry_after: err.retry_after,
        }
    }

    /// The answer to a held call: 202, the approval and where to wait.
    pub fn held(approval: &Approval) -> Answer {
        Answer {
            status: StatusCode::ACCEPTED,
            body: json!({
                "approval": approvals::view(approval),
                "wait": format!("/v1/approvals/{}?wait=60", approval.id),
                "message": format!(
                    "this call waits for a reviewer's approval (rule {:?}); GET the wait URL for its result",
                    approval.rule
                ),
            }),
            retry_after: None,
        }
    }

    /// The answer to a workflow call: its output once the run completed,
    /// its typed error once it failed, and until then `202` with the run
    /// and where to wait.
    pub fn run(run: &Run) -> Answer {
        let base = json!({ "run": run.id, "audit_id": run.audit_id, "plugin_version": run.version });
        let with = |mut body: Value| {
            if let (Value::Object(body), Value::Object(base)) = (&mut body, &base) {
                body.extend(base.clone());
            }
            body
        };
        match run.state {
            RunState::Completed => Answer {
                status: StatusCode::OK,
                body: with(json!({ "result": run.output })),
                retry_after: None,
            },
            RunState::Failed | RunState::Cancelled => {
                let error = run.call_error().unwrap_or(CallError::Interrupted {
                    message: "the run ended without its error".into(),
                });
                let err = ApiError::from_call(&error);
                Answer {
                    status: err.status,
                    body: with(err.body),
                    retry_after: None,
                }
            }
            RunState::Running | RunState::Waiting => Answer {
                status: StatusCode::ACCEPTED,
                body: with(json!({
                    "state": run.state,
                    "waiting_on": run.waiting_on,
                    "wait": format!("/v1/runs/{}?wait=60", run.id),
                    "message": match &run.waiting_on {
                        Some(a) => format!("the run waits for a reviewer's approval ({a}); GET the wait URL for its result"),
                        None => "the run is still going; GET the wait URL for its result".to_string(),
                    },
                })),
                retry_after: None,
            },
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        ApiError {
            status: self.status,
            body: self.body,
            retry_after: self.retry_after,
        }
        .into_response()
    }
}
