//! The application: what a call, an approval, a workflow run and an
//! operator's action are, decided once, below every adapter (REST, MCP, the
//! console, the command line).
//!
//! - [`idempotency`]: a retried call returns the first call's answer;
//! - [`operator`]: the operator's actions on plugins, each recorded under the plugin's lock.

pub mod approvals;
pub mod auth;
pub mod calls;
pub mod idempotency;
pub mod metrics;
pub mod operator;
pub mod recorded;
pub mod runs;

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
