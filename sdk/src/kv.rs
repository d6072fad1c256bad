//! The connector's private, durable key-value store, bounded by a quota.
//!
//! Values are bytes; [`get_json`] and [`set_json`] store serde values as JSON.

use serde::{de::DeserializeOwned, Serialize};

use crate::backend;
pub use crate::bindings::host::toolhost::connector::kv::KvError;

/// Read a value; `None` when absent.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    backend::kv_get(key)
}

/// Write a value, replacing any previous one.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    backend::kv_set(key, value)
}

/// Write only if absent; `true` when this call wrote it. Two racing calls
/// cannot both get `true`, which is what an idempotency key needs.
pub fn set_if_absent(key: &str, value: &[u8]) -> Result<bool, KvError> {
    backend::kv_set_if_absent(key, value)
}

/// Remove a key; `true` when it existed.
pub fn delete(key: &str) -> Result<bool, KvError> {
    backend::kv_delete(key)
}

/// Keys starting with `prefix`, in order, at most `limit`.
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
    backend::kv_list_keys(prefix, limit)
}

/// Read a JSON value; `None` when absent. A stored value that no longer
/// parses is reported as an internal error rather than silently dropped.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KvError::Internal(format!("stored value at {key:?} is not valid: {e}"))),
    }
}

/// Store a value as JSON.
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<(), KvError> {
    set(key, &to_json(value)?)
}

/// Store a value as JSON only if the key is absent; `true` when written.
pub fn set_json_if_absent<T: Serialize>(key: &str, value: &T) -> Result<bool, KvError> {
    set_if_absent(key, &to_json(value)?)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(value).map_err(|e| KvError::Internal(format!("cannot encode value: {e}")))
}
