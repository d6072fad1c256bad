//! The audit trail in PostgreSQL: each record whole as JSON, the fields the
//! API filters on in indexed columns. A record is written by one node (its
//! call's), and replaced only by that node (running → final); a node closes
//! only its own cut-short calls when it starts.

use async_trait::async_trait;
use tokio_postgres::types::{Json, ToSql};

use super::{backend, Postgres};
use crate::model::audit::AuditRecord;
use crate::storage::audit::{AuditQuery, AuditStore, Mark};
use crate::storage::StorageError;

fn parse(id: i64, record: serde_json::Value) -> Result<(u64, AuditRecord), StorageError> {
    super::parse("audit record", record).map(|r| (id as u64, r))
}

#[async_trait]
impl AuditStore for Postgres {
    fn id_slot(&self) -> u8 {
        self.slot
    }

    fn last_id(&self) -> Result<u64, StorageError> {
        self.blocking_on_own_connection(|client| async move {
            let row = client
                .query_one("SELECT coalesce(max(id), 0) FROM audit", &[])
                .await
                .map_err(|e| backend("audit last id", e))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    async fn put(&self, id: u64, record: &AuditRecord, mark: Mark) -> Result<(), StorageError> {
        let client = self.client().await?;
        // Serialized once, straight into the statement (no JSON tree first).
        let json = Json(record);
        let running = mark == Mark::Running;
        // `None` leaves a replaced record's note as it was. A row another
        // node wrote under the same id is not replaced: the write fails.
        let keep_note = mark == Mark::None;
        // Every call writes here: the statement is prepared once per
        // connection, not on every write (a round trip saved).
        let statement = client
            .prepare_cached(
                "INSERT INTO audit (id, record, tool, outcome, via, session, token, approval, run, node, running)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO UPDATE SET
                     record = excluded.record, tool = excluded.tool, outcome = excluded.outcome,
                     via = excluded.via, session = excluded.session, token = excluded.token,
                     approval = excluded.approval, run = excluded.run,
                     running = CASE WHEN $12 THEN audit.running ELSE excluded.running END
                 WHERE audit.node = excluded.node",
            )
            .await
            .map_err(|e| backend("audit write", e))?;
        let written = client
            .execute(
                &statement,
                &[
                    &(id as i64),
                    &json,
                    &record.tool,
                    &record.outcome.as_str(),
                    &record.via.as_str(),
                    &record.session,
                    &record.token,
                    &record.approval,
                    &record.run,
                    &self.node,
                    &running,
                    &keep_note,
                ],
            )
            .await
            .map_err(|e| backend("audit write", e))?;
        if written == 0 {
            return Err(StorageError::Backend(format!(
                "postgres: audit record {id} was written by another node; two nodes made the same id \
                 (give each node its own [storage] node name)"
            )));
        }
        Ok(())
    }

    fn running(&self) -> Result<Vec<(u64, AuditRecord)>, StorageError> {
        let node = self.node.clone();
        self.blocking_on_own_connection(|client| async move {
            let rows = client
                .query(
                    "SELECT id, record FROM audit WHERE running AND node = $1 ORDER BY id",
                    &[&node],
                )
                .await
                .map_err(|e| backend("audit running", e))?;
            rows.into_iter().map(|r| parse(r.get(0), r.get(1))).collect()
        })
    }

    fn close_at_start(&self, records: &[(u64, AuditRecord)]) -> Result<(), StorageError> {
        let records = records.to_vec();
        let node = self.node.clone();
        self.blocking_on_own_connection(|mut client| async move {
            let tx = client.transaction().await.map_err(|e| backend("audit close", e))?;
            for (id, record) in &records {
                let json = serde_json::to_value(record).map_err(|e| backend("audit record", e))?;
                tx.execute(
                    "UPDATE audit SET record = $2, outcome = $3, running = false WHERE id = $1 AND node = $4",
                    &[&(*id as i64), &json, &record.outcome.as_str(), &node],
                )
                .await
                .map_err(|e| backend("audit close", e))?;
            }
            tx.commit().await.map_err(|e| backend("audit close", e))
        })
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StorageError> {
        let after = query.after.min(i64::MAX as u64) as i64;
        let before = query.before.min(i64::MAX as u64) as i64;
        let limit = query.limit as i64;
        let via = query.via.map(|v| v.as_str());
        let outcome = query.outcome.map(|o| o.as_str());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
        let mut sql = String::from("SELECT id, record FROM audit WHERE id >= $1 AND id < $2");
        let action = query.action.map(|a| a.as_str());
        let filters: [(&str, Option<&(dyn ToSql + Sync)>); 8] = [
            ("tool", query.tool.as_ref().map(|v| v as _)),
            ("via", via.as_ref().map(|v| v as _)),
            ("outcome", outcome.as_ref().map(|v| v as _)),
            ("session", query.session.as_ref().map(|v| v as _)),
            ("token", query.token.as_ref().map(|v| v as _)),
            ("approval", query.approval.as_ref().map(|v| v as _)),
            ("run", query.run.as_ref().map(|v| v as _)),
            // Actions are few and have no column of their own.
            ("record->>'action'", action.as_ref().map(|v| v as _)),
        ];
        for (column, value) in filters {
            if let Some(value) = value {
                params.push(value);
                sql.push_str(&format!(" AND {column} = ${}", params.len()));
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT $3");
        let client = self.client().await?;
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(|e| backend("audit query", e))?;
        // A record that does not parse is skipped, as the embedded store does.
        Ok(rows
            .into_iter()
            .filter_map(|r| parse(r.get(0), r.get(1)).ok().map(|(_, record)| record))
            .collect())
    }

    async fn remove_before(&self, id: u64) -> Result<usize, StorageError> {
        let id = id.min(i64::MAX as u64) as i64;
        let client = self.client().await?;
        // Every node may sweep: deleting what another node deleted already
        // is nothing.
        let removed = client
            .execute("DELETE FROM audit WHERE id < $1 AND NOT running", &[&id])
            .await
            .map_err(|e| backend("audit sweep", e))?;
        Ok(removed as usize)
    }
}
