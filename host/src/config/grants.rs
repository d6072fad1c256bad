//! The operator's grants as written (in `toolhost.toml`, or sent to the
//! grants API and stored): host-wide limits, trusted signing keys, and each
//! plugin's grant. Only their shape is here; what they are checked against
//! and what a connector finally gets is [`crate::policy`]'s.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::net::ip::Network;

/// Host-wide limits: the defaults where neither side says anything, and the
/// ceiling no grant can exceed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub kv_quota_bytes: u64,
    /// Largest JSON result a tool may return.
    pub output_bytes: usize,
    pub http_response_bytes: u64,
    pub http_timeout_ms: u64,
    pub http_requests_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            timeout_ms: 10_000,
            max_concurrency: 16,
            kv_quota_bytes: 16 * 1024 * 1024,
            output_bytes: 1024 * 1024,
            http_response_bytes: 4 * 1024 * 1024,
            http_timeout_ms: 10_000,
            http_requests_per_call: 32,
        }
    }
}

/// Which vendor signatures the operator trusts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signing {
    /// Refuse bundles without a valid signature from a trusted key.
    #[serde(default)]
    pub require: bool,
    /// Public keys (hex). A bundle that carries a signature must verify
    /// against one of them whether or not signatures are required.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// The operator's grant for one plugin. Absent fields grant nothing for
/// capabilities (HTTP, secrets, config) and the host default for limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginPolicy {
    /// Pin the component: only this SHA-256 (hex) may load under this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub http: Vec<HttpGrant>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub kv_quota_bytes: Option<u64>,
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// Let one instance serve up to this many calls of the same token and
    /// session, for connectors whose manifest declares them `stateless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_instances: Option<u32>,
    /// For a workflow: the tools its steps may call (`plugin.function`, or
    /// `plugin.*`), whatever the calling agent's token allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpGrant {
    pub origin: String,
    #[serde(default)]
    pub methods: Vec<String>,
    /// Let a DNS name in this grant resolve to loopback, private or
    /// link-local addresses: `true` for any, or a list of the networks it
    /// may resolve into (`["10.20.0.0/16", "127.0.0.2"]`). Off by default:
    /// a public name that resolves inward is how SSRF reaches cloud
    /// metadata and internal services.
    #[serde(default)]
    pub allow_private: PrivateTargets,
}

/// Which non-public addresses a granted DNS name may lead to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "PrivateTargetsToml", into = "PrivateTargetsToml")]
pub enum PrivateTargets {
    /// Public addresses only.
    #[default]
    None,
    /// Any address.
    Any,
    /// Public addresses and these networks.
    Only(Vec<Network>),
}

/// `allow-private` as written: a flag or a list of networks.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum PrivateTargetsToml {
    Flag(bool),
    Networks(Vec<String>),
}

impl TryFrom<PrivateTargetsToml> for PrivateTargets {
    type Error = String;

    fn try_from(value: PrivateTargetsToml) -> Result<Self, String> {
        Ok(match value {
            PrivateTargetsToml::Flag(false) => PrivateTargets::None,
            PrivateTargetsToml::Flag(true) => PrivateTargets::Any,
            PrivateTargetsToml::Networks(list) => {
                PrivateTargets::Only(list.iter().map(|n| n.parse()).collect::<Result<_, _>>()?)
            }
        })
    }
}

impl From<PrivateTargets> for PrivateTargetsToml {
    fn from(value: PrivateTargets) -> Self {
        match value {
            PrivateTargets::None => PrivateTargetsToml::Flag(false),
            PrivateTargets::Any => PrivateTargetsToml::Flag(true),
            PrivateTargets::Only(list) => PrivateTargetsToml::Networks(list.iter().map(Network::to_string).collect()),
        }
    }
}

/// Where a secret's value comes from. Prefer `env`: the value then never
/// sits in a file.
///
/// A value is a [`SecretString`]: it prints as `[REDACTED]`, and serializing
/// a source gives what the grants API shows (its kind, whether it is set,
/// an environment variable's name), never the value. Only storage writes a
/// value out, through [`PluginPolicy::stored`].
///
/// Read from `{"env": NAME}` or `{"value": V}`; `source` and `set`, which the
/// API shows, are ignored on the way in, so a view sent back (or a merge
/// patch over it that changes `env`) means what it says. An entry with
/// neither `env` nor `value` keeps the source the grant has now.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "SecretSourceInput")]
pub enum SecretSource {
    Env {
        env: String,
    },
    Value {
        value: SecretString,
    },
    /// What the grants API showed for a value, sent back: keep the source
    /// the grant has now (API only; see [`PluginPolicy::settle`]).
    Kept {
        source: SecretKind,
    },
}

/// A secret's source as written, in a file or an API body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSourceInput {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    value: Option<SecretString>,
    #[serde(default)]
    source: Option<SecretKind>,
    /// Shown by the API; ignored.
    #[serde(default, rename = "set")]
    _set: Option<bool>,
}

impl TryFrom<SecretSourceInput> for SecretSource {
    type Error = String;

    fn try_from(input: SecretSourceInput) -> Result<Self, String> {
        match (input.env, input.value, input.source) {
            (Some(_), Some(_), _) => Err("a secret comes from `env` or from `value`, not both \
                 (in a merge patch, remove the other with null)"
                .into()),
            (Some(env), None, _) => Ok(SecretSource::Env { env }),
            (None, Some(value), _) => Ok(SecretSource::Value { value }),
            (None, None, Some(source)) => Ok(SecretSource::Kept { source }),
            (None, None, None) => Err("a secret needs `env` (an environment variable's name) or `value`".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    Env,
    Value,
}

impl SecretSource {
    pub(crate) fn resolve(&self) -> Option<SecretString> {
        match self {
            SecretSource::Env { env } => std::env::var(env).ok().map(SecretString::from),
            SecretSource::Value { value } => Some(value.clone()),
            SecretSource::Kept { .. } => None,
        }
    }

    pub(crate) fn same_as(&self, other: &SecretSource) -> bool {
        match (self, other) {
            (SecretSource::Env { env: a }, SecretSource::Env { env: b }) => a == b,
            _ => false,
        }
    }
}

/// The view: `{"source": "env", "env": "CRM_KEY", "set": true}` or
/// `{"source": "value", "set": true}`.
impl Serialize for SecretSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            SecretSource::Env { env } => {
                map.serialize_entry("source", &SecretKind::Env)?;
                map.serialize_entry("env", env)?;
            }
            SecretSource::Value { .. } => map.serialize_entry("source", &SecretKind::Value)?,
            SecretSource::Kept { source } => map.serialize_entry("source", source)?,
        }
        map.serialize_entry("set", &self.resolve().is_some())?;
        map.end()
    }
}
