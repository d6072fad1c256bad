//! The connections the host holds open: what each is doing (and so when it
//! times out), and the cap, which makes room for a newcomer by closing the
//! oldest connection that has no request running.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// What a connection is doing, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request is expected: the connection just opened, or the first
    /// bytes of a head came after an answer. Bounded by the header timeout.
    Head,
    /// Between an answer and the next request's first byte (keep-alive).
    /// Bounded by the idle timeout.
    Idle,
    /// A request is running or its answer is being sent (an event stream
    /// included). Not bounded here: its body has its own minimum rate.
    Busy,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    requests: usize,
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    id: u64,
    /// Admitted beyond the cap: answers health checks only.
    health_only: bool,
    state: Mutex<State>,
    /// Its deadline may have moved earlier (a head began, an answer ended).
    pub(super) changed: Notify,
    /// The pool closed it to make room.
    pub(super) evicted: Notify,
}

impl Conn {
    fn new(id: u64, health_only: bool) -> Conn {
        Conn {
            id,
            health_only,
            state: Mutex::new(State {
                phase: Phase::Head,
                since: Instant::now(),
                requests: 0,
            }),
            changed: Notify::new(),
            evicted: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data, always consistent; a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn health_only(&self) -> bool {
        self.health_only
    }

    /// Bytes came in: between requests, that is a new head beginning.
    pub(super) fn on_read(&self) {
        let mut state = self.state();
        if state.phase == Phase::Idle {
            state.phase = Phase::Head;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's head is in: the connection is busy until the guard
    /// (carried by the answer's body) is dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        let mut state = self.state();
        state.requests += 1;
        state.phase = Phase::Busy;
        RequestGuard(self.clone())
    }

    pub(super) fn busy(&self) -> bool {
        self.state().phase == Phase::Busy
    }

    /// When the connection is to be closed if nothing changes.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let state = self.state();
        match state.phase {
            Phase::Head => Some(state.since + limits.header_timeout),
            Phase::Idle => Some(state.since + limits.idle_timeout),
            Phase::Busy => None,
        }
    }
}

/// Held while a request runs and its answer is sent.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.requests -= 1;
        if state.requests == 0 {
            state.phase = Phase::Idle;
            state.since = Instant::now();
            drop(state);
            self.0.changed.notify_one();
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    /// By id, so in the order they opened.
    served: BTreeMap<u64, Arc<Conn>>,
    health_only: BTreeMap<u64, Arc<Conn>>,
}

/// Every connection the host holds, under the cap.
#[derive(Debug)]
pub(crate) struct Pool {
    limits: Limits,
    open: Mutex<Open>,
}

impl Pool {
    pub(crate) fn new(limits: Limits) -> Pool {
        Pool {
            limits,
            open: Mutex::new(Open::default()),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Take a new connection: within the cap, or in place of the oldest
    /// one without a request running; when every one has a request
    /// running, as a health-only connection (same rule among those); when
    /// those are all busy too, not at all (the caller closes it at once,
    /// rather than leaving it in the listen backlog where a health check
    /// would wait behind it).
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open();
        let open = &mut *open;
        let health_only = if open.served.len() < self.limits.max_connections || evict_oldest_idle(&mut open.served) {
            false
        } else if open.health_only.len() < self.limits.health_connections || evict_oldest_idle(&mut open.health_only) {
            true
        } else {
            return None;
        };
        open.next_id += 1;
        let conn = Arc::new(Conn::new(open.next_id, health_only));
        let map = if health_only {
            &mut open.health_only
        } else {
            &mut open.served
        };
        map.insert(conn.id, conn.clone());
        Some(Admitted {
            pool: self.clone(),
            conn,
        })
    }

    /// Close the oldest connection without a request running, if any: the
    /// process is out of file descriptors.
    pub(crate) fn evict_one(&self) -> bool {
        evict_oldest_idle(&mut self.open().served)
    }

    /// Connections open now (served, health-only).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let open = self.open();
        (open.served.len(), open.health_only.len())
    }
}

/// Tell the oldest connection of `map` without a request running to close,
/// and forget it (its slot is free from now on).
fn evict_oldest_idle(map: &mut BTreeMap<u64, Arc<Conn>>) -> bool {
    let Some(id) = map.iter().find(|(_, conn)| !conn.busy()).map(|(id, _)| *id) else {
        return false;
    };
    if let Some(conn) = map.remove(&id) {
        conn.evicted.notify_one();
    }
    true
}

/// A connection the pool took; it leaves the pool when this is dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    pool: Arc<Pool>,
    pub(crate) conn: Arc<Conn>,
}

impl Admitted {
    pub(crate) fn pool_limits(&self) -> &Limits {
        self.pool.limits()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.pool.open();
        open.served.remove(&self.conn.id);
        open.health_only.remove(&self.conn.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize, health: usize) -> Arc<Pool> {
        Arc::new(Pool::new(Limits {
            max_connections: max,
            health_connections: health,
            ..Limits::for_tests()
        }))
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
        let pool = pool(2, 1);
        let first = pool.admit().unwrap();
        let second = pool.admit().unwrap();
        let _running = first.conn.begin_request();
        // The first is busy: the second, idle, goes.
        let third = pool.admit().unwrap();
        assert!(!third.conn.health_only());
        assert_eq!(pool.counts(), (2, 0));
        let evicted = tokio::time::timeout(std::time::Duration::from_secs(1), second.conn.evicted.notified()).await;
        assert!(evicted.is_ok(), "the second connection was told to close");
        drop(second);
        assert_eq!(pool.counts(), (2, 0), "its leaving does not free a slot twice");
    }

    #[tokio::test]
    async fn when_every_slot_is_busy_a_newcomer_answers_health_checks_only() {
        let pool = pool(1, 1);
        let first = pool.admit().unwrap();
        let _running = first.conn.begin_request();
        let health = pool.admit().unwrap();
        assert!(health.conn.health_only());
        let _checking = health.conn.begin_request();
        assert!(pool.admit().is_none(), "beyond both, a connection is closed at once");
        drop(_running);
        assert!(!pool.admit().unwrap().conn.health_only());
    }

    #[test]
    fn a_connection_times_out_by_what_it_is_doing() {
        let limits = Limits::for_tests();
        let conn = Arc::new(Conn::new(1, false));
        let opened = conn.deadline(&limits).unwrap();
        let guard = conn.begin_request();
        assert_eq!(conn.deadline(&limits), None, "a running request has no deadline here");
        drop(guard);
        let idle = conn.deadline(&limits).unwrap();
        assert!(idle >= opened - limits.header_timeout + limits.idle_timeout);
        conn.on_read();
        let head = conn.deadline(&limits).unwrap();
        assert!(head <= Instant::now() + limits.header_timeout);
    }
}
