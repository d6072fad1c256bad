//! Every version a plugin has served: its bundle archived under
//! `data/bundles/<name>/`, and its history in the storage's
//! [`HistoryStore`](crate::storage::HistoryStore), so an operator can roll
//! back to the version before without having kept the files.
//!
//! A rollback keeps the history: the version rolled back from stays in it,
//! marked `rolled_back`, and what serves is the newest entry not so marked.
//! A second rollback goes further back; the next upload is a new entry.

use std::path::{Path, PathBuf};

use crate::model::audit::Source;
use crate::model::version::{serving, VersionEntry};
use crate::plugins::bundle::Bundle;
use crate::plugins::folder::{blocking, Folder};
use crate::storage::{Storage, StorageError};

/// Versions kept per plugin.
pub const KEEP: usize = 20;

pub struct Versions {
    dir: PathBuf,
    storage: Storage,
}

#[derive(Debug, thiserror::Error)]
pub enum VersionsError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("archiving the bundle in {path}: {source}")]
    Archive { path: String, source: std::io::Error },
}

impl Versions {
    pub fn open(dir: &Path, storage: &Storage) -> Versions {
        Versions {
            dir: dir.to_path_buf(),
            storage: storage.clone(),
        }
    }

    pub async fn history(&self, plugin: &str) -> Result<Vec<VersionEntry>, VersionsError> {
        Ok(self.storage.history().history(plugin).await?)
    }

    /// Replace the history (to undo a [`record`](Versions::record) whose
    /// bundle could not be kept after all).
    pub async fn restore(&self, plugin: &str, history: &[VersionEntry]) -> Result<(), VersionsError> {
        Ok(self.storage.history().set_history(plugin, history).await?)
    }

    /// Archive a bundle that now serves and note it in the history (once:
    /// the same version loaded again is not a new entry).
    pub async fn record(&self, bundle: &Bundle, via: Source) -> Result<VersionEntry, VersionsError> {
        let plugin = &bundle.name;
        let manifest_digest = bundle.manifest_digest();
        let archive = format!("{plugin}/{}-{}", &bundle.digest[..16], &manifest_digest[..16]);
        let path = self.dir.join(&archive);
        let files = archived(path.clone(), bundle.files())
            .await
            .map_err(|source| VersionsError::Archive {
                path: path.display().to_string(),
                source,
            })?;
        // Shared before the history names it, so that a node that hears of
        // the new version finds its bundle.
        self.storage.history().put_bundle(&archive, &files).await?;
        let mut history = self.history(plugin).await?;
        let entry = VersionEntry {
            version: bundle.version.to_string(),
            digest: bundle.digest.clone(),
            manifest_digest,
            loaded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            via,
            archive,
            rolled_back: None,
        };
        let same = |e: &VersionEntry| e.digest == entry.digest && e.manifest_digest == entry.manifest_digest;
        if !serving(&history).is_some_and(same) {
            history.push(entry.clone());
            if history.len() > KEEP {
                history.drain(..history.len() - KEEP);
            }
            self.restore(plugin, &history).await?;
        }
        Ok(entry)
    }

    /// Where an archived bundle is on this node, from its history entry's
    /// `archive`: fetched from the store first when another node archived
    /// it. `None` when neither has it.
    pub async fn local(&self, archive: &str) -> Result<Option<PathBuf>, VersionsError> {
        let path = self.dir.join(archive);
        if Folder::holds_bundle(&path).await {
            return Ok(Some(path));
        }
        let Some(files) = self.storage.history().bundle(archive).await? else {
            return Ok(None);
        };
        // Written aside and renamed, so that a reader never finds half.
        let aside = self
            .dir
            .join(format!(".fetching-{}-{}", std::process::id(), rand::random::<u32>()));
        let target = path.clone();
        let fetched = blocking(move || {
            Bundle::write_files(&aside, &files)?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if let Err(e) = std::fs::rename(&aside, &target) {
                let _ = std::fs::remove_dir_all(&aside);
                // Another fetch of the same archive got there first.
                if !Bundle::is_bundle(&target) {
                    return Err(e);
                }
            }
            Ok(())
        });
        fetched.await.map_err(|source| VersionsError::Archive {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(path))
    }

    /// The version that served before the current one (none rolled back
    /// from), and where its bundle is.
    pub async fn previous(&self, plugin: &str) -> Result<Option<(VersionEntry, PathBuf)>, VersionsError> {
        let history = self.history(plugin).await?;
        let Some(previous) = history.iter().rev().filter(|e| e.rolled_back.is_none()).nth(1) else {
            return Ok(None);
        };
        let path = match self.local(&previous.archive).await? {
            Some(path) => path,
            None => self.dir.join(&previous.archive),
        };
        Ok(Some((previous.clone(), path)))
    }

    /// After a rollback succeeded: the version rolled back from stays in
    /// the history, marked, so a second rollback goes further back.
    pub async fn mark_rolled_back(&self, plugin: &str) -> Result<(), VersionsError> {
        let mut history = self.history(plugin).await?;
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        if let Some(current) = history.iter_mut().rev().find(|e| e.rolled_back.is_none()) {
            current.rolled_back = Some(now);
        }
        self.restore(plugin, &history).await
    }
}

/// The archive folder `path` written with `files` unless it holds them
/// already, on a blocking thread (a component is up to 64 MiB, each file
/// fsynced); the files come back.
async fn archived(path: PathBuf, files: Vec<(String, Vec<u8>)>) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    blocking(move || match Bundle::is_bundle(&path) {
        true => Ok(files),
        false => Bundle::write_files(&path, &files).map(|()| files),
    })
    .await
}
