//! Where `Idempotency-Key` answers are kept ([`IdempotencyStore`]); the
//! service that claims keys and replays answers is the application's
//! (`app::idempotency`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::StorageError;

/// A stored answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// SHA-256 of the arguments, so a key reused for other arguments is
    /// caught instead of answered with an unrelated result.
    pub arguments: String,
    /// When it was stored, Unix seconds.
    pub at: u64,
}

/// Whose answer: `principal` must identify one caller (token names are
/// unique), `tool` be the canonical `plugin.function`.
#[derive(Debug, Clone, Copy)]
pub struct AnswerKey<'a> {
    pub principal: &'a str,
    pub tool: &'a str,
    pub key: &'a str,
}

/// Where answers are kept. Writes are durable when they return.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn answer(&self, key: &AnswerKey<'_>) -> Result<Option<Answer>, StorageError>;
    /// Keep `answer` for `key`; with `only_if_absent`, an answer already
    /// there stays. Whether it wrote.
    async fn keep(&self, key: &AnswerKey<'_>, answer: &Answer, only_if_absent: bool) -> Result<bool, StorageError>;
    /// Delete answers stored before `stored_before` (Unix seconds); how many went.
    async fn sweep(&self, stored_before: u64) -> Result<usize, StorageError>;
    /// Claim `key` for a first call that this node runs now, until `until`
    /// (Unix ms), so that a retry on another node is told it is in flight.
    /// Refused (false) while another node's claim that has not run out holds
    /// it, or while an answer stored at or after `fresh_since` (Unix
    /// seconds) is there. A store that one process owns has nothing to add
    /// to the claim the process keeps in memory.
    async fn claim(&self, key: &AnswerKey<'_>, fresh_since: u64, until: u64) -> Result<bool, StorageError>;
    /// Give up this node's claim on `key` (its call ended with no answer to
    /// keep, or before it ran).
    async fn release(&self, key: &AnswerKey<'_>) -> Result<(), StorageError>;
}
