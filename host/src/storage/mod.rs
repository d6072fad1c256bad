//! What the host keeps, behind one seam: connectors' kv spaces ([`kv`]),
//! the audit trail ([`audit`]), idempotency answers ([`idempotency`]), the
//! operator's grants, disabled plugins and approval rules, each plugin's
//! version history, held calls ([`approvals`]) and workflow runs ([`runs`]).
//! Each is a trait; a backend implements them all ([`Backend`]). [`sled`] is
//! the embedded default, owned by one process; [`postgres`] is shared by
//! several nodes, which hear of each other's changes through
//! [`Backend::changes`]. Nothing on the call path changes with the backend.
//!
//! One durability rule for every backend: a write is durable when the
//! method returns, except kv writes, which are durable at the space's
//! `flush` (a call that wrote several keys waits for storage once).

pub mod approvals;
pub mod audit;
pub mod idempotency;
pub mod kv;
pub mod postgres;
pub mod runs;
pub mod sled;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::approvals::ApprovalConfig;
use crate::config::grants::PluginPolicy;
use crate::model::version::VersionEntry;
use approvals::ApprovalStore;
use audit::AuditStore;
use idempotency::IdempotencyStore;
use kv::KvStore;
use runs::RunStore;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage at {path}: {message}")]
    Open { path: String, message: String },
    #[error("storage: {0}")]
    Backend(String),
    #[error("storage: {0}")]
    Config(String),
    #[error("storage: a stored {what} does not parse: {message}")]
    Corrupt { what: &'static str, message: String },
}

/// The operator's decisions that outlive a restart: grants changed through
/// the API, which plugins are disabled, and the approval rules. The host
/// keeps them in memory and calls never read these stores. Grants and
/// disabled plugins are read whole at start, through synchronous methods
/// (a backend may block the caller for them); what changes later is read
/// again asynchronously: one plugin's state ([`Self::operator_state`]) and
/// the approval rules, when this node or another changes them and at each
/// reconciliation.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Every stored grant, by plugin. One that no longer parses is left
    /// out with an error in the log, not a refusal to start.
    fn grants(&self) -> Result<Vec<(String, PluginPolicy)>, StorageError>;
    /// Keep `grant` as [`PluginPolicy::stored`] writes it out: secrets'
    /// values included, so this store is as sensitive as the policy file.
    async fn set_grant(&self, plugin: &str, grant: &PluginPolicy) -> Result<(), StorageError>;
    /// Forget the grant the API set: the file's is in force again.
    async fn remove_grant(&self, plugin: &str) -> Result<(), StorageError>;
    fn disabled(&self) -> Result<Vec<String>, StorageError>;
    async fn set_disabled(&self, plugin: &str, disabled: bool) -> Result<(), StorageError>;
    /// The approval rules set through the API, which replace the file's.
    async fn approval_rules(&self) -> Result<Option<ApprovalConfig>, StorageError>;
    async fn set_approval_rules(&self, rules: &ApprovalConfig) -> Result<(), StorageError>;
    /// One plugin's stored grant (if the API set one) and whether it is
    /// disabled: what a node reads again when another changed them.
    async fn operator_state(&self, plugin: &str) -> Result<(Option<PluginPolicy>, bool), StorageError>;
}

/// Which versions each plugin has served, oldest first (the bundles
/// themselves are archived as files; see `plugins::versions`).
#[async_trait]
pub trait HistoryStore: Send + Sync {
    async fn history(&self, plugin: &str) -> Result<Vec<VersionEntry>, StorageError>;
    async fn set_history(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), StorageError>;
    /// Every plugin with a history.
    async fn plugins(&self) -> Result<Vec<String>, StorageError>;
    /// Keep an archived bundle's files (see `Bundle::files`) where every
    /// node finds them, under its archive name. A store that one process
    /// owns keeps none: the archive folder has them.
    async fn put_bundle(&self, archive: &str, files: &[(String, Vec<u8>)]) -> Result<(), StorageError>;
    async fn bundle(&self, archive: &str) -> Result<Option<Vec<(String, Vec<u8>)>>, StorageError>;
}

/// A change that another node sharing the store made, as it announces it:
/// what this node keeps in memory about it (a waiter, what serves) must be
/// read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A held call changed (decided, taken for running, done, ...).
    Approval(String),
    /// A workflow run changed.
    Run(String),
    /// What serves a plugin changed: its version, grant or enabled state.
    Plugin(String),
    /// The approval rules were replaced.
    Rules,
    /// Announcements may have been missed (the feed's connection was
    /// lost): anything may have changed.
    Missed,
}

/// All the stores of one backend.
#[async_trait]
pub trait Backend:
    KvStore + AuditStore + IdempotencyStore + OperatorStore + HistoryStore + ApprovalStore + RunStore
{
    /// Make every write made so far durable (kv writes included): at
    /// shutdown, and by kv spaces.
    async fn flush(&self) -> Result<(), StorageError>;
    /// The changes other nodes make, as they are announced; `None` when one
    /// process owns the store (nobody else changes it).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;
    /// This node's name, as the store knows it (leases name it).
    fn node(&self) -> &str;
    /// Whether the store answers now, and its connections: for `/readyz`
    /// and `/metrics`. `None` for an embedded store (it has none).
    async fn status(&self) -> Result<Option<PoolStatus>, StorageError>;
}

/// A networked store's connection pool, as it is now.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStatus {
    pub open: usize,
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    pub max: usize,
}

/// `[storage]` in `toolhost.toml`: where the host keeps what it stores.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// `postgres://user@host:port/database`: nodes share this database.
    /// Absent: an embedded sled database in the data folder, one node.
    pub url: Option<String>,
    /// The environment variable holding the URL instead (so that a
    /// password stays out of the file).
    pub url_env: Option<String>,
    /// This node's name, unique among the nodes sharing the database
    /// [default: the machine's host name].
    pub node: Option<String>,
}

impl StorageConfig {
    /// The database URL, if nodes share one.
    pub fn url(&self) -> Result<Option<String>, StorageError> {
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => Err(StorageError::Config(
                "[storage] sets both url and url-env; set one".into(),
            )),
            (Some(url), None) => Ok(Some(url.clone())),
            (None, Some(var)) => std::env::var(var)
                .map(Some)
                .map_err(|_| StorageError::Config(format!("[storage] url-env names {var}, which is not set"))),
            (None, None) => Ok(None),
        }
    }

    /// This node's name: the configured one, else the host name.
    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "toolhost".into())
        })
    }
}

/// The host's stores; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    shared: bool,
}

impl Storage {
    /// The embedded default: a sled database in `dir`.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        Ok(Storage::with(Arc::new(sled::SledBackend::open(dir)?)))
    }

    /// What `[storage]` names: PostgreSQL shared with other nodes when it
    /// has a URL, else sled in `dir`.
    pub async fn connect(config: &StorageConfig, dir: &Path) -> Result<Storage, StorageError> {
        match config.url()? {
            Some(url) => Ok(Storage::with(Arc::new(
                postgres::Postgres::connect(&url, &config.node()).await?,
            ))),
            None => Storage::open(dir),
        }
    }

    pub fn with(backend: Arc<dyn Backend>) -> Storage {
        let shared = backend.changes().is_some();
        Storage { backend, shared }
    }

    pub fn kv(&self) -> &dyn KvStore {
        &*self.backend
    }

    pub fn audit(&self) -> &dyn AuditStore {
        &*self.backend
    }

    pub fn idempotency(&self) -> &dyn IdempotencyStore {
        &*self.backend
    }

    pub fn operator(&self) -> &dyn OperatorStore {
        &*self.backend
    }

    pub fn history(&self) -> &dyn HistoryStore {
        &*self.backend
    }

    pub fn approvals(&self) -> &dyn ApprovalStore {
        &*self.backend
    }

    pub fn runs(&self) -> &dyn RunStore {
        &*self.backend
    }

    pub async fn flush(&self) -> Result<(), StorageError> {
        self.backend.flush().await
    }

    /// See [`Backend::changes`].
    pub fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        self.backend.changes()
    }

    /// Whether other nodes share this store.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    pub fn node(&self) -> &str {
        self.backend.node()
    }

    /// See [`Backend::status`].
    pub async fn status(&self) -> Result<Option<PoolStatus>, StorageError> {
        self.backend.status().await
    }
}
