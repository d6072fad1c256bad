//! The plugins folder on disk: reading a bundle from it, keeping a bundle in
//! it (written aside, fsynced, renamed into place), removing one, finishing
//! what a crash interrupted, listing its bundle folders.
//!
//! All of it runs on tokio's blocking threads, never on the threads that
//! serve the API: a component is up to 64 MiB, a write is fsynced, and the
//! folder holds whatever an operator dropped in (a file that blocks its
//! reader is refused by [`Bundle::read`], which reads regular files only).
//! [`Lifecycle`](super::lifecycle::Lifecycle) keeps the lock and the swap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::bundle::Bundle;
use super::error::LoadError;
use super::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
#[error("cannot read plugins folder {path}: {source}")]
pub struct FolderError {
    pub path: String,
    pub source: std::io::Error,
}

impl FolderError {
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
        move |source| FolderError {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The plugins folder.
pub struct Folder {
    dir: PathBuf,
    writes: Arc<Writes>,
}

/// The host's own writes into the folder (a kept or removed bundle).
#[derive(Default)]
struct Writes {
    /// One at a time: a write goes on when the caller that awaited it is
    /// dropped (and so releases the plugin's lock), and the next must not
    /// use its aside names meanwhile.
    one: Mutex<()>,
    /// Bumped after each: a reader that saw it unchanged read no such write.
    done: AtomicU64,
}

impl Writes {
    /// Do `write` (on a blocking thread), counted done even if it failed:
    /// it may have moved a folder before it did.
    fn run<T>(&self, write: impl FnOnce() -> T) -> T {
        let one = self.one.lock().unwrap_or_else(|p| p.into_inner());
        let written = write();
        self.done.fetch_add(1, Ordering::SeqCst);
        drop(one);
        written
    }
}

/// A bundle read from the folder, and how many of the host's own writes the
/// folder had seen when the read began.
pub struct Found {
    pub bundle: Bundle,
    writes: u64,
}

impl Folder {
    pub fn new(dir: PathBuf) -> Folder {
        Folder {
            dir,
            writes: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Read the bundle in `dir` (once: pass the [`Found`] along).
    pub async fn read(&self, dir: &Path) -> Result<Found, LoadError> {
        let writes = self.writes.done.load(Ordering::SeqCst);
        let bundle = read_bundle(dir).await;
        tracing::debug!(bundle = %dir.display(), read = bundle.is_ok(), "read from the plugins folder");
        Ok(Found {
            bundle: bundle?,
            writes,
        })
    }

    /// Whether the host wrote into the folder since `found` was read (then
    /// what was read may be what that write replaced).
    pub fn written_since(&self, found: &Found) -> bool {
        self.writes.done.load(Ordering::SeqCst) != found.writes
    }

    /// Whether `dir` holds a bundle of either kind.
    pub async fn holds_bundle(dir: &Path) -> bool {
        let dir = dir.to_path_buf();
        blocking(move || Ok(Bundle::is_bundle(&dir))).await.unwrap_or(false)
    }

    /// The bundle folders in the plugins folder: each subfolder with a
    /// `connector.toml` or a `workflow.yaml`, in name order.
    pub async fn bundle_dirs(&self) -> Result<Vec<PathBuf>, FolderError> {
        let dir = self.dir.clone();
        blocking(move || bundle_dirs(&dir))
            .await
            .map_err(FolderError::at(&self.dir))
    }

    /// The folder whose manifest names `name`. Read when asked (by an
    /// operator's action, not a tool call), so it is never stale.
    pub async fn dir_of(&self, name: &str) -> Option<PathBuf> {
        let (dir, name) = (self.dir.clone(), name.to_string());
        blocking(move || Ok(dir_of(&dir, &name))).await.ok().flatten()
    }

    /// Each bundle folder (canonical path) with the plugin it holds.
    pub async fn names(&self) -> Vec<(PathBuf, String)> {
        let dir = self.dir.clone();
        let named = blocking(move || {
            Ok(bundle_dirs(&dir)?
                .into_iter()
                .filter_map(|dir| {
                    let name = Bundle::name_in(&dir)?;
                    Some((std::fs::canonicalize(&dir).ok()?, name))
                })
                .collect())
        });
        named.await.unwrap_or_default()
    }

    /// The plugins folder is what a restart loads: a bundle that came in
    /// another way (upload, rollback) replaces the plugin's folder there,
    /// written aside and renamed into place so the watcher never sees half.
    pub async fn keep(&self, bundle: &Bundle) -> std::io::Result<()> {
        let (dir, name, files, writes) = (
            self.dir.clone(),
            bundle.name.clone(),
            bundle.files(),
            self.writes.clone(),
        );
        blocking(move || writes.run(|| keep(&dir, &name, &files))).await
    }

    /// Remove the folder that holds `name`, if any, durably.
    pub async fn remove(&self, name: &str) -> Result<(), FolderError> {
        let (dir, name, writes) = (self.dir.clone(), name.to_string(), self.writes.clone());
        blocking(move || {
            writes.run(|| match dir_of(&dir, &name) {
                Some(bundle) => remove_entry(&bundle).and_then(|()| std::fs::File::open(&dir)?.sync_all()),
                None => Ok(()),
            })
        })
        .await
        .map_err(FolderError::at(&self.dir))
    }

    /// Finish what a crash interrupted in [`Folder::keep`]: a plugin's
    /// folder moved aside (`.retired-NAME-PID`) with nothing renamed into
    /// its place goes back, so the plugin serves after the restart; then
    /// every folder written aside by an earlier process is removed. Once,
    /// at start-up, before loading; blocking.
    pub fn recover(&self) -> Result<(), FolderError> {
        recover(&self.dir)
    }
}

/// Read the bundle in `dir` (the plugins folder's, or an archived one) on a
/// blocking thread.
pub async fn read_bundle(dir: &Path) -> Result<Bundle, LoadError> {
    let owned = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || Bundle::read(&owned)).await {
        Ok(read) => read,
        Err(e) => Err(LoadError::Manifest(ManifestError::Read {
            path: dir.display().to_string(),
            source: std::io::Error::other(format!("the reader stopped: {e}")),
        })),
    }
}

/// Run blocking file work on tokio's blocking threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("the file work stopped: {e}"))))
}

fn bundle_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    // Hidden folders are ours (a bundle being written aside, or the one it
    // replaced), never a plugin: the watcher skips them too.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| Bundle::is_bundle(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn dir_of(dir: &Path, name: &str) -> Option<PathBuf> {
    bundle_dirs(dir)
        .unwrap_or_default()
        .into_iter()
        .find(|d| Bundle::name_in(d).is_some_and(|n| n == name))
}

fn keep(dir: &Path, name: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let target = dir_of(dir, name).unwrap_or_else(|| dir.join(name));
    let aside = |what: &str| dir.join(format!(".{what}-{name}-{}", std::process::id()));
    let (staging, retired) = (aside("incoming"), aside("retired"));
    let _ = std::fs::remove_dir_all(&staging);
    Bundle::write_files(&staging, files)?;
    if target.symlink_metadata().is_ok() {
        std::fs::rename(&target, &retired)?;
    }
    std::fs::rename(&staging, &target)?;
    // The renames are durable once the folder holding them is.
    std::fs::File::open(dir)?.sync_all()?;
    remove_entry(&retired)
}

fn recover(dir: &Path) -> Result<(), FolderError> {
    let entries = std::fs::read_dir(dir).map_err(FolderError::at(dir))?;
    let own = format!("-{}", std::process::id());
    let mut changed = false;
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some((what, name)) = aside_name(&file_name) else {
            continue;
        };
        if file_name.ends_with(&own) {
            continue;
        }
        let path = entry.path();
        let home = dir.join(name);
        if what == "retired" && home.symlink_metadata().is_err() && dir_of(dir, name).is_none() {
            tracing::warn!(plugin = %name, "restoring its folder, moved aside when a write was interrupted");
            std::fs::rename(&path, &home).map_err(FolderError::at(&path))?;
        } else {
            tracing::info!(folder = %path.display(), "removing a folder left by an interrupted write");
            remove_entry(&path).map_err(FolderError::at(&path))?;
        }
        changed = true;
    }
    if changed {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(FolderError::at(dir))?;
    }
    Ok(())
}

/// `("incoming" | "retired", plugin name)` for a folder `keep` writes
/// aside: `.incoming-NAME-PID` or `.retired-NAME-PID`.
fn aside_name(file_name: &str) -> Option<(&str, &str)> {
    let rest = file_name.strip_prefix('.')?;
    let (what, rest) = rest.split_once('-')?;
    if what != "incoming" && what != "retired" {
        return None;
    }
    let (name, pid) = rest.rsplit_once('-')?;
    (!name.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some((what, name))
}

/// Remove a folder or a file (a symlinked bundle) at `path`, if any.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::{Bundle, Folder};

    fn bundle(version: &str) -> Bundle {
        let manifest = format!(
            "name = \"kept\"\nversion = \"{version}\"\nvendor = \"v\"\nworld = \"toolhost-test:echo/echo-guest\"\n"
        );
        Bundle::from_parts(manifest, b"\0asm".to_vec(), None).unwrap()
    }

    /// What a folder event reads goes stale when the host writes the
    /// folder meanwhile (an upload or a rollback), and only then.
    #[tokio::test]
    async fn a_read_knows_whether_the_host_wrote_the_folder_since() {
        let dir = std::env::temp_dir().join(format!("toolhost-folder-writes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let folder = Folder::new(dir.clone());
        folder.keep(&bundle("1.0.0")).await.unwrap();
        let found = folder.read(&dir.join("kept")).await.unwrap();
        assert_eq!(found.bundle.version.to_string(), "1.0.0");
        assert!(!folder.written_since(&found));
        // Another plugin's folder removed: a write all the same.
        folder.remove("absent").await.unwrap();
        assert!(folder.written_since(&found));
        let found = folder.read(&dir.join("kept")).await.unwrap();
        assert!(!folder.written_since(&found));
        folder.keep(&bundle("2.0.0")).await.unwrap();
        assert!(folder.written_since(&found));
        let found = folder.read(&dir.join("kept")).await.unwrap();
        assert_eq!(found.bundle.version.to_string(), "2.0.0");
        assert_eq!(folder.bundle_dirs().await.unwrap(), [dir.join("kept")]);
        assert_eq!(folder.dir_of("kept").await, Some(dir.join("kept")));
        folder.remove("kept").await.unwrap();
        assert!(folder.bundle_dirs().await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
