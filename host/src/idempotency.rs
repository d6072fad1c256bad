//! `Idempotency-Key`: a retried call returns the first call's answer instead
//! of running again. Answers are kept in sled per (principal, canonical
//! tool, key) for a retention period (a day by default) and swept after it;
//! a retry that arrives while the first call still runs is told so (409)
//! instead of running the call a second time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError};

/// How long an answer is replayed when the operator sets nothing.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
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

/// Keys whose first call is running now, shared with the claims that
/// release them.
type InFlight = Arc<Mutex<HashSet<Vec<u8>>>>;

pub struct Idempotency {
    tree: sled::Tree,
    storage: Storage,
    retention: Duration,
    in_flight: InFlight,
}

/// What to do with a request that carries a key.
pub enum Lookup {
    /// First time: run it, then `store` the answer.
    Run(Claim),
    Replay(Stored),
    /// Same key, other arguments.
    Mismatch,
    /// The first call with this key is still running.
    InFlight,
}

/// The right to run the call for a key; retries see `InFlight` until it is
/// stored or dropped.
pub struct Claim {
    id: Vec<u8>,
    in_flight: InFlight,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn arguments_digest(args: &Value) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(args).unwrap_or_default()))
}

/// `principal` must identify one caller (token names are unique), `tool`
/// be the canonical `plugin.function`.
fn entry_id(principal: &str, tool: &str, key: &str) -> Vec<u8> {
    format!("{principal}\u{0}{tool}\u{0}{key}").into_bytes()
}

impl Idempotency {
    pub fn open(storage: &Storage, retention: Duration) -> Result<Idempotency, StorageError> {
        Ok(Idempotency {
            tree: storage.db().open_tree("idempotency")?,
            storage: storage.clone(),
            retention,
            in_flight: InFlight::default(),
        })
    }

    fn fresh(&self, stored: &Stored) -> bool {
        now().saturating_sub(stored.at) < self.retention.as_secs()
    }

    pub fn lookup(&self, principal: &str, tool: &str, key: &str, args: &Value) -> sled::Result<Lookup> {
        let id = entry_id(principal, tool, key);
        // Held while looking, so that two retries cannot both claim the key.
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight.contains(&id) {
            return Ok(Lookup::InFlight);
        }
        if let Some(bytes) = self.tree.get(&id)? {
            if let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) {
                if self.fresh(&stored) {
                    return Ok(if stored.arguments == arguments_digest(args) {
                        Lookup::Replay(stored)
                    } else {
                        Lookup::Mismatch
                    });
                }
            }
        }
        in_flight.insert(id.clone());
        Ok(Lookup::Run(Claim {
            id,
            in_flight: self.in_flight.clone(),
        }))
    }

    /// Keep the answer, durably, then let retries see it.
    pub async fn store(&self, claim: Claim, status: u16, body: &Value, args: &Value) -> Result<(), StorageError> {
        self.put(&claim.id, status, body, arguments_digest(args))?;
        self.storage.flush().await?;
        drop(claim);
        Ok(())
    }

    fn put(&self, id: &[u8], status: u16, body: &Value, arguments: String) -> Result<(), StorageError> {
        let stored = Stored {
            status,
            body: body.clone(),
            arguments,
            at: now(),
        };
        self.tree.insert(id, serde_json::to_vec(&stored).unwrap_or_default())?;
        Ok(())
    }

    /// Keep `body` as the answer for a key whose call a stop cut short, so
    /// that a retry is told what happened instead of running it again. An
    /// answer already stored for the key stays.
    pub async fn settle(
        &self,
        principal: &str,
        tool: &str,
        key: &str,
        arguments: String,
        status: u16,
        body: &Value,
    ) -> Result<(), StorageError> {
        let id = entry_id(principal, tool, key);
        if self.tree.get(&id)?.is_none() {
            self.put(&id, status, body, arguments)?;
            self.storage.flush().await?;
        }
        Ok(())
    }

    /// Delete answers past their retention; how many went.
    pub fn sweep(&self) -> Result<usize, StorageError> {
        let mut swept = 0;
        for entry in self.tree.iter() {
            let (id, bytes) = entry?;
            let expired = serde_json::from_slice::<Stored>(&bytes).map_or(true, |s| !self.fresh(&s));
            if expired {
                self.tree.remove(&id)?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// How often to sweep: often enough that an entry outlives its
    /// retention by at most half of it, and never more than every second
    /// or less than every ten minutes.
    pub fn sweep_interval(&self) -> Duration {
        (self.retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(600))
    }

    /// Sweep every `sweep_interval` for as long as `self` lives.
    pub fn spawn_sweeper(self: &Arc<Idempotency>) {
        let weak = Arc::downgrade(self);
        let every = self.sweep_interval();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(this) = weak.upgrade() else { break };
                match tokio::task::spawn_blocking(move || this.sweep()).await {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(swept = n, "idempotency: expired answers deleted"),
                    Ok(Err(e)) => tracing::error!("idempotency sweep: {e}"),
                    _ => {}
                }
            }
        });
    }
}
