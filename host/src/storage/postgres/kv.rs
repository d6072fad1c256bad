//! Connectors' kv spaces in PostgreSQL. A write reads and moves the
//! plugin's usage row under `FOR UPDATE` in the same transaction as the
//! value, so two nodes writing to one space at once take turns and the
//! quota holds across them, as sled's single-process lock holds it on one.
//! Calls run these statements: each is prepared once per pooled connection
//! (`prepare_cached`), not on every use (a round trip each time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::storage::kv::{check_sizes, check_write, KvRefusal, KvSpace, KvStore, MAX_LISTED};
use crate::storage::StorageError;

/// Every plugin's kv space on one database.
pub struct PgKv {
    pool: Pool,
}

impl PgKv {
    pub(super) fn new(pool: Pool) -> PgKv {
        PgKv { pool }
    }
}

impl KvStore for PgKv {
    fn space(&self, plugin: &str) -> Result<Arc<dyn KvSpace>, StorageError> {
        Ok(Arc::new(PgSpace {
            pool: self.pool.clone(),
            plugin: plugin.to_string(),
            used: AtomicU64::new(0),
        }))
    }
}

struct PgSpace {
    pool: Pool,
    plugin: String,
    /// The usage this node saw last (other nodes move it too).
    used: AtomicU64,
}

fn internal(what: &str, e: impl std::fmt::Display) -> KvRefusal {
    KvRefusal::Internal(format!("postgres: {what}: {e}"))
}

impl PgSpace {
    async fn client(&self) -> Result<deadpool_postgres::Object, KvRefusal> {
        self.pool.get().await.map_err(|e| internal("connecting", e))
    }
}

#[async_trait]
impl KvSpace for PgSpace {
    fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvRefusal> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT value FROM kv WHERE plugin = $1 AND key = $2")
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin, &key.as_bytes()],
            )
            .await
            .map_err(|e| internal("kv get", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put(&self, key: &str, value: &[u8], quota: u64, only_if_absent: bool) -> Result<bool, KvRefusal> {
        check_sizes(key, value)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| internal("kv put", e))?;
        tx.execute(
            &tx.prepare_cached("INSERT INTO kv_usage (plugin) VALUES ($1) ON CONFLICT DO NOTHING")
                .await
                .map_err(|e| internal("preparing a statement", e))?,
            &[&self.plugin],
        )
        .await
        .map_err(|e| internal("kv usage", e))?;
        // Writers to this space, on any node, queue here until commit.
        let used: i64 = tx
            .query_one(
                &tx.prepare_cached("SELECT used FROM kv_usage WHERE plugin = $1 FOR UPDATE")
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin],
            )
            .await
            .map_err(|e| internal("kv usage", e))?
            .get(0);
        let old: Option<i32> = tx
            .query_opt(
                &tx.prepare_cached("SELECT octet_length(value) FROM kv WHERE plugin = $1 AND key = $2")
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin, &key.as_bytes()],
            )
            .await
            .map_err(|e| internal("kv put", e))?
            .map(|r| r.get(0));
        if only_if_absent && old.is_some() {
            return Ok(false);
        }
        let used = used as u64;
        let new_used = check_write(used, old.map(|o| o as usize), key, value, quota)?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO kv (plugin, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
            )
            .await
            .map_err(|e| internal("preparing a statement", e))?,
            &[&self.plugin, &key.as_bytes(), &value],
        )
        .await
        .map_err(|e| internal("kv put", e))?;
        tx.execute(
            &tx.prepare_cached("UPDATE kv_usage SET used = $2 WHERE plugin = $1")
                .await
                .map_err(|e| internal("preparing a statement", e))?,
            &[&self.plugin, &(new_used as i64)],
        )
        .await
        .map_err(|e| internal("kv usage", e))?;
        tx.commit().await.map_err(|e| internal("kv put", e))?;
        self.used.store(new_used, Ordering::Relaxed);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool, KvRefusal> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| internal("kv delete", e))?;
        let gone: Option<i32> = tx
            .query_opt(
                &tx.prepare_cached("DELETE FROM kv WHERE plugin = $1 AND key = $2 RETURNING octet_length(value)")
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin, &key.as_bytes()],
            )
            .await
            .map_err(|e| internal("kv delete", e))?
            .map(|r| r.get(0));
        let Some(size) = gone else {
            return Ok(false);
        };
        let freed = (key.len() + size as usize) as i64;
        let used: i64 = tx
            .query_one(
                &tx.prepare_cached("UPDATE kv_usage SET used = used - $2 WHERE plugin = $1 RETURNING used")
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin, &freed],
            )
            .await
            .map_err(|e| internal("kv usage", e))?
            .get(0);
        tx.commit().await.map_err(|e| internal("kv delete", e))?;
        self.used.store(used as u64, Ordering::Relaxed);
        Ok(true)
    }

    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvRefusal> {
        let client = self.client().await?;
        let limit = i64::from(limit.min(MAX_LISTED));
        // Keys from the prefix on, in byte order (the primary key's order),
        // while they still start with it.
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT key FROM kv WHERE plugin = $1 AND key >= $2
                   AND substring(key FROM 1 FOR octet_length($2)) = $2
                 ORDER BY key LIMIT $3",
                    )
                    .await
                    .map_err(|e| internal("preparing a statement", e))?,
                &[&self.plugin, &prefix.as_bytes(), &limit],
            )
            .await
            .map_err(|e| internal("kv list", e))?;
        rows.into_iter()
            .map(|r| String::from_utf8(r.get::<_, Vec<u8>>(0)).map_err(|e| internal("a stored key", e)))
            .collect()
    }

    /// Every write committed before it returned.
    async fn flush(&self) -> Result<(), KvRefusal> {
        Ok(())
    }
}
