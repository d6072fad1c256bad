//! Idle instances kept for reuse, bounded host-wide. Each one holds a slot
//! of the engine's instance pool that a fresh call would otherwise take, so
//! they are capped across all plugins together (a quarter of the pool by
//! default) and dropped once idle for a while: reuse may speed calls up but
//! can never leave fresh calls without a slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host-wide count of idle instances and its limits.
pub struct WarmBudget {
    held: AtomicUsize,
    max: usize,
    idle: Duration,
}

/// One idle instance's place in the budget, given back when dropped (with
/// the instance it was taken for).
pub struct WarmPermit {
    budget: Arc<WarmBudget>,
    since: Instant,
}

impl WarmBudget {
    pub fn new(max: usize, idle: Duration) -> Arc<WarmBudget> {
        Arc::new(WarmBudget {
            held: AtomicUsize::new(0),
            max,
            idle,
        })
    }

    /// A place for one more idle instance, if the host has room.
    pub fn try_hold(self: &Arc<Self>) -> Option<WarmPermit> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()?;
        Some(WarmPermit {
            budget: self.clone(),
            since: Instant::now(),
        })
    }

    /// Idle instances held now, across all plugins.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// How long an instance may stay idle before it is dropped.
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }
}

impl WarmPermit {
    /// Whether the instance has been idle for longer than the host allows.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= self.budget.idle
    }
}

impl Drop for WarmPermit {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_idle_instances_and_frees_a_place_on_drop() {
        let budget = WarmBudget::new(2, Duration::from_secs(60));
        let a = budget.try_hold().expect("first place");
        let _b = budget.try_hold().expect("second place");
        assert!(budget.try_hold().is_none(), "a third is over the cap");
        assert_eq!(budget.held(), 2);
        drop(a);
        assert_eq!(budget.held(), 1);
        assert!(budget.try_hold().is_some());
    }

    #[test]
    fn a_permit_expires_after_the_idle_timeout() {
        let budget = WarmBudget::new(1, Duration::from_millis(10));
        let permit = budget.try_hold().unwrap();
        assert!(!permit.expired(Instant::now()));
        assert!(permit.expired(Instant::now() + Duration::from_millis(10)));
    }
}
