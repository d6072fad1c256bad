//! `kv`: the plugin's own keys and values, within its granted byte quota.

use super::wit::kv::{Host, KvError};
use super::{CallState, Capability};
use crate::storage::kv::{KvRefusal, KvSpace};

impl From<KvRefusal> for KvError {
    fn from(r: KvRefusal) -> KvError {
        match r {
            KvRefusal::QuotaExceeded(m) => KvError::QuotaExceeded(m),
            KvRefusal::TooLarge(m) => KvError::TooLarge(m),
            KvRefusal::Internal(m) => KvError::Internal(m),
        }
    }
}

impl CallState {
    fn space(&self) -> Result<std::sync::Arc<dyn KvSpace>, KvError> {
        match &self.plugin.kv {
            Some(space) => Ok(space.clone()),
            None => {
                let detail = if self.plugin.requested_kv_bytes == 0 {
                    "storage refused: the connector's manifest requests no kv quota".to_string()
                } else {
                    "storage refused: the operator granted no kv quota".to_string()
                };
                self.deny(Capability::Kv, detail.clone());
                Err(KvError::Denied(detail))
            }
        }
    }

    /// The gate before a write: the call's audit record is durable first.
    fn before_write(&self) -> impl std::future::Future<Output = Result<(), KvError>> + Send + 'static {
        let gate = self.gate.clone();
        async move {
            gate.open()
                .await
                .map_err(|e| KvError::Internal(format!("not written: the audit trail is unavailable: {e}")))
        }
    }

    async fn put(&mut self, key: &str, value: &[u8], only_if_absent: bool) -> Result<bool, KvError> {
        let space = self.space()?;
        self.before_write().await?;
        let quota = self.plugin.grant.kv_quota_bytes;
        match space.put(key, value, quota, only_if_absent).await {
            Ok(wrote) => {
                self.journal.lock().unwrap_or_else(|p| p.into_inner()).kv_writes += u32::from(wrote);
                Ok(wrote)
            }
            Err(KvRefusal::QuotaExceeded(m)) => {
                self.deny(Capability::Kv, format!("write of {key:?} refused: {m}"));
                Err(KvError::QuotaExceeded(m))
            }
            Err(other) => Err(other.into()),
        }
    }
}

impl Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.space()?.get(&key).await?)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.put(&key, &value, false).await.map(drop)
    }

    async fn set_if_absent(&mut self, key: String, value: Vec<u8>) -> Result<bool, KvError> {
        self.put(&key, &value, true).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, KvError> {
        let space = self.space()?;
        self.before_write().await?;
        let deleted = space.delete(&key).await?;
        self.journal.lock().unwrap_or_else(|p| p.into_inner()).kv_writes += u32::from(deleted);
        Ok(deleted)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        Ok(self.space()?.list_keys(&prefix, limit).await?)
    }
}
