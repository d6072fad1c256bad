//! The PostgreSQL backend, for several toolhost nodes sharing one state:
//! `[storage] url = "postgres://..."`. A pool of connections
//! (deadpool-postgres over tokio-postgres), and versioned migrations applied
//! at start, under an advisory lock so that nodes starting together apply
//! each once.
//!
//! Where it stands (issue 16): the connection pool, the migrations and the
//! connectors' kv spaces (quotas enforced across nodes in one transaction).
//! The audit trail, idempotency, operator state, history, approvals and runs
//! follow, after which it implements the whole [`super::Backend`].

mod audit;
mod kv;

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StorageError;

pub use kv::PgKv;

/// Each migration once, in order; a database that has applied more than
/// this build knows is refused (an older node must not write a newer schema).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_kv.sql")),
    (2, include_str!("migrations/0002_audit.sql")),
];

/// Connections one node keeps at most.
const POOL_SIZE: usize = 16;

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: toolhost's migrations.
const MIGRATION_LOCK: i64 = 0x746f_6f6c_686f_7374;

pub(super) fn backend(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("postgres: {what}: {e}"))
}

/// A node's connection to the shared database.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    url: String,
    /// This node's name: what it writes is marked with it, so that at start
    /// it closes only its own calls that a stop cut short.
    node: String,
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
        let postgres = Postgres {
            pool,
            url: url.to_string(),
            node: node.to_string(),
        };
        postgres.migrate().await?;
        Ok(postgres)
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

    /// Run `work` on a connection of its own, on a thread of its own, and
    /// wait for it: for the reads the host makes once at start through the
    /// seam's synchronous methods. The pool's connections are driven by the
    /// caller's runtime, which this call blocks.
    fn at_start<T, F, Fut>(&self, work: F) -> Result<T, StorageError>
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
