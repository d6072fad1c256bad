//! Group commit: every acknowledged write waits for a flush that started
//! after it, and one flush to disk covers every write made before it began,
//! so many concurrent writers share one flush instead of queueing for their
//! own (sled's `flush_async` from many tasks at once slows to a crawl).
//!
//! The flushes run on a thread of their own, and a writer only waits to
//! hear that its write is covered. No writer holds anything while it waits:
//! when flushes were coordinated by a lock held across the flush, the
//! holder's next poll released it, so a writer on a starved runtime (a
//! workflow run's thread computing a 140,000-item loop, issue 29) kept every
//! other writer, an agent's audit record among them, waiting ~300 ms for
//! that runtime to come round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::watch;

/// What the flush thread has done so far.
#[derive(Clone, Default)]
struct Flushed {
    /// The highest ticket a successful flush covered: its write is durable.
    covered: u64,
    /// The highest ticket a failed flush was to cover, and why it failed.
    failed: u64,
    error: Option<std::sync::Arc<str>>,
}

pub(super) struct GroupCommit {
    /// Tickets handed out; a writer takes one after its write.
    issued: std::sync::Arc<AtomicU64>,
    /// Wakes the flush thread; one pending wake is enough, since the thread
    /// reads `issued` after it wakes.
    wake: Option<mpsc::SyncSender<()>>,
    flushed: watch::Receiver<Flushed>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let issued = std::sync::Arc::new(AtomicU64::new(0));
        let (wake, woken) = mpsc::sync_channel(1);
        let (publish, flushed) = watch::channel(Flushed::default());
        let tickets = issued.clone();
        let thread = std::thread::Builder::new()
            .name("toolhost-flush".into())
            .spawn(move || {
                // Ends when the last writer is gone (the sender dropped).
                while woken.recv().is_ok() {
                    // Every ticket issued until now belongs to a write that
                    // is already in sled's buffers: this flush covers it.
                    let target = tickets.load(Ordering::SeqCst);
                    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.flush())) {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("the flush panicked".to_string()),
                    };
                    publish.send_modify(|f| match outcome {
                        Ok(()) => f.covered = f.covered.max(target),
                        Err(e) => {
                            f.failed = f.failed.max(target);
                            f.error = Some(e.into());
                        }
                    });
                }
            })?;
        Ok(GroupCommit {
            issued,
            wake: Some(wake),
            flushed,
            thread: Some(thread),
        })
    }

    /// Wait until every write this task made before calling is durable.
    pub(super) async fn flush(&self) -> Result<(), String> {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(wake) = &self.wake {
            // Full: a wake is pending, and that flush reads this ticket.
            let _ = wake.try_send(());
        }
        let mut flushed = self.flushed.clone();
        let seen = flushed
            .wait_for(|f| f.covered >= ticket || f.failed >= ticket)
            .await
            .map_err(|_| "the storage flush thread has stopped".to_string())?;
        // A later flush that succeeded covers this write too.
        match &seen.error {
            _ if seen.covered >= ticket => Ok(()),
            Some(e) => Err(format!("flushing the database to disk failed: {e}")),
            None => Err("flushing the database to disk failed".to_string()),
        }
    }
}

impl Drop for GroupCommit {
    /// Stop the thread and wait for it: its handle on the database keeps
    /// sled's file lock until it ends, and a host opened again on the same
    /// folder needs it.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use super::GroupCommit;

    /// A writer whose runtime is starved while its flush is under way (a
    /// workflow run's thread deep in a loop) must not keep another writer's
    /// acknowledgement waiting on that runtime.
    #[test]
    fn a_writer_on_a_starved_runtime_holds_up_no_other() {
        let db = sled::Config::new().path(super::super::tests::tempdir()).open().unwrap();
        let commit = Arc::new(GroupCommit::start(db.clone()).unwrap());
        let (taken, thread_taken) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let starved = {
            let (commit, db) = (commit.clone(), db.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    db.insert("a", "1").unwrap();
                    let first = tokio::spawn(async move { commit.flush().await });
                    // `first` runs up to its wait for the flush...
                    tokio::task::yield_now().await;
                    // ...and then the runtime's one thread is taken.
                    taken.send(()).unwrap();
                    released.recv().unwrap();
                    first.await.unwrap()
                })
            })
        };
        thread_taken.recv().unwrap();
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let acknowledged = other.block_on(async {
            db.insert("b", "2").unwrap();
            tokio::time::timeout(Duration::from_secs(20), commit.flush()).await
        });
        release.send(()).unwrap();
        let acknowledged = acknowledged.expect("the other writer waited for the starved runtime");
        acknowledged.unwrap();
        starved.join().unwrap().unwrap();
    }
}
