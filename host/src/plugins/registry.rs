//! Name → loaded plugin (connector or workflow; one name space for both).
//! Readers take a snapshot without locking; a load swaps in a new map
//! atomically, so calls and runs in flight keep the version they started
//! with (they hold an `Arc` to it) and new ones get the new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::plugins::kind::Kind;
use crate::plugins::plugin::{Plugin, Tool};
use crate::workflow::Workflow;

/// A name's map of one kind.
type Map<T> = ArcSwap<BTreeMap<String, Arc<T>>>;

#[derive(Default)]
pub struct Registry {
    plugins: Map<Plugin>,
    workflows: Map<Workflow>,
}

/// What serves under a name.
#[derive(Clone)]
pub enum Loaded {
    Connector(Arc<Plugin>),
    Workflow(Arc<Workflow>),
}

impl Loaded {
    pub fn kind(&self) -> Kind {
        match self {
            Loaded::Connector(_) => Kind::Connector,
            Loaded::Workflow(_) => Kind::Workflow,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Loaded::Connector(p) => &p.manifest.name,
            Loaded::Workflow(w) => w.name(),
        }
    }

    pub fn version(&self) -> String {
        match self {
            Loaded::Connector(p) => p.manifest.version.to_string(),
            Loaded::Workflow(w) => w.definition.version.to_string(),
        }
    }

    /// sha256 of the component (the document, for a workflow).
    pub fn digest(&self) -> &str {
        match self {
            Loaded::Connector(p) => &p.digest,
            Loaded::Workflow(w) => &w.digest,
        }
    }

    /// sha256 of the manifest (the document, for a workflow).
    pub fn manifest_digest(&self) -> &str {
        match self {
            Loaded::Connector(p) => &p.manifest_digest,
            Loaded::Workflow(w) => &w.digest,
        }
    }
}

fn put<T>(map: &Map<T>, name: &str, value: Arc<T>) -> Option<Arc<T>> {
    let mut previous = None;
    map.rcu(|m| {
        let mut m = BTreeMap::clone(m);
        previous = m.insert(name.to_string(), value.clone());
        m
    });
    previous
}

fn take<T>(map: &Map<T>, name: &str) -> Option<Arc<T>> {
    let mut previous = None;
    map.rcu(|m| {
        let mut m = BTreeMap::clone(m);
        previous = m.remove(name);
        m
    });
    previous
}

impl Registry {
    /// The connector called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins.load().get(name).cloned()
    }

    /// The workflow called `name`.
    pub fn workflow(&self, name: &str) -> Option<Arc<Workflow>> {
        self.workflows.load().get(name).cloned()
    }

    /// Whatever serves under `name`.
    pub fn loaded(&self, name: &str) -> Option<Loaded> {
        self.get(name)
            .map(Loaded::Connector)
            .or_else(|| self.workflow(name).map(Loaded::Workflow))
    }

    /// Every connector, by name.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Plugin>>> {
        self.plugins.load_full()
    }

    /// Every workflow, by name.
    pub fn workflows(&self) -> Arc<BTreeMap<String, Arc<Workflow>>> {
        self.workflows.load_full()
    }

    /// Put a plugin in place of any previous version (of either kind);
    /// returns the new one and the one it replaced.
    pub fn insert(&self, plugin: Plugin) -> (Arc<Plugin>, Option<Loaded>) {
        let plugin = Arc::new(plugin);
        let name = plugin.manifest.name.clone();
        let previous = put(&self.plugins, &name, plugin.clone()).map(Loaded::Connector);
        (
            plugin,
            previous.or_else(|| take(&self.workflows, &name).map(Loaded::Workflow)),
        )
    }

    /// [`Registry::insert`] for a workflow.
    pub fn insert_workflow(&self, workflow: Workflow) -> (Arc<Workflow>, Option<Loaded>) {
        let workflow = Arc::new(workflow);
        let name = workflow.name().to_string();
        let previous = put(&self.workflows, &name, workflow.clone()).map(Loaded::Workflow);
        (
            workflow,
            previous.or_else(|| take(&self.plugins, &name).map(Loaded::Connector)),
        )
    }

    pub fn remove(&self, name: &str) -> Option<Loaded> {
        take(&self.plugins, name)
            .map(Loaded::Connector)
            .or_else(|| take(&self.workflows, name).map(Loaded::Workflow))
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

    /// Argument paths this version's manifest marks secret: what its
    /// calls' records and approvals redact.
    pub fn secret_fields(&self) -> &[String] {
        self.plugin
            .manifest
            .tools
            .get(&self.tool().function)
            .map_or(&[], |t| t.secret_fields.as_slice())
    }
}
