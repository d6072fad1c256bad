//! Prometheus metrics: calls and errors by tool and outcome, latency per
//! tool, denials by plugin and capability, instances in use.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::invoke::CallOutcome;

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
struct DenialLabels {
    plugin: String,
    capability: String,
}

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabels, Histogram>,
    denials: Family<DenialLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
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
        Metrics {
            registry,
            calls,
            latency,
            denials,
            in_flight,
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
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    pub fn record(&self, outcome: &CallOutcome) {
        let kind = match &outcome.result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.calls
            .get_or_create(&CallLabels {
                tool: outcome.tool.clone(),
                outcome: kind.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&ToolLabels {
                tool: outcome.tool.clone(),
            })
            .observe(outcome.timings.total_us as f64 / 1e6);
        let plugin = outcome.tool.split('.').next().unwrap_or_default();
        for d in &outcome.journal.denials {
            self.denials
                .get_or_create(&DenialLabels {
                    plugin: plugin.to_string(),
                    capability: d.capability.clone(),
                })
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
