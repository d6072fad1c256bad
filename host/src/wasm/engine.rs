//! The wasmtime engine every plugin shares: pooling allocator, epoch
//! interruption, and the ticker that makes epoch deadlines fire.

use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::wasm::executor::GuestExecutor;
use crate::wasm::warm::WarmBudget;

/// How often the epoch advances: the granularity of CPU-time deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Sizing of the instance pool; each slot is one call in flight.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Calls in flight across all plugins.
    pub max_instances: u32,
    /// Largest linear memory any grant may allow.
    pub max_memory_bytes: usize,
    /// Threads that run guest code, apart from the API's.
    pub guest_threads: usize,
    /// Idle instances kept for reuse across all plugins; 0 means a quarter
    /// of `max_instances`.
    pub max_warm_instances: u32,
    /// How long an idle instance is kept for its caller's next call.
    pub warm_idle: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: 256,
            max_memory_bytes: 256 * 1024 * 1024,
            guest_threads: crate::wasm::executor::default_threads(),
            max_warm_instances: 0,
            warm_idle: Duration::from_secs(30),
        }
    }
}

/// The engine, the thread that advances its epoch and the threads guest
/// code runs on; dropping the last `Engine` stops them.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    executor: Arc<GuestExecutor>,
    warm: Arc<WarmBudget>,
    _ticker: Arc<Ticker>,
}

struct Ticker;

impl Engine {
    pub fn new(options: &EngineOptions) -> wasmtime::Result<Engine> {
        let mut pool = PoolingAllocationConfig::new();
        // A component built by wit-bindgen and wasm-component-ld has one main
        // module plus a few adapter shims; 16 core instances leaves room.
        pool.total_component_instances(options.max_instances)
            .total_core_instances(options.max_instances * 16)
            .max_core_instances_per_component(16)
            .total_memories(options.max_instances * 2)
            .max_memories_per_component(2)
            .total_tables(options.max_instances * 16)
            .max_tables_per_component(16)
            .total_stacks(options.max_instances)
            .max_memory_size(options.max_memory_bytes)
            // Reset a recycled memory's first 2 MiB by zeroing it in place
            // instead of handing it back to the kernel on every call: a Rust
            // guest's memory (data, stack, heap) fits, and the madvise per
            // instance was what capped fresh-instance throughput under load
            // (host/benches/load.sh at 64 connections: 11.3k → 18.2k req/s).
            .linear_memory_keep_resident(2 * 1024 * 1024)
            .table_keep_resident(64 * 1024);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(512 * 1024)
            .async_stack_size(1024 * 1024)
            .parallel_compilation(true);
        let inner = wasmtime::Engine::new(&config)?;

        let ticker = Arc::new(Ticker);
        spawn_ticker(inner.weak(), Arc::downgrade(&ticker))?;
        let executor = Arc::new(GuestExecutor::new(options.guest_threads)?);
        let max_warm = match options.max_warm_instances {
            0 => options.max_instances / 4,
            n => n.min(options.max_instances),
        };
        Ok(Engine {
            inner,
            executor,
            warm: WarmBudget::new(max_warm as usize, options.warm_idle),
            _ticker: ticker,
        })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    pub fn executor(&self) -> &GuestExecutor {
        &self.executor
    }

    /// The host-wide budget of idle instances kept for reuse.
    pub fn warm(&self) -> &Arc<WarmBudget> {
        &self.warm
    }

    /// Epoch ticks that make up `timeout`, rounded up, at least one.
    pub fn ticks(timeout: Duration) -> u64 {
        (timeout.as_micros() / EPOCH_TICK.as_micros()) as u64 + 1
    }
}

/// Without this thread no epoch deadline ever fires, and an endless loop in
/// a connector would hold its instance forever.
fn spawn_ticker(engine: wasmtime::EngineWeak, alive: Weak<Ticker>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("toolhost-epoch".into())
        .spawn(move || {
            while alive.strong_count() > 0 {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}
