//! Group commit: every acknowledged write waits for a flush that started
//! after it, and one flush to disk covers every write made before it began,
//! so many concurrent writers share one flush instead of queueing for their
//! own (sled's `flush_async` from many tasks at once slows to a crawl).
//!
//! The flushes run on a thread of their own, and a writer only waits to
//! hear that its write is covered: it joins the generation the next flush
//! will cover and is woken once, when that flush is done. No writer holds
//! anything while it waits: when flushes were coordinated by a lock held across the flush, the
//! holder's next poll released it, so a writer on a starved runtime (a
//! workflow run's thread computing a 140,000-item loop, issue 29) kept every
//! other writer, an agent's audit record among them, waiting ~300 ms for
//! that runtime to come round.

use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::Notify;

/// The writers one flush covers: those that joined it before it began.
/// Each is woken once, when it is done.
#[derive(Default)]
struct Generation {
    done: Notify,
    result: OnceLock<Result<(), Arc<str>>>,
}

pub(super) struct GroupCommit {
    /// The generation the next flush will cover; a writer joins it after
    /// its write, and the flush thread takes it (leaving a new one) just
    /// before it flushes.
    next: Arc<Mutex<Arc<Generation>>>,
    /// Wakes the flush thread; one pending wake is enough, since the thread
    /// takes whoever joined by the time it runs.
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let next: Arc<Mutex<Arc<Generation>>> = Arc::default();
        let (wake, woken) = mpsc::sync_channel(1);
        let pending = next.clone();
        let thread = std::thread::Builder::new()
            .name("toolhost-flush".into())
            .spawn(move || {
                // However the thread ends, whoever waits is answered.
                let _stopped = Stopped(pending.clone());
                // Ends when the last writer is gone (the sender dropped).
                while woken.recv().is_ok() {
                    // Every writer that joined this generation wrote before
                    // joining: this flush covers it.
                    let covered = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
                    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.flush())) {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string().into()),
                        Err(_) => Err("the flush panicked".into()),
                    };
                    let _ = covered.result.set(result);
                    covered.done.notify_waiters();
                }
            })?;
        Ok(GroupCommit {
            next,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Wait until every write this task made before calling is durable.
    pub(super) async fn flush(&self) -> Result<(), String> {
        let generation = self.next.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Registered before the wake, so that the flush's notice cannot
        // come before this writer listens for it.
        let done = generation.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        if let Some(wake) = &self.wake {
            // Full: a wake is pending, and that flush takes this generation.
            if let Err(mpsc::TrySendError::Disconnected(())) = wake.try_send(()) {
                return Err(STOPPED.to_string());
            }
        }
        if generation.result.get().is_none() {
            done.await;
        }
        match generation.result.get() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("flushing the database to disk failed: {e}")),
            None => Err(STOPPED.to_string()),
        }
    }
}

const STOPPED: &str = "the storage flush thread has stopped";

/// Fails the generation still waiting when the flush thread ends, so that
/// its writers hear of it instead of waiting for good.
struct Stopped(Arc<Mutex<Arc<Generation>>>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let waiting = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = waiting.result.set(Err(STOPPED.into()));
        waiting.done.notify_waiters();
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
