//! Workflow runs and their journals: what a run needs to resume after a
//! crash without repeating a step that finished. A run's header and each
//! of its steps are stored apart, so a step's change writes one small
//! entry, durable when the method returns.

use async_trait::async_trait;

use crate::model::run::{Run, Step};
use crate::storage::StorageError;

/// Where runs are kept. Writes are durable when they return.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Insert or replace a run's header, keeping the index of open ones.
    async fn put_run(&self, run: &Run) -> Result<(), StorageError>;
    async fn run(&self, id: &str) -> Result<Option<Run>, StorageError>;
    /// Every run still open, oldest first.
    async fn open_runs(&self) -> Result<Vec<Run>, StorageError>;
    /// Runs with ids below `before`, newest first, at most `limit`.
    async fn runs(&self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, StorageError>;
    /// Insert or replace step `step.seq` of run `run`.
    async fn put_step(&self, run: &str, step: &Step) -> Result<(), StorageError>;
    /// A run's steps, in order.
    async fn steps(&self, run: &str) -> Result<Vec<Step>, StorageError>;
    /// Take or renew the lease on open run `id` for node `node` until
    /// `until` (Unix ms): granted when nobody holds it, `node` holds it, or
    /// the holder's lease ran out (its node died). Only the holder drives
    /// a run. A store that one process owns grants every lease.
    async fn lease_run(&self, id: &str, node: &str, until: u64) -> Result<bool, StorageError>;
}
