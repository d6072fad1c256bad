//! Every version a plugin has served: its bundle archived under
//! `data/bundles/<name>/`, and its history in sled, so an operator can roll
//! back to the version before without having kept the files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plugin::Bundle;
use crate::storage::{Storage, StorageError};

/// Versions kept per plugin.
pub const KEEP: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionEntry {
    pub version: String,
    /// sha256 of the component.
    pub digest: String,
    pub manifest_digest: String,
    /// RFC 3339.
    pub loaded_at: String,
    /// `folder`, `api` or `rollback`.
    pub origin: String,
    /// The archived bundle, relative to the archive folder.
    pub archive: String,
}

pub struct Versions {
    dir: PathBuf,
    tree: sled::Tree,
    storage: Storage,
}

#[derive(Debug, thiserror::Error)]
pub enum VersionsError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("archiving the bundle in {path}: {source}")]
    Archive { path: String, source: std::io::Error },
}

impl From<sled::Error> for VersionsError {
    fn from(e: sled::Error) -> Self {
        VersionsError::Storage(e.into())
    }
}

impl Versions {
    pub fn open(dir: &Path, storage: &Storage) -> Result<Versions, VersionsError> {
        Ok(Versions {
            dir: dir.to_path_buf(),
            tree: storage.db().open_tree("plugins")?,
            storage: storage.clone(),
        })
    }

    pub fn history(&self, plugin: &str) -> Vec<VersionEntry> {
        self.tree
            .get(plugin)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    async fn save(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), VersionsError> {
        self.tree
            .insert(plugin, serde_json::to_vec(history).unwrap_or_default())?;
        self.storage.flush().await?;
        Ok(())
    }

    /// Archive a bundle that now serves and note it in the history (once:
    /// the same version loaded again is not a new entry).
    pub async fn record(&self, bundle: &Bundle, via: crate::audit::Via) -> Result<VersionEntry, VersionsError> {
        let plugin = &bundle.manifest.name;
        let manifest_digest = bundle.manifest_digest();
        let archive = format!("{plugin}/{}-{}", &bundle.digest[..16], &manifest_digest[..16]);
        let path = self.dir.join(&archive);
        if !path.join("connector.toml").is_file() {
            bundle.write_to(&path).map_err(|source| VersionsError::Archive {
                path: path.display().to_string(),
                source,
            })?;
        }
        let mut history = self.history(plugin);
        let entry = VersionEntry {
            version: bundle.manifest.version.to_string(),
            digest: bundle.digest.clone(),
            manifest_digest,
            loaded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            origin: via.as_str().to_string(),
            archive,
        };
        let same = |e: &VersionEntry| e.digest == entry.digest && e.manifest_digest == entry.manifest_digest;
        if !history.last().is_some_and(same) {
            history.push(entry.clone());
            if history.len() > KEEP {
                history.drain(..history.len() - KEEP);
            }
            self.save(plugin, &history).await?;
        }
        Ok(entry)
    }

    /// The version before the current one, and where its bundle is.
    pub fn previous(&self, plugin: &str) -> Option<(VersionEntry, PathBuf)> {
        let history = self.history(plugin);
        let previous = history.iter().rev().nth(1)?.clone();
        let path = self.dir.join(&previous.archive);
        Some((previous, path))
    }

    /// After a rollback succeeded: the version rolled back from leaves the
    /// history, so a second rollback goes further back.
    pub async fn drop_current(&self, plugin: &str) -> Result<(), VersionsError> {
        let mut history = self.history(plugin);
        history.pop();
        self.save(plugin, &history).await
    }
}
