//! The operator's decisions (grants, disabled plugins, approval rules) and
//! each plugin's version history in PostgreSQL. Every change is announced,
//! so that the other nodes serve it within moments.

use async_trait::async_trait;

use super::{backend, changes, Postgres};
use crate::plugins::versions::VersionEntry;
use crate::policy::approvals::ApprovalConfig;
use crate::policy::PluginPolicy;
use crate::storage::{Change, HistoryStore, OperatorStore, StorageError};

const APPROVAL_RULES: &str = "approval-rules";

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<serde_json::Value, StorageError> {
    serde_json::to_value(value).map_err(|e| backend(what, e))
}

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
        self.at_start(|client| async move {
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
        let value = json("grant", &grant.stored())?;
        self.change(
            "storing a grant",
            "INSERT INTO grants (plugin, grant_) VALUES ($1, $2)
             ON CONFLICT (plugin) DO UPDATE SET grant_ = excluded.grant_",
            &[&plugin, &value],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }

    fn disabled(&self) -> Result<Vec<String>, StorageError> {
        self.at_start(|client| async move {
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
        self.change("disabling a plugin", sql, &[&plugin], Change::Plugin(plugin.to_string()))
            .await
    }

    fn approval_rules(&self) -> Result<Option<ApprovalConfig>, StorageError> {
        self.at_start(|client| async move {
            let row = client
                .query_opt("SELECT value FROM settings WHERE name = $1", &[&APPROVAL_RULES])
                .await
                .map_err(|e| backend("approval rules", e))?;
            row.map(|r| {
                serde_json::from_value(r.get(0)).map_err(|e| StorageError::Corrupt {
                    what: "approval rules",
                    message: e.to_string(),
                })
            })
            .transpose()
        })
    }

    async fn set_approval_rules(&self, rules: &ApprovalConfig) -> Result<(), StorageError> {
        let value = json("approval rules", rules)?;
        self.change(
            "storing the approval rules",
            "INSERT INTO settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&APPROVAL_RULES, &value],
            Change::Rules,
        )
        .await
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
        match row {
            Some(row) => serde_json::from_value(row.get(0)).map_err(|e| StorageError::Corrupt {
                what: "version history",
                message: e.to_string(),
            }),
            None => Ok(Vec::new()),
        }
    }

    async fn set_history(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), StorageError> {
        let value = json("version history", &history)?;
        self.change(
            "storing the version history",
            "INSERT INTO history (plugin, versions) VALUES ($1, $2)
             ON CONFLICT (plugin) DO UPDATE SET versions = excluded.versions",
            &[&plugin, &value],
            Change::Plugin(plugin.to_string()),
        )
        .await
    }
}
