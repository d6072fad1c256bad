//! The embedded backend: one sled database, one tree per store (and one
//! per connector for its kv), made durable by group commit ([`commit`]).

mod commit;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::approvals::ApprovalStore;
use super::audit::{AuditQuery, AuditStore, Mark};
use super::idempotency::{Answer, AnswerKey, IdempotencyStore};
use super::kv::{self, KvRefusal, KvSpace, KvStore};
use super::runs::RunStore;
use super::{Backend, HistoryStore, OperatorStore, StorageError};
use crate::config::approvals::ApprovalConfig;
use crate::config::grants::PluginPolicy;
use crate::model::approval::{Approval, ApprovalState};
use crate::model::audit::AuditRecord;
use crate::model::run::{Run, Step};
use crate::model::version::VersionEntry;
use commit::GroupCommit;

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Backend(e.to_string())
    }
}

/// Pages sled keeps in memory. Its default, 1 GiB, let a busy host grow
/// toward that as the audit trail grew (host/benches/load.sh: peak RSS past
/// 1.1 GiB after about a million calls); what is hot (kv, grants, the newest
/// audit records) fits in far less.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub struct SledBackend {
    db: sled::Db,
    commit: Arc<GroupCommit>,
    spaces: Mutex<HashMap<String, Arc<SledSpace>>>,
    audit: sled::Tree,
    /// Ids of audit records written as `running`: calls that started
    /// changing things and have not finished. What is left here at start
    /// belongs to calls a crash cut short.
    audit_running: sled::Tree,
    idempotency: sled::Tree,
    grants: sled::Tree,
    disabled: sled::Tree,
    history: sled::Tree,
    /// Approvals, and the ids of those still open (the sweep and a
    /// restart read only these).
    approvals: Indexed,
    /// Workflow runs, and the ids of those still open (a restart resumes
    /// them).
    runs: Indexed,
    /// Runs' steps, keyed by run id and step number.
    run_steps: sled::Tree,
    /// Single values the operator set (the approval rules).
    settings: sled::Tree,
}

const APPROVAL_RULES: &str = "approval-rules";

impl SledBackend {
    pub fn open(dir: &Path) -> Result<SledBackend, StorageError> {
        let failed = |e: &dyn std::fmt::Display| StorageError::Open {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        // A host that is just shutting down (or a test that restarts one)
        // still holds the file lock for a moment after its last handle is
        // dropped, until sled's flusher thread has finished: wait for it.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(failed(&e)),
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(|e| failed(&e));
        Ok(SledBackend {
            commit: Arc::new(GroupCommit::start(db.clone()).map_err(|e| failed(&e))?),
            spaces: Mutex::default(),
            audit: tree("audit")?,
            audit_running: tree("audit-open")?,
            idempotency: tree("idempotency")?,
            grants: tree("grants")?,
            disabled: tree("disabled")?,
            history: tree("plugins")?,
            approvals: Indexed {
                records: tree("approvals")?,
                open: tree("approvals-open")?,
            },
            runs: Indexed {
                records: tree("runs")?,
                open: tree("runs-open")?,
            },
            run_steps: tree("run-steps")?,
            settings: tree("settings")?,
            db,
        })
    }

    async fn durable(&self) -> Result<(), StorageError> {
        self.commit.flush().await.map_err(StorageError::Backend)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        what,
        message: e.to_string(),
    })
}

#[async_trait]
impl Backend for SledBackend {
    /// One process owns the database (sled locks it).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<super::Change>> {
        None
    }

    fn node(&self) -> &str {
        "local"
    }

    async fn status(&self) -> Result<Option<super::PoolStatus>, StorageError> {
        Ok(None)
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.durable().await
    }
}

impl KvStore for SledBackend {
    fn space(&self, plugin: &str) -> Result<Arc<dyn KvSpace>, StorageError> {
        let mut spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(space) = spaces.get(plugin) {
            return Ok(space.clone());
        }
        let tree = self.db.open_tree(format!("kv/{plugin}"))?;
        // Count once what the tree holds; every write keeps it current.
        let mut used = 0u64;
        for entry in tree.iter() {
            let (k, v) = entry?;
            used += (k.len() + v.len()) as u64;
        }
        let space = Arc::new(SledSpace {
            tree,
            used: Mutex::new(used),
            commit: self.commit.clone(),
        });
        spaces.insert(plugin.to_string(), space.clone());
        Ok(space)
    }
}

/// One plugin's keys and values, and the bytes they take.
struct SledSpace {
    tree: sled::Tree,
    /// Bytes of keys plus values. Writes take this lock so that two calls
    /// cannot both squeeze under the quota.
    used: Mutex<u64>,
    commit: Arc<GroupCommit>,
}

fn internal(e: sled::Error) -> KvRefusal {
    KvRefusal::Internal(e.to_string())
}

#[async_trait]
impl KvSpace for SledSpace {
    fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvRefusal> {
        Ok(self.tree.get(key).map_err(internal)?.map(|v| v.to_vec()))
    }

    async fn put(&self, key: &str, value: &[u8], quota: u64, only_if_absent: bool) -> Result<bool, KvRefusal> {
        kv::check_sizes(key, value)?;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.tree.get(key).map_err(internal)?;
        if only_if_absent && old.is_some() {
            return Ok(false);
        }
        let new_used = kv::check_write(*used, old.map(|v| v.len()), key, value, quota)?;
        self.tree.insert(key, value).map_err(internal)?;
        *used = new_used;
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool, KvRefusal> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        match self.tree.remove(key).map_err(internal)? {
            Some(old) => {
                *used -= (key.len() + old.len()) as u64;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvRefusal> {
        let mut keys = Vec::new();
        for entry in self
            .tree
            .scan_prefix(prefix)
            .keys()
            .take(limit.min(kv::MAX_LISTED) as usize)
        {
            let key = entry.map_err(internal)?;
            keys.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(keys)
    }

    async fn flush(&self) -> Result<(), KvRefusal> {
        self.commit.flush().await.map_err(KvRefusal::Internal)
    }
}

#[async_trait]
impl AuditStore for SledBackend {
    /// One node.
    fn id_slot(&self) -> u8 {
        0
    }

    fn last_id(&self) -> Result<u64, StorageError> {
        Ok(match self.audit.last()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        })
    }

    async fn put(&self, id: u64, record: &AuditRecord, mark: Mark) -> Result<(), StorageError> {
        let key = id.to_be_bytes();
        self.audit.insert(key, to_json(record))?;
        match mark {
            Mark::Running => {
                self.audit_running.insert(key, &[])?;
            }
            Mark::Closed => {
                self.audit_running.remove(key)?;
            }
            Mark::None => {}
        }
        self.durable().await
    }

    fn running(&self) -> Result<Vec<(u64, AuditRecord)>, StorageError> {
        let mut running = Vec::new();
        for entry in self.audit_running.iter() {
            let (key, _) = entry?;
            let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            let record = self.audit.get(&key)?.and_then(|b| serde_json::from_slice(&b).ok());
            match record {
                Some(record) => running.push((id, record)),
                // Noted but not there or unreadable: nothing to close.
                None => {
                    self.audit_running.remove(&key)?;
                }
            }
        }
        Ok(running)
    }

    fn close_at_start(&self, records: &[(u64, AuditRecord)]) -> Result<(), StorageError> {
        for (id, record) in records {
            let key = id.to_be_bytes();
            self.audit.insert(key, to_json(record))?;
            self.audit_running.remove(key)?;
        }
        self.db.flush()?;
        Ok(())
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StorageError> {
        let mut records = Vec::new();
        let needles: Vec<memchr::memmem::Finder<'static>> = query
            .needles()
            .iter()
            .map(|n| memchr::memmem::Finder::new(n).into_owned())
            .collect();
        let range = self.audit.range(query.after.to_be_bytes()..query.before.to_be_bytes());
        for entry in range.rev() {
            let (_, bytes) = entry?;
            // Most records of a filtered search are skipped here, unparsed.
            if !needles.iter().all(|n| n.find(&bytes).is_some()) {
                continue;
            }
            // A record that does not parse is skipped, not a failed query.
            let Ok(record) = serde_json::from_slice::<AuditRecord>(&bytes) else {
                continue;
            };
            if query.matches(&record) {
                records.push(record);
                if records.len() == query.limit {
                    break;
                }
            }
        }
        Ok(records)
    }
    async fn remove_before(&self, id: u64) -> Result<usize, StorageError> {
        let (audit, running) = (self.audit.clone(), self.audit_running.clone());
        let removed = tokio::task::spawn_blocking(move || -> Result<usize, StorageError> {
            // In batches from a cursor, so a long trail is never held in
            // memory at once and a batch of running calls cannot stall it.
            const BATCH: usize = 1000;
            let (mut removed, mut from) = (0, 0u64);
            loop {
                let mut batch = sled::Batch::default();
                let mut seen = 0;
                for entry in audit.range(from.to_be_bytes()..id.to_be_bytes()).take(BATCH) {
                    let (key, _) = entry?;
                    seen += 1;
                    from = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0xff; 8])).saturating_add(1);
                    if !running.contains_key(&key)? {
                        batch.remove(key);
                        removed += 1;
                    }
                }
                audit.apply_batch(batch)?;
                if seen < BATCH {
                    return Ok(removed);
                }
            }
        })
        .await
        .map_err(|e| StorageError::Backend(format!("sweeping the audit trail: {e}")))??;
        self.durable().await?;
        Ok(removed)
    }
}

fn answer_key(key: &AnswerKey<'_>) -> Vec<u8> {
    format!("{}\u{0}{}\u{0}{}", key.principal, key.tool, key.key).into_bytes()
}

#[async_trait]
impl IdempotencyStore for SledBackend {
    async fn answer(&self, key: &AnswerKey<'_>) -> Result<Option<Answer>, StorageError> {
        match self.idempotency.get(answer_key(key))? {
            // An answer that no longer parses is treated as none: the call runs.
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            None => Ok(None),
        }
    }

    async fn keep(&self, key: &AnswerKey<'_>, answer: &Answer, only_if_absent: bool) -> Result<bool, StorageError> {
        let id = answer_key(key);
        let bytes = to_json(answer);
        let wrote = if only_if_absent {
            self.idempotency
                .compare_and_swap(&id, None as Option<&[u8]>, Some(bytes))?
                .is_ok()
        } else {
            self.idempotency.insert(&id, bytes)?;
            true
        };
        if wrote {
            self.durable().await?;
        }
        Ok(wrote)
    }

    /// One process: the claim it keeps in memory is the whole claim.
    async fn claim(&self, _key: &AnswerKey<'_>, _fresh_since: u64, _until: u64) -> Result<bool, StorageError> {
        Ok(true)
    }

    async fn release(&self, _key: &AnswerKey<'_>) -> Result<(), StorageError> {
        Ok(())
    }

    async fn sweep(&self, stored_before: u64) -> Result<usize, StorageError> {
        let tree = self.idempotency.clone();
        let sweep = move || -> Result<usize, StorageError> {
            let mut swept = 0;
            for entry in tree.iter() {
                let (id, bytes) = entry?;
                let expired = serde_json::from_slice::<Answer>(&bytes).map_or(true, |a| a.at < stored_before);
                if expired {
                    tree.remove(&id)?;
                    swept += 1;
                }
            }
            Ok(swept)
        };
        // A full scan: off the async threads.
        tokio::task::spawn_blocking(sweep)
            .await
            .map_err(|e| StorageError::Backend(format!("sweep task: {e}")))?
    }
}

#[async_trait]
impl OperatorStore for SledBackend {
    fn grants(&self) -> Result<Vec<(String, PluginPolicy)>, StorageError> {
        let mut grants = Vec::new();
        for entry in self.grants.iter() {
            let (name, value) = entry?;
            let name = String::from_utf8_lossy(&name).into_owned();
            match serde_json::from_slice::<PluginPolicy>(&value) {
                Ok(grant) => grants.push((name, grant)),
                Err(e) => tracing::error!(plugin = %name, "ignoring a stored grant that no longer parses: {e}"),
            }
        }
        Ok(grants)
    }

    async fn set_grant(&self, plugin: &str, grant: &PluginPolicy) -> Result<(), StorageError> {
        self.grants.insert(plugin, to_json(&grant.stored()))?;
        self.durable().await
    }

    async fn remove_grant(&self, plugin: &str) -> Result<(), StorageError> {
        self.grants.remove(plugin)?;
        self.durable().await
    }

    fn disabled(&self) -> Result<Vec<String>, StorageError> {
        self.disabled
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    async fn set_disabled(&self, plugin: &str, disabled: bool) -> Result<(), StorageError> {
        if disabled {
            self.disabled.insert(plugin, b"".as_slice())?;
        } else {
            self.disabled.remove(plugin)?;
        }
        self.durable().await
    }

    async fn approval_rules(&self) -> Result<Option<ApprovalConfig>, StorageError> {
        match self.settings.get(APPROVAL_RULES)? {
            Some(bytes) => from_json("approval rules", &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn set_approval_rules(&self, rules: &ApprovalConfig) -> Result<(), StorageError> {
        self.settings.insert(APPROVAL_RULES, to_json(rules))?;
        self.durable().await
    }

    async fn operator_state(&self, plugin: &str) -> Result<(Option<PluginPolicy>, bool), StorageError> {
        let grant = match self.grants.get(plugin)? {
            Some(bytes) => Some(from_json("grant", &bytes)?),
            None => None,
        };
        Ok((grant, self.disabled.contains_key(plugin)?))
    }
}

/// Records by time-ordered id, with an index of the ids still open: what
/// approvals and runs both need.
struct Indexed {
    records: sled::Tree,
    open: sled::Tree,
}

impl Indexed {
    fn put(&self, id: &str, bytes: &[u8], open: bool) -> Result<(), StorageError> {
        self.put_if(id, bytes, open, |_| true).map(drop)
    }

    /// `put`, only if `still` passes the record stored now (`None`: none),
    /// checked in the same transaction. Whether it did. The record and the
    /// index change together, or neither does.
    fn put_if(
        &self,
        id: &str,
        bytes: &[u8],
        open: bool,
        still: impl Fn(Option<&[u8]>) -> bool,
    ) -> Result<bool, StorageError> {
        use sled::transaction::ConflictableTransactionError::Abort;
        use sled::Transactional;
        let key = id.as_bytes();
        let outcome = (&self.records, &self.open).transaction(|(records, index)| {
            if !still(records.get(key)?.as_deref()) {
                return Err(Abort(()));
            }
            records.insert(key, bytes)?;
            if open {
                index.insert(key, &[])?;
            } else {
                index.remove(key)?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(true),
            Err(sled::transaction::TransactionError::Abort(())) => Ok(false),
            Err(e) => Err(StorageError::Backend(format!("{e:?}"))),
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, what: &'static str, id: &str) -> Result<Option<T>, StorageError> {
        match self.records.get(id)? {
            Some(bytes) => from_json(what, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The open records, oldest first.
    fn open<T: serde::de::DeserializeOwned>(&self, what: &'static str) -> Result<Vec<T>, StorageError> {
        let mut open = Vec::new();
        for key in self.open.iter().keys() {
            let key = key?;
            match self.records.get(&key)? {
                Some(bytes) => open.push(from_json(what, &bytes)?),
                None => {
                    self.open.remove(&key)?;
                }
            }
        }
        Ok(open)
    }

    /// Records with ids below `before`, newest first.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>, StorageError> {
        let range = match before {
            Some(b) => self.records.range(..b.as_bytes().to_vec()),
            None => self.records.range::<Vec<u8>, _>(..),
        };
        let mut out = Vec::new();
        for entry in range.rev().take(limit) {
            let (_, bytes) = entry?;
            out.push(from_json(what, &bytes)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl ApprovalStore for SledBackend {
    async fn put_approval(&self, approval: &Approval) -> Result<(), StorageError> {
        self.approvals
            .put(&approval.id, &to_json(approval), approval.state.is_open())?;
        self.durable().await
    }

    async fn update_approval(
        &self,
        approval: &Approval,
        from: ApprovalState,
        decisions: usize,
    ) -> Result<bool, StorageError> {
        let still = |stored: Option<&[u8]>| {
            stored
                .and_then(|s| serde_json::from_slice::<Approval>(s).ok())
                .is_some_and(|s| s.state == from && s.decisions.len() == decisions)
        };
        let updated = self
            .approvals
            .put_if(&approval.id, &to_json(approval), approval.state.is_open(), still)?;
        if updated {
            self.durable().await?;
        }
        Ok(updated)
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, StorageError> {
        self.approvals.get("approval", id)
    }

    async fn open_approvals(&self) -> Result<Vec<Approval>, StorageError> {
        self.approvals.open("approval")
    }

    async fn approvals(&self, before: Option<&str>, limit: usize) -> Result<Vec<Approval>, StorageError> {
        self.approvals.page("approval", before, limit)
    }
}

/// A step's key in `run-steps`: the run id, a separator no id contains, the
/// step number big-endian (so a prefix scan returns them in order).
fn step_key(run: &str, seq: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(run.len() + 5);
    key.extend_from_slice(run.as_bytes());
    key.push(b'/');
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

#[async_trait]
impl RunStore for SledBackend {
    async fn put_run(&self, run: &Run) -> Result<(), StorageError> {
        self.runs.put(&run.id, &to_json(run), run.state.is_open())?;
        self.durable().await
    }

    async fn run(&self, id: &str) -> Result<Option<Run>, StorageError> {
        self.runs.get("run", id)
    }

    async fn open_runs(&self) -> Result<Vec<Run>, StorageError> {
        self.runs.open("run")
    }

    async fn runs(&self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, StorageError> {
        self.runs.page("run", before, limit)
    }

    async fn put_step(&self, run: &str, step: &Step) -> Result<(), StorageError> {
        self.run_steps.insert(step_key(run, step.seq), to_json(step))?;
        self.durable().await
    }

    /// One process drives every run of this store.
    async fn lease_run(&self, _id: &str, _node: &str, _until: u64) -> Result<bool, StorageError> {
        Ok(true)
    }

    async fn steps(&self, run: &str) -> Result<Vec<Step>, StorageError> {
        let mut prefix = run.as_bytes().to_vec();
        prefix.push(b'/');
        let mut steps = Vec::new();
        for entry in self.run_steps.scan_prefix(prefix) {
            let (_, bytes) = entry?;
            steps.push(from_json("run step", &bytes)?);
        }
        Ok(steps)
    }
}

#[async_trait]
impl HistoryStore for SledBackend {
    async fn history(&self, plugin: &str) -> Result<Vec<VersionEntry>, StorageError> {
        match self.history.get(plugin)? {
            Some(bytes) => from_json("version history", &bytes),
            None => Ok(Vec::new()),
        }
    }

    async fn set_history(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), StorageError> {
        self.history.insert(plugin, to_json(&history))?;
        self.durable().await
    }

    async fn plugins(&self) -> Result<Vec<String>, StorageError> {
        self.history
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// The archive folder is the only copy one node needs.
    async fn put_bundle(&self, _archive: &str, _files: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        Ok(())
    }

    async fn bundle(&self, _archive: &str) -> Result<Option<Vec<(String, Vec<u8>)>>, StorageError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quota_counts_keys_and_values_and_survives_reopen() {
        let dir = tempdir();
        {
            let backend = SledBackend::open(&dir).unwrap();
            let kv = backend.space("p").unwrap();
            assert!(kv.put("a", &[0; 40], 100, false).await.unwrap());
            assert!(kv.put("b", &[0; 40], 100, false).await.unwrap());
            assert!(matches!(
                kv.put("c", &[0; 40], 100, false).await,
                Err(KvRefusal::QuotaExceeded(_))
            ));
            // Replacing with something smaller is always allowed.
            assert!(kv.put("a", &[0; 10], 100, false).await.unwrap());
            assert_eq!(kv.used(), 11 + 41);
            assert!(!kv.put("a", b"x", 100, true).await.unwrap());
            assert!(kv.delete("b").await.unwrap());
            assert_eq!(kv.used(), 11);
            kv.flush().await.unwrap();
        }
        let backend = SledBackend::open(&dir).unwrap();
        assert_eq!(backend.space("p").unwrap().used(), 11);
        assert_eq!(backend.space("p").unwrap().list_keys("", 10).await.unwrap(), vec!["a"]);
    }

    pub(super) fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "toolhost-storage-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
