//! `Idempotency-Key`: a retried call returns the first call's answer instead
//! of running again. Answers are kept in sled per (token, tool, key) for a
//! day; concurrent retries of one key wait for the first to finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError};

/// How long an answer is replayed.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 200;

/// A stored answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub status: u16,
    pub body: Value,
    /// SHA-256 of the arguments, so a key reused for other arguments is
    /// caught instead of answered with an unrelated result.
    pub arguments: String,
    pub at: u64,
}

pub struct Idempotency {
    tree: sled::Tree,
    storage: Storage,
    in_progress: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

/// What to do with a request that carries a key.
pub enum Lookup {
    /// First time: run it, then `store` the answer (the guard keeps retries waiting).
    Run(Guard),
    Replay(Stored),
    /// Same key, other arguments.
    Mismatch,
}

pub struct Guard {
    key: Vec<u8>,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn arguments_digest(args: &Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(args).unwrap_or_default()))
}

impl Idempotency {
    pub fn open(storage: &Storage) -> Result<Idempotency, StorageError> {
        Ok(Idempotency {
            tree: storage.db().open_tree("idempotency")?,
            storage: storage.clone(),
            in_progress: Mutex::default(),
        })
    }

    pub async fn lookup(&self, token: &str, tool: &str, key: &str, args: &Value) -> sled::Result<Lookup> {
        let id = format!("{token}\u{0}{tool}\u{0}{key}").into_bytes();
        let lock = {
            let mut map = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(id.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        if let Some(bytes) = self.tree.get(&id)? {
            if let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) {
                if now().saturating_sub(stored.at) < RETENTION.as_secs() {
                    return Ok(if stored.arguments == arguments_digest(args) {
                        Lookup::Replay(stored)
                    } else {
                        Lookup::Mismatch
                    });
                }
            }
        }
        Ok(Lookup::Run(Guard { key: id, _lock: guard }))
    }

    /// Keep the answer, durably, then let waiting retries see it.
    pub async fn store(&self, guard: Guard, status: u16, body: &Value, args: &Value) -> Result<(), StorageError> {
        let stored = Stored {
            status,
            body: body.clone(),
            arguments: arguments_digest(args),
            at: now(),
        };
        self.tree
            .insert(&guard.key, serde_json::to_vec(&stored).unwrap_or_default())?;
        self.storage.flush().await?;
        Ok(())
    }
}
