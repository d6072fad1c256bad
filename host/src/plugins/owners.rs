//! One lock per plugin name: whoever changes a plugin's state (an upload,
//! a rollback, a removal, a grant change, enable/disable, the folder's
//! watcher) holds it, so no two changes of one plugin interleave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One lock per plugin name, kept only while someone holds or waits for it:
/// a rollback or grant reset of any name (an unknown one too) would
/// otherwise leave a lock behind for good.
#[derive(Default)]
pub(super) struct Owners(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// The right to change one plugin's state, held until dropped. An
/// operator's action holds it across the change and its audit record, so
/// that concurrent operators' records chain: each one's `before` is the
/// `after` of the one before it.
pub struct Owner {
    name: String,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Owner {
    /// The plugin owned.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Owners {
    /// Wait for, and hold, the right to change plugin `name`'s state.
    pub(super) async fn own(&self, name: &str) -> Owner {
        Owner {
            name: name.to_string(),
            _held: self.of(name).lock_owned().await,
        }
    }

    /// The lock of `name`. Locks nobody else has (their only reference is
    /// the map's) go first: a holder or a waiter keeps a clone.
    pub(super) fn of(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut owners = self.0.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|_, lock| Arc::strong_count(lock) > 1);
        owners.entry(name.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Owners;

    #[tokio::test]
    async fn a_plugin_lock_is_kept_only_while_held_or_awaited() {
        let owners = Owners::default();
        for i in 0..100 {
            drop(owners.of(&format!("unknown-{i}")).lock_owned().await);
        }
        let held = owners.of("crm").lock_owned().await;
        let waited = owners.of("crm");
        assert_eq!(owners.0.lock().unwrap().len(), 1, "only crm's, which is in use");
        // Its waiter gets the same lock, so the two still exclude each other.
        assert!(waited.try_lock().is_err());
        drop(held);
        assert!(waited.try_lock().is_ok());
    }
}
