//! A connector's log lines reach the host's log tagged and bounded: no more
//! than 256 lines a call, none longer than 2 KiB, however much it writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use toolhost_tests::{guest, runtime_in, Scratch};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Counts the events with target `connector`, and the longest message.
#[derive(Clone, Default)]
struct Counter {
    lines: Arc<AtomicUsize>,
    longest: Arc<AtomicUsize>,
}

struct Message(usize);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}").len();
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "connector" {
            let mut m = Message(0);
            event.record(&mut m);
            self.lines.fetch_add(1, Ordering::Relaxed);
            self.longest.fetch_max(m.0, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chatty_connector_cannot_flood_the_log() {
    let counter = Counter::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(counter.clone())).unwrap();
    let data = Scratch::new("log");
    let runtime = runtime_in(data.path(), "");
    runtime.plugins().load_bundle(&guest("echo")).await.unwrap();

    let outcome = runtime
        .invoke("echo.shout", &json!({ "lines": 1000, "size": 10_000 }))
        .await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.journal.log_lines, 1000, "every attempt is counted");
    assert_eq!(counter.lines.load(Ordering::Relaxed), 256);
    // 2 KiB of text, the ellipsis, and the quoting of Debug formatting.
    let longest = counter.longest.load(Ordering::Relaxed);
    assert!((2048..2048 + 16).contains(&longest), "longest line {longest}");

    // The budget is per call.
    runtime
        .invoke("echo.shout", &json!({ "lines": 3, "size": 5 }))
        .await
        .result
        .unwrap();
    assert_eq!(counter.lines.load(Ordering::Relaxed), 259);
}
