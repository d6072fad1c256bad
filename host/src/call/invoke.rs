//! One tool call, top to bottom: find the tool → validate and convert the
//! JSON arguments → take a concurrency slot → fresh instance from the
//! `InstancePre` with memory and time limits → call the export → convert the
//! result to JSON → make storage writes durable → report what happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use wasmtime::component::Val;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::audit::Ending;
use crate::call::{fault, names, values};
use crate::capabilities::{truncated, CallState, Journal, NoGate, SharedGate, SharedJournal};
use crate::model::call::{CallError, ConnectorError, Exhausted, Timings};
use crate::model::effects::Sink;
use crate::model::progress::ProgressSink;
use crate::plugins::plugin::{Plugin, Warm};
use crate::plugins::registry::{Registry, ToolRef};
use crate::wasm::engine::Engine;

/// How long a call may wait for one of its plugin's concurrency slots before
/// it is turned away, instead of queueing without bound.
pub const QUEUE_WAIT: Duration = Duration::from_millis(500);

/// Everything about one call: the answer and what the connector did.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    pub tool: String,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    pub result: Result<Value, CallError>,
    pub journal: Journal,
    pub timings: Timings,
    /// Whether a side effect may have left the host (the call opened its
    /// effect gate): such an outcome is final, never run again on a retry.
    pub effects: bool,
}

impl CallOutcome {
    /// The call's end as its audit record is closed with.
    pub fn ending(&self) -> Ending<'_> {
        Ending {
            tool: &self.tool,
            plugin_version: self.plugin_version.as_deref(),
            plugin_digest: self.plugin_digest.as_deref(),
            error: self.result.as_ref().err(),
            effects: self.effects,
            timings: self.timings,
            journal: &self.journal,
        }
    }

    /// A call turned away before it reached a plugin.
    pub fn refused(tool: &str, error: CallError) -> CallOutcome {
        CallOutcome {
            tool: tool.to_string(),
            plugin_version: None,
            plugin_digest: None,
            result: Err(error),
            journal: Journal::default(),
            timings: Timings::default(),
            effects: false,
        }
    }
}

/// Call the tool `found` (resolved once by the caller, so that what holds,
/// runs and records the call is one version) with `args`. `caller` (token
/// and session) identifies who calls, for plugins whose grant lets an
/// instance serve several calls: an instance is only ever reused for the
/// same caller. `gate` is opened before the connector's first side effect
/// leaves the host. `progress`: where the connector's progress reports go,
/// when the caller listens.
pub async fn invoke(
    engine: &Engine,
    found: &ToolRef,
    args: &Value,
    caller: Option<&str>,
    gate: SharedGate,
    progress: Option<ProgressSink>,
) -> CallOutcome {
    let started = Instant::now();
    let plugin = &found.plugin;
    let journal: SharedJournal = Arc::new(Mutex::new(Journal::for_grant(plugin.context.grant.clone())));
    let mut timings = Timings::default();
    let scope = Scope {
        journal: &journal,
        gate: &gate,
        progress,
    };
    let mut result = call(engine, found, args, caller, scope, &mut timings).await;
    let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    crate::capabilities::summarize_denials(&journal, &plugin.context);
    // The secrets the connector was handed go no further than its requests.
    match &mut result {
        Ok(value) => journal.mask_json(value, Sink::Result),
        Err(CallError::PluginError { error }) => error.rewrite(|text| journal.mask_json(text, Sink::Error)),
        Err(CallError::PluginFault { message }) => journal.mask(message, Sink::Error),
        Err(_) => {}
    }
    if let (true, Some(kv)) = (journal.kv_writes > 0, &plugin.context.kv) {
        // What the connector stored is durable before anyone hears of the
        // call, whatever its outcome.
        if let Err(e) = kv.flush().await {
            result = Err(CallError::ResourceExhausted {
                reason: Exhausted::Storage,
                message: format!("storage flush failed: {e}"),
            });
        }
    }
    timings.total_us = started.elapsed().as_micros() as u64;
    CallOutcome {
        tool: found.tool().name.clone(),
        plugin_version: Some(plugin.manifest.version.to_string()),
        plugin_digest: Some(plugin.digest.clone()),
        result,
        journal,
        timings,
        effects: gate.opened(),
    }
}

/// A store for one call of `plugin`, with its memory limiter and CPU
/// budget in place.
fn new_store(
    engine: &Engine,
    plugin: &Plugin,
    journal: SharedJournal,
    gate: SharedGate,
    progress: Option<ProgressSink>,
) -> Store<CallState> {
    let state = CallState::new(plugin.context.clone(), journal, gate, progress);
    let mut store = Store::new(engine.wasmtime(), state);
    store.limiter(|s| &mut s.limiter);
    arm_cpu_budget(&mut store, plugin.context.grant.timeout);
    store
}

/// CPU time. At every epoch tick the guest gives its thread back to the
/// executor, so a connector that computes cannot hold a thread that other
/// calls (or the wall-clock timeout) need; once it has run for `limit`
/// worth of ticks it is stopped. The callback runs only while the guest
/// runs, so time spent waiting (for an upstream, or for a thread) is not
/// counted: a tick is charged when the guest ran into it.
fn arm_cpu_budget(store: &mut Store<CallState>, limit: Duration) {
    let budget = Engine::ticks(limit);
    let mut used = 0u64;
    store.epoch_deadline_callback(move |_| {
        used += 1;
        if used >= budget {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    });
    store.set_epoch_deadline(1);
}

/// The arguments as the tool's parameters, or why they cannot be.
fn params(found: &ToolRef, args: &Value) -> Result<Vec<Val>, CallError> {
    values::args_from_json(&found.tool().func, args).map_err(|e| CallError::InvalidInput {
        field: e.field,
        message: e.message,
    })
}

/// Whether `args` fit the tool's parameters, without calling it (a call
/// held for approval is checked before a person looks at it).
pub fn check_arguments(found: &ToolRef, args: &Value) -> Result<(), CallError> {
    params(found, args).map(drop)
}

/// The set-up half of a call alone (store, limits, instance), for measuring.
pub async fn instantiate_only(engine: &Engine, plugin: &Plugin) -> wasmtime::Result<()> {
    let mut store = new_store(engine, plugin, SharedJournal::default(), NoGate::shared(), None);
    plugin.pre.instantiate_async(&mut store).await?;
    Ok(())
}

/// The tool named `plugin.function`, with the version that serves it now.
pub fn find(registry: &Registry, tool: &str) -> Option<ToolRef> {
    let (plugin, function) = names::split(tool)?;
    ToolRef::find(registry.get(plugin)?, function)
}

/// What one call's imports work on, besides the plugin's own context.
struct Scope<'a> {
    journal: &'a SharedJournal,
    gate: &'a SharedGate,
    progress: Option<ProgressSink>,
}

async fn call(
    engine: &Engine,
    found: &ToolRef,
    args: &Value,
    caller: Option<&str>,
    scope: Scope<'_>,
    timings: &mut Timings,
) -> Result<Value, CallError> {
    let Scope {
        journal,
        gate,
        progress,
    } = scope;
    let plugin = &found.plugin;
    let tool = found.tool();
    let grant = &plugin.context.grant;

    let params = params(found, args)?;

    let _slot = tokio::time::timeout(QUEUE_WAIT, plugin.slots.clone().acquire_owned())
        .await
        .map_err(|_| CallError::ResourceExhausted {
            reason: Exhausted::Busy,
            message: format!(
                "{} already has {} calls in flight",
                plugin.manifest.name, grant.max_concurrency
            ),
        })?
        .map_err(|_| CallError::ResourceExhausted {
            reason: Exhausted::Busy,
            message: format!("{} is unloading", plugin.manifest.name),
        })?;

    // An instance this caller used before, when the grant allows reuse;
    // otherwise (and by default) a fresh one.
    let reuse_key = caller.filter(|_| grant.calls_per_instance > 1);
    let warm = reuse_key.and_then(|key| plugin.take_warm(key));
    let (mut store, reused, calls) = match warm {
        Some(Warm {
            mut store,
            instance,
            calls,
        }) => {
            store.data_mut().reset(journal.clone(), gate.clone(), progress);
            arm_cpu_budget(&mut store, grant.timeout);
            (store, Some(instance), calls)
        }
        None => (
            new_store(engine, plugin, journal.clone(), gate.clone(), progress),
            None,
            0,
        ),
    };

    let mut results = vec![Val::Bool(false); tool.func.results().len()];
    let run = async {
        let instance = match reused {
            Some(instance) => instance,
            None => {
                let t0 = Instant::now();
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                timings.instantiate_us = t0.elapsed().as_micros() as u64;
                instance
            }
        };
        let t1 = Instant::now();
        let func = instance
            .get_func(&mut store, tool.export)
            .ok_or_else(|| wasmtime::Error::msg("export vanished"))?;
        func.call_async(&mut store, &params, &mut results).await?;
        timings.execute_us = t1.elapsed().as_micros() as u64;
        wasmtime::Result::Ok(instance)
    };
    // Wall time: also bounds waits in host calls (HTTP), which no epoch sees.
    let instance = match tokio::time::timeout(grant.timeout, run).await {
        Err(_) => return Err(timeout(grant.timeout, journal)),
        // A trap discards the instance with the store.
        Ok(Err(e)) => return Err(classify(e, &store, grant.timeout, grant.memory_bytes)),
        Ok(Ok(instance)) => instance,
    };
    store.data_mut().end_progress();
    if let Some(key) = reuse_key {
        // Kept for the same caller only, for a bounded number of calls, and
        // not once it has grown past half its memory grant.
        let calls = calls + 1;
        if calls < grant.calls_per_instance && store.data().limiter.used() <= grant.memory_bytes / 2 {
            plugin.put_warm(key, Warm { store, instance, calls }, engine.warm());
        }
    }

    let cap = grant.output_bytes;
    let value = match (tool.returns_result, results.into_iter().next()) {
        (_, None) => Value::Null,
        (true, Some(Val::Result(Ok(ok)))) => ok.as_deref().map_or(Ok(Value::Null), |v| capped_json(v, cap))?,
        (true, Some(Val::Result(Err(err)))) => {
            return Err(CallError::PluginError {
                error: ConnectorError::from_json(err.as_deref().map_or(Ok(Value::Null), |v| capped_json(v, cap))?),
            })
        }
        (_, Some(other)) => capped_json(&other, cap)?,
    };
    Ok(value)
}

/// The JSON of a result within the grant's output limit: refused from a
/// lower bound of its size before any JSON is built, then checked exactly
/// (escapes and floats can make it longer) without writing it out.
fn capped_json(v: &Val, cap: usize) -> Result<Value, CallError> {
    let over = |size: String| CallError::ResourceExhausted {
        reason: Exhausted::Output,
        message: format!("result of {size} bytes is over the {cap}-byte output limit"),
    };
    if values::json_len_at_least(v, cap) > cap {
        return Err(over(format!("more than {cap}")));
    }
    let value = values::to_json(v);
    let mut size = ByteCount(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut size, &value);
    if size.0 > cap {
        return Err(over(size.0.to_string()));
    }
    Ok(value)
}

/// An `io::Write` that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The call ran out of time, named with the request it was waiting on, if
/// any (which the journal records as cut short).
fn timeout(limit: Duration, journal: &SharedJournal) -> CallError {
    CallError::Timeout {
        millis: limit.as_millis() as u64,
        waiting_on: journal.lock().unwrap_or_else(|p| p.into_inner()).timed_out(),
    }
}

/// A wasm backtrace in the log is cut to this many bytes.
const BACKTRACE_MAX: usize = 4096;

/// Turn a failed instantiate or call into what it means for the caller.
fn classify(e: wasmtime::Error, store: &Store<CallState>, limit: Duration, memory: usize) -> CallError {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return timeout(limit, &store.data().journal);
    }
    if store.data().limiter.denied {
        return CallError::ResourceExhausted {
            reason: Exhausted::Memory,
            message: format!(
                "the connector ran out of its {} MiB memory grant",
                memory / (1024 * 1024)
            ),
        };
    }
    if let Some(wasmtime::component::ResourceTableError::Full) = e.downcast_ref() {
        return CallError::ResourceExhausted {
            reason: Exhausted::HostResources,
            message: format!(
                "the connector holds more than {} host resources at once",
                crate::capabilities::MAX_RESOURCES
            ),
        };
    }
    // A connector has no process to end: `wasi:cli/exit` (what Python's
    // `sys.exit` and JavaScript's runtime call) ends the call, as a fault.
    if let Some(wasmtime_wasi::I32Exit(status)) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::PluginFault {
            message: format!("the connector called wasi:cli/exit (status {status}) instead of returning"),
        };
    }
    let full = format!("{e:#}");
    if full.contains("maximum concurrent") || full.contains("pooling allocator") {
        return CallError::ResourceExhausted {
            reason: Exhausted::Busy,
            message: "the host has no free instance slot; retry shortly".into(),
        };
    }
    // The backtrace goes to the log only: in a stripped build its frames
    // are `<wasm function N>`, of no use to an agent.
    let backtrace = e.downcast_ref::<WasmBacktrace>().map(ToString::to_string);
    let trap = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e
            .chain()
            .map(ToString::to_string)
            .filter(|cause| backtrace.as_ref() != Some(cause))
            .collect::<Vec<_>>()
            .join(": "),
    };
    // Masked before the message quotes (and cuts) it.
    let stderr = store
        .data()
        .journal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .masked_stderr();
    let message = fault::message(&trap, stderr.as_bytes());
    tracing::warn!(
        plugin = %store.data().plugin.name,
        backtrace = truncated(backtrace.unwrap_or_default(), BACKTRACE_MAX),
        "{message}"
    );
    CallError::PluginFault { message }
}
