//! The host's sled database: one tree per connector for its kv, with a byte
//! quota enforced on every write.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Longest key a connector may store.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest single value a connector may store.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
}

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

#[derive(Clone)]
pub struct Storage {
    db: sled::Db,
    spaces: Arc<Mutex<HashMap<String, Arc<KvSpace>>>>,
    flusher: Arc<Flusher>,
}

/// Group commit. Every acknowledged write waits for a flush that started
/// after it; one flush to disk covers every write made before it began, so
/// many concurrent callers share one fsync instead of queueing for their own
/// (sled's `flush_async` from many tasks at once slows to a crawl).
pub struct Flusher {
    db: sled::Db,
    /// Tickets handed out; a caller takes one after its write.
    issued: std::sync::atomic::AtomicU64,
    /// The highest ticket a finished flush covered; held while flushing.
    covered: tokio::sync::Mutex<u64>,
}

impl Flusher {
    pub async fn flush(&self) -> Result<(), sled::Error> {
        use std::sync::atomic::Ordering;
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            return Ok(());
        }
        // Every ticket issued until now belongs to a write that is already
        // in sled's buffers, so this flush covers them all.
        let target = self.issued.load(Ordering::SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| sled::Error::ReportableBug(format!("flush task: {e}")))??;
        *covered = target;
        Ok(())
    }
}

/// Pages sled keeps in memory. Its default, 1 GiB, let a busy host grow
/// toward that as the audit trail grew (host/benches/load.sh: peak RSS past
/// 1.1 GiB after about a million calls); what is hot (kv, grants, the newest
/// audit records) fits in far less.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Storage {
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        // A host that is just shutting down (or a test that restarts one)
        // still holds the file lock for a moment after its last handle is
        // dropped, until sled's flusher thread has finished: wait for it.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StorageError::Open {
                        path: dir.display().to_string(),
                        source,
                    })
                }
            }
        };
        let flusher = Arc::new(Flusher {
            db: db.clone(),
            issued: Default::default(),
            covered: Default::default(),
        });
        Ok(Storage {
            db,
            spaces: Arc::default(),
            flusher,
        })
    }

    /// The kv space of one plugin, shared by all its calls so the quota
    /// accounting sees every write.
    pub fn kv(&self, plugin: &str) -> Result<Arc<KvSpace>, StorageError> {
        let mut spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(space) = spaces.get(plugin) {
            return Ok(space.clone());
        }
        let tree = self.db.open_tree(format!("kv/{plugin}"))?;
        // Count once what the tree holds; every write keeps it current.
        let mut used = 0u64;
        for entry in tree.iter() {
            let (k, v) = entry?;
            used += (k.len() + v.len()) as u64;
        }
        let space = Arc::new(KvSpace {
            tree,
            used: Mutex::new(used),
            flusher: self.flusher.clone(),
        });
        spaces.insert(plugin.to_string(), space.clone());
        Ok(space)
    }

    /// Make every write made so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.flusher.flush().await?;
        Ok(())
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// One plugin's keys and values, and the bytes they take.
pub struct KvSpace {
    tree: sled::Tree,
    /// Bytes of keys plus values. Writes take this lock so that two calls
    /// cannot both squeeze under the quota.
    used: Mutex<u64>,
    flusher: Arc<Flusher>,
}

fn internal(e: sled::Error) -> KvRefusal {
    KvRefusal::Internal(e.to_string())
}

impl KvSpace {
    pub fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvRefusal> {
        Ok(self.tree.get(key).map_err(internal)?.map(|v| v.to_vec()))
    }

    /// Write `value` under `key`; with `only_if_absent`, only when the key is
    /// free. Returns whether it wrote.
    pub fn put(&self, key: &str, value: &[u8], quota: u64, only_if_absent: bool) -> Result<bool, KvRefusal> {
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
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.tree.get(key).map_err(internal)?;
        if only_if_absent && old.is_some() {
            return Ok(false);
        }
        let old_size = old.map_or(0, |v| (key.len() + v.len()) as u64);
        let new_used = *used - old_size + (key.len() + value.len()) as u64;
        if new_used > quota && new_used > *used {
            return Err(KvRefusal::QuotaExceeded(format!(
                "the write needs {new_used} bytes of a {quota}-byte quota"
            )));
        }
        self.tree.insert(key, value).map_err(internal)?;
        *used = new_used;
        Ok(true)
    }

    pub fn delete(&self, key: &str) -> Result<bool, KvRefusal> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        match self.tree.remove(key).map_err(internal)? {
            Some(old) => {
                *used -= (key.len() + old.len()) as u64;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn list_keys(&self, prefix: &str, limit: u32) -> Result<Vec<String>, KvRefusal> {
        let mut keys = Vec::new();
        for entry in self.tree.scan_prefix(prefix).keys().take(limit.min(10_000) as usize) {
            let key = entry.map_err(internal)?;
            keys.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(keys)
    }

    pub async fn flush(&self) -> Result<(), KvRefusal> {
        self.flusher.flush().await.map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_keys_and_values_and_survives_reopen() {
        let dir = tempdir();
        {
            let storage = Storage::open(&dir).unwrap();
            let kv = storage.kv("p").unwrap();
            assert!(kv.put("a", &[0; 40], 100, false).unwrap());
            assert!(kv.put("b", &[0; 40], 100, false).unwrap());
            assert!(matches!(
                kv.put("c", &[0; 40], 100, false),
                Err(KvRefusal::QuotaExceeded(_))
            ));
            // Replacing with something smaller is always allowed.
            assert!(kv.put("a", &[0; 10], 100, false).unwrap());
            assert_eq!(kv.used(), 11 + 41);
            assert!(!kv.put("a", b"x", 100, true).unwrap());
            assert!(kv.delete("b").unwrap());
            assert_eq!(kv.used(), 11);
            storage.db().flush().unwrap();
        }
        let storage = Storage::open(&dir).unwrap();
        assert_eq!(storage.kv("p").unwrap().used(), 11);
        assert_eq!(storage.kv("p").unwrap().list_keys("", 10).unwrap(), vec!["a"]);
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "toolhost-storage-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
