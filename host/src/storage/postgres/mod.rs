//! The PostgreSQL backend, for several toolhost nodes sharing one state:
//! `[storage] url = "postgres://..."`. A pool of connections
//! (deadpool-postgres over tokio-postgres), and versioned migrations applied
//! at start, under an advisory lock so that nodes starting together apply
//! each once.
//!
//! Every store of the seam lives here ([`super::Backend`]), each in its own
//! module; what nodes must not both do is decided by the database (a quota
//! row locked for the write, an approval changed only as it was read, a
//! run's lease), and every change other nodes must act on is announced
//! ([`changes`]).

mod audit;
mod changes;
mod idempotency;
mod kv;
mod operator;
mod records;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::broadcast;
use tokio_postgres::NoTls;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::kv::{KvSpace, KvStore};
use super::{Backend, Change, PoolStatus, StorageError};

pub use kv::PgKv;

/// Each migration once, in order; a database that has applied more than
/// this build knows is refused (an older node must not write a newer schema).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_kv.sql")),
    (2, include_str!("migrations/0002_audit.sql")),
    (3, include_str!("migrations/0003_shared_state.sql")),
];

/// How long `connect` waits for the change feed to listen.
const LISTEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connections one node keeps at most.
const POOL_SIZE: usize = 16;

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: toolhost's migrations.
const MIGRATION_LOCK: i64 = 0x746f_6f6c_686f_7374;

pub(super) fn backend(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("postgres: {what}: {e}"))
}

/// A stored JSON column back as what it was written from.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    value: serde_json::Value,
) -> Result<T, StorageError> {
    serde_json::from_value(value).map_err(|e| StorageError::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Unix milliseconds, as leases and claims count them.
pub(super) fn now_ms() -> i64 {
    crate::model::time::now_ms() as i64
}

/// A node's connection to the shared database.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    url: String,
    /// This node's name: what it writes is marked with it, so that at start
    /// it closes only its own calls that a stop cut short.
    node: String,
    /// The node's number among all that ever used this database (see
    /// [`super::audit::AuditStore::id_slot`]).
    slot: u8,
    /// What other nodes announce, from the listener.
    changes: broadcast::Sender<Change>,
    /// Stops the listener once the last clone goes.
    _listening: Arc<DropGuard>,
}

impl Postgres {
    /// Connect to `url` as the node named `node` and bring the schema up to
    /// this build's version.
    pub async fn connect(url: &str, node: &str) -> Result<Postgres, StorageError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StorageError::Open {
            path: redact_password(url),
            message: e.to_string(),
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| backend("pool", e))?;
        let mut postgres = Postgres {
            pool,
            url: url.to_string(),
            node: node.to_string(),
            slot: 0,
            changes: broadcast::channel(1024).0,
            _listening: Arc::new(CancellationToken::new().drop_guard()),
        };
        postgres.migrate().await?;
        postgres.slot = postgres.register().await?;
        let stop = CancellationToken::new();
        let listening = changes::spawn_listener(
            url.to_string(),
            node.to_string(),
            postgres.changes.clone(),
            stop.clone(),
        );
        postgres._listening = Arc::new(stop.drop_guard());
        // Listening before this node acts, so that it misses nothing other
        // nodes announce from now on (the periodic reconcile covers a
        // listener that cannot connect yet).
        if tokio::time::timeout(LISTEN_WAIT, listening).await.is_err() {
            tracing::warn!("postgres: not yet listening for other nodes' changes; reconciling periodically meanwhile");
        }
        Ok(postgres)
    }

    /// Record this node and find its slot: the one it had, or the lowest
    /// free one.
    async fn register(&self) -> Result<u8, StorageError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("registering the node", e))?;
        tx.execute("LOCK TABLE nodes IN EXCLUSIVE MODE", &[])
            .await
            .map_err(|e| backend("registering the node", e))?;
        let row = tx
            .query_opt(
                "UPDATE nodes SET last_seen = now() WHERE name = $1 RETURNING slot",
                &[&self.node],
            )
            .await
            .map_err(|e| backend("registering the node", e))?;
        let slot: i16 = match row {
            Some(row) => row.get(0),
            None => {
                let free = tx
                    .query_opt(
                        "SELECT s FROM generate_series(0, 255) AS s
                         WHERE s NOT IN (SELECT slot FROM nodes) ORDER BY s LIMIT 1",
                        &[],
                    )
                    .await
                    .map_err(|e| backend("registering the node", e))?
                    .ok_or_else(|| {
                        StorageError::Backend(
                            "postgres: 256 node names have used this database; remove retired ones from the                              `nodes` table"
                                .into(),
                        )
                    })?;
                let slot: i32 = free.get(0);
                tx.execute(
                    "INSERT INTO nodes (name, slot) VALUES ($1, $2)",
                    &[&self.node, &(slot as i16)],
                )
                .await
                .map_err(|e| backend("registering the node", e))?;
                slot as i16
            }
        };
        tx.commit().await.map_err(|e| backend("registering the node", e))?;
        Ok(slot as u8)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(|e| backend("connecting", e))
    }

    /// Apply the migrations this database has not seen, each in its own
    /// transaction, holding one advisory lock so nodes take turns. Returns
    /// the schema version.
    pub async fn migrate(&self) -> Result<i32, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| backend("migrating", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| backend("migration lock", e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS toolhost_migrations (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(|e| backend("migrations table", e))?;
        let row = tx
            .query_one("SELECT coalesce(max(version), 0) FROM toolhost_migrations", &[])
            .await
            .map_err(|e| backend("schema version", e))?;
        let applied: i32 = row.get(0);
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if applied > known {
            return Err(StorageError::Backend(format!(
                "postgres: the database's schema is version {applied}, newer than this toolhost knows ({known}); \
                 upgrade this node"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| backend(&format!("migration {version}"), e))?;
            tx.execute("INSERT INTO toolhost_migrations (version) VALUES ($1)", &[version])
                .await
                .map_err(|e| backend(&format!("recording migration {version}"), e))?;
        }
        tx.commit().await.map_err(|e| backend("migrating", e))?;
        Ok(known)
    }

    /// Run `work` on a connection of its own, on a thread (and runtime) of
    /// its own, and block the caller until it is done: for the reads and
    /// writes the host makes once at start through the seam's synchronous
    /// methods (the pool's connections are driven by the caller's runtime,
    /// which this call blocks). Each call opens a connection: never for
    /// what runs after start, which goes through the pool.
    fn blocking_on_own_connection<T, F, Fut>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send,
        F: FnOnce(tokio_postgres::Client) -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        let url = &self.url;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| backend("start-up runtime", e))?;
                    runtime.block_on(async move {
                        let (client, connection) = tokio_postgres::connect(url, NoTls)
                            .await
                            .map_err(|e| backend("connecting", e))?;
                        let driver = tokio::spawn(connection);
                        let out = work(client).await;
                        driver.abort();
                        out
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(StorageError::Backend("postgres: a start-up read panicked".into())))
        })
    }

    /// The connectors' kv spaces on this database.
    pub fn kv(&self) -> PgKv {
        PgKv::new(self.pool.clone())
    }
}

impl KvStore for Postgres {
    fn space(&self, plugin: &str) -> Result<Arc<dyn KvSpace>, StorageError> {
        self.kv().space(plugin)
    }
}

#[async_trait]
impl Backend for Postgres {
    /// Every write is committed before its method returns.
    async fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    fn node(&self) -> &str {
        &self.node
    }

    /// A round trip on a pooled connection, then the pool as it stands.
    async fn status(&self) -> Result<Option<PoolStatus>, StorageError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| backend("checking the database", e))?;
        drop(client);
        let status = self.pool.status();
        Ok(Some(PoolStatus {
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
            max: status.max_size,
        }))
    }
}

/// `url` without its password, for messages.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            super::redact_password("postgres://th:s3cret@db:5432/toolhost"),
            "postgres://th:***@db:5432/toolhost"
        );
        assert_eq!(
            super::redact_password("postgres://th@db/toolhost"),
            "postgres://th@db/toolhost"
        );
    }
}
