//! A call recorded, whatever asked for it (an agent's call, an approved
//! call, a workflow's step): held for a person if the rules say so, run now
//! and counted, or refused; each with its audit record. [`detached`] runs
//! such work to its end even if whoever asked goes away.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::approvals::{self, ApprovalError, Serving};
use super::App;
use crate::call::invoke::{check_arguments, CallOutcome};
use crate::model::approval::Approval;
use crate::model::audit::{AuditRecord, Caller};
use crate::model::call::CallError;
use crate::plugins::registry::ToolRef;

/// Hold the call (made with `token`'s name) if the approval rules say so. A
/// call for a tool that does not exist, of a disabled plugin, or whose
/// arguments could never run goes on to be refused as it would be without
/// rules: a person should only be asked about calls that can run.
pub async fn hold(
    app: &Arc<App>,
    token: &str,
    found: &ToolRef,
    args: &Value,
    caller: &Caller,
) -> Result<Option<Arc<Approval>>, AppError> {
    let tool = found.tool().name.as_str();
    let plugin = &found.plugin;
    if app.runtime.plugins().is_disabled(&plugin.manifest.name) {
        return Ok(None);
    }
    let call = approvals::Call {
        caller,
        token,
        tool,
        risk: found.tool().risk,
        args,
    };
    let Some(held) = app.approvals.check(&call) else {
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
    let approval = app.approvals.hold(&call, held, serving).await?;
    Ok(Some(approval))
}

/// Run a permitted call (made with `token`'s name) of `tool`, resolved as
/// `found`, now: recorded, counted.
pub async fn execute_call(
    app: &Arc<App>,
    token: &str,
    tool: &str,
    found: Option<ToolRef>,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), AppError> {
    let _in_flight = app.metrics.start();
    // Never two tokens or two sessions on one instance.
    let reuse = format!("{token}\u{0}{}", caller.session.as_deref().unwrap_or(""));
    let (outcome, record) = app
        .runtime
        .call_resolved(caller, tool, found, args, Some(&reuse))
        .await
        .map_err(AppError::internal)?;
    app.metrics.record(&outcome);
    Ok((outcome, record))
}

/// Record a call refused before it ran.
pub async fn refuse(
    app: &Arc<App>,
    tool: &str,
    args: &Value,
    caller: &Caller,
    error: CallError,
) -> Result<(CallOutcome, AuditRecord), AppError> {
    let outcome = CallOutcome::refused(tool, error);
    let record = app
        .runtime
        .record_outcome(caller, args, &outcome)
        .await
        .map_err(AppError::internal)?;
    app.metrics.record(&outcome);
    Ok((outcome, record))
}

/// Run `work` (a call and what must follow it) detached from the request,
/// so that it runs to its end whether or not the client is still there to
/// hear it.
pub async fn detached<T, E, F>(app: &Arc<App>, work: impl FnOnce(Arc<App>) -> F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: From<AppError> + Send + 'static,
{
    app.runtime
        .detach(work(Arc::clone(app)))
        .await
        .map_err(|e| AppError::Internal(format!("the call's task failed: {e}")))?
}

/// Why the application could not carry a call out (not how the call
/// ended: that is [`Called`]).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The runtime or the store failed.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }
}
