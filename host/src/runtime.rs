//! The host's runtime: engine, linker, storage, compile cache, policy and the
//! registry of loaded plugins, behind one cheap-to-clone handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use wasmtime::component::Linker;

use crate::capabilities::{self, CallState};
use crate::compile_cache::CompileCache;
use crate::engine::{Engine, EngineOptions};
use crate::invoke::{self, CallOutcome};
use crate::manifest::{Manifest, Risk};
use crate::names;
use crate::plugin::{Bundle, LoadError, Plugin};
use crate::policy::Policy;
use crate::registry::Registry;
use crate::storage::{Storage, StorageError};

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    pub policy: Policy,
    pub engine: EngineOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot read plugins folder {path}: {source}")]
    PluginsDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no plugin named {0:?} in the plugins folder")]
    NoSuchPlugin(String),
    #[error(transparent)]
    Load(#[from] LoadError),
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
    cache: CompileCache,
    policy: Policy,
    registry: Registry,
    plugins_dir: PathBuf,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let engine =
            Engine::new(&options.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = capabilities::linker(engine.wasmtime())
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        std::fs::create_dir_all(&options.data_dir).map_err(|e| StorageError::Open {
            path: options.data_dir.display().to_string(),
            source: e.into(),
        })?;
        let storage = Storage::open(&options.data_dir.join("db"))?;
        let cache = CompileCache::new(
            engine.wasmtime(),
            Some(options.data_dir.join("compile-cache")),
        );
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                storage,
                cache,
                policy: options.policy,
                registry: Registry::default(),
                plugins_dir: options.plugins_dir,
            }),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Read, compile and swap in the bundle in `dir`. Compilation runs on a
    /// blocking thread, off the async workers that serve calls.
    pub async fn load_bundle(&self, dir: &Path) -> Result<Arc<Plugin>, LoadError> {
        let this = self.clone();
        let dir = dir.to_path_buf();
        let plugin = tokio::task::spawn_blocking(move || {
            let inner = &this.inner;
            let bundle = Bundle::read(&dir)?;
            Plugin::load(
                bundle,
                inner.engine.wasmtime(),
                &inner.linker,
                &inner.cache,
                &inner.policy,
                &inner.storage,
            )
        })
        .await
        .map_err(|e| LoadError::Compile {
            plugin: "?".into(),
            message: format!("the loader stopped: {e}"),
        })??;
        let (plugin, _previous) = self.inner.registry.insert(plugin);
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, source = ?plugin.source, "loaded");
        Ok(plugin)
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
    pub async fn load_all(
        &self,
    ) -> Result<Vec<(PathBuf, Result<String, LoadError>)>, RuntimeError> {
        let mut results = Vec::new();
        for dir in self.bundle_dirs()? {
            let result = self
                .load_bundle(&dir)
                .await
                .map(|p| p.manifest.name.clone());
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

    pub async fn invoke(&self, tool: &str, args: &Value) -> CallOutcome {
        invoke::invoke(&self.inner.engine, &self.inner.registry, tool, args).await
    }

    /// Every tool of every loaded plugin, in name order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self
            .inner
            .registry
            .snapshot()
            .values()
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
