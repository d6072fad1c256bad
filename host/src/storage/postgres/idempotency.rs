//! `Idempotency-Key` answers and claims in PostgreSQL. A row without an
//! answer is a node's claim on the key while its first call runs: a retry
//! on any node sees it and is told the call is in flight, as on one node.
//! A claim runs out (`claimed_until`), so a node that died holding one
//! blocks retries only until then.

use async_trait::async_trait;

use super::{backend, now_ms, Postgres};
use crate::storage::idempotency::{Answer, AnswerKey, IdempotencyStore};
use crate::storage::StorageError;

#[async_trait]
impl IdempotencyStore for Postgres {
    async fn answer(&self, key: &AnswerKey<'_>) -> Result<Option<Answer>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT answer FROM idempotency
                 WHERE principal = $1 AND tool = $2 AND key = $3 AND answer IS NOT NULL",
                    )
                    .await
                    .map_err(|e| backend("preparing a statement", e))?,
                &[&key.principal, &key.tool, &key.key],
            )
            .await
            .map_err(|e| backend("idempotency answer", e))?;
        // An answer that no longer parses is treated as none: the call runs.
        Ok(row.and_then(|r| serde_json::from_value(r.get(0)).ok()))
    }

    async fn keep(&self, key: &AnswerKey<'_>, answer: &Answer, only_if_absent: bool) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let json = serde_json::to_value(answer).map_err(|e| backend("idempotency answer", e))?;
        // Keeping an answer ends the claim, whoever held it.
        let written = client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO idempotency (principal, tool, key, answer, at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (principal, tool, key) DO UPDATE
                     SET answer = excluded.answer, at = excluded.at, claimed_by = NULL, claimed_until = NULL
                     WHERE NOT $6 OR idempotency.answer IS NULL",
                    )
                    .await
                    .map_err(|e| backend("preparing a statement", e))?,
                &[
                    &key.principal,
                    &key.tool,
                    &key.key,
                    &json,
                    &(answer.at as i64),
                    &only_if_absent,
                ],
            )
            .await
            .map_err(|e| backend("idempotency keep", e))?;
        Ok(written == 1)
    }

    async fn sweep(&self, stored_before: u64) -> Result<usize, StorageError> {
        let client = self.client().await?;
        // Answers past their retention, and claims long run out (a node
        // died holding them and nobody retried).
        let swept = client
            .execute(
                &client
                    .prepare_cached(
                        "DELETE FROM idempotency
                 WHERE (answer IS NOT NULL AND at < $1) OR (answer IS NULL AND claimed_until < $2)",
                    )
                    .await
                    .map_err(|e| backend("preparing a statement", e))?,
                &[&(stored_before as i64), &now_ms()],
            )
            .await
            .map_err(|e| backend("idempotency sweep", e))?;
        Ok(swept as usize)
    }

    async fn claim(&self, key: &AnswerKey<'_>, fresh_since: u64, until: u64) -> Result<bool, StorageError> {
        let client = self.client().await?;
        // Taken when the key is new, its answer is stale, or the last claim
        // ran out; one statement, so two nodes cannot both take it.
        let taken = client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO idempotency (principal, tool, key, claimed_by, claimed_until)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (principal, tool, key) DO UPDATE
                     SET answer = NULL, at = 0, claimed_by = excluded.claimed_by,
                         claimed_until = excluded.claimed_until
                     WHERE (idempotency.answer IS NOT NULL AND idempotency.at < $6)
                        OR (idempotency.answer IS NULL AND idempotency.claimed_until < $7)",
                    )
                    .await
                    .map_err(|e| backend("preparing a statement", e))?,
                &[
                    &key.principal,
                    &key.tool,
                    &key.key,
                    &self.node,
                    &(until as i64),
                    &(fresh_since as i64),
                    &now_ms(),
                ],
            )
            .await
            .map_err(|e| backend("idempotency claim", e))?;
        Ok(taken == 1)
    }

    async fn release(&self, key: &AnswerKey<'_>) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "DELETE FROM idempotency
                 WHERE principal = $1 AND tool = $2 AND key = $3 AND answer IS NULL AND claimed_by = $4",
                    )
                    .await
                    .map_err(|e| backend("preparing a statement", e))?,
                &[&key.principal, &key.tool, &key.key, &self.node],
            )
            .await
            .map_err(|e| backend("idempotency release", e))?;
        Ok(())
    }
}
