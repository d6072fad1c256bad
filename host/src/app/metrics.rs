//! Prometheus metrics: calls and errors by tool and outcome, latency per
//! tool, denials by plugin and capability, instances in use, held calls
//! (pending, decision latency, outcomes by tool), and, where nodes share a
//! store, its connection pool and the changes heard from other nodes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use crate::call::invoke::CallOutcome;
use crate::model::audit::Outcome;
use crate::model::effects::Capability;

/// The `tool` label of calls refused before they reached a tool.
pub const REFUSED: &str = "(refused)";

/// A closed set's value as a label value: the name serde and strum give
/// it, so a label can only take the values its set has.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Named<T>(T);

impl<T: Copy + Into<&'static str>> EncodeLabelValue for Named<T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name: &'static str = self.0.into();
        name.encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    outcome: Named<Outcome>,
}

/// What became of a held call, as `toolhost_approvals_total` counts it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ApprovalCount {
    Held,
    Approved,
    Rejected,
    Expired,
    Lapsed,
    Executed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApprovalLabels {
    tool: String,
    outcome: Named<ApprovalCount>,
}

/// What another node announced a change of.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ChangeKind {
    Approval,
    Run,
    Plugin,
    Rules,
}

/// The shared store's pooled connections, by state.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum PoolState {
    Open,
    Idle,
    Waiting,
    Max,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: Named<ChangeKind>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: Named<PoolState>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    capability: Named<Capability>,
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
    approvals: Family<ApprovalLabels, Counter>,
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
        let mut registry = Registry::with_prefix("toolhost");
        let r = &mut registry;
        Metrics {
            calls: registered(r, "calls", "Tool calls by tool and outcome (ok or the error kind)", Family::default()),
            // 50 µs to ~26 s.
            latency: registered(
                r,
                "call_duration_seconds",
                "Time of a tool call, end to end inside the host",
                Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00005, 2.0, 20))),
            ),
            denials: registered(r, "denials", "Capability uses refused by the grant", Family::default()),
            in_flight: registered(r, "instances_in_use", "Calls running in a wasm instance now", Gauge::default()),
            warm: registered(
                r,
                "instances_idle",
                "Idle instances kept for reuse, across all plugins",
                Gauge::default(),
            ),
            mcp_sessions: registered(r, "mcp_sessions", "MCP sessions open", Gauge::default()),
            approvals: registered(
                r,
                "approvals",
                "Held calls by tool and what became of them (held, approved, rejected, expired, lapsed)",
                Family::default(),
            ),
            // 1 s to ~3 days.
            decisions: registered(
                r,
                "approval_decision_seconds",
                "Time from a call being held to its final decision (approval, rejection or expiry)",
                Histogram::new(exponential_buckets(1.0, 2.0, 19)),
            ),
            approvals_pending: registered(
                r,
                "approvals_pending",
                "Held calls waiting for a decision",
                Gauge::default(),
            ),
            changes_heard: registered(
                r,
                "replication_changes_heard",
                "Changes other nodes announced, by kind (approval, run, plugin, rules)",
                Family::default(),
            ),
            reconciles: registered(
                r,
                "replication_reconciles",
                "Times this node compared everything with the shared store (periodically, or after missing announcements)",
                Counter::default(),
            ),
            convergence_failures: registered(
                r,
                "replication_failures",
                "Plugin changes from other nodes that could not be applied here",
                Counter::default(),
            ),
            pool: registered(
                r,
                "storage_connections",
                "The shared store's pooled connections: open, idle (available), waiting (callers queued for one), max",
                Family::default(),
            ),
            bearer_failures: registered(
                r,
                "bearer_failures",
                "Requests refused for their bearer token, by reason (Missing, Malformed, Unknown)",
                Family::default(),
            ),
            registry,
            recent: Recent::default(),
        }
    }
}

/// `metric`, registered under `name` (a clone shares its values).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
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
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::from(e),
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
                outcome: Named(kind),
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
                    capability: Named(*capability),
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

    /// A step of a held call of `tool`.
    pub fn approval(&self, tool: &str, outcome: ApprovalCount) {
        self.approvals
            .get_or_create(&ApprovalLabels {
                tool: tool.to_string(),
                outcome: Named(outcome),
            })
            .inc();
    }

    /// Another node announced a change of `kind`.
    pub fn heard(&self, kind: ChangeKind) {
        self.changes_heard
            .get_or_create(&KindLabels { kind: Named(kind) })
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
                (PoolState::Open, pool.open),
                (PoolState::Idle, pool.idle),
                (PoolState::Waiting, pool.waiting),
                (PoolState::Max, pool.max),
            ] {
                self.pool
                    .get_or_create(&StateLabels { state: Named(state) })
                    .set(n as i64);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
