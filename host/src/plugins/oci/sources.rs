//! `[sources]`: bundles pulled from registries into the plugins folder at
//! start, each folder remembering what it holds ([`DIGEST_FILE`]) so an
//! unreachable registry leaves the last good pull serving.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::reference::is_sha256_digest;
use super::{aside, fetch, file_names, stage, sync_dir, BundleRef, OciError, Pulled, RegistriesConfig, DIGEST_FILE};
use crate::plugins::bundle::{write_synced, Bundle};

/// What [`DIGEST_FILE`] says a pulled folder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    digest: String,
    reference: String,
    /// `(sha256 hex, file name)` of each bundle file.
    files: Vec<(String, String)>,
}

impl Kept {
    fn of(pulled: &Pulled, reference: &BundleRef) -> Kept {
        Kept {
            digest: pulled.digest.clone(),
            reference: reference.to_string(),
            files: pulled
                .files
                .iter()
                .map(|(name, bytes)| (hex::encode(Sha256::digest(bytes)), name.clone()))
                .collect(),
        }
    }

    fn text(&self) -> String {
        let mut text = format!("{}\n{}\n", self.digest, self.reference);
        for (hash, name) in &self.files {
            text.push_str(&format!("{hash} {name}\n"));
        }
        text
    }

    fn parse(text: &str) -> Option<Kept> {
        let mut lines = text.lines();
        let digest = lines.next()?.trim().to_string();
        let reference = lines.next()?.trim().to_string();
        if !is_sha256_digest(&digest) {
            return None;
        }
        let files = lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (hash, name) = l.split_once(' ')?;
                Some((hash.to_string(), name.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Kept {
            digest,
            reference,
            files,
        })
    }

    /// What `dir` holds, if it still holds exactly what was pulled: every
    /// file as hashed then, and no other bundle file.
    fn read(dir: &Path) -> Option<Kept> {
        let kept = Kept::parse(&std::fs::read_to_string(dir.join(DIGEST_FILE)).ok()?)?;
        let bundle = Bundle::read(dir).ok()?;
        let listed: BTreeSet<&str> = kept.files.iter().map(|(_, name)| name.as_str()).collect();
        if file_names(&bundle.files()) != listed {
            return None;
        }
        let unchanged = kept.files.iter().all(|(hash, name)| {
            std::fs::read(dir.join(name)).is_ok_and(|bytes| hex::encode(Sha256::digest(bytes)) == *hash)
        });
        unchanged.then_some(kept)
    }
}

/// How one source stands after the pull at start.
#[derive(Debug)]
pub enum SourceState {
    /// Fetched and written into the plugins folder.
    Pulled { digest: String },
    /// The folder already held this digest: nothing fetched.
    Held { digest: String },
    /// The registry could not give the tag's digest; the folder's copy,
    /// pulled earlier by the same reference, serves.
    KeptEarlier { digest: String, error: OciError },
    /// Nothing of this source serves.
    Failed(OciError),
}

/// One `[sources]` entry after the pull at start: printed at start-up.
#[derive(Debug)]
pub struct SourceOutcome {
    pub plugin: String,
    pub reference: BundleRef,
    pub state: SourceState,
}

impl SourceOutcome {
    pub fn failed(&self) -> bool {
        matches!(self.state, SourceState::Failed(_))
    }
}

impl fmt::Display for SourceOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (plugin, reference) = (&self.plugin, &self.reference);
        match &self.state {
            SourceState::Pulled { digest } => {
                write!(f, "source {plugin}: pulled {reference}, pinned by digest {digest}")
            }
            SourceState::Held { digest } => write!(
                f,
                "source {plugin}: {reference} is {digest}, already in the plugins folder (pinned by digest)"
            ),
            SourceState::KeptEarlier { digest, error } => write!(
                f,
                "source {plugin}: cannot resolve {reference} ({error}); serving the copy pinned by digest {digest} \
                 from an earlier pull"
            ),
            SourceState::Failed(error) => write!(f, "not loaded: source {plugin} ({reference}): {error}"),
        }
    }
}

/// Bring every source's folder in the plugins folder in line with its
/// reference, before the folder is loaded. A source that cannot be pulled
/// is reported, never fatal: the host starts without it, or with the copy
/// an earlier pull left when that is still what the reference names.
pub async fn pull_sources(
    sources: &BTreeMap<String, BundleRef>,
    plugins_dir: &Path,
    registries: &RegistriesConfig,
) -> Vec<SourceOutcome> {
    // All at once, each bounded by pull-timeout-secs: the start waits for
    // the slowest, not for their sum.
    let states = futures_util::future::join_all(
        sources
            .iter()
            .map(|(plugin, reference)| pull_source(plugin, reference, plugins_dir, registries)),
    )
    .await;
    let mut outcomes = Vec::with_capacity(sources.len());
    for ((plugin, reference), state) in sources.iter().zip(states) {
        match &state {
            SourceState::Pulled { digest } | SourceState::Held { digest } => {
                tracing::info!(plugin = %plugin, %reference, %digest, "source pinned by digest");
            }
            SourceState::KeptEarlier { digest, error } => {
                tracing::warn!(plugin = %plugin, %reference, %digest, "registry unavailable, serving the earlier pull: {error}");
            }
            SourceState::Failed(error) => {
                tracing::error!(plugin = %plugin, %reference, "source not pulled: {error}");
            }
        }
        outcomes.push(SourceOutcome {
            plugin: plugin.clone(),
            reference: reference.clone(),
            state,
        });
    }
    outcomes
}

async fn pull_source(
    plugin: &str,
    reference: &BundleRef,
    plugins_dir: &Path,
    registries: &RegistriesConfig,
) -> SourceState {
    let target = plugins_dir.join(plugin);
    if let Err(source) = std::fs::create_dir_all(plugins_dir) {
        return SourceState::Failed(OciError::Write {
            path: plugins_dir.display().to_string(),
            source,
        });
    }
    let retired = aside(&target, "oci-old");
    // A start that stopped between moving the old folder aside and putting
    // the new one in place: the old one goes back, and is judged below.
    if target.symlink_metadata().is_err() && retired.symlink_metadata().is_ok() {
        let _ = std::fs::rename(&retired, &target);
    }
    let kept = Kept::read(&target);
    if let (Some(wanted), Some(kept)) = (reference.digest(), &kept) {
        if kept.digest == wanted {
            return SourceState::Held {
                digest: kept.digest.clone(),
            };
        }
    }
    match place_source(plugin, reference, &target, kept.as_ref(), registries).await {
        Ok(state) => state,
        Err(error) => unavailable(plugin, reference, &target, kept, error),
    }
}

/// Fetch the source and, unless the folder already holds that digest, put
/// it in the folder in place of what was there.
async fn place_source(
    plugin: &str,
    reference: &BundleRef,
    target: &Path,
    kept: Option<&Kept>,
    registries: &RegistriesConfig,
) -> Result<SourceState, OciError> {
    let pulled = fetch(reference, registries).await?;
    if pulled.config.name != plugin {
        return Err(OciError::WrongPlugin {
            reference: reference.clone(),
            expected: plugin.to_string(),
            found: pulled.config.name.clone(),
        });
    }
    let failed = |source| OciError::Write {
        path: target.display().to_string(),
        source,
    };
    let record = Kept::of(&pulled, reference).text();
    if kept.is_some_and(|k| k.digest == pulled.digest) {
        // The same digest, maybe named another way now: remember how.
        write_synced(&target.join(DIGEST_FILE), record.as_bytes()).map_err(failed)?;
        return Ok(SourceState::Held { digest: pulled.digest });
    }
    let staging = aside(target, "oci-pull");
    let placed = stage(&pulled, reference, &staging).and_then(|_| {
        write_synced(&staging.join(DIGEST_FILE), record.as_bytes()).map_err(failed)?;
        sync_dir(&staging).map_err(failed)?;
        replace(target, &staging, &aside(target, "oci-old")).map_err(failed)
    });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    placed.map(|()| SourceState::Pulled { digest: pulled.digest })
}

/// The registry did not give what `reference` names. The folder's copy
/// serves if an earlier pull of this same tag left it (the last digest the
/// tag was seen at); otherwise nothing of this source may serve, so a
/// folder there is moved aside, out of the loader's sight.
fn unavailable(plugin: &str, reference: &BundleRef, target: &Path, kept: Option<Kept>, error: OciError) -> SourceState {
    let unreachable = matches!(error, OciError::Registry { .. });
    if let Some(kept) = &kept {
        if unreachable && reference.digest().is_none() && kept.reference == reference.to_string() {
            return SourceState::KeptEarlier {
                digest: kept.digest.clone(),
                error,
            };
        }
    }
    if target.symlink_metadata().is_ok() {
        let stale = target.with_file_name(format!(".{plugin}.oci-stale"));
        let _ = std::fs::remove_dir_all(&stale);
        let _ = std::fs::remove_file(&stale);
        match std::fs::rename(target, &stale) {
            Ok(()) => {
                tracing::warn!(plugin = %plugin, folder = %stale.display(), "moved aside: it is not what the source names")
            }
            Err(e) => {
                return SourceState::Failed(OciError::Write {
                    path: target.display().to_string(),
                    source: e,
                })
            }
        }
    }
    match (kept, reference.digest()) {
        (Some(kept), Some(expected)) if unreachable => SourceState::Failed(OciError::PinnedUnavailable {
            expected: expected.to_string(),
            folder: target.display().to_string(),
            held: kept.digest,
            source: Box::new(error),
        }),
        _ => SourceState::Failed(error),
    }
}

/// Put `staging` where `target` is, the old folder (if any) moved aside
/// first and removed after; the folder watcher never sees half a bundle.
fn replace(target: &Path, staging: &Path, retired: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(retired);
    let had_old = target.symlink_metadata().is_ok();
    if had_old {
        std::fs::rename(target, retired)?;
    }
    std::fs::rename(staging, target)?;
    if let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    if had_old {
        match std::fs::symlink_metadata(retired) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(retired)?,
            Ok(_) => std::fs::remove_file(retired)?,
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_file_round_trips() {
        let kept = Kept {
            digest: format!("sha256:{}", "b".repeat(64)),
            reference: "oci://127.0.0.1:5000/toolhost/crm:0.1.0".into(),
            files: vec![
                ("c".repeat(64), "crm.wasm".into()),
                ("d".repeat(64), "connector.toml".into()),
            ],
        };
        assert_eq!(Kept::parse(&kept.text()), Some(kept));
        assert_eq!(Kept::parse("sha256:zz\nref\n"), None);
    }
}
