//! The host's runtime: the facade the server and the command line use. It
//! holds the parts (the wasm toolchain, the stores, the audit trail, the
//! plugins' [`Lifecycle`]) and runs calls; changes to what serves are the
//! lifecycle's.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio_util::task::TaskTracker;

use crate::call::invoke::{self, CallOutcome};

use crate::audit::{AuditError, AuditLog};
use crate::call::names;
use crate::capabilities::{self, NoGate, Outbound, OutboundError, OutboundOptions, SharedGate};
use crate::config::Config;
use crate::model::audit::{AuditRecord, Caller};
use crate::model::call::CallError;
use crate::model::progress::ProgressSink;
use crate::plugins::kind::Kind;
use crate::plugins::lifecycle::{Lifecycle, LifecycleError, LifecycleOptions, Toolchain};
use crate::plugins::manifest::Risk;
use crate::plugins::registry::ToolRef;
use crate::policy::{Policy, PolicyError};
use crate::storage::{Storage, StorageError};
use crate::wasm::compile_cache::CompileCache;
use crate::wasm::engine::{Engine, EngineOptions};

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Where compiled components are cached (see `[server] compile-cache-dir`).
    pub compile_cache_dir: PathBuf,
    pub policy: Policy,
    pub engine: EngineOptions,
    /// Environment variables a grant set through the API may name as a
    /// secret's source; `None`: none (see [`crate::config::grants::PluginPolicy::settle`]).
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
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
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
    /// A connector's function, or a workflow (whose call starts a run).
    pub kind: Kind,
    pub plugin: String,
    pub plugin_version: String,
    /// Whether calls may wait for a person's approval (filled in by the
    /// application, which owns the approval rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::policy::approvals::ApprovalSummary>,
}

#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    toolchain: Arc<Toolchain>,
    storage: Storage,
    audit: Arc<AuditLog>,
    plugins: Lifecycle,
    /// Calls running detached from their callers, so that shutdown can
    /// wait for those whose clients have gone.
    detached: TaskTracker,
}

impl RuntimeOptions {
    /// A runtime over `plugins_dir` with its data (and compile cache) in
    /// `data_dir`, under `policy`, everything else as `[server]`'s defaults.
    pub fn new(plugins_dir: PathBuf, data_dir: PathBuf, policy: Policy) -> RuntimeOptions {
        RuntimeOptions {
            plugins_dir,
            compile_cache_dir: data_dir.join("compile-cache"),
            data_dir,
            policy,
            engine: Default::default(),
            api_secret_env_prefix: None,
            outbound: Default::default(),
        }
    }

    /// A runtime over the folders and policy `config` names, its engine
    /// sized by `[server]`: the same for `serve` and for one-shot CLI
    /// commands.
    pub fn from_config(config: &Config) -> Result<RuntimeOptions, PolicyError> {
        Ok(RuntimeOptions {
            plugins_dir: config.server.plugins_dir.clone(),
            data_dir: config.server.data_dir.clone(),
            compile_cache_dir: config
                .server
                .compile_cache_dir
                .clone()
                .unwrap_or_else(|| config.server.data_dir.join("compile-cache")),
            policy: config.policy()?,
            engine: EngineOptions {
                max_instances: config.server.max_instances,
                max_warm_instances: config.server.max_warm_instances,
                warm_idle: std::time::Duration::from_secs(config.server.warm_idle_secs),
                guest_threads: match config.server.guest_threads {
                    0 => crate::wasm::executor::default_threads(),
                    n => n,
                },
                ..EngineOptions::default()
            },
            api_secret_env_prefix: config.server.api_secret_env_prefix.clone(),
            outbound: OutboundOptions {
                dns_servers: config.server.dns_servers.clone(),
                dns_timeout: std::time::Duration::from_millis(config.server.dns_timeout_ms),
                dns_max_in_flight: config.server.dns_max_in_flight,
                extra_ca_roots: config.server.extra_ca_roots.clone(),
            },
        })
    }
}

impl Runtime {
    /// The runtime `serve` and the one-shot CLI commands use: its state
    /// where `[storage]` says, its folders, policy and engine as configured.
    pub async fn from_config(config: &Config) -> Result<Runtime, RuntimeError> {
        let options = RuntimeOptions::from_config(config)?;
        let storage = Storage::connect(&config.storage, &options.data_dir.join("db")).await?;
        Runtime::with_storage(options, storage)
    }

    /// A runtime keeping its state in sled, in the data folder.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let storage = Storage::open(&options.data_dir.join("db"))?;
        Runtime::with_storage(options, storage)
    }

    /// A runtime keeping its state in `storage` (see [`Storage::connect`]).
    pub fn with_storage(options: RuntimeOptions, storage: Storage) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&options.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = capabilities::linker(engine.wasmtime()).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let toolchain = Arc::new(Toolchain {
            cache: CompileCache::new(engine.wasmtime(), Some(options.compile_cache_dir.clone())),
            outbound: Outbound::new(&options.outbound)?,
            engine,
            linker,
        });
        let audit = Arc::new(AuditLog::open(&storage)?);
        let plugins = Lifecycle::new(
            LifecycleOptions {
                plugins_dir: options.plugins_dir,
                archive_dir: options.data_dir.join("bundles"),
                policy: options.policy,
                api_secret_env_prefix: options.api_secret_env_prefix,
            },
            toolchain.clone(),
            storage.clone(),
            audit.clone(),
        )?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                toolchain,
                storage,
                audit,
                plugins,
                detached: TaskTracker::new(),
            }),
        })
    }

    /// Every `warm_idle / 2`, drop the instances kept for reuse that have
    /// idled longer than `warm_idle`, so they give their pool slots back
    /// even when their callers never return. Stops with the runtime.
    pub fn spawn_warm_sweeper(&self) {
        let inner = Arc::downgrade(&self.inner);
        let every = (self.engine().warm().idle_timeout() / 2).max(std::time::Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = inner.upgrade() else { break };
                let now = std::time::Instant::now();
                for plugin in inner.plugins.registry().snapshot().values() {
                    plugin.evict_idle(now);
                }
            }
        });
    }

    fn engine(&self) -> &Engine {
        &self.inner.toolchain.engine
    }

    /// Idle instances kept for reuse now, across all plugins.
    pub fn warm_instances(&self) -> usize {
        self.engine().warm().held()
    }

    /// The owner of every change to what serves.
    pub fn plugins(&self) -> &Lifecycle {
        &self.inner.plugins
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.inner.audit
    }

    /// Call `tool` without recording it, here rather than on the guest
    /// threads (benchmarks, tests of the runtime alone).
    pub async fn invoke(&self, tool: &str, args: &Value) -> CallOutcome {
        match self.find(tool) {
            Some(found) => self.invoke_gated(&found, args, None, NoGate::shared(), None).await,
            None => CallOutcome::refused(tool, CallError::NotFound { tool: tool.to_string() }),
        }
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
        let tool = names::canonical(tool).unwrap_or(std::borrow::Cow::Borrowed(tool));
        let found = self.find(&tool);
        self.call_resolved(caller, &tool, found, args, reuse).await
    }

    /// Call `tool` (its canonical name), resolved once by the caller as
    /// `found`: the version that serves it now, whose secret fields its
    /// record redacts and which the guest runs, whatever an upgrade swaps
    /// in meanwhile.
    pub async fn call_resolved(
        &self,
        caller: &Caller,
        tool: &str,
        found: Option<ToolRef>,
        args: &Value,
        reuse: Option<&str>,
    ) -> Result<(CallOutcome, AuditRecord), AuditError> {
        let secret_fields = found.as_ref().map_or(&[][..], ToolRef::secret_fields);
        let open = Arc::new(self.inner.audit.begin(caller, tool, args, secret_fields));
        let outcome = match found {
            Some(found) => {
                let plugin = &found.plugin;
                open.set_plugin(plugin.manifest.version.to_string(), plugin.digest.clone());
                let listener = caller.progress.clone();
                self.invoke_on_guest_threads(found, args, reuse, open.clone(), listener)
                    .await
            }
            None => CallOutcome::refused(tool, CallError::NotFound { tool: tool.to_string() }),
        };
        let record = open.finish(&outcome.ending()).await?;
        Ok((outcome, record))
    }

    /// The record of a call's outcome decided outside the runtime: a call
    /// refused before it reached it (a token without permission, say), or
    /// a workflow's run, whose steps have records of their own.
    pub async fn record_outcome(
        &self,
        caller: &Caller,
        args: &Value,
        outcome: &CallOutcome,
    ) -> Result<AuditRecord, AuditError> {
        self.inner
            .audit
            .append(caller, args, &self.secret_fields(&outcome.tool), &outcome.ending())
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
        found: ToolRef,
        args: &Value,
        reuse: Option<&str>,
        gate: SharedGate,
        progress: Option<ProgressSink>,
    ) -> CallOutcome {
        let tool = found.tool().name.clone();
        let (this, args, reuse) = (self.clone(), args.clone(), reuse.map(str::to_string));
        let guest = async move { this.invoke_gated(&found, &args, reuse.as_deref(), gate, progress).await };
        self.engine().executor().spawn(guest).await.unwrap_or_else(|e| {
            CallOutcome::refused(
                &tool,
                CallError::PluginFault {
                    message: format!("the call's task failed: {e}"),
                },
            )
        })
    }

    async fn invoke_gated(
        &self,
        found: &ToolRef,
        args: &Value,
        reuse: Option<&str>,
        gate: SharedGate,
        progress: Option<ProgressSink>,
    ) -> CallOutcome {
        let plugin = &found.plugin.manifest.name;
        if self.inner.plugins.is_disabled(plugin) {
            return CallOutcome::refused(
                &found.tool().name,
                CallError::Unavailable {
                    message: format!("plugin {plugin:?} is disabled by the operator"),
                },
            );
        }
        invoke::invoke(self.engine(), found, args, reuse, gate, progress).await
    }

    /// The tool named `tool` (canonical name), as it serves now.
    pub fn find(&self, tool: &str) -> Option<ToolRef> {
        invoke::find(self.inner.plugins.registry(), tool)
    }

    /// Argument fields of `tool` its manifest marks secret (for the audit).
    pub fn secret_fields(&self, tool: &str) -> Vec<String> {
        let Some((plugin, function)) = names::split(tool) else {
            return Vec::new();
        };
        self.inner
            .plugins
            .registry()
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
            .plugins
            .registry()
            .get(plugin)
            .ok_or_else(|| format!("no plugin {plugin:?}"))?;
        invoke::instantiate_only(self.engine(), &p)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// Every tool of every loaded plugin, in name order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self
            .inner
            .plugins
            .registry()
            .snapshot()
            .values()
            .filter(|p| !self.inner.plugins.is_disabled(&p.manifest.name))
            .flat_map(|p| {
                p.tools.iter().map(|t| ToolInfo {
                    name: t.name.clone(),
                    function_name: names::function_name(&t.name),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                    output_schema: t.output_schema.clone(),
                    risk: t.risk,
                    kind: Kind::Connector,
                    plugin: p.manifest.name.clone(),
                    plugin_version: p.manifest.version.to_string(),
                    approval: None,
                })
            })
            .collect();
        let registry = self.inner.plugins.registry();
        tools.extend(
            registry
                .workflows()
                .values()
                .filter(|w| !self.inner.plugins.is_disabled(w.name()))
                .map(|w| {
                    let d = &w.definition;
                    // As risky as the riskiest tool it calls.
                    let risk = d
                        .tools
                        .iter()
                        .filter_map(|t| self.find(t).map(|found| found.tool().risk))
                        .max()
                        .unwrap_or_default();
                    ToolInfo {
                        name: d.name.clone(),
                        function_name: d.name.clone(),
                        description: d.description(),
                        parameters: d.input_schema.clone(),
                        output_schema: d.output_schema.clone(),
                        risk,
                        kind: Kind::Workflow,
                        plugin: d.name.clone(),
                        plugin_version: d.version.to_string(),
                        approval: None,
                    }
                }),
        );
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }
}
