//! The application: what a call, an approval, a workflow run and an
//! operator's action are, decided once, below every adapter (REST, MCP, the
//! console, the command line).
//!
//! - [`idempotency`]: a retried call returns the first call's answer;
//! - [`operator`]: the operator's actions on plugins, each recorded under the plugin's lock.

pub mod idempotency;
pub mod operator;
