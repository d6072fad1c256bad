//! The operator's actions on plugins: install, roll back, remove, switch on
//! or off, change or reset the grant. The REST API and the console both act
//! through here, so each action is checked, done and recorded one way.
//!
//! Each holds the plugin's lifecycle lock ([`Owner`]) across its `before`,
//! the change and its audit record: two operators acting on one plugin at
//! once get records that chain, the second's `before` being the first's
//! `after`.

use serde_json::{json, Value};

use crate::audit::ActionEvent;
use crate::config::grants::PluginPolicy;
use crate::model::audit::{Action, Interface};
use crate::plugins::bundle::Bundle;
use crate::plugins::error::LoadError;
use crate::plugins::lifecycle::LifecycleError;
use crate::plugins::owners::Owner;
use crate::plugins::registry::Loaded;
use crate::policy::PolicyError;
use crate::runtime::Runtime;

/// How long a removed plugin's calls in flight may take to finish.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Who acts on the host, and through what (the API or the console): what
/// an action's audit record names.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub via: Interface,
}

impl<'a> Actor<'a> {
    /// An admin token calling the REST API.
    pub fn api(name: &'a str) -> Actor<'a> {
        Actor {
            name,
            via: Interface::Api,
        }
    }
}

/// Why an operator's action was not done.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no plugin named {0:?}")]
    NotFound(String),
    #[error("{0} has no earlier version to roll back to")]
    NoPrevious(String),
    /// The bundle cannot serve (unsigned, does not compile, not the plugin
    /// named, not the digest given, ...).
    #[error("{0}")]
    BundleRefused(String),
    /// The grant is not one the plugin may have.
    #[error(transparent)]
    GrantRefused(PolicyError),
    /// The host could not do it (storage, the plugins folder).
    #[error("{0}")]
    Internal(String),
}

impl From<LifecycleError> for OperatorError {
    fn from(e: LifecycleError) -> OperatorError {
        match e {
            LifecycleError::NoSuchPlugin(name) => OperatorError::NotFound(name),
            LifecycleError::NoPrevious(name) => OperatorError::NoPrevious(name),
            LifecycleError::Load(e) => e.into(),
            LifecycleError::Policy(e) => OperatorError::GrantRefused(e),
            other => OperatorError::Internal(other.to_string()),
        }
    }
}

impl From<LoadError> for OperatorError {
    fn from(e: LoadError) -> OperatorError {
        match e {
            // The host's own mistake, not the bundle's.
            LoadError::NotOwned { .. } => OperatorError::Internal(e.to_string()),
            e => OperatorError::BundleRefused(e.to_string()),
        }
    }
}

/// Put an operator's action in the audit trail: who, on what, the state
/// before and after. The change is made by then; a trail that cannot take
/// the record is logged as an error, not undone.
pub async fn record(
    runtime: &Runtime,
    actor: &Actor<'_>,
    action: Action,
    subject: String,
    before: Value,
    after: Value,
) {
    let event = ActionEvent {
        action,
        via: Some(actor.via),
        by: Some(actor.name),
        subject,
        before,
        after,
    };
    record_event(runtime, &event).await;
}

/// Put an action in the audit trail, whoever made it.
pub async fn record_event(runtime: &Runtime, event: &ActionEvent<'_>) {
    if let Err(e) = runtime.audit().append_action(event).await {
        tracing::error!(
            by = event.by,
            action = event.action.as_str(),
            "audit: the action is done but not recorded: {e}"
        );
    }
}

/// A plugin as the audit trail's `tool` names it.
pub fn subject(plugin: &str) -> String {
    format!("(plugin) {plugin}")
}

/// The plugin `name`, loaded.
pub fn plugin(runtime: &Runtime, name: &str) -> Result<Loaded, OperatorError> {
    runtime
        .plugins()
        .registry()
        .loaded(name)
        .ok_or_else(|| OperatorError::NotFound(name.to_string()))
}

/// What serves as `name`, as an action's before and after.
fn serving(runtime: &Runtime, name: &str) -> Value {
    match runtime.plugins().registry().loaded(name) {
        Some(p) => json!({ "version": p.version().to_string(), "digest": p.digest() }),
        None => Value::Null,
    }
}

fn enabled_state(runtime: &Runtime, name: &str) -> Value {
    json!({ "state": enabled(runtime, name) })
}

/// Whether `name` serves its tools, as the API and the trail say it.
pub fn enabled(runtime: &Runtime, name: &str) -> &'static str {
    if runtime.plugins().is_disabled(name) {
        "disabled"
    } else {
        "enabled"
    }
}

/// The operator's grant as an audit record's before and after: the one in
/// force and whose it is.
fn grant_state(runtime: &Runtime, name: &str) -> Value {
    let grants = runtime.plugins().grant_state(name);
    json!({ "source": grants.source(), "grant": grants.in_force() })
}

/// Do `change` to plugin `name` under its lock, recorded as `action` with
/// what `state` shows before and after.
async fn act<T, F>(
    runtime: &Runtime,
    actor: &Actor<'_>,
    action: Action,
    name: &str,
    state: fn(&Runtime, &str) -> Value,
    change: impl FnOnce(Owner) -> F,
) -> Result<T, OperatorError>
where
    F: std::future::Future<Output = Result<(T, Owner), OperatorError>>,
{
    let owner = runtime.plugins().own(name).await;
    let before = state(runtime, name);
    let (done, owner) = change(owner).await?;
    record(runtime, actor, action, subject(name), before, state(runtime, name)).await;
    drop(owner);
    Ok(done)
}

/// Switch `name` on or off.
pub async fn set_enabled(
    runtime: &Runtime,
    actor: &Actor<'_>,
    name: &str,
    enabled: bool,
) -> Result<Loaded, OperatorError> {
    let action = if enabled { Action::Enable } else { Action::Disable };
    act(runtime, actor, action, name, enabled_state, |owner| async move {
        let p = plugin(runtime, name)?;
        runtime.plugins().set_enabled(&owner, enabled).await?;
        tracing::info!(admin = actor.name, plugin = %name, enabled, "plugin state changed");
        Ok((p, owner))
    })
    .await
}

/// The operator's grant of `name` becomes `grant`, owned by the API from
/// now on; requested secrets and config it leaves unset are refused unless
/// `allow_unset` names them.
pub async fn change_grant(
    runtime: &Runtime,
    actor: &Actor<'_>,
    name: &str,
    grant: PluginPolicy,
    allow_unset: &[String],
) -> Result<Loaded, OperatorError> {
    regrant(runtime, actor, name, allow_unset, |_| Ok(grant)).await
}

/// [`change_grant`] to the operator's grant of `name` merge-patched with
/// `patch` (RFC 7396), read and changed under the plugin's lock so that no
/// concurrent change is lost.
pub async fn patch_grant(
    runtime: &Runtime,
    actor: &Actor<'_>,
    name: &str,
    patch: &Value,
    allow_unset: &[String],
) -> Result<Loaded, OperatorError> {
    regrant(runtime, actor, name, allow_unset, |current| {
        current.merge_patch(name, patch)
    })
    .await
}

async fn regrant(
    runtime: &Runtime,
    actor: &Actor<'_>,
    name: &str,
    allow_unset: &[String],
    grant: impl FnOnce(PluginPolicy) -> Result<PluginPolicy, PolicyError>,
) -> Result<Loaded, OperatorError> {
    act(
        runtime,
        actor,
        Action::SetGrant,
        name,
        grant_state,
        |owner| async move {
            plugin(runtime, name)?;
            let grant = grant(runtime.plugins().operator_grant(name)).map_err(OperatorError::GrantRefused)?;
            let p = runtime.plugins().set_grant(&owner, grant, allow_unset).await?;
            tracing::info!(admin = actor.name, plugin = %name, "grant changed");
            Ok((p, owner))
        },
    )
    .await
}

/// Hand `name`'s grant back to the policy file. Whether the API had one
/// (nothing is recorded if not).
pub async fn reset_grant(runtime: &Runtime, actor: &Actor<'_>, name: &str) -> Result<bool, OperatorError> {
    let owner = runtime.plugins().own(name).await;
    let before = grant_state(runtime, name);
    let reset = runtime.plugins().reset_grant(&owner).await?;
    if reset {
        tracing::info!(admin = actor.name, plugin = %name, "grant reset to the file's");
        let after = grant_state(runtime, name);
        record(runtime, actor, Action::ResetGrant, subject(name), before, after).await;
    }
    Ok(reset)
}

/// Serve `bundle` as plugin `name` (whose digest, if `sha256` is given,
/// must be that), through the one load path.
pub async fn install(
    runtime: &Runtime,
    actor: &Actor<'_>,
    name: &str,
    bundle: Bundle,
    sha256: Option<&str>,
) -> Result<Loaded, OperatorError> {
    if bundle.name != name {
        return Err(OperatorError::BundleRefused(format!(
            "the bundle names plugin {:?}, not {name:?}",
            bundle.name
        )));
    }
    if let Some(expected) = sha256 {
        if !expected.trim().eq_ignore_ascii_case(&bundle.digest) {
            return Err(OperatorError::BundleRefused(format!(
                "digest is {}, not the {} given",
                bundle.digest,
                expected.trim()
            )));
        }
    }
    act(runtime, actor, Action::Upload, name, serving, |owner| async move {
        let p = runtime.plugins().install(&owner, bundle, actor.via.into()).await?;
        tracing::info!(admin = actor.name, plugin = %name, version = %p.version(), "uploaded");
        Ok((p, owner))
    })
    .await
}

/// Serve the version of `name` before the current one again.
pub async fn roll_back(runtime: &Runtime, actor: &Actor<'_>, name: &str) -> Result<Loaded, OperatorError> {
    act(runtime, actor, Action::Rollback, name, serving, |owner| async move {
        let p = runtime.plugins().rollback(&owner).await?;
        tracing::info!(admin = actor.name, plugin = %name, version = %p.version(), "rolled back");
        Ok((p, owner))
    })
    .await
}

/// Stop serving `name` and remove it from the plugins folder. Whether its
/// calls in flight finished within [`DRAIN`].
pub async fn remove(runtime: &Runtime, actor: &Actor<'_>, name: &str) -> Result<bool, OperatorError> {
    let owner = runtime.plugins().own(name).await;
    plugin(runtime, name)?;
    let before = serving(runtime, name);
    let drained = runtime.plugins().remove(&owner, DRAIN).await?;
    tracing::info!(admin = actor.name, plugin = %name, drained, "unloaded");
    let after = json!({ "removed": true, "drained": drained });
    record(runtime, actor, Action::Remove, subject(name), before, after).await;
    Ok(drained)
}
