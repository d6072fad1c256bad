//! How far a call has come, as its connector reports it, and where such
//! reports go while the caller listens.

use tokio::sync::mpsc;

/// One report of a connector's (already bounded and masked by the host).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
    pub message: Option<String>,
}

/// Reports a listener has not yet taken, per call: past this the newest are
/// dropped rather than queued, so a client that reads slowly costs the host
/// a bounded buffer, never the call's time.
const BUFFERED: usize = 16;

/// Where a call's progress goes when its caller listens (an MCP client
/// that sent a progress token). A call nobody listens to has none, and its
/// connector's reports cost a branch.
#[derive(Clone)]
pub struct ProgressSink(mpsc::Sender<Progress>);

/// The listener's end of a [`ProgressSink`].
pub type ProgressReports = mpsc::Receiver<Progress>;

impl ProgressSink {
    pub fn channel() -> (ProgressSink, ProgressReports) {
        let (sender, receiver) = mpsc::channel(BUFFERED);
        (ProgressSink(sender), receiver)
    }

    /// Pass `progress` on if the listener has room; whether it did.
    pub fn offer(&self, progress: Progress) -> bool {
        self.0.try_send(progress).is_ok()
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}
