//! Name → loaded plugin. Readers take a snapshot without locking; a load
//! swaps in a new map atomically, so calls in flight keep the version they
//! started with (they hold an `Arc` to it) and new calls get the new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::plugins::plugin::{Plugin, Tool};

#[derive(Default)]
pub struct Registry {
    plugins: ArcSwap<BTreeMap<String, Arc<Plugin>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.load().get(name).cloned()
    }

    /// Every plugin, by name.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Plugin>>> {
        self.plugins.load_full()
    }

    /// Put a plugin in place of any previous version; returns the new one
    /// and the one it replaced.
    pub fn insert(&self, plugin: Plugin) -> (Arc<Plugin>, Option<Arc<Plugin>>) {
        let plugin = Arc::new(plugin);
        let mut previous = None;
        self.plugins.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            previous = map.insert(plugin.manifest.name.clone(), plugin.clone());
            map
        });
        (plugin, previous)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        let mut previous = None;
        self.plugins.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            previous = map.remove(name);
            map
        });
        previous
    }
}

/// A tool together with the plugin version that provides it.
pub struct ToolRef {
    pub plugin: Arc<Plugin>,
    index: usize,
}

impl ToolRef {
    pub fn find(plugin: Arc<Plugin>, function: &str) -> Option<ToolRef> {
        let index = plugin.tools.iter().position(|t| t.function == function)?;
        Some(ToolRef { plugin, index })
    }

    pub fn tool(&self) -> &Tool {
        &self.plugin.tools[self.index]
    }
}
