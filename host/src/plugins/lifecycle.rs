//! The one owner of what serves. Every change of a plugin's state goes
//! through here (install from the folder or the API, rollback, unload,
//! removal, grant change, enable/disable), under that plugin's lock, so no
//! change works from what another is replacing: an upload compiles against
//! the grant in force when it swaps in, a grant change regrants the version
//! that serves, and a rollback pops the entry of the version it replaced.
//!
//! Compiled code is cached by digest apart from any grant (`CompileCache`);
//! the registry entry pairs a compiled version with its grant, assembled
//! here at swap time. What a restart needs is durable before a change is
//! acknowledged: the plugins folder, the version history, the operator's
//! grants and enabled state.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use wasmtime::component::Linker;

use super::bundle::{Bundle, Contents};
use super::error::LoadError;
use super::folder::{self, Folder, FolderError, Found};
use super::owners::{Owner, Owners};
use super::plugin::Plugin;
use super::registry::{Loaded, Registry};
use super::versions::{Versions, VersionsError};
use crate::audit::{AuditLog, PluginEvent};
use crate::capabilities::{CallState, Outbound};
use crate::config::grants::PluginPolicy;
use crate::model::audit::{Outcome, Source};
use crate::model::version::VersionEntry;
use crate::policy::grants::{GrantState, GrantWarning};
use crate::policy::{Policy, PolicyError};
use crate::storage::{Storage, StorageError};
use crate::wasm::compile_cache::CompileCache;
use crate::wasm::engine::Engine;
use crate::workflow::Workflow;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    PluginsDir(#[from] FolderError),
    #[error("no plugin named {0:?}")]
    NoSuchPlugin(String),
    #[error("{0} has no earlier version to roll back to")]
    NoPrevious(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Versions(#[from] VersionsError),
}

/// What a compile needs, shared with the call path.
pub struct Toolchain {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub cache: CompileCache,
    /// The resolver and TLS trust all plugins' outbound requests share.
    pub outbound: Arc<Outbound>,
}

pub struct Lifecycle {
    toolchain: Arc<Toolchain>,
    storage: Storage,
    audit: Arc<AuditLog>,
    registry: Registry,
    versions: Versions,
    folder: Folder,
    /// The file's policy with the operator's API changes on top.
    policy: ArcSwap<Policy>,
    /// The file's `[plugins.*]` grants, as read at start: what a reset
    /// returns to, and what the grants API shows beside the API's.
    file_grants: BTreeMap<String, PluginPolicy>,
    /// Plugins whose grant the API set: it is in force, not the file's
    /// (see [`crate::policy::grants`]).
    api_owned: ArcSwap<HashSet<String>>,
    /// Plugins the operator disabled (kept in memory: every call checks).
    disabled: ArcSwap<HashSet<String>>,
    api_secret_env_prefix: Option<String>,
    /// Bumped whenever the set of tools or what they may do changes.
    changes: tokio::sync::watch::Sender<u64>,
    /// One lock per plugin name; see the module's doc.
    owners: Owners,
}

pub struct LifecycleOptions {
    pub plugins_dir: PathBuf,
    /// Where archived bundles go.
    pub archive_dir: PathBuf,
    /// The policy file's; the operator's stored changes go on top.
    pub policy: Policy,
    /// Environment variables a grant set through the API may name as a
    /// secret's source; `None`: none (see [`PluginPolicy::settle`]).
    pub api_secret_env_prefix: Option<String>,
}

impl Lifecycle {
    pub fn new(
        options: LifecycleOptions,
        toolchain: Arc<Toolchain>,
        storage: Storage,
        audit: Arc<AuditLog>,
    ) -> Result<Lifecycle, LifecycleError> {
        let mut policy = options.policy;
        let file_grants = policy.plugins.clone();
        let mut api_owned = HashSet::new();
        for (name, grant) in storage.operator().grants()? {
            api_owned.insert(name.clone());
            policy.plugins.insert(name, grant);
        }
        // What the operator should hear of at start: a file's grant that is
        // not in force, a secret whose variable is unset.
        let names: std::collections::BTreeSet<&String> = policy.plugins.keys().chain(&api_owned).collect();
        for name in names {
            let state = GrantState {
                file: file_grants.get(name).cloned(),
                api: api_owned.contains(name).then(|| policy.plugins[name].clone()),
            };
            for warning in state.warnings(name, None) {
                log_warning(&warning);
            }
        }
        let disabled: HashSet<String> = storage.operator().disabled()?.into_iter().collect();
        Ok(Lifecycle {
            toolchain,
            versions: Versions::open(&options.archive_dir, &storage),
            storage,
            audit,
            registry: Registry::default(),
            folder: Folder::new(options.plugins_dir),
            policy: ArcSwap::from_pointee(policy),
            file_grants,
            api_owned: ArcSwap::from_pointee(api_owned),
            disabled: ArcSwap::from_pointee(disabled),
            api_secret_env_prefix: options.api_secret_env_prefix,
            changes: tokio::sync::watch::Sender::new(0),
            owners: Owners::default(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn plugins_dir(&self) -> &Path {
        self.folder.path()
    }

    pub fn folder(&self) -> &Folder {
        &self.folder
    }

    /// A receiver that sees every change of the tool set (loads, grant
    /// changes, disabling).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Wait for, and hold, the right to change plugin `name`'s state.
    pub async fn own(&self, name: &str) -> Owner {
        self.owners.own(name).await
    }

    /// Read, verify, compile and swap in the bundle in `dir`.
    pub async fn load_bundle(&self, dir: &Path) -> Result<Loaded, LoadError> {
        let found = self.read_bundle(dir).await?;
        self.load_found(dir, found).await
    }

    /// Verify, compile and swap in a bundle read from `dir`, once the
    /// plugin is ours. While this waited, an upload or a rollback may have
    /// written its bundle there, and what the folder holds now is what must
    /// serve: only then is the folder read again.
    async fn load_found(&self, dir: &Path, found: Found) -> Result<Loaded, LoadError> {
        let name = found.bundle.name.clone();
        let owner = self.own(&name).await;
        let bundle = match self.folder.written_since(&found) {
            true => self.read_bundle(dir).await?.bundle,
            false => found.bundle,
        };
        if bundle.name != name {
            // Renamed in its manifest meanwhile: a plugin of another name.
            drop(owner);
            let owner = self.own(&bundle.name).await;
            return self.install(&owner, bundle, Source::Folder).await;
        }
        self.install(&owner, bundle, Source::Folder).await
    }

    /// The bundle in `dir`; a folder that holds none is refused and audited.
    async fn read_bundle(&self, dir: &Path) -> Result<Found, LoadError> {
        let read = self.folder.read(dir).await;
        if let Err(e) = &read {
            // No manifest to name the plugin: the folder's name stands in.
            let name = dir
                .file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
            self.log_refusal(&name, Source::Folder, e).await;
        }
        read
    }

    /// The one load path, whichever way a bundle came in: verify → compile
    /// (on a blocking thread, off the request path) → make it durable →
    /// swap in atomically. Calls in flight finish on the version they
    /// started with. On any error the version that was serving keeps
    /// serving, and the history and the folder still say so.
    ///
    /// A bundle identical to the one serving (the folder echoing an upload,
    /// a signature added) changes nothing. `owner` owns the bundle's plugin.
    pub async fn install(&self, owner: &Owner, bundle: Bundle, via: Source) -> Result<Loaded, LoadError> {
        let name = bundle.name.clone();
        if owner.name() != name {
            return Err(LoadError::NotOwned {
                plugin: name,
                owned: owner.name().to_string(),
            });
        }
        if let Some(serving) = self.registry.loaded(&name) {
            if serving.digest() == bundle.digest && serving.manifest_digest() == bundle.manifest_digest() {
                return Ok(serving);
            }
        }
        let plugin = self.compile(&bundle, via).await?;
        if let Err(e) = self.persist(&bundle, via).await {
            self.log_refusal(&name, via, &e).await;
            return Err(e);
        }
        Ok(self.swap(plugin, via).await)
    }

    /// What a restart needs, before the swap: the bundle in the version
    /// history, and (when it came in another way) in the plugins folder.
    /// If the folder cannot take it, the history is put back as it was, so
    /// that both keep naming the version that still serves.
    async fn persist(&self, bundle: &Bundle, via: Source) -> Result<(), LoadError> {
        let name = &bundle.name;
        let failed = |what: &str, e: &dyn std::fmt::Display| LoadError::Storage {
            plugin: name.clone(),
            message: format!("{what}: {e}"),
        };
        let before = self
            .versions
            .history(name)
            .await
            .map_err(|e| failed("cannot read the version history", &e))?;
        self.versions
            .record(bundle, via)
            .await
            .map_err(|e| failed("cannot record it in the version history", &e))?;
        if via != Source::Folder {
            if let Err(e) = self.folder.keep(bundle).await {
                if let Err(undo) = self.versions.restore(name, &before).await {
                    tracing::error!(plugin = %name, "version history names a version that does not serve: {undo}");
                }
                return Err(failed("cannot write it into the plugins folder", &e));
            }
        }
        Ok(())
    }

    /// Verify, compile and link a bundle under the grant in force (the
    /// caller owns the plugin, so the grant cannot change meanwhile); a
    /// refusal is logged and audited.
    async fn compile(&self, bundle: &Bundle, via: Source) -> Result<Compiled, LoadError> {
        let policy = self.policy.load_full();
        let loaded = match &bundle.contents {
            Contents::Workflow(_) => bundle.load_workflow(&policy).map(Compiled::Workflow),
            Contents::Connector { .. } => {
                let (toolchain, storage, owned) = (self.toolchain.clone(), self.storage.clone(), bundle.clone());
                tokio::task::spawn_blocking(move || {
                    Plugin::load(
                        &owned,
                        toolchain.engine.wasmtime(),
                        &toolchain.linker,
                        &toolchain.cache,
                        &policy,
                        &storage,
                        &toolchain.outbound,
                    )
                })
                .await
                .unwrap_or_else(|e| {
                    Err(LoadError::Compile {
                        plugin: bundle.name.clone(),
                        message: format!("the loader stopped: {e}"),
                    })
                })
                .map(Compiled::Connector)
            }
        };
        if let Err(e) = &loaded {
            self.log_refusal(&bundle.name, via, e).await;
        }
        loaded
    }

    /// Put a compiled plugin in place of the version serving; calls (and
    /// runs) in flight finish on the old one.
    async fn swap(&self, compiled: Compiled, via: Source) -> Loaded {
        let (loaded, previous, source) = match compiled {
            Compiled::Connector(plugin) => {
                let name = &plugin.manifest.name;
                for key in self.operator_grant(name).unset_requested(&plugin.manifest) {
                    log_warning(&GrantWarning::RequestedUnset {
                        plugin: name.clone(),
                        key,
                    });
                }
                let source = format!("compiled code from {:?}", plugin.source);
                let (plugin, previous) = self.registry.insert(plugin);
                (Loaded::Connector(plugin), previous, source)
            }
            Compiled::Workflow(workflow) => {
                let (workflow, previous) = self.registry.insert_workflow(workflow);
                (Loaded::Workflow(workflow), previous, "workflow".to_string())
            }
        };
        self.changed();
        let replaced = previous.map(|p| p.version());
        tracing::info!(plugin = %loaded.name(), version = %loaded.version(), via = via.as_str(), ?replaced, "loaded: {source}");
        let detail = match &replaced {
            Some(v) => format!("replaced {v}; {source}"),
            None => source,
        };
        self.event(PluginEvent {
            via,
            plugin: loaded.name(),
            outcome: Outcome::Loaded,
            detail,
            version: Some(loaded.version()),
            digest: Some(loaded.digest().to_string()),
        })
        .await;
        loaded
    }

    async fn event(&self, event: PluginEvent<'_>) {
        if let Err(e) = self.audit.append_event(&event).await {
            tracing::error!("audit: {e}");
        }
    }

    async fn log_refusal(&self, what: &str, via: Source, e: &LoadError) {
        tracing::error!(bundle = %what, via = via.as_str(), "refused: {e}");
        self.event(PluginEvent {
            via,
            plugin: what,
            outcome: Outcome::Refused,
            detail: e.to_string(),
            version: None,
            digest: None,
        })
        .await;
    }

    /// Serve the version before the current one again, through the same swap.
    pub async fn rollback(&self, owner: &Owner) -> Result<Loaded, LifecycleError> {
        let name = owner.name();
        if self.registry.loaded(name).is_none() {
            return Err(LifecycleError::NoSuchPlugin(name.to_string()));
        }
        let (_, path) = self
            .versions
            .previous(name)
            .await?
            .ok_or_else(|| LifecycleError::NoPrevious(name.to_string()))?;
        let bundle = folder::read_bundle(&path).await?;
        let plugin = self.compile(&bundle, Source::Rollback).await?;
        // Durable before it serves: the folder a restart loads, and the
        // history, with the version rolled back from marked so.
        self.folder.keep(&bundle).await.map_err(|e| LoadError::Storage {
            plugin: name.to_string(),
            message: format!("cannot write it into the plugins folder: {e}"),
        })?;
        self.versions.mark_rolled_back(name).await?;
        Ok(self.swap(plugin, Source::Rollback).await)
    }

    /// Stop serving a plugin if no folder in the plugins folder holds the
    /// plugin any more (`None` if one does). Decided once the plugin is
    /// ours: the watcher saw a folder go, but an upload may have written one
    /// since, and what it installed must go on serving.
    pub async fn unload_unless_in_folder(&self, name: &str, drain: Duration) -> Result<Option<bool>, LifecycleError> {
        let _owner = self.own(name).await;
        if self.folder.dir_of(name).await.is_some() {
            return Ok(None);
        }
        self.unload_owned(name, drain).await.map(Some)
    }

    /// Stop serving a plugin, already ours: new calls no longer find it;
    /// returns once the calls in flight have finished (or `drain` has
    /// passed).
    async fn unload_owned(&self, name: &str, drain: Duration) -> Result<bool, LifecycleError> {
        let removed = self
            .registry
            .remove(name)
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        self.changed();
        // A workflow's runs hold what they started with and finish on it.
        let drained = match &removed {
            Loaded::Workflow(_) => true,
            Loaded::Connector(plugin) => {
                let slots = plugin.context.grant.max_concurrency;
                tokio::time::timeout(drain, plugin.slots.acquire_many(slots))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        };
        self.event(PluginEvent {
            via: Source::Api,
            plugin: name,
            outcome: Outcome::Unloaded,
            detail: if drained {
                "drained".into()
            } else {
                format!("calls still running after {drain:?}")
            },
            version: Some(removed.version()),
            digest: Some(removed.digest().to_string()),
        })
        .await;
        Ok(drained)
    }

    /// Unload a plugin and remove its folder from the plugins folder, so a
    /// restart does not bring it back (the version archive keeps its bytes
    /// for a later upload or rollback). What `DELETE /v1/plugins/{name}` does.
    pub async fn remove(&self, owner: &Owner, drain: Duration) -> Result<bool, LifecycleError> {
        // One hold for both: an upload between them would lose its folder.
        let name = owner.name();
        let drained = self.unload_owned(name, drain).await?;
        self.folder.remove(name).await?;
        // Nodes sharing the store serve what its history names: an empty
        // history tells them (and this node's own reconcile) it is gone.
        if self.storage.is_shared() {
            self.versions.restore(name, &[]).await?;
        }
        Ok(drained)
    }

    /// Workflow `name` as it was at `digest`: the one serving if it is
    /// that, else its archived bundle under today's grant (a run resumes on
    /// the version it started on).
    pub async fn workflow_version(&self, name: &str, digest: &str) -> Option<Arc<Workflow>> {
        if let Some(serving) = self.registry.workflow(name).filter(|w| w.digest == digest) {
            return Some(serving);
        }
        let history = self.versions.history(name).await.ok()?;
        let entry = history.iter().rev().find(|e| e.digest == digest)?;
        let bundle = folder::read_bundle(&self.versions.local(&entry.archive).await.ok()??)
            .await
            .ok()?;
        bundle.load_workflow(&self.policy.load()).ok().map(Arc::new)
    }

    pub async fn history(&self, name: &str) -> Result<Vec<VersionEntry>, LifecycleError> {
        Ok(self.versions.history(name).await?)
    }

    /// Finish what a crash interrupted in a write of the plugins folder
    /// (see [`Folder::recover`]). Call once, at start-up, before `load_all`:
    /// on the caller's thread, as nothing is served yet but the "starting"
    /// answer (it lists the folder and reads at most the manifests of
    /// plugins whose folder was moved aside).
    pub fn recover_folder(&self) -> Result<(), LifecycleError> {
        Ok(self.folder.recover()?)
    }

    /// Load every bundle; one that fails is reported and skipped.
    pub async fn load_all(&self) -> Result<Vec<(PathBuf, Result<String, LoadError>)>, LifecycleError> {
        let mut results = Vec::new();
        for dir in self.folder.bundle_dirs().await? {
            let result = self.load_bundle(&dir).await.map(|p| p.name().to_string());
            if let Err(e) = &result {
                tracing::error!(bundle = %dir.display(), "not loaded: {e}");
            }
            results.push((dir, result));
        }
        Ok(results)
    }

    /// Load only the plugin called `name`.
    pub async fn load_named(&self, name: &str) -> Result<Loaded, LifecycleError> {
        let direct = self.folder.path().join(name);
        let dir = if Folder::holds_bundle(&direct).await {
            direct
        } else {
            self.folder
                .dir_of(name)
                .await
                .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?
        };
        Ok(self.load_bundle(&dir).await?)
    }

    pub fn is_disabled(&self, plugin: &str) -> bool {
        self.disabled.load().contains(plugin)
    }

    /// Stop or resume serving a plugin's tools; durable before it returns.
    pub async fn set_enabled(&self, owner: &Owner, enabled: bool) -> Result<(), LifecycleError> {
        let plugin = owner.name();
        if self.registry.loaded(plugin).is_none() {
            return Err(LifecycleError::NoSuchPlugin(plugin.to_string()));
        }
        self.storage.operator().set_disabled(plugin, !enabled).await?;
        self.disabled.rcu(|disabled| {
            let mut disabled = HashSet::clone(disabled);
            if enabled {
                disabled.remove(plugin);
            } else {
                disabled.insert(plugin.to_string());
            }
            disabled
        });
        self.changed();
        Ok(())
    }

    /// The operator's grant for a plugin (what the policy says, before the
    /// intersection with the manifest).
    pub fn operator_grant(&self, plugin: &str) -> PluginPolicy {
        self.policy.load().plugins.get(plugin).cloned().unwrap_or_default()
    }

    /// Both sides of a plugin's grant: the file's and the API's (see
    /// [`crate::policy::grants`] for which is in force).
    pub fn grant_state(&self, plugin: &str) -> GrantState {
        GrantState {
            file: self.file_grants.get(plugin).cloned(),
            api: self
                .api_owned
                .load()
                .contains(plugin)
                .then(|| self.operator_grant(plugin)),
        }
    }

    /// Replace the operator's grant for a plugin (as the admin API sends
    /// it; see [`PluginPolicy::settle`]): validated, stored durably, and in
    /// force for every call that starts after it returns. From then on the
    /// API owns the plugin's grant. Requested secrets and config it leaves
    /// unset are refused unless `allow_unset` names them.
    pub async fn set_grant(
        &self,
        owner: &Owner,
        grant: PluginPolicy,
        allow_unset: &[String],
    ) -> Result<Loaded, LifecycleError> {
        let plugin = owner.name();
        let current = self
            .registry
            .loaded(plugin)
            .ok_or_else(|| LifecycleError::NoSuchPlugin(plugin.to_string()))?;
        let grant = grant.settle(
            plugin,
            &self.operator_grant(plugin),
            self.api_secret_env_prefix.as_deref(),
        )?;
        grant.validate(plugin)?;
        grant.fits(plugin, matches!(current, Loaded::Workflow(_)))?;
        if let Loaded::Connector(connector) = &current {
            grant.require_set(plugin, &connector.manifest, allow_unset)?;
        }
        self.storage.operator().set_grant(plugin, &grant).await?;
        self.set_api_owned(plugin, true);
        self.apply_grant(plugin, grant, current)
    }

    /// Forget the grant the API set for a plugin: the file's (or none, if
    /// the file has none) is in force again at once, and the file owns the
    /// grant from now on. Works for a plugin that is not loaded too (a
    /// grant left behind). Whether there was an API grant to forget.
    pub async fn reset_grant(&self, owner: &Owner) -> Result<bool, LifecycleError> {
        let plugin = owner.name();
        if !self.api_owned.load().contains(plugin) {
            return Ok(false);
        }
        self.storage.operator().remove_grant(plugin).await?;
        self.set_api_owned(plugin, false);
        self.put_in_force(plugin, self.file_grants.get(plugin).cloned().unwrap_or_default())?;
        Ok(true)
    }

    fn set_api_owned(&self, plugin: &str, owned: bool) {
        self.api_owned.rcu(|set| {
            let mut set = HashSet::clone(set);
            if owned {
                set.insert(plugin.to_string());
            } else {
                set.remove(plugin);
            }
            set
        });
    }

    /// Put `grant` in force for `plugin`, whether it is loaded or not (the
    /// caller owns the plugin).
    fn put_in_force(&self, plugin: &str, grant: PluginPolicy) -> Result<(), LifecycleError> {
        match self.registry.loaded(plugin) {
            Some(current) => {
                self.apply_grant(plugin, grant, current)?;
            }
            None => {
                self.policy.rcu(|policy| {
                    let mut policy = Policy::clone(policy);
                    policy.plugins.insert(plugin.to_string(), grant.clone());
                    policy
                });
            }
        }
        Ok(())
    }

    /// Put `grant` in force for `current` (the caller owns the plugin).
    fn apply_grant(&self, plugin: &str, grant: PluginPolicy, current: Loaded) -> Result<Loaded, LifecycleError> {
        self.policy.rcu(|policy| {
            let mut policy = Policy::clone(policy);
            policy.plugins.insert(plugin.to_string(), grant.clone());
            policy
        });
        let policy = self.policy.load();
        let regranted = match current {
            Loaded::Connector(current) => {
                let regranted = current.regrant(&policy, &self.storage, &self.toolchain.outbound)?;
                Loaded::Connector(self.registry.insert(regranted).0)
            }
            Loaded::Workflow(current) => Loaded::Workflow(self.registry.insert_workflow(current.regrant(&policy)).0),
        };
        self.changed();
        Ok(regranted)
    }

    /// Another node changed what serves `name` (a version, its grant, its
    /// enabled state), or this node starts and others may have: serve here
    /// what the shared store says. Nothing is stored again: the store
    /// already says it.
    pub async fn converge(&self, name: &str) -> Result<(), LifecycleError> {
        let _owner = self.own(name).await;
        let (grant, disabled) = self.storage.operator().operator_state(name).await?;
        if disabled != self.is_disabled(name) {
            self.disabled.rcu(|set| {
                let mut set = HashSet::clone(set);
                if disabled {
                    set.insert(name.to_string());
                } else {
                    set.remove(name);
                }
                set
            });
            self.changed();
        }
        // A grant the API set replaces the file's (as at start); one the API
        // forgot on another node hands the plugin back to the file's.
        let owned = grant.is_some();
        let grant = match grant {
            Some(grant) => Some(grant),
            None if self.api_owned.load().contains(name) => {
                Some(self.file_grants.get(name).cloned().unwrap_or_default())
            }
            None => None,
        };
        self.set_api_owned(name, owned);
        if let Some(grant) = grant {
            if !grant.same_grant(&self.operator_grant(name)) {
                self.put_in_force(name, grant)?;
            }
        }
        let history = self.versions.history(name).await?;
        let Some(serving) = crate::model::version::serving(&history) else {
            // Removed on another node: calls in flight finish on what they hold.
            if let Some(removed) = self.registry.remove(name) {
                self.changed();
                self.folder.remove(name).await?;
                self.event(PluginEvent {
                    via: Source::Node,
                    plugin: name,
                    outcome: Outcome::Unloaded,
                    detail: "removed on another node".into(),
                    version: Some(removed.version()),
                    digest: Some(removed.digest().to_string()),
                })
                .await;
            }
            return Ok(());
        };
        let current = self.registry.loaded(name);
        if current.is_some_and(|c| c.digest() == serving.digest && c.manifest_digest() == serving.manifest_digest) {
            return Ok(());
        }
        let Some(path) = self.versions.local(&serving.archive).await? else {
            return Err(LoadError::Storage {
                plugin: name.to_string(),
                message: format!(
                    "version {} ({}) serves on another node, but its bundle is in no store this node reads",
                    serving.version, serving.archive
                ),
            }
            .into());
        };
        let bundle = folder::read_bundle(&path).await?;
        let plugin = self.compile(&bundle, Source::Node).await?;
        // The folder a restart of this node loads.
        self.folder.keep(&bundle).await.map_err(|e| LoadError::Storage {
            plugin: name.to_string(),
            message: format!("cannot write it into the plugins folder: {e}"),
        })?;
        self.swap(plugin, Source::Node).await;
        Ok(())
    }

    /// [`converge`](Lifecycle::converge) every plugin the store knows: at
    /// start, and whenever announcements may have been missed. Returns the
    /// failures, by plugin.
    pub async fn converge_all(&self) -> Result<Vec<(String, LifecycleError)>, LifecycleError> {
        let mut failed = Vec::new();
        for name in self.storage.history().plugins().await? {
            if let Err(e) = self.converge(&name).await {
                tracing::error!(plugin = %name, "cannot serve what the other nodes serve: {e}");
                failed.push((name, e));
            }
        }
        Ok(failed)
    }
}

/// A warning about a grant, in the log.
fn log_warning(warning: &GrantWarning) {
    match warning {
        GrantWarning::FileNotInForce { plugin, .. } | GrantWarning::RequestedUnset { plugin, .. } => {
            tracing::warn!(plugin = %plugin, "{warning}");
        }
        GrantWarning::EnvUnset {
            plugin,
            secret,
            variable,
        } => tracing::warn!(plugin = %plugin, secret = %secret, variable = %variable, "{warning}"),
    }
}

/// A bundle ready to serve.
enum Compiled {
    Connector(Plugin),
    Workflow(Workflow),
}
