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
use serde::Deserialize;

use crate::config::grants::{Limits, PluginPolicy, PrivateTargets, SecretSource, Signing};
use crate::net::ip::is_public;
use crate::net::origin::{check_method, OriginPattern};
use crate::plugins::manifest::toml_error;
use crate::plugins::manifest::{self, Manifest};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ip::Network;

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
