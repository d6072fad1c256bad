//! Prometheus metrics: calls and errors by tool and outcome, latency per
//! tool, denials by plugin and capability, instances in use, held calls
//! (pending, decision latency, outcomes by tool), and, where nodes share a
//! store, its connection pool and the changes heard from other nodes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::call::invoke::CallOutcome;

/// The `tool` label of calls refused before they reached a tool.
pub const REFUSED: &str = "(refused)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    capability: String,
}

/// Why a bearer check failed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BearerFailure {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>`.
    Malformed,
    /// A token the host does not know.
    Unknown,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BearerLabels {
    reason: BearerFailure,
}

pub struct Metrics {
    registry: Registry,
    bearer_failures: Family<BearerLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabels, Histogram>,
    denials: Family<DenialLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
    warm: Gauge<i64, AtomicI64>,
    mcp_sessions: Gauge<i64, AtomicI64>,
    approvals: Family<CallLabels, Counter>,
    decisions: Histogram,
    approvals_pending: Gauge<i64, AtomicI64>,
    changes_heard: Family<KindLabels, Counter>,
    reconciles: Counter,
    convergence_failures: Counter,
    pool: Family<StateLabels, Gauge<i64, AtomicI64>>,
    recent: Recent,
}

/// Minutes the console's chart covers.
pub const RECENT_MINUTES: usize = 60;

/// Calls and errors per minute over the last hour (since start), for the
/// console's chart: one slot per minute of the hour, reused as minutes pass.
/// Atomics only, since every call passes here.
struct Recent {
    slots: [Minute; RECENT_MINUTES],
}

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            slots: std::array::from_fn(|_| Minute::default()),
        }
    }
}

#[derive(Default)]
struct Minute {
    /// Minutes since the epoch this slot counts.
    minute: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
}

/// One minute of calls, as the chart shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub calls: u64,
    pub errors: u64,
}

fn this_minute() -> u64 {
    crate::model::time::now_secs() / 60
}

impl Recent {
    fn count(&self, error: bool) {
        let now = this_minute();
        let slot = &self.slots[(now % RECENT_MINUTES as u64) as usize];
        // The first call of a new minute claims the slot and clears it; a
        // call racing it may be lost, or leave its error without its call,
        // which the chart can afford (it caps the rate at 100 %).
        if slot.minute.load(Ordering::Relaxed) != now && slot.minute.swap(now, Ordering::AcqRel) != now {
            slot.calls.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
        }
        slot.calls.fetch_add(1, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The last hour, oldest minute first, the current one last.
    fn last_hour(&self) -> Vec<MinuteCount> {
        let now = this_minute();
        (0..RECENT_MINUTES as u64)
            .rev()
            .map(|ago| {
                let minute = now.saturating_sub(ago);
                let slot = &self.slots[(minute % RECENT_MINUTES as u64) as usize];
                let fresh = slot.minute.load(Ordering::Acquire) == minute;
                MinuteCount {
                    minute,
                    calls: if fresh { slot.calls.load(Ordering::Relaxed) } else { 0 },
                    errors: if fresh { slot.errors.load(Ordering::Relaxed) } else { 0 },
                }
            })
            .collect()
    }
}

/// What the host holds that is not counted call by call, read when the
/// metrics are rendered.
pub struct Holdings {
    /// Idle instances kept for reuse.
    pub warm_instances: usize,
    /// MCP sessions open.
    pub mcp_sessions: usize,
    /// Held calls waiting for a decision.
    pub approvals_pending: usize,
    /// The shared store's connections, where there is one.
    pub pool: Option<crate::storage::PoolStatus>,
}

impl Default for Metrics {
    fn default() -> Self {
        let calls = Family::<CallLabels, Counter>::default();
        // 50 µs to ~26 s.
        let latency = Family::<ToolLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 20))
        });
        let denials = Family::<DenialLabels, Counter>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let warm = Gauge::<i64, AtomicI64>::default();
        let mcp_sessions = Gauge::<i64, AtomicI64>::default();
        let mut registry = Registry::with_prefix("toolhost");
        registry.register(
            "calls",
            "Tool calls by tool and outcome (ok or the error kind)",
            calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Time of a tool call, end to end inside the host",
            latency.clone(),
        );
        registry.register("denials", "Capability uses refused by the grant", denials.clone());
        registry.register(
            "instances_in_use",
            "Calls running in a wasm instance now",
            in_flight.clone(),
        );
        registry.register(
            "instances_idle",
            "Idle instances kept for reuse, across all plugins",
            warm.clone(),
        );
        registry.register("mcp_sessions", "MCP sessions open", mcp_sessions.clone());
        let approvals = Family::<CallLabels, Counter>::default();
        registry.register(
            "approvals",
            "Held calls by tool and what became of them (held, approved, rejected, expired, lapsed)",
            approvals.clone(),
        );
        // 1 s to ~3 days.
        let decisions = Histogram::new(exponential_buckets(1.0, 2.0, 19));
        registry.register(
            "approval_decision_seconds",
            "Time from a call being held to its final decision (approval, rejection or expiry)",
            decisions.clone(),
        );
        let approvals_pending = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "approvals_pending",
            "Held calls waiting for a decision",
            approvals_pending.clone(),
        );
        let changes_heard = Family::<KindLabels, Counter>::default();
        registry.register(
            "replication_changes_heard",
            "Changes other nodes announced, by kind (approval, run, plugin, rules)",
            changes_heard.clone(),
        );
        let reconciles = Counter::default();
        registry.register(
            "replication_reconciles",
            "Times this node compared everything with the shared store (periodically, or after missing announcements)",
            reconciles.clone(),
        );
        let convergence_failures = Counter::default();
        registry.register(
            "replication_failures",
            "Plugin changes from other nodes that could not be applied here",
            convergence_failures.clone(),
        );
        let pool = Family::<StateLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "storage_connections",
            "The shared store's pooled connections: open, idle (available), waiting (callers queued for one), max",
            pool.clone(),
        );
        let bearer_failures = Family::<BearerLabels, Counter>::default();
        registry.register(
            "bearer_failures",
            "Requests refused for their bearer token, by reason (Missing, Malformed, Unknown)",
            bearer_failures.clone(),
        );
        Metrics {
            registry,
            bearer_failures,
            changes_heard,
            reconciles,
            convergence_failures,
            pool,
            calls,
            latency,
            denials,
            in_flight,
            warm,
            mcp_sessions,
            approvals,
            decisions,
            approvals_pending,
            recent: Recent::default(),
        }
    }
}

/// Counts a call as in flight while it lives.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

impl Metrics {
    pub fn bearer_failed(&self, reason: BearerFailure) {
        self.bearer_failures.get_or_create(&BearerLabels { reason }).inc();
    }

    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    pub fn record(&self, outcome: &CallOutcome) {
        let kind = match &outcome.result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        // A call that reached a plugin carries the tool's canonical name;
        // one refused before (unknown tool, not permitted) carries whatever
        // the request said, and random names must not make series forever.
        let tool = match outcome.plugin_digest {
            Some(_) => outcome.tool.as_str(),
            None => REFUSED,
        };
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.to_string(),
                outcome: kind.to_string(),
            })
            .inc();
        self.recent.count(outcome.result.is_err());
        self.latency
            .get_or_create(&ToolLabels { tool: tool.to_string() })
            .observe(outcome.timings.total_us as f64 / 1e6);
        let plugin = outcome.tool.split('.').next().unwrap_or_default();
        for (capability, count) in &outcome.journal.denied {
            self.denials
                .get_or_create(&DenialLabels {
                    plugin: plugin.to_string(),
                    capability: capability.as_str().to_string(),
                })
                .inc_by(u64::from(*count));
        }
    }

    /// Calls and errors in each minute of the last hour, oldest first.
    pub fn last_hour(&self) -> Vec<MinuteCount> {
        self.recent.last_hour()
    }

    /// Calls running in a wasm instance now.
    pub fn instances_in_use(&self) -> i64 {
        self.in_flight.get()
    }

    /// A step of a held call of `tool` (`held`, `approved`, ...).
    pub fn approval(&self, tool: &str, outcome: &str) {
        self.approvals
            .get_or_create(&CallLabels {
                tool: tool.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Another node announced a change of `kind`.
    pub fn heard(&self, kind: &str) {
        self.changes_heard
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// This node compared everything with the shared store; `failed`
    /// plugins could not be brought in line.
    pub fn reconciled(&self, failed: usize) {
        self.reconciles.inc();
        self.convergence_failures.inc_by(failed as u64);
    }

    /// A plugin change from another node could not be applied here.
    pub fn convergence_failed(&self) {
        self.convergence_failures.inc();
    }

    /// A held call decided (or expired) `waited` after it was held.
    pub fn decided(&self, waited: std::time::Duration) {
        self.decisions.observe(waited.as_secs_f64());
    }

    /// The Prometheus text exposition, with `holdings` as they are now.
    pub fn render(&self, holdings: Holdings) -> String {
        self.warm.set(holdings.warm_instances as i64);
        self.mcp_sessions.set(holdings.mcp_sessions as i64);
        self.approvals_pending.set(holdings.approvals_pending as i64);
        if let Some(pool) = holdings.pool {
            for (state, n) in [
                ("open", pool.open),
                ("idle", pool.idle),
                ("waiting", pool.waiting),
                ("max", pool.max),
            ] {
                self.pool
                    .get_or_create(&StateLabels { state: state.into() })
                    .set(n as i64);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
