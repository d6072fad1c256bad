//! Where the audit trail is kept ([`AuditStore`]) and how a store is asked
//! for records ([`AuditQuery`]). The recording service (ids, redaction,
//! bounds) sits above, in the `audit` folder.

use async_trait::async_trait;
use serde::Serialize;

use crate::model::audit::{Action, AuditRecord, Outcome, Via};
use crate::storage::StorageError;

/// What a write does to a record's note of being `running` (a call in
/// flight that has begun to change things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// No note, and none to clear.
    None,
    /// Note it: if the host stops now, the record is closed as
    /// `interrupted` at the next start.
    Running,
    /// Clear the note: the call is over.
    Closed,
}

/// A query as a store runs it: ids in `after..before`, newest first, the
/// first `limit` that match.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub after: u64,
    pub before: u64,
    pub limit: usize,
    pub tool: Option<String>,
    pub via: Option<Via>,
    pub outcome: Option<Outcome>,
    pub session: Option<String>,
    pub token: Option<String>,
    pub approval: Option<String>,
    pub run: Option<String>,
    pub action: Option<Action>,
}

impl AuditQuery {
    /// What a stored record's JSON must contain to pass the field filters:
    /// each wanted field as `"name":value`, as serde_json writes it (no
    /// spaces, the same escaping). A store may skip a record missing any of
    /// them without parsing it; one containing them all may still not match
    /// (the text can occur inside the arguments), so `matches` decides.
    pub fn needles(&self) -> Vec<Vec<u8>> {
        fn field(name: &str, value: &impl Serialize) -> Vec<u8> {
            format!("\"{name}\":{}", serde_json::to_string(value).unwrap_or_default()).into_bytes()
        }
        let texts = [
            ("tool", &self.tool),
            ("session", &self.session),
            ("token", &self.token),
            ("approval", &self.approval),
            ("run", &self.run),
        ];
        let texts = texts.iter().filter_map(|(name, v)| v.as_ref().map(|v| field(name, v)));
        let outcome = self.outcome.map(|o| field("outcome", &o));
        let via = self.via.map(|v| field("via", &v));
        let action = self.action.map(|a| field("action", &a));
        texts.chain(outcome).chain(via).chain(action).collect()
    }

    /// Whether `record` passes the query's field filters (the id range is
    /// the store's to apply).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let matches = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
        matches(&self.tool, Some(&record.tool))
            && self.via.is_none_or(|v| v == record.via)
            && self.outcome.is_none_or(|o| o == record.outcome)
            && matches(&self.session, record.session.as_deref())
            && matches(&self.token, record.token.as_deref())
            && matches(&self.approval, record.approval.as_deref())
            && matches(&self.run, record.run.as_deref())
            && self.action.is_none_or(|a| Some(a) == record.action)
    }
}

/// Where the audit trail is kept. Writes are durable when they return.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// The highest id stored (0 when none), so that ids keep increasing
    /// across restarts even if the clock steps back.
    fn last_id(&self) -> Result<u64, StorageError>;
    /// This node's number among those sharing the store (0 to 255): the low
    /// byte of every id it makes, so that nodes never make the same id.
    fn id_slot(&self) -> u8;
    /// Store `record` under `id` (replacing what was there) and apply `mark`.
    async fn put(&self, id: u64, record: &AuditRecord, mark: Mark) -> Result<(), StorageError>;
    /// Records still noted `running`: at start, the calls a stop cut short.
    fn running(&self) -> Result<Vec<(u64, AuditRecord)>, StorageError>;
    /// At start, before any call: store these records and clear their
    /// `running` notes, durably.
    fn close_at_start(&self, records: &[(u64, AuditRecord)]) -> Result<(), StorageError>;
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StorageError>;
    /// Delete the records with ids below `id` (made before a time), except
    /// those still noted `running`; how many went.
    async fn remove_before(&self, id: u64) -> Result<usize, StorageError>;
}
