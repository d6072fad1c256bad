//! `Idempotency-Key`: a retried call returns the first call's answer instead
//! of running again. Answers are kept in storage per (principal, canonical
//! tool, key) for a retention period (a day by default) and swept after it;
//! a retry that arrives while the first call still runs is told so (409)
//! instead of running the call a second time. On one node the running
//! calls' claims are kept in memory; nodes sharing a store also claim the
//! key there, so a retry on another node is told the same.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::model::digest::arguments_digest;
use crate::model::time::{now_ms, now_secs};
use crate::storage::idempotency::{Answer, AnswerKey};
use crate::storage::{Storage, StorageError};

/// How long an answer is replayed when the operator sets nothing.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 200;
/// How long a node's claim on a key holds in a store that nodes share: a
/// node that dies in the middle of a call keeps retries out until it starts
/// again (and answers them `interrupted`) or this passes. Longer than any
/// call runs.
pub const CLAIM_LEASE: Duration = Duration::from_secs(600);

/// Keys whose first call is running now (on this host), shared with the
/// claims that release them.
type InFlight = Arc<Mutex<HashSet<Vec<u8>>>>;

pub struct Idempotency {
    storage: Storage,
    retention: Duration,
    in_flight: InFlight,
    /// Whether other nodes share the store (claims are then kept there too).
    shared: bool,
}

/// What to do with a request that carries a key.
pub enum Lookup {
    /// First time: run it, then `store` the answer.
    Run(Claim),
    Replay(Answer),
    /// Same key, other arguments.
    Mismatch,
    /// The first call with this key is still running.
    InFlight,
}

/// The right to run the call for a key; retries see `InFlight` until it is
/// stored or dropped.
pub struct Claim {
    id: Vec<u8>,
    principal: String,
    tool: String,
    key: String,
    in_flight: InFlight,
    /// The shared store holding this node's claim, until an answer is kept.
    stored: Option<Storage>,
}

impl Claim {
    fn key(&self) -> AnswerKey<'_> {
        AnswerKey {
            principal: &self.principal,
            tool: &self.tool,
            key: &self.key,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        // No answer was kept: let other nodes' retries run it.
        if let (Some(storage), Ok(runtime)) = (self.stored.take(), tokio::runtime::Handle::try_current()) {
            let (principal, tool, key) = (self.principal.clone(), self.tool.clone(), self.key.clone());
            runtime.spawn(async move {
                let key = AnswerKey {
                    principal: &principal,
                    tool: &tool,
                    key: &key,
                };
                if let Err(e) = storage.idempotency().release(&key).await {
                    tracing::warn!("idempotency: a claim could not be released ({e}); it runs out by itself");
                }
            });
        }
    }
}

impl Idempotency {
    pub fn open(storage: &Storage, retention: Duration) -> Idempotency {
        Idempotency {
            storage: storage.clone(),
            retention,
            in_flight: InFlight::default(),
            shared: storage.is_shared(),
        }
    }

    fn fresh(&self, answer: &Answer) -> bool {
        now_secs().saturating_sub(answer.at) < self.retention.as_secs()
    }

    pub async fn lookup(&self, principal: &str, tool: &str, key: &str, args: &Value) -> Result<Lookup, StorageError> {
        // Claimed before looking, so that two retries cannot both run it;
        // one that arrives while this looks is told the call is in flight.
        let claim = {
            let id = format!("{principal}\u{0}{tool}\u{0}{key}").into_bytes();
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !in_flight.insert(id.clone()) {
                return Ok(Lookup::InFlight);
            }
            Claim {
                id,
                principal: principal.to_string(),
                tool: tool.to_string(),
                key: key.to_string(),
                in_flight: self.in_flight.clone(),
                stored: None,
            }
        };
        if let Some(found) = self.replay(&claim, args).await? {
            return Ok(found);
        }
        if self.shared {
            // Other nodes see the claim too; one of them may hold it, or
            // have just kept an answer.
            let fresh_since = now_secs().saturating_sub(self.retention.as_secs());
            let until = now_ms() + CLAIM_LEASE.as_millis() as u64;
            if !self
                .storage
                .idempotency()
                .claim(&claim.key(), fresh_since, until)
                .await?
            {
                return Ok(self.replay(&claim, args).await?.unwrap_or(Lookup::InFlight));
            }
            let mut claim = claim;
            claim.stored = Some(self.storage.clone());
            return Ok(Lookup::Run(claim));
        }
        Ok(Lookup::Run(claim))
    }

    /// The answer kept for `claim`'s key, if one is fresh.
    async fn replay(&self, claim: &Claim, args: &Value) -> Result<Option<Lookup>, StorageError> {
        Ok(match self.storage.idempotency().answer(&claim.key()).await? {
            Some(answer) if self.fresh(&answer) => Some(if answer.arguments == arguments_digest(args) {
                Lookup::Replay(answer)
            } else {
                Lookup::Mismatch
            }),
            _ => None,
        })
    }

    /// Keep the answer, durably, then let retries see it.
    pub async fn store(&self, claim: Claim, status: u16, body: &Value, args: &Value) -> Result<(), StorageError> {
        let answer = Answer {
            status,
            body: body.clone(),
            arguments: arguments_digest(args),
            at: now_secs(),
        };
        let mut claim = claim;
        self.storage.idempotency().keep(&claim.key(), &answer, false).await?;
        // Keeping the answer ended the stored claim.
        claim.stored = None;
        drop(claim);
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
        let answer = Answer {
            status,
            body: body.clone(),
            arguments,
            at: now_secs(),
        };
        let key = AnswerKey { principal, tool, key };
        self.storage.idempotency().keep(&key, &answer, true).await?;
        Ok(())
    }

    /// Delete answers past their retention; how many went.
    pub async fn sweep(&self) -> Result<usize, StorageError> {
        let cutoff = now_secs().saturating_sub(self.retention.as_secs());
        self.storage.idempotency().sweep(cutoff).await
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
                match this.sweep().await {
                    Ok(n) if n > 0 => tracing::debug!(swept = n, "idempotency: expired answers deleted"),
                    Err(e) => tracing::error!("idempotency sweep: {e}"),
                    _ => {}
                }
            }
        });
    }
}
