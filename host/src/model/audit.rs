//! The audit trail's records: what one call, plugin event, approval step or
//! operator action did, as the operator reads it afterwards, and the
//! closed sets that name how it came in and how it ended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::effects::{Denial, Echo, OutboundRecord};
use crate::model::time::rfc3339_micros;

/// What one call did, as the operator reads it afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Time-ordered and unique; also the paging cursor.
    pub id: String,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    /// `http`, `mcp` or `cli`.
    pub via: Via,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
    pub tool: String,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    /// The arguments, with secret-looking fields redacted.
    pub arguments: Value,
    /// SHA-256 of the arguments as given: what an idempotency key or an
    /// approval binds.
    #[serde(default)]
    pub arguments_digest: Option<String>,
    pub outcome: Outcome,
    /// Whether a side effect (kv write, outbound request other than GET or
    /// HEAD) may have left the host.
    #[serde(default)]
    pub effects: bool,
    pub error: Option<Value>,
    pub duration_us: u64,
    pub instantiate_us: u64,
    pub execute_us: u64,
    pub outbound: Vec<OutboundRecord>,
    /// The first denials of the call (at most `capabilities::DENIALS_KEPT`).
    pub denials: Vec<Denial>,
    /// How many there were in all.
    #[serde(default)]
    pub denials_total: u32,
    /// Where the connector wrote a secret it was handed (masked there).
    #[serde(default)]
    pub secret_echoes: Vec<Echo>,
    /// The approval this record belongs to: the hold, each decision, and
    /// the call it let run all carry its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Why, in words: the rule that held a call, a reviewer's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The workflow run this call was a step of (or the run, for the
    /// record of the workflow call itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The step within the run: the task's reference, with loop indices
    /// and retry attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What an operator changed (or the host, for retention): the record of
    /// an action rather than of a call. `token` says who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The state the action found, and the state it left: a grant, a
    /// version, the tokens in force, an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl AuditRecord {
    /// A record with nothing but its id, time, way in and tool.
    pub fn new(id: u64, via: impl Into<Via>, tool: String) -> AuditRecord {
        AuditRecord {
            id: id.to_string(),
            time: rfc3339_micros(id >> 8),
            via: via.into(),
            token: None,
            session: None,
            idempotency_key: None,
            tool,
            plugin_version: None,
            plugin_digest: None,
            arguments: Value::Null,
            arguments_digest: None,
            outcome: Outcome::Running,
            effects: false,
            error: None,
            duration_us: 0,
            instantiate_us: 0,
            execute_us: 0,
            outbound: Vec::new(),
            denials: Vec::new(),
            denials_total: 0,
            secret_echoes: Vec::new(),
            approval: None,
            reason: None,
            run: None,
            step: None,
            action: None,
            before: None,
            after: None,
        }
    }
}

/// A change to what the host serves or allows, as the audit trail names
/// it. Every one is made by an operator through the API or the console,
/// except `sweep_audit`, which the host makes itself.
#[derive(
    strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// A bundle uploaded (`PUT /v1/plugins/{name}`).
    Upload,
    /// The previous version served again.
    Rollback,
    /// A plugin unloaded and its folder removed.
    Remove,
    Enable,
    Disable,
    /// The operator's grant replaced or patched.
    SetGrant,
    /// The operator's grant dropped: the file's grant is in force again.
    ResetGrant,
    /// The approval rules replaced.
    SetRules,
    /// The tokens in force replaced (the configuration read again).
    ReloadTokens,
    /// A reviewer's decision on a held call.
    Decide,
    /// Audit records past their retention removed.
    SweepAudit,
}

impl Action {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a call or a plugin event ended, as the audit trail and the API
/// name it.
#[derive(
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// A call in flight that has begun to change things.
    Running,
    /// A call the host stopped in the middle of (found so at the next start).
    Interrupted,
    NotFound,
    InvalidInput,
    Denied,
    Timeout,
    ResourceExhausted,
    PluginError,
    PluginFault,
    Unavailable,
    /// A bundle now serving.
    Loaded,
    /// A bundle refused; the version before keeps serving.
    Refused,
    /// A plugin no longer serving.
    Unloaded,
    /// A call waiting for a person's approval; it has not run.
    Held,
    /// A reviewer approved a held call.
    Approved,
    /// A reviewer rejected a held call; it never runs.
    Rejected,
    /// Nobody decided a held call in time; it never runs.
    Expired,
    /// An approved call that did not run: what was approved changed.
    Lapsed,
    /// A workflow's run ended in an error.
    WorkflowFailed,
    /// A workflow's run was cancelled.
    Cancelled,
}

impl Outcome {
    /// The outcome named `name` (as `as_str` spells it).
    pub fn named(name: &str) -> Option<Outcome> {
        name.parse().ok()
    }

    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

// The audit record's union of a call's [`Channel`], a bundle's [`Source`]
// and an operator's [`Interface`] (or the host's own action); its doc below
// is the OpenAPI document's description, kept as it was.
/// How something reached the host: a call (REST, MCP, the CLI), or a
/// bundle (the plugins folder, an upload, a rollback, another node).
#[derive(
    strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Via {
    #[default]
    Http,
    Mcp,
    Cli,
    Folder,
    Api,
    Rollback,
    /// Another node's change, applied here (nodes sharing a store).
    Node,
    /// The operator console.
    Console,
    /// The host itself (the audit trail's retention).
    Host,
}

impl Via {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How an agent's call came in (a workflow's steps: as its call did).
#[derive(
    strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Channel {
    #[default]
    Http,
    Mcp,
    Cli,
}

/// How a plugin's bundle came to be served.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Source {
    /// Dropped into the plugins folder.
    Folder,
    /// Uploaded through the REST API.
    Api,
    /// Uploaded through the console.
    Console,
    /// An archived version served again.
    Rollback,
    /// Another node's change, applied here (nodes sharing a store).
    Node,
}

/// Where an operator acted: the REST API or the console.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq)]
#[strum(serialize_all = "lowercase")]
pub enum Interface {
    Api,
    Console,
}

impl Source {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<Channel> for Via {
    fn from(channel: Channel) -> Via {
        match channel {
            Channel::Http => Via::Http,
            Channel::Mcp => Via::Mcp,
            Channel::Cli => Via::Cli,
        }
    }
}

impl From<Source> for Via {
    fn from(source: Source) -> Via {
        match source {
            Source::Folder => Via::Folder,
            Source::Api => Via::Api,
            Source::Console => Via::Console,
            Source::Rollback => Via::Rollback,
            Source::Node => Via::Node,
        }
    }
}

/// An operator's action through an interface; `None`: the host's own
/// (the audit trail's retention, tokens re-read on a hangup).
impl From<Option<Interface>> for Via {
    fn from(interface: Option<Interface>) -> Via {
        match interface {
            Some(Interface::Api) => Via::Api,
            Some(Interface::Console) => Via::Console,
            None => Via::Host,
        }
    }
}

/// A bundle an operator uploads comes from where the operator acted.
impl From<Interface> for Source {
    fn from(interface: Interface) -> Source {
        match interface {
            Interface::Api => Source::Api,
            Interface::Console => Source::Console,
        }
    }
}

/// Who asked, and how.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub via: Channel,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
    /// The approval that let this call run, when it was held.
    pub approval: Option<String>,
    /// The workflow run and step this call is part of.
    pub run: Option<String>,
    pub step: Option<String>,
    /// Where the caller listens for the call's progress (not recorded).
    pub progress: Option<crate::model::progress::ProgressSink>,
}
