//! The operator's policy and the effective grant of each connector.
//!
//! One rule throughout: a connector gets a capability only if its manifest
//! requests it *and* the operator grants it (`requested ∩ granted`); numeric
//! limits are the smallest of the request, the grant and the host's defaults.
//! Each refusal says what was refused and by whom.
//!
//! [`approvals`]: which calls wait for a person. [`grants`]: who owns a
//! plugin's grant (the file or the API), and what a grant leaves unset.

pub mod approvals;
pub mod condition;
pub mod grants;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::plugins::manifest::toml_error;

use crate::plugins::manifest::{self, Manifest};

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

/// What the operator grants, host-wide and per plugin (`toolhost.toml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginPolicy>,
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

/// An IP network: an address and a prefix length (`10.0.0.0/8`; a bare
/// address is the network of that one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is its IPv4 address on the wire.
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix);
    net.checked_shr(shift).unwrap_or(0) == ip.checked_shr(shift).unwrap_or(0)
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("{s:?} is not an IP address or network (such as 10.0.0.0/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(invalid)?,
            None => bits,
        };
        Ok(Network { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
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
    fn resolve(&self) -> Option<SecretString> {
        match self {
            SecretSource::Env { env } => std::env::var(env).ok().map(SecretString::from),
            SecretSource::Value { value } => Some(value.clone()),
            SecretSource::Kept { .. } => None,
        }
    }

    fn same_as(&self, other: &SecretSource) -> bool {
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

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("policy {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("policy for plugin {plugin:?}, `{field}`: {message}")]
    Invalid {
        plugin: String,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Approvals(#[from] approvals::RuleError),
    #[error("{}", grants::unset_message(plugin, missing))]
    UnsetRequested {
        plugin: String,
        missing: Vec<grants::RequestedKey>,
    },
    #[error(
        "allow_unset names {name:?}, which plugin {plugin:?}'s manifest requests neither as a secret nor as config"
    )]
    NotRequested { plugin: String, name: String },
}

/// Parse TOML from `origin` (a path, or a name for messages).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, PolicyError> {
    toml::from_str(text).map_err(|e| PolicyError::Parse {
        path: origin.to_string(),
        message: toml_error(&e, text),
    })
}

impl Policy {
    /// The `[limits]`, `[signing]` and `[plugins.*]` part of a configuration.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = parse_toml(text, origin)?;
        Policy::from_parts(policy.limits, policy.signing, policy.plugins)
    }

    /// A policy from its parts, each plugin's grant validated.
    pub fn from_parts(
        limits: Limits,
        signing: Signing,
        plugins: BTreeMap<String, PluginPolicy>,
    ) -> Result<Policy, PolicyError> {
        for (plugin, p) in &plugins {
            p.validate(plugin)?;
        }
        for key in &signing.trusted_keys {
            if hex::decode(key.trim()).map_or(true, |k| k.len() != 32) {
                return Err(PolicyError::Invalid {
                    plugin: "(signing)".into(),
                    field: "trusted-keys".into(),
                    message: format!("{key:?} is not a 32-byte ed25519 public key in hex"),
                });
            }
        }
        Ok(Policy {
            limits,
            signing,
            plugins,
        })
    }

    /// The effective grant for a plugin: what it requested and was granted.
    pub fn grant_for(&self, manifest: &Manifest) -> Grant {
        let empty = PluginPolicy::default();
        let operator = self.plugins.get(&manifest.name).unwrap_or(&empty);
        Grant::new(manifest, operator, &self.limits)
    }
}

impl PluginPolicy {
    /// A grant sent through the API, made whole against the one in force:
    /// a secret sent back as the API showed it keeps its current source,
    /// and an environment variable may be named only if it starts with
    /// `env_prefix` or is the one the grant already names (the file keeps
    /// full control; the API must not read any variable of the host).
    pub fn settle(
        mut self,
        plugin: &str,
        current: &PluginPolicy,
        env_prefix: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let invalid = |name: &str, message: String| PolicyError::Invalid {
            plugin: plugin.to_string(),
            field: format!("secrets.{name}"),
            message,
        };
        for (name, source) in self.secrets.iter_mut() {
            let now = current.secrets.get(name);
            if let SecretSource::Kept { .. } = source {
                *source = now
                    .cloned()
                    .ok_or_else(|| invalid(name, "the grant has no source for it to keep".into()))?;
            }
            if let SecretSource::Env { env } = &*source {
                let allowed = now.is_some_and(|n| n.same_as(source))
                    || env_prefix.is_some_and(|prefix| !prefix.is_empty() && env.starts_with(prefix));
                if !allowed {
                    let how = match env_prefix {
                        Some(prefix) => format!("only variables starting with {prefix:?}"),
                        None => "none ([server] api-secret-env-prefix is not set)".into(),
                    };
                    return Err(invalid(
                        name,
                        format!(
                            "environment variable {env:?} refused: through the API, {how}; toolhost.toml may name any"
                        ),
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The grant as storage keeps it: the only place a secret's value is
    /// written out.
    pub fn stored(&self) -> serde_json::Value {
        let mut stored = serde_json::to_value(self).unwrap_or_default();
        let secrets: serde_json::Map<String, serde_json::Value> = self
            .secrets
            .iter()
            .map(|(name, source)| {
                let kept = match source {
                    SecretSource::Env { env } => serde_json::json!({ "env": env }),
                    SecretSource::Value { value } => serde_json::json!({ "value": value.expose_secret() }),
                    SecretSource::Kept { .. } => serde_json::Value::Null,
                };
                (name.clone(), kept)
            })
            .collect();
        stored["secrets"] = serde_json::Value::Object(secrets);
        stored
    }

    /// Check that a grant is of the kind its plugin is: a workflow is
    /// granted tools to call and nothing else; a connector never tools.
    pub fn fits(&self, plugin: &str, workflow: bool) -> Result<(), PolicyError> {
        let invalid = |field: &str, message: &str| PolicyError::Invalid {
            plugin: plugin.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        };
        if workflow {
            let connector_only = !self.http.is_empty()
                || !self.secrets.is_empty()
                || !self.config.is_empty()
                || self.kv_quota_bytes.is_some()
                || self.memory_mb.is_some()
                || self.max_concurrency.is_some()
                || self.reuse_instances.is_some();
            if connector_only {
                return Err(invalid(
                    "tools",
                    "a workflow is granted the tools it may call (`tools`), and nothing a connector is",
                ));
            }
        } else if !self.tools.is_empty() {
            return Err(invalid("tools", "only a workflow is granted tools to call"));
        }
        Ok(())
    }

    /// Check a grant before it takes effect (from a file or the API).
    pub fn validate(&self, plugin: &str) -> Result<(), PolicyError> {
        self.check().map_err(|(field, message)| PolicyError::Invalid {
            plugin: plugin.to_string(),
            field,
            message,
        })
    }

    fn check(&self) -> Result<(), (String, String)> {
        self.check_limits()?;
        for (name, source) in &self.secrets {
            if let SecretSource::Kept { .. } = source {
                return Err((
                    format!("secrets.{name}"),
                    "give `env` or `value`; keeping the current source only works through the API".into(),
                ));
            }
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let plugin = tool.strip_suffix(".*");
            let ok = match plugin {
                Some(p) => crate::call::names::check_plugin_name(p).is_ok(),
                None => crate::call::names::canonical(tool).as_deref() == Some(tool.as_str()),
            };
            if !ok {
                return Err((
                    format!("tools[{i}]"),
                    format!("{tool:?} is not a tool name (`plugin.function`) or `plugin.*`"),
                ));
            }
        }
        for (i, h) in self.http.iter().enumerate() {
            let field = || format!("http[{i}]");
            let pattern = OriginPattern::parse(&h.origin).map_err(|m| (field(), m))?;
            if pattern == OriginPattern::Any {
                return Err((
                    field(),
                    "an operator grant must name its origin; `*` grants nothing specific".into(),
                ));
            }
            for m in &h.methods {
                check_method(m).map_err(|e| (field(), e))?;
            }
        }
        Ok(())
    }
}

/// The most a grant may give one plugin: beyond these a number is a
/// mistake (a unit slip, a stray digit), not a wish, and is refused rather
/// than clamped. Memory and time are the manifest's own maxima.
pub const MAX_GRANT_KV_QUOTA_BYTES: u64 = 64 * 1024 * 1024 * 1024;
pub const MAX_GRANT_CONCURRENCY: u32 = 1024;
pub const MAX_GRANT_REUSE_INSTANCES: u32 = 10_000;

impl PluginPolicy {
    /// The pin and the numbers of a grant: a pin is a SHA-256 in hex; a
    /// limit is at least 1 (a kv quota may be 0: no storage) and at most
    /// its maximum.
    fn check_limits(&self) -> Result<(), (String, String)> {
        fn within<T: PartialOrd + std::fmt::Display>(
            field: &str,
            value: Option<T>,
            min: T,
            max: T,
        ) -> Result<(), (String, String)> {
            match value {
                Some(v) if v < min || v > max => Err((field.into(), format!("must be {min} to {max}, not {v}"))),
                _ => Ok(()),
            }
        }
        if let Some(digest) = &self.digest {
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                let shown = crate::model::text::truncated(digest.clone(), 80);
                return Err((
                    "digest".into(),
                    format!("{shown:?} is not a SHA-256 digest (64 hex digits)"),
                ));
            }
        }
        within("memory-mb", self.memory_mb, 1, manifest::MAX_MEMORY_MB)?;
        within("timeout-ms", self.timeout_ms, 1, manifest::MAX_TIMEOUT_MS)?;
        within("max-concurrency", self.max_concurrency, 1, MAX_GRANT_CONCURRENCY)?;
        within("kv-quota-bytes", self.kv_quota_bytes, 0, MAX_GRANT_KV_QUOTA_BYTES)?;
        within("reuse-instances", self.reuse_instances, 1, MAX_GRANT_REUSE_INSTANCES)
    }
}

/// An origin, or a pattern of origins: `*`, `https://api.example.com[:port]`,
/// `https://*.example.com[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Any,
    Origin {
        scheme: String,
        /// Lower case; a leading `*.` matches any subdomain (not the apex).
        host: String,
        port: u16,
    },
}

impl OriginPattern {
    pub fn parse(s: &str) -> Result<OriginPattern, String> {
        if s == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not an origin like https://api.example.com"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{s:?}: scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!("{s:?}: an origin has no path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| format!("{s:?}: bad host or port"))?;
        let host = host.to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        if bare.is_empty() || bare.contains('*') || !valid_host(bare) {
            return Err(format!("{s:?}: bad host"));
        }
        Ok(OriginPattern::Origin {
            scheme: scheme.to_string(),
            host,
            port: port.unwrap_or(default_port),
        })
    }

    /// Does this pattern cover the concrete origin?
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Origin {
                scheme: s,
                host: h,
                port: p,
            } => s == scheme && *p == port && host_matches(h, host),
        }
    }

    /// Does this (requested) pattern cover everything `other` (granted) covers?
    fn covers(&self, other: &OriginPattern) -> bool {
        match (self, other) {
            (OriginPattern::Any, _) => true,
            (_, OriginPattern::Any) => false,
            (
                OriginPattern::Origin {
                    scheme: s1,
                    host: h1,
                    port: p1,
                },
                OriginPattern::Origin {
                    scheme: s2,
                    host: h2,
                    port: p2,
                },
            ) => {
                s1 == s2
                    && p1 == p2
                    && (h1 == h2 || (!h2.starts_with("*.") && host_matches(h1, h2)) || subdomain_pattern_covers(h1, h2))
            }
        }
    }

    fn names_ip_literal(&self) -> bool {
        matches!(self, OriginPattern::Origin { host, .. } if strip_brackets(host).parse::<IpAddr>().is_ok())
    }
}

fn subdomain_pattern_covers(outer: &str, inner: &str) -> bool {
    match (outer.strip_prefix("*."), inner.strip_prefix("*.")) {
        (Some(o), Some(i)) => i == o || i.ends_with(&format!(".{o}")),
        _ => false,
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn valid_host(host: &str) -> bool {
    let h = strip_brackets(host);
    h.parse::<IpAddr>().is_ok()
        || (h.len() <= 253
            && h.split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')))
}

/// `host[:port]`, with IPv6 in brackets.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

pub fn check_method(m: &str) -> Result<(), String> {
    if !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("{m:?} is not an HTTP method in upper case"))
    }
}

/// One destination the connector may reach.
#[derive(Debug, Clone)]
pub struct HttpRule {
    pub origin: OriginPattern,
    /// `None`: any method.
    pub methods: Option<Vec<String>>,
    pub allow_private: PrivateTargets,
}

/// The effective grant: what a connector can actually do.
#[derive(Debug, Clone)]
pub struct Grant {
    pub http: Vec<HttpRule>,
    /// Granted secret names, with their values where the operator set one.
    pub secrets: HashMap<String, Option<SecretString>>,
    pub config: HashMap<String, String>,
    pub kv_quota_bytes: u64,
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub max_concurrency: u32,
    pub output_bytes: usize,
    pub http_response_bytes: u64,
    pub http_timeout: Duration,
    pub http_requests_per_call: u32,
    /// Calls one instance may serve (same token and session); 1 = a fresh
    /// instance for every call.
    pub calls_per_instance: u32,
}

fn smallest<T: Ord + Copy>(host_default: T, requested: Option<T>, granted: Option<T>) -> T {
    [requested, granted].into_iter().flatten().fold(host_default, T::min)
}

impl Grant {
    pub fn new(manifest: &Manifest, operator: &PluginPolicy, limits: &Limits) -> Grant {
        let req = &manifest.capabilities;
        let mut http = Vec::new();
        for granted in &operator.http {
            let Ok(g_origin) = OriginPattern::parse(&granted.origin) else {
                continue;
            };
            for asked in &req.http {
                let Ok(a_origin) = OriginPattern::parse(&asked.origin) else {
                    continue;
                };
                if !a_origin.covers(&g_origin) {
                    continue;
                }
                let methods = match (asked.methods.is_empty(), granted.methods.is_empty()) {
                    (true, true) => None,
                    (false, true) => Some(asked.methods.clone()),
                    (true, false) => Some(granted.methods.clone()),
                    (false, false) => Some(
                        asked
                            .methods
                            .iter()
                            .filter(|m| granted.methods.contains(m))
                            .cloned()
                            .collect(),
                    ),
                };
                if methods.as_ref().is_some_and(Vec::is_empty) {
                    continue;
                }
                http.push(HttpRule {
                    origin: g_origin.clone(),
                    methods,
                    allow_private: granted.allow_private.clone(),
                });
            }
        }
        let secrets = req
            .secrets
            .iter()
            .filter_map(|name| operator.secrets.get(name).map(|src| (name.clone(), src.resolve())))
            .collect();
        let config = req
            .config
            .iter()
            .filter_map(|name| operator.config.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        let memory_mb = smallest(
            limits.memory_mb.min(manifest::MAX_MEMORY_MB),
            req.memory_mb,
            operator.memory_mb,
        );
        Grant {
            http,
            secrets,
            config,
            // kv is opt-in on both sides: nothing requested, nothing granted.
            kv_quota_bytes: smallest(limits.kv_quota_bytes, Some(req.kv_quota_bytes), operator.kv_quota_bytes),
            memory_bytes: memory_mb as usize * 1024 * 1024,
            timeout: Duration::from_millis(smallest(limits.timeout_ms, req.timeout_ms, operator.timeout_ms)),
            max_concurrency: smallest(limits.max_concurrency, req.max_concurrency, operator.max_concurrency).max(1),
            output_bytes: limits.output_bytes,
            http_response_bytes: limits.http_response_bytes,
            http_timeout: Duration::from_millis(limits.http_timeout_ms),
            http_requests_per_call: limits.http_requests_per_call,
            calls_per_instance: match (req.stateless, operator.reuse_instances) {
                (true, Some(n)) => n.max(1),
                _ => 1,
            },
        }
    }

    /// Why an outbound request is refused, or `None` when the grant allows
    /// it. `host` is as the guest wrote it; addresses are checked separately
    /// with [`Grant::check_addresses`] once it is resolved.
    pub fn check_request(&self, scheme: &str, host: &str, port: u16, method: &str) -> Result<&HttpRule, String> {
        let host = host.to_ascii_lowercase();
        let mut origin_granted = false;
        for rule in &self.http {
            if rule.origin.matches(scheme, &host, port) {
                origin_granted = true;
                if rule.methods.as_ref().is_none_or(|ms| ms.iter().any(|m| m == method)) {
                    return Ok(rule);
                }
            }
        }
        let target = format!("{scheme}://{host}:{port}");
        Err(if origin_granted {
            format!("method {method} to {target} is not granted by the operator")
        } else if self.http.is_empty() {
            format!("{target}: the connector has no outbound HTTP grant")
        } else {
            format!("{target} is not among the origins the operator granted")
        })
    }

    /// The addresses of a resolved name that this rule lets a request
    /// reach, in the resolver's order: public ones, and private ones only
    /// where the operator allowed them (or the rule names an address
    /// literally). A hostile answer that mixes public and private addresses
    /// loses the private ones; an answer with nothing left is refused.
    pub fn allowed_addresses(rule: &HttpRule, addrs: &[IpAddr]) -> Result<Vec<IpAddr>, String> {
        let allowed = |a: &IpAddr| {
            rule.origin.names_ip_literal()
                || is_public(a)
                || match &rule.allow_private {
                    PrivateTargets::None => false,
                    PrivateTargets::Any => true,
                    PrivateTargets::Only(networks) => networks.iter().any(|n| n.contains(a)),
                }
        };
        let kept: Vec<IpAddr> = addrs.iter().copied().filter(allowed).collect();
        match addrs.iter().find(|a| !allowed(a)) {
            Some(a) if kept.is_empty() => Err(format!(
                "the name resolves to {a}, a loopback, private or link-local address the grant does not name"
            )),
            Some(a) => {
                tracing::warn!(address = %a, "a DNS answer mixed granted and private addresses; the private ones are dropped");
                Ok(kept)
            }
            None if kept.is_empty() => Err("the name resolves to no address".into()),
            None => Ok(kept),
        }
    }
}

/// Is this an address on the public internet? Everything else (loopback,
/// private, link-local incl. cloud metadata, CGNAT, ULA, multicast,
/// unspecified, documentation, IPv4-mapped forms of those) is not.
pub fn is_public(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(&IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(http: &str) -> Manifest {
        Manifest::parse(
            &format!(
                "name = \"p\"\nversion = \"1.0.0\"\nvendor = \"v\"\nworld = \"w\"\n[capabilities]\nhttp = {http}\nsecrets = [\"a\", \"b\"]\nkv-quota-bytes = 100\nmemory-mb = 8"
            ),
            "t",
        )
        .unwrap()
    }

    fn operator(text: &str) -> PluginPolicy {
        Policy::parse(&format!("[plugins.p]\n{text}"), "t").unwrap().plugins["p"].clone()
    }

    #[test]
    fn grant_is_the_intersection() {
        let m = manifest(r#"[{ origin = "https://*.acme.example", methods = ["GET", "POST"] }]"#);
        let op = operator(
            r#"http = [{ origin = "https://api.acme.example", methods = ["POST", "DELETE"] }, { origin = "https://evil.example" }]
               secrets = { a = { value = "x" }, c = { value = "y" } }
               kv-quota-bytes = 50
               memory-mb = 32"#,
        );
        let g = Grant::new(&m, &op, &Limits::default());
        assert_eq!(g.http.len(), 1);
        assert!(g.check_request("https", "api.acme.example", 443, "POST").is_ok());
        let e = g.check_request("https", "api.acme.example", 443, "GET").unwrap_err();
        assert!(e.contains("method GET"), "{e}");
        assert!(g.check_request("https", "evil.example", 443, "POST").is_err());
        assert!(g.check_request("http", "api.acme.example", 443, "POST").is_err());
        assert!(g.check_request("https", "api.acme.example", 8443, "POST").is_err());
        assert_eq!(g.secrets.len(), 1);
        assert_eq!(g.secrets["a"].as_ref().map(|s| s.expose_secret()), Some("x"));
        assert_eq!(g.kv_quota_bytes, 50);
        assert_eq!(g.memory_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn nothing_granted_means_nothing() {
        let g = Grant::new(
            &manifest(r#"[{ origin = "*" }]"#),
            &PluginPolicy::default(),
            &Limits::default(),
        );
        assert!(g.http.is_empty() && g.secrets.is_empty());
        assert!(g
            .check_request("https", "x.example", 443, "GET")
            .unwrap_err()
            .contains("no outbound HTTP grant"));
    }

    #[test]
    fn names_must_not_resolve_inward() {
        let m = manifest(r#"[{ origin = "*" }]"#);
        let g = Grant::new(
            &m,
            &operator(r#"http = [{ origin = "https://api.example" }, { origin = "http://127.0.0.1:9000" }]"#),
            &Limits::default(),
        );
        let by_name = g.check_request("https", "api.example", 443, "GET").unwrap();
        for inward in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "::ffff:10.0.0.1",
            "fd00::1",
            "100.64.0.1",
        ] {
            assert!(
                Grant::allowed_addresses(by_name, &[inward.parse().unwrap()]).is_err(),
                "{inward}"
            );
        }
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert_eq!(Grant::allowed_addresses(by_name, &[public]), Ok(vec![public]));
        // A hostile answer, public first and private second: only the
        // public address is handed on.
        let private: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(Grant::allowed_addresses(by_name, &[public, private]), Ok(vec![public]));
        assert_eq!(Grant::allowed_addresses(by_name, &[private, public]), Ok(vec![public]));
        let literal = g.check_request("http", "127.0.0.1", 9000, "GET").unwrap();
        assert!(Grant::allowed_addresses(literal, &["127.0.0.1".parse().unwrap()]).is_ok());
    }

    #[test]
    fn private_targets_can_be_named_networks() {
        let m = manifest(r#"[{ origin = "*" }]"#);
        let g = Grant::new(
            &m,
            &operator(
                r#"http = [{ origin = "https://intranet.example", allow-private = ["10.20.0.0/16", "127.0.0.2"] }, { origin = "https://any.example", allow-private = true }]"#,
            ),
            &Limits::default(),
        );
        let named = g.check_request("https", "intranet.example", 443, "GET").unwrap();
        let ips = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect::<Vec<IpAddr>>();
        assert_eq!(
            Grant::allowed_addresses(
                named,
                &ips(&["10.20.3.4", "10.21.0.1", "127.0.0.1", "127.0.0.2", "::ffff:10.20.0.9"])
            ),
            Ok(ips(&["10.20.3.4", "127.0.0.2", "::ffff:10.20.0.9"]))
        );
        assert!(Grant::allowed_addresses(named, &ips(&["169.254.169.254"])).is_err());
        let any = g.check_request("https", "any.example", 443, "GET").unwrap();
        assert!(Grant::allowed_addresses(any, &ips(&["169.254.169.254"])).is_ok());
        for bad in ["10.0.0.0/33", "intranet", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        // The grants API writes back what it read.
        let written = serde_json::to_value(
            &operator(r#"http = [{ origin = "https://a.example", allow-private = ["10.0.0.0/8"] }]"#).http[0],
        )
        .unwrap();
        assert_eq!(written["allow-private"], serde_json::json!(["10.0.0.0/8"]));
    }

    #[test]
    fn operator_cannot_grant_everything() {
        assert!(Policy::parse("[plugins.p]\nhttp = [{ origin = \"*\" }]", "t").is_err());
    }
}
