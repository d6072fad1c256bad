//! One call on behalf of a caller, whichever way it came in (REST or MCP):
//! permission → invoke → metrics → audit record (durable before the answer).

use serde_json::Value;

use super::{ApiError, Shared};
use crate::audit::{AuditRecord, Caller};
use crate::auth::Principal;
use crate::invoke::{CallError, CallOutcome};

pub async fn call(
    state: &Shared,
    principal: &Principal,
    tool: &str,
    args: &Value,
    caller: &Caller,
) -> Result<(CallOutcome, AuditRecord), ApiError> {
    let outcome = if principal.may_use(tool) {
        let _in_flight = state.metrics.start();
        // Never two tokens or two sessions on one instance.
        let key = format!("{}\u{0}{}", principal.name, caller.session.as_deref().unwrap_or(""));
        state.runtime.invoke_as(tool, args, Some(&key)).await
    } else {
        CallOutcome::refused(
            tool,
            CallError::Denied {
                message: format!("token {:?} may not use {tool}", principal.name),
            },
        )
    };
    state.metrics.record(&outcome);
    let secret_fields = state.runtime.secret_fields(tool);
    let record = state
        .runtime
        .audit()
        .append(caller, args, &secret_fields, &outcome)
        .await
        .map_err(ApiError::internal)?;
    Ok((outcome, record))
}
