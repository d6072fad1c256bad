//! The host side of every import a connector may use, and the per-call state
//! they work on.
//!
//! Each capability checks the effective grant at the moment of use; what it
//! refuses goes back to the guest as the WIT error *and* into the call's
//! journal (for the log, the audit trail and the caller).

mod config;
mod dns;
mod http;
mod kv;
mod log;
mod progress;
mod secrets;
mod upstream;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::policy::Grant;
use crate::storage::kv::KvSpace;

use crate::model::effects::{Awaited, Capability, Denial, Echo, OutboundRecord, PendingRequest, Sink};
use crate::model::progress::ProgressSink;
pub(crate) use crate::model::text::truncated;
pub use dns::{DnsError, DnsServer};
pub use http::{InFlight, OutboundHttp};
use log::{GuestOutput, Stdio};
use progress::CallProgress;
pub use progress::{MAX_MESSAGE as MAX_PROGRESS_MESSAGE, MAX_REPORTS as MAX_PROGRESS_REPORTS};
pub use secrets::MASK_MIN_BYTES;
pub use upstream::{Outbound, OutboundError, OutboundOptions, Upstreams};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "toolhost:connector/host",
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
        require_store_data_send: true,
        // Writes wait for the call's audit record to be durable first.
        imports: {
            "toolhost:connector/kv.get": async,
            "toolhost:connector/kv.set": async,
            "toolhost:connector/kv.set-if-absent": async,
            "toolhost:connector/kv.delete": async,
            "toolhost:connector/kv.list-keys": async,
        },
    });
}

pub(crate) use bindings::toolhost::connector as wit;

/// What one plugin's calls share: who it is and what it was granted.
pub struct PluginContext {
    pub name: String,
    /// What the manifest requested, to say who refused a capability.
    pub requested_secrets: Vec<String>,
    pub requested_kv_bytes: u64,
    pub grant: Arc<Grant>,
    pub kv: Option<Arc<dyn KvSpace>>,
    /// Kept-alive connections for the requests the grant allows.
    pub upstreams: Upstreams,
    /// Lines about this plugin (its denials) the host writes to its log,
    /// across all its calls: one connector cannot flood the operator's log.
    pub log_budget: LogBudget,
}

pub type LogBudget = governor::DefaultDirectRateLimiter;

/// A plugin's [`LogBudget`]: a burst of 64 lines, then 16 a second.
pub fn log_budget() -> LogBudget {
    use std::num::NonZeroU32;
    let per_second = NonZeroU32::new(16).expect("16 is not zero");
    let burst = NonZeroU32::new(64).expect("64 is not zero");
    governor::RateLimiter::direct(governor::Quota::per_second(per_second).allow_burst(burst))
}

/// Denials a call's journal (and so its audit record) keeps in full; the
/// rest are only counted. A connector looping on a refused capability
/// makes millions of them.
pub const DENIALS_KEPT: usize = 32;
/// Denials of one call that reach the host's log; the rest are summed up
/// in one line when the call ends.
const DENIALS_LOGGED: u32 = 8;
/// A denial's detail (which names what the connector asked for) is cut to
/// this many bytes.
const DENIAL_DETAIL_MAX: usize = 256;

/// What a call did at its imports, kept for the audit trail. Shared with
/// the HTTP hook, whose requests finish on other tasks. Bounded whatever
/// the connector does: outbound requests by the grant's per-call count,
/// denials by [`DENIALS_KEPT`].
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub outbound: Vec<OutboundRecord>,
    /// The first [`DENIALS_KEPT`] denials.
    pub denials: Vec<Denial>,
    /// Every denial, by capability, kept or not.
    pub denied: BTreeMap<Capability, u32>,
    /// Denials written to the host's log.
    pub denials_logged: u32,
    pub log_lines: u32,
    pub kv_writes: u32,
    /// The plugin's grant, whose secret values are masked in all the call
    /// writes (never written anywhere).
    #[serde(skip)]
    pub grant: Option<Arc<Grant>>,
    /// Where the connector wrote one of them (and it was masked).
    pub echoes: Vec<Echo>,
    /// The last [`STDERR_KEPT`] bytes the guest wrote to stderr in this
    /// call, whether or not they reached the log: where a panic says what
    /// went wrong and where, just before the trap that ends it.
    #[serde(skip)]
    pub stderr_tail: Vec<u8>,
    /// Whether the guest wrote more to stderr than the tail keeps: its
    /// start may be the end of a secret value, cut.
    #[serde(skip)]
    pub stderr_cut: bool,
    /// Outbound requests sent and not yet answered (or their body not yet
    /// read), to name the one a timeout cut short.
    #[serde(skip)]
    pub in_flight: Vec<InFlight>,
}

/// Bytes of a call's stderr kept for its fault message: a panic's message
/// and location fit many times over.
pub const STDERR_KEPT: usize = 4096;

impl Journal {
    pub fn denials_total(&self) -> u32 {
        self.denied.values().sum()
    }

    /// Keep `bytes` the guest wrote to stderr, and of all it wrote the last
    /// [`STDERR_KEPT`] bytes only.
    pub(crate) fn keep_stderr(&mut self, bytes: &[u8]) {
        let whole = bytes.len();
        let bytes = &bytes[bytes.len().saturating_sub(STDERR_KEPT)..];
        let over = (self.stderr_tail.len() + bytes.len()).saturating_sub(STDERR_KEPT);
        self.stderr_cut |= over > 0 || bytes.len() < whole;
        self.stderr_tail.drain(..over);
        self.stderr_tail.extend_from_slice(bytes);
    }

    /// What the guest last wrote to stderr, masked: the words a fault
    /// message quotes.
    pub(crate) fn masked_stderr(&mut self) -> String {
        let mut tail = String::from_utf8_lossy(&self.stderr_tail).into_owned();
        self.mask(&mut tail, Sink::Error);
        if self.stderr_cut {
            self.strip_cut_value(&mut tail);
        }
        tail
    }

    /// The call ran out of time: every request still waiting for its
    /// response goes into the outbound record as cut short, and the one
    /// waiting longest (a response before a body) is named.
    pub fn timed_out(&mut self) -> Option<PendingRequest> {
        let pending: Vec<PendingRequest> = self.in_flight.iter().map(InFlight::pending).collect();
        for p in pending.iter().filter(|p| p.waiting_for == Awaited::Response) {
            self.outbound.push(OutboundRecord {
                method: p.method.clone(),
                origin: p.origin.clone(),
                path: p.path.clone(),
                status: None,
                error: Some(format!("no response after {} ms when the call timed out", p.waited_ms)),
                micros: p.waited_ms * 1000,
            });
        }
        pending
            .into_iter()
            .max_by_key(|p| (p.waiting_for == Awaited::Response, p.waited_ms))
    }
}

pub type SharedJournal = Arc<Mutex<Journal>>;

/// What must be done before a call's first side effect leaves the host (a
/// kv write, an outbound request other than GET or HEAD): the call's audit
/// record is made durable, so no effect ever happens without a trace, while
/// read-only calls never open the gate and pay nothing for it.
pub trait EffectGate: Send + Sync {
    /// Done once; later calls wait for the first. An error means the effect
    /// must not happen.
    fn open(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
    /// Whether an effect may have left the host.
    fn opened(&self) -> bool;
}

pub type SharedGate = Arc<dyn EffectGate>;

/// For calls nobody audits (benchmarks, tests of the runtime alone).
pub struct NoGate(std::sync::atomic::AtomicBool);

impl NoGate {
    pub fn shared() -> SharedGate {
        Arc::new(NoGate(Default::default()))
    }
}

impl EffectGate for NoGate {
    fn open(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn opened(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Journal a denial: kept while the call has kept fewer than
/// [`DENIALS_KEPT`], always counted, and logged while the call has logged
/// fewer than [`DENIALS_LOGGED`] and the plugin's log budget allows.
pub(crate) fn record_denial(
    journal: &SharedJournal,
    plugin: &PluginContext,
    capability: Capability,
    mut detail: String,
) {
    let logged = {
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        *journal.denied.entry(capability).or_default() += 1;
        let log = journal.denials_logged < DENIALS_LOGGED && plugin.log_budget.check().is_ok();
        let keep = journal.denials.len() < DENIALS_KEPT;
        if !(log || keep) {
            return;
        }
        journal.denials_logged += u32::from(log);
        // What was asked for may carry a secret value (a secret named after
        // it, a host made of it): masked whole, then cut.
        journal.mask(&mut detail, Sink::Denial);
        let detail = truncated(detail, DENIAL_DETAIL_MAX);
        if keep {
            journal.denials.push(Denial {
                capability,
                detail: detail.clone(),
            });
        }
        log.then_some(detail)
    };
    if let Some(detail) = logged {
        tracing::warn!(plugin = %plugin.name, capability = capability.as_str(), %detail, "capability denied");
    }
}

/// Say in one line what a call's denials did not say in the log.
pub(crate) fn summarize_denials(journal: &Journal, plugin: &PluginContext) {
    let unlogged = journal.denials_total() - journal.denials_logged;
    if unlogged > 0 && plugin.log_budget.check().is_ok() {
        tracing::warn!(
            plugin = %plugin.name,
            unlogged,
            total = journal.denials_total(),
            "capability denials in one call not logged one by one"
        );
    }
}

/// Bounds the memory of all of an instance's linear memories together, and
/// remembers whether it said no, so a trap that follows can be reported as
/// what it is: the connector ran out of its memory grant.
pub struct MemoryLimiter {
    limit: usize,
    used: usize,
    pub denied: bool,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            used: 0,
            denied: false,
        }
    }

    /// Bytes of linear memory the instance holds.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let next = self.used - current.min(self.used) + desired;
        if next > self.limit {
            self.denied = true;
            return Ok(false);
        }
        self.used = next;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; no honest connector needs many.
        Ok(desired <= 100_000)
    }
}

/// Host-side resources (HTTP requests, fields, streams, pollables) one
/// instance may hold at once. wasmtime's default is a million, each one host
/// memory a connector could hold; an honest connector holds a few per
/// request it has in flight (at most 32 a call).
pub const MAX_RESOURCES: usize = 4096;

/// The data of one call's store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http_ctx: WasiHttpCtx,
    outbound: OutboundHttp,
    stdout: GuestOutput,
    stderr: GuestOutput,
    pub limiter: MemoryLimiter,
    pub plugin: Arc<PluginContext>,
    pub journal: SharedJournal,
    pub gate: SharedGate,
    progress: CallProgress,
}

impl CallState {
    /// `progress`: where the connector's progress reports go, when the
    /// caller listens.
    pub fn new(
        plugin: Arc<PluginContext>,
        journal: SharedJournal,
        gate: SharedGate,
        progress: Option<ProgressSink>,
    ) -> CallState {
        // No arguments, environment, preopened directories or sockets: the
        // WASI context gives a connector clocks and randomness, nothing more.
        // stdout and stderr go to the host's log, like the `log` import.
        let stdout = GuestOutput::new(plugin.clone(), Stdio::Stdout, journal.clone());
        let stderr = GuestOutput::new(plugin.clone(), Stdio::Stderr, journal.clone());
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        CallState {
            wasi,
            table,
            http_ctx: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(plugin.clone(), journal.clone(), gate.clone()),
            stdout,
            stderr,
            limiter: MemoryLimiter::new(plugin.grant.memory_bytes),
            plugin,
            journal,
            gate,
            progress: CallProgress::new(progress),
        }
    }

    /// Prepare a reused instance's state for its next call: what the imports
    /// record goes to this call's journal. Memory stays as the guest left it.
    pub fn reset(&mut self, journal: SharedJournal, gate: SharedGate, progress: Option<ProgressSink>) {
        self.outbound.reset(journal.clone(), gate.clone());
        self.progress = CallProgress::new(progress);
        self.stdout.reset(journal.clone());
        self.stderr.reset(journal.clone());
        self.journal = journal;
        self.gate = gate;
        self.limiter.denied = false;
    }

    /// The call has ended: its listener hears no more from this instance,
    /// which may idle for the caller's next call.
    pub fn end_progress(&mut self) {
        self.progress = CallProgress::default();
    }

    fn deny(&self, capability: Capability, detail: String) {
        record_denial(&self.journal, &self.plugin, capability, detail);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl wit::types::Host for CallState {}

/// Everything a connector may import, and nothing else: a component that
/// imports anything more fails to link and is refused at load (before it
/// is compiled: see `plugins::imports`).
///
/// WASI is linked whole (`wasi:cli/imports`: io, clocks, random, cli,
/// filesystem, sockets), because the Python and JavaScript toolchains import
/// all of it whatever the connector uses; what each interface gives is what
/// the call's [`WasiCtx`] grants, and [`CallState::new`] grants nothing: no
/// arguments, environment, terminals or preopened directories, sockets
/// refused as `access-denied` before any socket exists, stdout and stderr
/// into the connector's bounded log, `exit` ending the call as a fault.
/// wasmtime's linker matches an import at any 0.2.x version to these 0.2
/// definitions (semver-compatible names), so one set serves the 0.2.9 of
/// componentize-py and the 0.2.12 of `wit/` alike.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Outbound HTTP only through the checked send hook (`OutboundHttp`).
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;

    wit::types::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    wit::kv::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    wit::secrets::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    wit::config::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    wit::log::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    wit::progress::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}
