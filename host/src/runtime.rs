//! The host's runtime: engine, linker, storage, compile cache, policy and the
//! registry of loaded plugins, behind one cheap-to-clone handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;
use tokio_util::task::TaskTracker;
use wasmtime::component::Linker;

use crate::audit::{AuditError, AuditLog, AuditRecord, Caller, PluginEvent, Via};
use crate::capabilities::{self, CallState, NoGate, Outbound, OutboundError, OutboundOptions, SharedGate};
use crate::compile_cache::CompileCache;
use crate::engine::{Engine, EngineOptions};
use crate::invoke::{self, CallError, CallOutcome};
use crate::manifest::{Manifest, Risk};
use crate::names;
use crate::plugin::{Bundle, LoadError, Plugin};
use crate::policy::{PluginPolicy, Policy, PolicyError};
use crate::registry::Registry;
use crate::storage::{Storage, StorageError};
use crate::versions::{VersionEntry, Versions, VersionsError};

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    pub policy: Policy,
    pub engine: EngineOptions,
    /// Environment variables a grant set through the API may name as a
    /// secret's source; `None`: none (see [`PluginPolicy::settle`]).
    pub api_secret_env_prefix: Option<String>,
    pub outbound: OutboundOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("outbound HTTP: {0}")]
    Outbound(#[from] OutboundError),
    #[error("cannot read plugins folder {path}: {source}")]
    PluginsDir { path: String, source: std::io::Error },
    #[error("no plugin named {0:?} in the plugins folder")]
    NoSuchPlugin(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Versions(#[from] VersionsError),
    #[error("{0} has no earlier version to roll back to")]
    NoPrevious(String),
}

/// A tool as agents see it: the shape LLM function calling expects, plus
/// what operators and MCP need.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    /// `plugin.function`, also the MCP tool name.
    pub name: String,
    /// The same name in the form LLM function calling accepts (no dots).
    pub function_name: String,
    pub description: String,
    pub parameters: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    pub risk: Risk,
    pub plugin: String,
    pub plugin_version: String,
}

#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<CallState>,
    storage: Storage,
    /// The resolver and TLS trust all plugins' outbound requests share.
    outbound: Arc<Outbound>,
    cache: CompileCache,
    /// The file's policy with the operator's API changes on top.
    policy: ArcSwap<Policy>,
    /// Operator state that survives restarts: grant changes and disabled
    /// plugins, by plugin name.
    grants: sled::Tree,
    disabled: sled::Tree,
    registry: Registry,
    audit: AuditLog,
    versions: Versions,
    plugins_dir: PathBuf,
    /// Bumped whenever the set of tools or what they may do changes.
    changes: tokio::sync::watch::Sender<u64>,
    /// Calls running detached from their callers, so that shutdown can
    /// wait for those whose clients have gone.
    detached: TaskTracker,
    api_secret_env_prefix: Option<String>,
    /// One lock per plugin name, taken by every change of that plugin's
    /// state (install, rollback, unload, grant, enabled), so that no change
    /// works from what another is replacing: an upload compiles against the
    /// grant in force when it swaps in, and a grant change regrants the
    /// version that serves, never one an upload has just replaced.
    owners: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&options.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = capabilities::linker(engine.wasmtime()).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        std::fs::create_dir_all(&options.data_dir).map_err(|e| StorageError::Open {
            path: options.data_dir.display().to_string(),
            source: e.into(),
        })?;
        let storage = Storage::open(&options.data_dir.join("db"))?;
        let outbound = Outbound::new(&options.outbound)?;
        let cache = CompileCache::new(engine.wasmtime(), Some(options.data_dir.join("compile-cache")));
        let grants = storage.db().open_tree("grants").map_err(StorageError::from)?;
        let disabled = storage.db().open_tree("disabled").map_err(StorageError::from)?;
        let mut policy = options.policy;
        for entry in grants.iter() {
            let (name, value) = entry.map_err(StorageError::from)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            match serde_json::from_slice::<PluginPolicy>(&value) {
                Ok(grant) => {
                    policy.plugins.insert(name, grant);
                }
                Err(e) => tracing::error!(plugin = %name, "ignoring a stored grant that no longer parses: {e}"),
            }
        }
        let audit = AuditLog::open(&storage)?;
        let versions = Versions::open(&options.data_dir.join("bundles"), &storage)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                storage,
                outbound,
                cache,
                policy: ArcSwap::from_pointee(policy),
                grants,
                disabled,
                registry: Registry::default(),
                audit,
                versions,
                plugins_dir: options.plugins_dir,
                changes: tokio::sync::watch::Sender::new(0),
                detached: TaskTracker::new(),
                api_secret_env_prefix: options.api_secret_env_prefix,
                owners: Default::default(),
            }),
        })
    }

    /// Every `warm_idle / 2`, drop the instances kept for reuse that have
    /// idled longer than `warm_idle`, so they give their pool slots back
    /// even when their callers never return. Stops with the runtime.
    pub fn spawn_warm_sweeper(&self) {
        let inner = Arc::downgrade(&self.inner);
        let every = (self.inner.engine.warm().idle_timeout() / 2).max(std::time::Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = inner.upgrade() else { break };
                let now = std::time::Instant::now();
                for plugin in inner.registry.snapshot().values() {
                    plugin.evict_idle(now);
                }
            }
        });
    }

    /// Idle instances kept for reuse now, across all plugins.
    pub fn warm_instances(&self) -> usize {
        self.inner.engine.warm().held()
    }

    /// A receiver that sees every change of the tool set (loads, grant
    /// changes, disabling).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Wait for, and hold, the right to change plugin `name`'s state.
    async fn own(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut owners = self.inner.owners.lock().unwrap_or_else(|p| p.into_inner());
            owners.entry(name.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Read, verify, compile and swap in the bundle in `dir`.
    pub async fn load_bundle(&self, dir: &Path) -> Result<Arc<Plugin>, LoadError> {
        let bundle = match Bundle::read(dir) {
            Ok(b) => b,
            Err(e) => {
                // No manifest to name the plugin: the folder's name stands in.
                let name = dir
                    .file_name()
                    .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
                self.log_refusal(&name, Via::Folder, &e).await;
                return Err(e);
            }
        };
        self.install(bundle, Via::Folder).await
    }

    /// The one load path, whichever way a bundle came in (`folder`, `api`):
    /// verify → compile (on a blocking thread, off the request path) → swap
    /// in atomically → archive it in the version history. Calls in flight
    /// finish on the version they started with. On any error the version
    /// that was serving keeps serving.
    ///
    /// What a restart needs is durable before the swap: a bundle that came
    /// in another way than the folder is written into it, and every bundle
    /// into the version archive and history; if either fails, the call
    /// fails and the old version keeps serving. A bundle identical to the
    /// one serving (the folder echoing an upload, a signature added) changes
    /// nothing.
    pub async fn install(&self, bundle: Bundle, via: Via) -> Result<Arc<Plugin>, LoadError> {
        let name = bundle.manifest.name.clone();
        let _owner = self.own(&name).await;
        if let Some(serving) = self.inner.registry.get(&name) {
            if serving.digest == bundle.digest && serving.manifest_digest == bundle.manifest_digest() {
                return Ok(serving);
            }
        }
        let plugin = self.compile(&bundle, via).await?;
        if let Err(e) = self.persist(&bundle, via, via != Via::Folder).await {
            self.log_refusal(&name, via, &e).await;
            return Err(e);
        }
        Ok(self.swap(plugin, via).await)
    }

    /// The folder (when `into_folder`) and the version history, durably.
    async fn persist(&self, bundle: &Bundle, via: Via, into_folder: bool) -> Result<(), LoadError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| LoadError::Storage {
            plugin: bundle.manifest.name.clone(),
            message: format!("{what}: {e}"),
        };
        if into_folder {
            self.keep_in_folder(bundle)
                .map_err(|e| failed("cannot write it into the plugins folder", &e))?;
        }
        self.inner
            .versions
            .record(bundle, via)
            .await
            .map_err(|e| failed("cannot record it in the version history", &e))?;
        Ok(())
    }

    /// Verify, compile and link a bundle under the grant in force (the
    /// caller owns the plugin, so the grant cannot change meanwhile); a
    /// refusal is logged and audited.
    async fn compile(&self, bundle: &Bundle, via: Via) -> Result<Plugin, LoadError> {
        let this = self.clone();
        let owned = bundle.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let inner = &this.inner;
            Plugin::load(
                &owned,
                inner.engine.wasmtime(),
                &inner.linker,
                &inner.cache,
                &inner.policy.load(),
                &inner.storage,
                &inner.outbound,
            )
        })
        .await
        .unwrap_or_else(|e| {
            Err(LoadError::Compile {
                plugin: bundle.manifest.name.clone(),
                message: format!("the loader stopped: {e}"),
            })
        });
        if let Err(e) = &loaded {
            self.log_refusal(&bundle.manifest.name, via, e).await;
        }
        loaded
    }

    /// Put a compiled plugin in place of the version serving; calls in
    /// flight finish on the old one.
    async fn swap(&self, plugin: Plugin, via: Via) -> Arc<Plugin> {
        let (plugin, previous) = self.inner.registry.insert(plugin);
        self.changed();
        let replaced = previous.map(|p| p.manifest.version.to_string());
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, source = ?plugin.source, via = via.as_str(), ?replaced, "loaded");
        let detail = match &replaced {
            Some(v) => format!("replaced {v}; compiled code from {:?}", plugin.source),
            None => format!("compiled code from {:?}", plugin.source),
        };
        let event = PluginEvent {
            via,
            plugin: &plugin.manifest.name,
            outcome: "loaded",
            detail,
            version: Some(plugin.manifest.version.to_string()),
            digest: Some(plugin.digest.clone()),
        };
        if let Err(e) = self.inner.audit.append_event(&event).await {
            tracing::error!("audit: {e}");
        }
        plugin
    }

    /// The plugins folder is what a restart loads: a bundle that came in
    /// another way (upload, rollback) replaces the plugin's folder there,
    /// written aside and renamed into place so the watcher never sees half.
    fn keep_in_folder(&self, bundle: &Bundle) -> std::io::Result<()> {
        let name = &bundle.manifest.name;
        let target = self
            .bundle_dir_of(name)
            .unwrap_or_else(|| self.inner.plugins_dir.join(name));
        let staging = self
            .inner
            .plugins_dir
            .join(format!(".incoming-{name}-{}", std::process::id()));
        let retired = self
            .inner
            .plugins_dir
            .join(format!(".retired-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        bundle.write_to(&staging)?;
        if target.symlink_metadata().is_ok() {
            std::fs::rename(&target, &retired)?;
        }
        std::fs::rename(&staging, &target)?;
        // The renames are durable once the folder holding them is.
        std::fs::File::open(&self.inner.plugins_dir)?.sync_all()?;
        match std::fs::symlink_metadata(&retired) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&retired),
            Ok(_) => std::fs::remove_file(&retired),
            Err(_) => Ok(()),
        }
    }

    async fn log_refusal(&self, what: &str, via: Via, e: &LoadError) {
        tracing::error!(bundle = %what, via = via.as_str(), "refused: {e}");
        let event = PluginEvent {
            via,
            plugin: what,
            outcome: "refused",
            detail: e.to_string(),
            version: None,
            digest: None,
        };
        if let Err(e) = self.inner.audit.append_event(&event).await {
            tracing::error!("audit: {e}");
        }
    }

    /// Serve the version before the current one again, through the same swap.
    pub async fn rollback(&self, name: &str) -> Result<Arc<Plugin>, RuntimeError> {
        let _owner = self.own(name).await;
        if self.inner.registry.get(name).is_none() {
            return Err(RuntimeError::NoSuchPlugin(name.to_string()));
        }
        let (_, path) = self
            .inner
            .versions
            .previous(name)
            .ok_or_else(|| RuntimeError::NoPrevious(name.to_string()))?;
        let bundle = Bundle::read(&path)?;
        let plugin = self.compile(&bundle, Via::Rollback).await?;
        // Durable before it serves: the folder a restart loads, and the
        // history without the version rolled back from.
        self.keep_in_folder(&bundle).map_err(|e| LoadError::Storage {
            plugin: name.to_string(),
            message: format!("cannot write it into the plugins folder: {e}"),
        })?;
        self.inner.versions.drop_current(name).await?;
        Ok(self.swap(plugin, Via::Rollback).await)
    }

    /// Stop serving a plugin: new calls no longer find it; returns once the
    /// calls in flight have finished (or `drain` has passed).
    pub async fn unload(&self, name: &str, drain: std::time::Duration) -> Result<bool, RuntimeError> {
        let _owner = self.own(name).await;
        let plugin = self
            .inner
            .registry
            .remove(name)
            .ok_or_else(|| RuntimeError::NoSuchPlugin(name.to_string()))?;
        self.changed();
        let slots = plugin.context.grant.max_concurrency;
        let drained = tokio::time::timeout(drain, plugin.slots.acquire_many(slots))
            .await
            .is_ok_and(|r| r.is_ok());
        let event = PluginEvent {
            via: Via::Api,
            plugin: name,
            outcome: "unloaded",
            detail: if drained {
                "drained".into()
            } else {
                format!("calls still running after {drain:?}")
            },
            version: Some(plugin.manifest.version.to_string()),
            digest: Some(plugin.digest.clone()),
        };
        if let Err(e) = self.inner.audit.append_event(&event).await {
            tracing::error!("audit: {e}");
        }
        Ok(drained)
    }

    /// Unload a plugin and remove its folder from the plugins folder, so a
    /// restart does not bring it back (the version archive keeps its bytes
    /// for a later upload or rollback). What `DELETE /v1/plugins/{name}` does.
    pub async fn remove(&self, name: &str, drain: std::time::Duration) -> Result<bool, RuntimeError> {
        let drained = self.unload(name, drain).await?;
        if let Some(dir) = self.bundle_dir_of(name) {
            let gone = match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dir),
                _ => std::fs::remove_file(&dir),
            };
            gone.and_then(|()| std::fs::File::open(&self.inner.plugins_dir)?.sync_all())
                .map_err(|source| RuntimeError::PluginsDir {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        Ok(drained)
    }

    /// The folder in the plugins folder whose manifest names `name`.
    pub fn bundle_dir_of(&self, name: &str) -> Option<PathBuf> {
        self.bundle_dirs()
            .unwrap_or_default()
            .into_iter()
            .find(|d| Manifest::load(&d.join("connector.toml")).is_ok_and(|m| m.name == name))
    }

    pub fn history(&self, name: &str) -> Vec<VersionEntry> {
        self.inner.versions.history(name)
    }

    pub fn plugins_dir(&self) -> &Path {
        &self.inner.plugins_dir
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The bundle folders in the plugins folder: each subfolder with a
    /// `connector.toml`, in name order.
    pub fn bundle_dirs(&self) -> Result<Vec<PathBuf>, RuntimeError> {
        let dir = &self.inner.plugins_dir;
        let entries = std::fs::read_dir(dir).map_err(|source| RuntimeError::PluginsDir {
            path: dir.display().to_string(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("connector.toml").is_file())
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Load every bundle; one that fails is reported and skipped.
    pub async fn load_all(&self) -> Result<Vec<(PathBuf, Result<String, LoadError>)>, RuntimeError> {
        let mut results = Vec::new();
        for dir in self.bundle_dirs()? {
            let result = self.load_bundle(&dir).await.map(|p| p.manifest.name.clone());
            if let Err(e) = &result {
                tracing::error!(bundle = %dir.display(), "not loaded: {e}");
            }
            results.push((dir, result));
        }
        Ok(results)
    }

    /// Load only the plugin called `name`.
    pub async fn load_named(&self, name: &str) -> Result<Arc<Plugin>, RuntimeError> {
        let direct = self.inner.plugins_dir.join(name);
        let dir = if direct.join("connector.toml").is_file() {
            direct
        } else {
            self.bundle_dirs()?
                .into_iter()
                .find(|d| Manifest::load(&d.join("connector.toml")).is_ok_and(|m| m.name == name))
                .ok_or_else(|| RuntimeError::NoSuchPlugin(name.to_string()))?
        };
        Ok(self.load_bundle(&dir).await?)
    }

    /// Call `tool` without recording it, here rather than on the guest
    /// threads (benchmarks, tests of the runtime alone).
    pub async fn invoke(&self, tool: &str, args: &Value) -> CallOutcome {
        self.invoke_gated(tool, args, None, NoGate::shared()).await
    }

    /// One call, recorded: the audit record is begun before the connector
    /// runs, made durable before its first side effect leaves the host, and
    /// closed with the outcome. The connector runs on the guest threads.
    /// `reuse` (a token and session) lets plugins granted instance reuse
    /// serve it from an instance that caller used before. Callers that must
    /// not lose the record when they stop waiting run this [`Runtime::detach`]ed.
    pub async fn call(
        &self,
        caller: &Caller,
        tool: &str,
        args: &Value,
        reuse: Option<&str>,
    ) -> Result<(CallOutcome, AuditRecord), AuditError> {
        let tool = names::canonical(tool).unwrap_or_else(|| tool.to_string());
        let open = Arc::new(self.inner.audit.begin(caller, &tool, args, &self.secret_fields(&tool)));
        if let Some(plugin) = names::split(&tool).and_then(|(p, _)| self.inner.registry.get(p)) {
            open.set_plugin(plugin.manifest.version.to_string(), plugin.digest.clone());
        }
        let outcome = self.invoke_on_guest_threads(&tool, args, reuse, open.clone()).await;
        let record = open.finish(&outcome).await?;
        Ok((outcome, record))
    }

    /// The record of a call refused before it reached the runtime (a token
    /// without permission, say).
    pub async fn record_refusal(
        &self,
        caller: &Caller,
        args: &Value,
        outcome: &CallOutcome,
    ) -> Result<AuditRecord, AuditError> {
        self.inner
            .audit
            .append(caller, args, &self.secret_fields(&outcome.tool), outcome)
            .await
    }

    /// Run `work` detached from the caller: it finishes even if nobody
    /// waits for it any more (a client that hung up).
    pub fn detach<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.detached.spawn(work)
    }

    /// Wait (at most `deadline`) for detached work still running: calls
    /// whose clients have gone. Whether it all finished.
    pub async fn drain(&self, deadline: std::time::Duration) -> bool {
        let detached = &self.inner.detached;
        detached.close();
        let done = tokio::time::timeout(deadline, detached.wait()).await.is_ok();
        detached.reopen();
        done
    }

    async fn invoke_on_guest_threads(
        &self,
        tool: &str,
        args: &Value,
        reuse: Option<&str>,
        gate: SharedGate,
    ) -> CallOutcome {
        let (this, owned_tool, args, reuse) = (self.clone(), tool.to_string(), args.clone(), reuse.map(str::to_string));
        let guest = async move { this.invoke_gated(&owned_tool, &args, reuse.as_deref(), gate).await };
        self.inner.engine.executor().spawn(guest).await.unwrap_or_else(|e| {
            CallOutcome::refused(
                tool,
                CallError::PluginFault {
                    message: format!("the call's task failed: {e}"),
                },
            )
        })
    }

    async fn invoke_gated(&self, tool: &str, args: &Value, reuse: Option<&str>, gate: SharedGate) -> CallOutcome {
        if let Some((plugin, _)) = names::split(tool) {
            if self.is_disabled(plugin) {
                return CallOutcome::refused(
                    tool,
                    CallError::Unavailable {
                        message: format!("plugin {plugin:?} is disabled by the operator"),
                    },
                );
            }
        }
        invoke::invoke(&self.inner.engine, &self.inner.registry, tool, args, reuse, gate).await
    }

    /// Argument fields of `tool` its manifest marks secret (for the audit).
    pub fn secret_fields(&self, tool: &str) -> Vec<String> {
        let Some((plugin, function)) = names::split(tool) else {
            return Vec::new();
        };
        self.inner
            .registry
            .get(plugin)
            .and_then(|p| p.manifest.tools.get(function).map(|t| t.secret_fields.clone()))
            .unwrap_or_default()
    }

    /// Instantiate one of `plugin`'s instances and drop it, calling nothing:
    /// what a call costs before the guest runs. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(&self, plugin: &str) -> Result<(), String> {
        let p = self
            .inner
            .registry
            .get(plugin)
            .ok_or_else(|| format!("no plugin {plugin:?}"))?;
        invoke::instantiate_only(&self.inner.engine, &p)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    pub fn is_disabled(&self, plugin: &str) -> bool {
        self.inner.disabled.contains_key(plugin).unwrap_or(false)
    }

    /// Stop or resume serving a plugin's tools; durable before it returns.
    pub async fn set_enabled(&self, plugin: &str, enabled: bool) -> Result<(), RuntimeError> {
        let _owner = self.own(plugin).await;
        if self.inner.registry.get(plugin).is_none() {
            return Err(RuntimeError::NoSuchPlugin(plugin.to_string()));
        }
        let tree = &self.inner.disabled;
        if enabled {
            tree.remove(plugin).map_err(StorageError::from)?;
        } else {
            tree.insert(plugin, b"".as_slice()).map_err(StorageError::from)?;
        }
        self.inner.storage.flush().await?;
        self.changed();
        Ok(())
    }

    /// The operator's grant for a plugin (what the policy says, before the
    /// intersection with the manifest).
    pub fn operator_grant(&self, plugin: &str) -> PluginPolicy {
        self.inner
            .policy
            .load()
            .plugins
            .get(plugin)
            .cloned()
            .unwrap_or_default()
    }

    /// Replace the operator's grant for a plugin (as the admin API sends
    /// it; see [`PluginPolicy::settle`]): validated, stored durably, and in
    /// force for every call that starts after it returns.
    pub async fn set_grant(&self, plugin: &str, grant: PluginPolicy) -> Result<Arc<Plugin>, RuntimeError> {
        let _owner = self.own(plugin).await;
        let current = self
            .inner
            .registry
            .get(plugin)
            .ok_or_else(|| RuntimeError::NoSuchPlugin(plugin.to_string()))?;
        let grant = grant.settle(
            plugin,
            &self.operator_grant(plugin),
            self.inner.api_secret_env_prefix.as_deref(),
        )?;
        grant.validate(plugin)?;
        let bytes = serde_json::to_vec(&grant.stored()).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        self.inner.grants.insert(plugin, bytes).map_err(StorageError::from)?;
        self.inner.storage.flush().await?;
        self.inner.policy.rcu(|policy| {
            let mut policy = Policy::clone(policy);
            policy.plugins.insert(plugin.to_string(), grant.clone());
            policy
        });
        let regranted = current.regrant(&self.inner.policy.load(), &self.inner.storage, &self.inner.outbound)?;
        let (plugin, _previous) = self.inner.registry.insert(regranted);
        self.changed();
        Ok(plugin)
    }

    /// Every tool of every loaded plugin, in name order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self
            .inner
            .registry
            .snapshot()
            .values()
            .filter(|p| !self.is_disabled(&p.manifest.name))
            .flat_map(|p| {
                p.tools.iter().map(|t| ToolInfo {
                    name: t.name.clone(),
                    function_name: names::function_name(&t.name),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                    output_schema: t.output_schema.clone(),
                    risk: t.risk,
                    plugin: p.manifest.name.clone(),
                    plugin_version: p.manifest.version.to_string(),
                })
            })
            .collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }
}
