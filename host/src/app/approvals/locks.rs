//! Per-approval locks, so that two decisions (or a decision and an expiry)
//! of one approval never interleave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Async locks by name, each kept while someone holds or waits for it.
#[derive(Default)]
pub(super) struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Locks {
    pub(super) fn get(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_string()).or_default().clone()
    }

    /// Forget `name`'s lock unless someone still holds or waits for it.
    pub(super) fn forget(&self, name: &str) {
        let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if locks.get(name).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(name);
        }
    }
}
