//! The application: what a call, an approval, a workflow run and an
//! operator's action are, decided once, below every adapter (REST, MCP, the
//! console, the command line). Nothing here names axum, the OpenAPI
//! derives, rmcp or askama, nor an HTTP status or body (`.ci/layers.py` checks the imports);
//! each adapter renders what the application answers its own way. The way
//! a call travels through it is in `README.md` beside this file.
//!
//! - [`calls`]: an agent's call: permission, hold, run or refusal, or a
//!   workflow's run; an approved call carried out;
//! - [`recorded`]: a call recorded, whoever asked (an agent, an approval, a
//!   workflow's step): held, run now and counted, or refused;
//! - [`runs`]: workflow runs, driven off the API's threads, journaled;
//! - [`tools`]: the tools a principal may use, with whether their calls may wait;
//! - [`approvals`]: held calls from hold to answer (with their webhook);
//! - [`auth`]: tokens and the principals they name;
//! - [`idempotency`]: a retried call returns the first call's answer;
//! - [`metrics`]: what is counted, with typed labels;
//! - [`operator`]: the operator's actions on plugins, each recorded under the plugin's lock.

pub mod approvals;
pub mod auth;
pub mod calls;
pub mod idempotency;
pub mod metrics;
pub mod operator;
pub mod recorded;
pub mod runs;
pub mod tools;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Runtime;

/// The application's services, which every adapter (REST, MCP, the
/// console, the command line) calls: one owner for each.
pub struct App {
    pub runtime: Runtime,
    pub auth: auth::Auth,
    pub idempotency: Arc<idempotency::Idempotency>,
    pub metrics: Arc<metrics::Metrics>,
    pub approvals: Arc<approvals::Approvals>,
    pub runs: runs::Runs,
    /// Cancelled when the host begins to stop: runs stop, waits end.
    pub stopping: CancellationToken,
}
