//! Held calls and their decisions, kept until they are done: what a
//! restart must not lose (a pending approval, a decision about to execute).
//! An approval keeps the call's exact arguments, since approving runs them,
//! so this store is as sensitive as the calls themselves.

use async_trait::async_trait;

use crate::model::approval::{Approval, ApprovalState};
use crate::storage::StorageError;

/// Where approvals are kept. Writes are durable when they return.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Insert `approval` (a call just held), keeping the index of open ones.
    async fn put_approval(&self, approval: &Approval) -> Result<(), StorageError>;
    /// Replace the approval by `approval` only if the stored one still is as
    /// the caller read it: in state `from`, with `decisions` decisions.
    /// Whether it was (false: another node changed it first, so this change
    /// must not apply). Every change after the hold goes through here.
    async fn update_approval(
        &self,
        approval: &Approval,
        from: ApprovalState,
        decisions: usize,
    ) -> Result<bool, StorageError>;
    async fn approval(&self, id: &str) -> Result<Option<Approval>, StorageError>;
    /// Every approval still open (pending, approved, executing), oldest first.
    async fn open_approvals(&self) -> Result<Vec<Approval>, StorageError>;
    /// Approvals with ids below `before`, newest first, at most `limit`.
    async fn approvals(&self, before: Option<&str>, limit: usize) -> Result<Vec<Approval>, StorageError>;
}
