//! The operator's decisions (grants, disabled plugins, approval rules) and
//! each plugin's version history in PostgreSQL. Every change is announced,
//! so that the other nodes serve it within moments.

use async_trait::async_trait;

use tokio_postgres::types::Json;

use super::{backend, changes, parse, Postgres};
use crate::config::approvals::ApprovalConfig;
use crate::config::grants::PluginPolicy;
use crate::model::version::VersionEntry;
use crate::storage::{Change, HistoryStore, OperatorStore, StorageError};

const APPROVAL_RULES: &str = "approval-rules";

impl Postgres {
    /// Run `sql` with `params`, then announce `change`, in one transaction
    /// (the announcement goes out at commit, with the change visible).
    async fn change(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        change: Change,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| backend(what, e))?;
        tx.execute(sql, params).await.map_err(|e| backend(what, e))?;
        changes::notify(&*tx, &self.node, &change).await?;
        tx.commit().await.map_err(|e| backend(what, e))
    }
}

#[async_trait]
impl OperatorStore for Postgres {
    fn grants(&self) -> Result<Vec<(String, PluginPolicy)>, StorageError> {
        self.blocking_on_own_connection(|client| async move {
            let rows = client
                .query("SELECT plugin, grant_ FROM grants ORDER BY plugin", &[])
                .await
                .map_err(|e| backend("grants", e))?;
            let mut grants = Vec::new();
            for row in rows {
                let plugin: String = row.get(0);
                match serde_json::from_value::<PluginPolicy>(row.get(1)) {
                    Ok(grant) => grants.push((plugin, grant)),
                    Err(e) => tracing::error!(%plugin, "ignoring a stored grant that no longer parses: {e}"),
                }
            }
            Ok(grants)
        })
    }

    async fn set_grant(&self, plugin: &str, grant: &PluginPolicy) -> Result<(), StorageError> {
        let value = Json(grant.stored());
        self.change(
            "storing a grant",
            "INSERT INTO grants (plugin, grant_) VALUES ($1, $2)
             ON CONFLICT (plugin) DO UPDATE SET grant_ = excluded.grant_",
            &[&plugin, &value],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }

    async fn remove_grant(&self, plugin: &str) -> Result<(), StorageError> {
        self.change(
            "forgetting a grant",
            "DELETE FROM grants WHERE plugin = $1",
            &[&plugin],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }

    fn disabled(&self) -> Result<Vec<String>, StorageError> {
        self.blocking_on_own_connection(|client| async move {
            let rows = client
                .query("SELECT plugin FROM disabled ORDER BY plugin", &[])
                .await
                .map_err(|e| backend("disabled plugins", e))?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    async fn set_disabled(&self, plugin: &str, disabled: bool) -> Result<(), StorageError> {
        let sql = if disabled {
            "INSERT INTO disabled (plugin) VALUES ($1) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM disabled WHERE plugin = $1"
        };
        self.change(
            "disabling a plugin",
            sql,
            &[&plugin],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }

    /// On the pool: nodes read the rules again whenever one changes them.
    async fn approval_rules(&self) -> Result<Option<ApprovalConfig>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&APPROVAL_RULES])
            .await
            .map_err(|e| backend("approval rules", e))?;
        row.map(|r| parse("approval rules", r.get(0))).transpose()
    }

    async fn set_approval_rules(&self, rules: &ApprovalConfig) -> Result<(), StorageError> {
        let value = Json(rules);
        self.change(
            "storing the approval rules",
            "INSERT INTO settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&APPROVAL_RULES, &value],
            Change::Rules,
        )
        .await
    }

    async fn operator_state(&self, plugin: &str) -> Result<(Option<PluginPolicy>, bool), StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT grant_ FROM grants WHERE plugin = $1),
                        EXISTS (SELECT 1 FROM disabled WHERE plugin = $1)",
                &[&plugin],
            )
            .await
            .map_err(|e| backend("a plugin's operator state", e))?;
        let grant = row
            .get::<_, Option<serde_json::Value>>(0)
            .map(|g| parse("grant", g))
            .transpose()?;
        Ok((grant, row.get(1)))
    }
}

#[async_trait]
impl HistoryStore for Postgres {
    async fn history(&self, plugin: &str) -> Result<Vec<VersionEntry>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT versions FROM history WHERE plugin = $1", &[&plugin])
            .await
            .map_err(|e| backend("version history", e))?;
        row.map_or(Ok(Vec::new()), |r| parse("version history", r.get(0)))
    }

    async fn set_history(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), StorageError> {
        let value = Json(history);
        self.change(
            "storing the version history",
            "INSERT INTO history (plugin, versions) VALUES ($1, $2)
             ON CONFLICT (plugin) DO UPDATE SET versions = excluded.versions",
            &[&plugin, &value],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }

    async fn plugins(&self) -> Result<Vec<String>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT plugin FROM history ORDER BY plugin", &[])
            .await
            .map_err(|e| backend("plugins with a history", e))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn put_bundle(&self, archive: &str, files: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let client = self.client().await?;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let contents: Vec<&[u8]> = files.iter().map(|(_, c)| c.as_slice()).collect();
        // An archive name is a digest: the same name is the same bytes.
        client
            .execute(
                "INSERT INTO bundles (archive, names, contents) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&archive, &names, &contents],
            )
            .await
            .map_err(|e| backend("sharing a bundle", e))?;
        Ok(())
    }

    async fn bundle(&self, archive: &str) -> Result<Option<Vec<(String, Vec<u8>)>>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT names, contents FROM bundles WHERE archive = $1", &[&archive])
            .await
            .map_err(|e| backend("a shared bundle", e))?;
        Ok(row.map(|r| {
            let names: Vec<String> = r.get(0);
            let contents: Vec<Vec<u8>> = r.get(1);
            names.into_iter().zip(contents).collect()
        }))
    }
}
