//! Held calls and workflow runs in PostgreSQL: each record whole as JSON,
//! with the columns that keep two nodes from both changing one (an
//! approval's state and decision count; a run's lease). Every change is
//! announced, so that an agent waiting on one node hears of a decision
//! taken on another.

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use tokio_postgres::types::Json;

use super::{backend, changes, now_ms, parse, Postgres};
use crate::model::approval::{Approval, ApprovalState};
use crate::model::run::{Run, Step};
use crate::storage::approvals::ApprovalStore;
use crate::storage::runs::RunStore;
use crate::storage::{Change, StorageError};

/// The tables of records kept whole, by time-ordered id, with an `open`
/// flag: what approvals and runs both are.
#[derive(Clone, Copy)]
enum Records {
    Approvals,
    Runs,
}

impl Records {
    fn table(self) -> &'static str {
        match self {
            Records::Approvals => "approvals",
            Records::Runs => "runs",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Records::Approvals => "approval",
            Records::Runs => "run",
        }
    }
}

impl Postgres {
    async fn record<T: DeserializeOwned>(&self, records: Records, id: &str) -> Result<Option<T>, StorageError> {
        let client = self.client().await?;
        let sql = format!("SELECT record FROM {} WHERE id = $1", records.table());
        let row = client
            .query_opt(&sql, &[&id])
            .await
            .map_err(|e| backend(records.what(), e))?;
        row.map(|r| parse(records.what(), r.get(0))).transpose()
    }

    /// The open records, oldest first.
    async fn open_records<T: DeserializeOwned>(&self, records: Records) -> Result<Vec<T>, StorageError> {
        let client = self.client().await?;
        let sql = format!("SELECT record FROM {} WHERE open ORDER BY id", records.table());
        let rows = client.query(&sql, &[]).await.map_err(|e| backend(records.what(), e))?;
        rows.into_iter().map(|r| parse(records.what(), r.get(0))).collect()
    }

    /// Records with ids below `before`, newest first.
    async fn page<T: DeserializeOwned>(
        &self,
        records: Records,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT record FROM {} WHERE $1::text IS NULL OR id < $1 ORDER BY id DESC LIMIT $2",
            records.table()
        );
        let rows = client
            .query(&sql, &[&before, &(limit as i64)])
            .await
            .map_err(|e| backend(records.what(), e))?;
        rows.into_iter().map(|r| parse(records.what(), r.get(0))).collect()
    }
}

#[async_trait]
impl ApprovalStore for Postgres {
    async fn put_approval(&self, approval: &Approval) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| backend("holding a call", e))?;
        tx.execute(
            "INSERT INTO approvals (id, record, state, decisions, open) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record, state = excluded.state,
                 decisions = excluded.decisions, open = excluded.open",
            &[
                &approval.id,
                &Json(approval),
                &approval.state.as_str(),
                &(approval.decisions.len() as i16),
                &approval.state.is_open(),
            ],
        )
        .await
        .map_err(|e| backend("holding a call", e))?;
        changes::notify(&*tx, &self.node, &Change::Approval(approval.id.clone())).await?;
        tx.commit().await.map_err(|e| backend("holding a call", e))
    }

    async fn update_approval(
        &self,
        approval: &Approval,
        from: ApprovalState,
        decisions: usize,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("changing an approval", e))?;
        let updated = tx
            .execute(
                "UPDATE approvals SET record = $2, state = $3, decisions = $4, open = $5
                 WHERE id = $1 AND state = $6 AND decisions = $7",
                &[
                    &approval.id,
                    &Json(approval),
                    &approval.state.as_str(),
                    &(approval.decisions.len() as i16),
                    &approval.state.is_open(),
                    &from.as_str(),
                    &(decisions as i16),
                ],
            )
            .await
            .map_err(|e| backend("changing an approval", e))?;
        if updated == 0 {
            return Ok(false);
        }
        changes::notify(&*tx, &self.node, &Change::Approval(approval.id.clone())).await?;
        tx.commit().await.map_err(|e| backend("changing an approval", e))?;
        Ok(true)
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, StorageError> {
        self.record(Records::Approvals, id).await
    }

    async fn open_approvals(&self) -> Result<Vec<Approval>, StorageError> {
        self.open_records(Records::Approvals).await
    }

    async fn approvals(&self, before: Option<&str>, limit: usize) -> Result<Vec<Approval>, StorageError> {
        self.page(Records::Approvals, before, limit).await
    }
}

/// How long a new run is its starting node's before that node renews the
/// lease (which it does at once).
const FIRST_LEASE_MS: i64 = 30_000;

#[async_trait]
impl RunStore for Postgres {
    async fn put_run(&self, run: &Run) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| backend("storing a run", e))?;
        // A new run is leased to the node that starts it, for long enough
        // that it renews the lease first; an ended run holds none.
        tx.execute(
            "INSERT INTO runs (id, record, open, leased_by, lease_until) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record, open = excluded.open,
                 leased_by = CASE WHEN excluded.open THEN runs.leased_by END,
                 lease_until = CASE WHEN excluded.open THEN runs.lease_until END",
            &[
                &run.id,
                &Json(run),
                &run.state.is_open(),
                &self.node,
                &(now_ms() + FIRST_LEASE_MS),
            ],
        )
        .await
        .map_err(|e| backend("storing a run", e))?;
        changes::notify(&*tx, &self.node, &Change::Run(run.id.clone())).await?;
        tx.commit().await.map_err(|e| backend("storing a run", e))
    }

    async fn run(&self, id: &str) -> Result<Option<Run>, StorageError> {
        self.record(Records::Runs, id).await
    }

    async fn open_runs(&self) -> Result<Vec<Run>, StorageError> {
        self.open_records(Records::Runs).await
    }

    async fn runs(&self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, StorageError> {
        self.page(Records::Runs, before, limit).await
    }

    async fn put_step(&self, run: &str, step: &Step) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO run_steps (run, seq, step) VALUES ($1, $2, $3)
                 ON CONFLICT (run, seq) DO UPDATE SET step = excluded.step",
                &[&run, &(step.seq as i32), &Json(step)],
            )
            .await
            .map_err(|e| backend("journaling a step", e))?;
        Ok(())
    }

    async fn steps(&self, run: &str) -> Result<Vec<Step>, StorageError> {
        let client = self.client().await?;
        let found = client
            .query("SELECT step FROM run_steps WHERE run = $1 ORDER BY seq", &[&run])
            .await
            .map_err(|e| backend("a run's steps", e))?;
        found.into_iter().map(|r| parse("run step", r.get(0))).collect()
    }

    async fn lease_run(&self, id: &str, node: &str, until: u64) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let leased = client
            .execute(
                "UPDATE runs SET leased_by = $2, lease_until = $3
                 WHERE id = $1 AND open AND (leased_by IS NULL OR leased_by = $2 OR lease_until < $4)",
                &[&id, &node, &(until as i64), &now_ms()],
            )
            .await
            .map_err(|e| backend("leasing a run", e))?;
        Ok(leased == 1)
    }
}
