//! A connector's own keys and values, within the byte quota its grant
//! allows. What any backend must enforce is here; sled's way is in
//! `storage::sled`.

use async_trait::async_trait;

use super::StorageError;

/// Longest key a connector may store.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest single value a connector may store.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Why a kv operation was refused; mirrors the WIT `kv-error`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KvRefusal {
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for KvRefusal {
    fn from(e: StorageError) -> Self {
        KvRefusal::Internal(e.to_string())
    }
}

/// Where every plugin's kv space lives.
pub trait KvStore: Send + Sync {
    /// The kv space of one plugin, shared by all its calls so that the
    /// quota accounting sees every write.
    fn space(&self, plugin: &str) -> Result<std::sync::Arc<dyn KvSpace>, StorageError>;
}

/// One plugin's keys and values. Writes become durable at [`KvSpace::flush`]
/// (the call path flushes once after a call that wrote), so a call writing
/// several keys waits for storage once.
#[async_trait]
pub trait KvSpace: Send + Sync {
    /// Bytes of keys plus values stored now.
    fn used(&self) -> u64;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvRefusal>;
    /// Write `value` under `key` if the quota allows (see [`check_write`]);
    /// with `only_if_absent`, only when the key is free. Whether it wrote.
    async fn put(&self, key: &str, value: &[u8], quota: u64, only_if_absent: bool) -> Result<bool, KvRefusal>;
    /// Whether there was something to delete.
    async fn delete(&self, key: &str) -> Result<bool, KvRefusal>;
    /// Keys starting with `prefix`, in order, at most `limit` (and never
    /// more than 10,000).
    async fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvRefusal>;
    async fn flush(&self) -> Result<(), KvRefusal>;
}

/// The sizes every backend refuses, whatever the quota.
pub fn check_sizes(key: &str, value: &[u8]) -> Result<(), KvRefusal> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvRefusal::TooLarge(format!(
            "keys are 1 to {MAX_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvRefusal::TooLarge(format!(
            "values are at most {MAX_VALUE_BYTES} bytes, not {}",
            value.len()
        )));
    }
    Ok(())
}

/// The quota rule every backend applies: a write that leaves the space
/// over `quota` is refused unless it shrinks what is stored (replacing a
/// value with a smaller one is always allowed). Returns the bytes used
/// after the write.
pub fn check_write(used: u64, old: Option<usize>, key: &str, value: &[u8], quota: u64) -> Result<u64, KvRefusal> {
    let old_size = old.map_or(0, |v| (key.len() + v) as u64);
    let new_used = used - old_size + (key.len() + value.len()) as u64;
    if new_used > quota && new_used > used {
        return Err(KvRefusal::QuotaExceeded(format!(
            "the write needs {new_used} bytes of a {quota}-byte quota"
        )));
    }
    Ok(new_used)
}

/// Most keys one listing returns.
pub const MAX_LISTED: u32 = 10_000;
