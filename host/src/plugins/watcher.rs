//! The plugins folder, watched: a bundle dropped in, changed or removed is
//! loaded, replaced or unloaded through the same path as an upload. Events
//! are debounced per bundle folder, so a bundle still being copied in is only
//! read once its files have been quiet for a moment; one that still fails
//! (a half-written file, say) is refused and the serving version stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::plugins::folder::Folder;
use crate::Runtime;

/// How long a bundle folder must be quiet before it is read.
pub const QUIET: Duration = Duration::from_millis(400);

/// Keeps the watch alive; dropping it stops watching.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start watching `runtime`'s plugins folder.
pub fn watch(runtime: Runtime) -> notify::Result<FolderWatch> {
    // Events come with absolute paths; compare like with like.
    let root = std::fs::canonicalize(runtime.plugins().plugins_dir())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        use notify::event::{EventKind, ModifyKind};
        // Only changes: reading a bundle (ours included) must not look like one.
        let Ok(event) = event else { return };
        let changed = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
        );
        if changed {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;

    let task = tokio::spawn(async move {
        // Which plugin each bundle folder holds, to unload it when it goes.
        let mut names: HashMap<PathBuf, String> = runtime.plugins().folder().names().await.into_iter().collect();
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                path = rx.recv() => match path {
                    Some(path) => {
                        if let Some(dir) = bundle_dir(&root, &path) {
                            pending.insert(dir, Instant::now());
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let ready: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(_, last)| last.elapsed() >= QUIET)
                        .map(|(dir, _)| dir.clone())
                        .collect();
                    for dir in ready {
                        pending.remove(&dir);
                        settle(&runtime, &dir, &mut names).await;
                    }
                }
            }
        }
    });
    Ok(FolderWatch {
        _watcher: watcher,
        task,
    })
}

/// The bundle folder an event path belongs to: the first level under the
/// plugins folder, skipping build output and hidden files.
fn bundle_dir(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?;
    let second = parts.next().and_then(|c| c.as_os_str().to_str());
    if first.starts_with('.')
        || first == "target"
        || second == Some("target")
        || second.is_some_and(|s| s.starts_with('.'))
    {
        return None;
    }
    Some(root.join(first))
}

/// Bring one bundle folder's plugin in line with what the folder holds.
async fn settle(runtime: &Runtime, dir: &Path, names: &mut HashMap<PathBuf, String>) {
    if !Folder::holds_bundle(dir).await {
        if let Some(name) = names.remove(dir) {
            // Unless another folder holds it (renamed, or written by an
            // upload meanwhile): then the plugin lives on from there.
            let unloaded = runtime
                .plugins()
                .unload_unless_in_folder(&name, Duration::from_secs(60));
            if let Ok(Some(_)) = unloaded.await {
                tracing::info!(plugin = %name, "bundle folder removed; unloaded");
            }
        }
        return;
    }
    // The folder is read once: refused and audited there, or loaded. A
    // bundle identical to the one serving (written here by an upload or a
    // rollback, or renamed) changes nothing, and from now on the folder
    // holds this plugin: its removal unloads it.
    if let Ok(loaded) = runtime.plugins().load_bundle(dir).await {
        names.insert(dir.to_path_buf(), loaded.name().to_string());
    }
}
