//! A loaded plugin: its bundle (component + manifest) compiled, linked
//! against the host's imports, and turned into tools.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

use crate::call::{names, schema};
use crate::capabilities::{CallState, Outbound, PluginContext, Upstreams};
use crate::plugins::bundle::{Bundle, Contents};
use crate::plugins::contract::Contract;
use crate::plugins::error::LoadError;
use crate::plugins::imports::{self, ImportsError};
use crate::plugins::kind::Kind;
use crate::plugins::manifest::{Manifest, Risk};
use crate::policy::Policy;
use crate::storage::Storage;
use crate::wasm::compile_cache::{CompileCache, LoadFailure, Source};
use crate::wasm::warm::{WarmBudget, WarmPermit};

/// One tool: an exported function of a plugin.
pub struct Tool {
    /// `plugin.function`.
    pub name: String,
    pub function: String,
    /// The exported interface it belongs to, e.g. `toolhost:connector/coupon@0.1.0`.
    pub interface: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub risk: Risk,
    pub(crate) func: ComponentFunc,
    pub(crate) export: ComponentExportIndex,
    /// The function returns `result<_, _>`: its `err` is a business error.
    pub(crate) returns_result: bool,
}

pub struct Plugin {
    pub manifest: Arc<Manifest>,
    /// sha256 of the component.
    pub digest: String,
    /// sha256 of the manifest: with `digest`, this version's identity.
    pub manifest_digest: String,
    /// The trusted key that signed the bundle, when it was signed.
    pub signer: Option<String>,
    pub source: Source,
    pub context: Arc<PluginContext>,
    pub(crate) pre: InstancePre<CallState>,
    /// Sorted by name.
    pub tools: Arc<[Tool]>,
    /// Whether the component imports `progress`: its calls may report how
    /// far they have come, to a caller that listens.
    pub reports_progress: bool,
    pub(crate) slots: Slots,
    /// Idle instances kept for reuse, by caller (token and session); only
    /// when the grant allows more than one call per instance.
    warm: std::sync::Mutex<HashMap<String, Vec<Idle>>>,
}

/// An instance that served a call and may serve the same caller again.
pub(crate) struct Warm {
    pub store: wasmtime::Store<CallState>,
    pub instance: wasmtime::component::Instance,
    pub calls: u32,
}

/// An idle [`Warm`] instance and its place in the host's budget.
struct Idle {
    warm: Warm,
    permit: WarmPermit,
}

/// Idle instances one plugin keeps at most, within the host-wide budget,
/// so that one plugin's callers cannot take all of it.
const MAX_WARM: usize = 8;

impl Plugin {
    /// The instance `caller` left idle, unless it has idled too long.
    pub(crate) fn take_warm(&self, caller: &str) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let idle = warm.get_mut(caller)?;
        let now = Instant::now();
        let found = std::iter::from_fn(|| idle.pop()).find(|i| !i.permit.expired(now));
        if idle.is_empty() {
            warm.remove(caller);
        }
        found.map(|i| i.warm)
    }

    /// Keep an instance for its caller's next call, if this plugin and the
    /// host have room; otherwise it is dropped and its pool slot freed.
    pub(crate) fn put_warm(&self, caller: &str, w: Warm, budget: &Arc<WarmBudget>) {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        if warm.values().map(Vec::len).sum::<usize>() >= MAX_WARM {
            return;
        }
        if let Some(permit) = budget.try_hold() {
            warm.entry(caller.to_string())
                .or_default()
                .push(Idle { warm: w, permit });
        }
    }

    /// Drop the instances idle for longer than the host allows; how many.
    pub(crate) fn evict_idle(&self, now: Instant) -> usize {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let before: usize = warm.values().map(Vec::len).sum();
        warm.retain(|_, idle| {
            idle.retain(|i| !i.permit.expired(now));
            !idle.is_empty()
        });
        before - warm.values().map(Vec::len).sum::<usize>()
    }

    /// Compile, link and describe a bundle. Slow (compilation): call it off
    /// the request path.
    pub fn load(
        bundle: &Bundle,
        engine: &wasmtime::Engine,
        linker: &Linker<CallState>,
        cache: &CompileCache,
        policy: &Policy,
        storage: &Storage,
        outbound: &Arc<Outbound>,
    ) -> Result<Plugin, LoadError> {
        let signer = bundle.verify(policy)?;
        let (manifest, wasm) = match &bundle.contents {
            Contents::Connector { manifest, wasm } => (Manifest::clone(manifest), wasm),
            Contents::Workflow(_) => {
                return Err(LoadError::Kind {
                    plugin: bundle.name.clone(),
                    expected: Kind::Connector,
                    actual: Kind::Workflow,
                })
            }
        };
        let plugin = manifest.name.clone();
        // Imports first: a bundle the host cannot link is refused before the
        // compiler spends its CPU on it. A component whose imports cannot be
        // read that way is left to the compiler and the link below.
        let imports_offered = || match imports::check(wasm, engine, linker) {
            Err(ImportsError::NotOffered(message)) => Err(message),
            Err(unread @ ImportsError::Unreadable(_)) => {
                tracing::warn!(plugin = %plugin, "{unread}; the link after compiling decides");
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        let (component, source) = cache
            .load(engine, &bundle.digest, wasm, imports_offered)
            .map_err(|e| match e {
                LoadFailure::Refused(message) => LoadError::Link {
                    plugin: plugin.clone(),
                    message,
                },
                LoadFailure::Compile(e) => LoadError::Compile {
                    plugin: plugin.clone(),
                    message: format!("{e:#}"),
                },
            })?;
        check_world(&manifest, &component, engine)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Link {
            plugin: plugin.clone(),
            message: format!("{e:#}"),
        })?;
        crate::plugins::worlds::check(&manifest.world, &pre).map_err(|e| LoadError::WorldTypes {
            plugin: plugin.clone(),
            world: manifest.world.clone(),
            message: format!("{e:#}"),
        })?;
        let tools = describe_tools(&manifest, &component, engine)?;
        let reports_progress = component
            .component_type()
            .imports(engine)
            .any(|(name, _)| name.starts_with(PROGRESS_IMPORT));

        let manifest = Arc::new(manifest);
        let (context, slots) = grant_context(&manifest, policy, storage, outbound)?;
        Ok(Plugin {
            manifest,
            digest: bundle.digest.clone(),
            manifest_digest: bundle.manifest_digest(),
            signer,
            source,
            context,
            pre,
            tools: tools.into(),
            reports_progress,
            slots,
            warm: Default::default(),
        })
    }

    /// The same compiled plugin under a new policy: what an operator's grant
    /// change swaps in. Calls in flight keep the old grant.
    pub fn regrant(&self, policy: &Policy, storage: &Storage, outbound: &Arc<Outbound>) -> Result<Plugin, LoadError> {
        let (context, _) = grant_context(&self.manifest, policy, storage, outbound)?;
        // Keep the same slots, resized, so that calls running under the old
        // grant still count against the limit (and an unload waits for them).
        let (old, new) = (
            self.context.grant.max_concurrency as usize,
            context.grant.max_concurrency as usize,
        );
        if new > old {
            self.slots.add_permits(new - old);
        } else if new < old {
            // Shrink as the running calls give their slots back.
            let slots = self.slots.clone();
            let excess = (old - new) as u32;
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(excess).await {
                    permits.forget();
                }
            });
        }
        let slots = self.slots.clone();
        Ok(Plugin {
            manifest: self.manifest.clone(),
            digest: self.digest.clone(),
            manifest_digest: self.manifest_digest.clone(),
            signer: self.signer.clone(),
            source: self.source,
            context,
            pre: self.pre.clone(),
            tools: self.tools.clone(),
            reports_progress: self.reports_progress,
            slots,
            // Instances made under the old grant are not reused under the new.
            warm: Default::default(),
        })
    }
}

type Slots = Arc<tokio::sync::Semaphore>;

/// The contract's `progress` interface, as a component names its import
/// (with the package's version after an `@`).
const PROGRESS_IMPORT: &str = "toolhost:connector/progress@";

/// What a plugin's calls share under `policy`: its effective grant, its kv
/// space, and its concurrency slots.
fn grant_context(
    manifest: &Manifest,
    policy: &Policy,
    storage: &Storage,
    outbound: &Arc<Outbound>,
) -> Result<(Arc<PluginContext>, Slots), LoadError> {
    let plugin = &manifest.name;
    let grant = Arc::new(policy.grant_for(manifest));
    let kv = if grant.kv_quota_bytes > 0 {
        Some(storage.kv().space(plugin).map_err(|e| LoadError::Storage {
            plugin: plugin.clone(),
            message: e.to_string(),
        })?)
    } else {
        None
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(grant.max_concurrency as usize));
    let context = Arc::new(PluginContext {
        name: plugin.clone(),
        requested_secrets: manifest.capabilities.secrets.clone(),
        requested_kv_bytes: manifest.capabilities.kv_quota_bytes,
        kv,
        upstreams: Upstreams::new(outbound.clone(), grant.max_concurrency as usize),
        log_budget: crate::capabilities::log_budget(),
        grant,
    });
    Ok((context, slots))
}

/// A manifest that names one of the contract's worlds must export what that
/// world exports; a swap between two vendors' connectors relies on it.
fn check_world(manifest: &Manifest, component: &Component, engine: &wasmtime::Engine) -> Result<(), LoadError> {
    let Some(expected) = Contract::get().world_exports(&manifest.world) else {
        return Ok(());
    };
    let ty = component.component_type();
    for name in expected {
        if !matches!(
            ty.get_export(engine, name).map(|e| e.ty),
            Some(ComponentItem::ComponentInstance(_))
        ) {
            return Err(LoadError::WrongWorld {
                plugin: manifest.name.clone(),
                world: manifest.world.clone(),
                missing: name.clone(),
            });
        }
    }
    Ok(())
}

/// Every exported function, in exported interfaces or at the top level.
fn describe_tools(
    manifest: &Manifest,
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<Vec<Tool>, LoadError> {
    let plugin = &manifest.name;
    let tool_error = |function: &str, message: String| LoadError::Tool {
        plugin: plugin.clone(),
        function: function.to_string(),
        message,
    };
    let mut tools: Vec<Tool> = Vec::new();
    let mut add = |interface: &str,
                   function: &str,
                   func: ComponentFunc,
                   export: Option<ComponentExportIndex>|
     -> Result<(), LoadError> {
        if !names::is_wit_name(function) || function.len() > names::MAX_FUNCTION_NAME - plugin.len() - 1 {
            return Err(tool_error(
                function,
                "name too long or not a plain kebab-case identifier".into(),
            ));
        }
        if tools.iter().any(|t| t.function == function) {
            return Err(tool_error(
                function,
                "exported by two interfaces; tool names would clash".into(),
            ));
        }
        let export = export.ok_or_else(|| tool_error(function, "export not found".into()))?;
        let docs = Contract::get().function(interface, function);
        let input_schema = schema::input_schema(&func, docs).map_err(|e| tool_error(function, e.to_string()))?;
        let output_schema = schema::output_schema(&func, docs).map_err(|e| tool_error(function, e.to_string()))?;
        let description = docs
            .and_then(|d| d.description.clone())
            .unwrap_or_else(|| format!("{function} from {interface}"));
        let returns_result = matches!(func.results().next(), Some(wasmtime::component::types::Type::Result(_)));
        tools.push(Tool {
            name: names::tool_name(plugin, function),
            function: function.to_string(),
            interface: interface.to_string(),
            description: description.trim().to_string(),
            input_schema,
            output_schema,
            risk: manifest.risk(function),
            func,
            export,
            returns_result,
        });
        Ok(())
    };
    let ty = component.component_type();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let instance_index = component.get_export_index(None, name);
                for (fname, fitem) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(func) = fitem.ty {
                        let export = instance_index
                            .as_ref()
                            .and_then(|i| component.get_export_index(Some(i), fname));
                        add(name, fname, func, export)?;
                    }
                }
            }
            ComponentItem::ComponentFunc(func) => add("", name, func, component.get_export_index(None, name))?,
            _ => {}
        }
    }
    if tools.is_empty() {
        return Err(LoadError::NoTools { plugin: plugin.clone() });
    }
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tools)
}
