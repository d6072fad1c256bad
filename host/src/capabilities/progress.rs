//! `progress`: a connector's reports of how far its call has come, passed to
//! the caller when it listens ([`ProgressSink`]) and dropped at once when
//! not. Bounded whatever the connector does: a report whose `done` is not
//! larger than the last one's is dropped (MCP wants progress to increase),
//! at most [`MAX_REPORTS`] pass per call, a message is masked and cut to
//! [`MAX_MESSAGE`] bytes, and a listener that has no room loses the report
//! rather than slowing the call.

use super::wit::progress::Host;
use super::{truncated, CallState, Sink};
use crate::model::progress::{Progress, ProgressSink};

/// Reports passed to the caller in one call; a connector reporting in a
/// tight loop is not the caller's problem.
pub const MAX_REPORTS: u32 = 100;
/// Bytes of a report's message passed on.
pub const MAX_MESSAGE: usize = 256;

/// One call's progress: where it goes, and what has gone.
#[derive(Default)]
pub struct CallProgress {
    sink: Option<ProgressSink>,
    last_done: Option<u64>,
    passed: u32,
}

impl CallProgress {
    pub fn new(sink: Option<ProgressSink>) -> CallProgress {
        CallProgress {
            sink,
            ..CallProgress::default()
        }
    }
}

impl Host for CallState {
    fn report(&mut self, done: u64, total: Option<u64>, message: Option<String>) {
        let progress = &mut self.progress;
        let Some(sink) = &progress.sink else {
            return;
        };
        if progress.passed >= MAX_REPORTS || progress.last_done.is_some_and(|last| done <= last) {
            return;
        }
        let message = message.map(|mut message| {
            // Masked whole, before it is cut: a cut could leave part of a value.
            self.journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .mask(&mut message, Sink::Progress);
            truncated(message, MAX_MESSAGE)
        });
        if sink.offer(Progress { done, total, message }) {
            progress.last_done = Some(done);
            progress.passed += 1;
        }
    }
}
