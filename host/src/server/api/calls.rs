//! One call on behalf of a caller, whichever way it came in (REST or MCP):
//! permission → the runtime's recorded call → metrics. Entry points run it
//! with [`detached`], so that a client that hangs up cannot cut a call short
//! between its effects and its audit record.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::{ApiError, Shared};
use crate::call::invoke::{CallError, CallOutcome};
use crate::call::names;
use crate::server::auth::Principal;
use crate::storage::audit::{AuditRecord, Caller};

pub async fn call(
    state: &Shared,
    principal: &Principal,
    tool: &str,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), ApiError> {
    let canonical = names::canonical(tool);
    let tool = canonical.as_deref().unwrap_or(tool);
    let (outcome, record) = if principal.may_use(tool) {
        let _in_flight = state.metrics.start();
        // Never two tokens or two sessions on one instance.
        let reuse = format!("{}\u{0}{}", principal.name, caller.session.as_deref().unwrap_or(""));
        state
            .runtime
            .call(caller, tool, args, Some(&reuse))
            .await
            .map_err(ApiError::internal)?
    } else {
        let outcome = CallOutcome::refused(
            tool,
            CallError::Denied {
                message: format!("token {:?} may not use {tool}", principal.name),
            },
        );
        let record = state
            .runtime
            .record_refusal(caller, args, &outcome)
            .await
            .map_err(ApiError::internal)?;
        (outcome, record)
    };
    state.metrics.record(&outcome);
    Ok((outcome, record))
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
