//! Tell the caller how far the call has come: an MCP client that asked for
//! progress shows it (`notifications/progress`). Free when nobody listens,
//! so a long call (a batch of lookups, a paged export) can report every step;
//! the host passes on only reports whose `done` grows, at most 100 a call,
//! each message cut to 256 bytes.

use crate::backend;

/// One report, as [`crate::testing::TestHost::progress`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub done: u64,
    pub total: Option<u64>,
    pub message: Option<String>,
}

/// `done` units of work out of `total` (when known) are done.
pub fn report(done: u64, total: Option<u64>) {
    backend::progress(done, total, None)
}

/// As [`report`], with a word on what is happening now, e.g. `order 3 of 12`.
pub fn report_with(done: u64, total: Option<u64>, message: &str) {
    backend::progress(done, total, Some(message))
}
