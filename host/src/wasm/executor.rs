//! Where guest code runs: a tokio runtime of its own, apart from the one
//! that serves the API.
//!
//! Guest code runs inside a task's `poll`. A connector that computes gives
//! the thread back only at its epoch ticks (see `invoke`), so on the API's
//! workers sixteen spinning calls would delay every health check and every
//! other plugin's call by whole ticks. On threads of their own, the
//! operating system shares the cores between guest work and the API, and
//! the API's threads, asleep until a request comes, are scheduled at once.
//! Only the guest's part of a call runs here; what comes before and after
//! it (the audit record, idempotency) runs on the API's runtime, so it never
//! queues behind a connector that computes.

use std::future::Future;

use tokio::task::JoinHandle;

/// Threads for guest code when the operator sets none: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub struct GuestExecutor {
    /// `Some` until dropped; see `Drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestExecutor {
    pub fn new(threads: usize) -> std::io::Result<GuestExecutor> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("toolhost-guest")
            .enable_all()
            .build()?;
        Ok(GuestExecutor { runtime: Some(runtime) })
    }

    /// Run `work` on the guest threads. It runs to its end even if the
    /// handle is dropped.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the executor is dropped")
            .spawn(work)
    }
}

impl Drop for GuestExecutor {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which tokio forbids
        // inside another runtime (where `serve` drops it); let them finish
        // in the background instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
