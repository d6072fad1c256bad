//! `toolhost.toml`: where the server listens and keeps its data, who may call
//! it, and the operator's policy. Every field has an embedded default, so the
//! host starts with no file at all; flags and environment override the file.

pub mod approvals;
pub mod grants;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capabilities::{DnsServer, OutboundOptions};
use crate::config::approvals::ApprovalConfig;
use crate::config::grants::{Limits, PluginPolicy, Signing};
use crate::plugins::oci::{BundleRef, RegistriesConfig};
use crate::policy::approvals::ApprovalPolicy;
use crate::policy::{Policy, PolicyError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginPolicy>,
    /// Which calls wait for a person (see [`crate::policy::approvals`]).
    #[serde(default)]
    pub approvals: ApprovalConfig,
    /// Where state is kept: sled here, or PostgreSQL shared by nodes.
    #[serde(default)]
    pub storage: crate::storage::StorageConfig,
    /// Plugins pulled from OCI registries at start, by plugin name:
    /// `crm = "oci://registry.example.com/vendor/crm:0.1.0"` (or
    /// `...@sha256:<hex>`). Each lands in the plugins folder under its name
    /// and loads from there like any other bundle.
    #[serde(default)]
    pub sources: BTreeMap<String, BundleRef>,
    /// How registries are reached (which may be plain HTTP).
    #[serde(default)]
    pub registries: RegistriesConfig,
    /// The file this was read from, if any: what a reload reads again.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Requests per minute for a token that does not set its own.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 1200;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where compiled components are cached; absent: `compile-cache` in the
    /// data folder. Entries are named by the component's digest and the
    /// engine's fingerprint and carry a checksum, so hosts on one machine
    /// may share a folder and a component is compiled once for all.
    pub compile_cache_dir: Option<PathBuf>,
    pub plugins_dir: PathBuf,
    /// Largest request body the API accepts.
    pub max_body_bytes: usize,
    /// Calls in flight across all plugins (sizes the instance pool).
    pub max_instances: u32,
    /// Threads that run guest code, apart from those serving the API; 0
    /// means one per core.
    pub guest_threads: usize,
    /// Load, replace and unload bundles as they change in the plugins folder.
    pub watch: bool,
    /// Requests per minute for tokens that set no rate of their own
    /// (including those from the environment).
    pub rate_per_minute: u32,
    /// How long an `Idempotency-Key`'s answer is replayed before it is
    /// swept away.
    pub idempotency_retention_secs: u64,
    /// Idle instances kept for reuse across all plugins; 0 means a quarter
    /// of `max-instances`.
    pub max_warm_instances: u32,
    /// Seconds an idle instance is kept for its caller's next call.
    pub warm_idle_secs: u64,
    /// MCP sessions open at once; a new one beyond is turned away (503).
    pub max_mcp_sessions: usize,
    /// MCP sessions one token may have open at once; its next `initialize`
    /// is turned away (429), never another token's.
    pub max_mcp_sessions_per_principal: usize,
    /// Console sessions one token may have at once; signing in past it ends
    /// that token's oldest session.
    pub max_console_sessions_per_principal: usize,
    /// Calls of one token waiting for a reviewer at once; a call the rules
    /// would hold beyond it is turned away (429) until a reviewer decides.
    /// A thousand: an agent with one call in five held makes that many in
    /// a busy hour while reviewers catch up; one agent can no longer fill
    /// the queue with thousands in seconds.
    pub max_pending_approvals_per_principal: usize,
    /// Requests with a missing or unknown token one address may make at
    /// once (one more every 3 s); past them its failures are answered 429
    /// (see `server::api::auth::BearerFailures`). A valid token is never
    /// slowed.
    pub failed_bearer_burst: u32,
    /// Seconds an MCP session may go without a request before it is closed.
    pub mcp_idle_secs: u64,
    /// `Host` values `/mcp` accepts (`name` or `name:port`), against DNS
    /// rebinding. Empty: the address the host listens on and `localhost`
    /// (with its port); listening on all interfaces, the loopback names.
    pub mcp_allowed_hosts: Vec<String>,
    /// Browser origins `/mcp` accepts (`https://console.example.com:443`,
    /// `http://localhost:*`). Empty: pages served from an allowed host
    /// only. Requests without `Origin` (agents that are not browsers) pass.
    pub mcp_allowed_origins: Vec<String>,
    /// Environment variables an operator may name as a secret's source
    /// through the admin API (`PUT .../grants`) must start with this;
    /// unset, the API may name none (this file may name any).
    pub api_secret_env_prefix: Option<String>,
    /// DNS servers for connectors' upstreams (`"10.0.0.53"` or
    /// `"127.0.0.1:5353"`); none: the system's resolv.conf.
    pub dns_servers: Vec<DnsServer>,
    /// How long one DNS lookup may take, waiting for its turn included.
    pub dns_timeout_ms: u64,
    /// DNS lookups in flight across all plugins.
    pub dns_max_in_flight: usize,
    /// A PEM file of CA certificates to trust for `https` upstreams besides
    /// the built-in web roots, for upstreams with a private CA.
    pub extra_ca_roots: Option<PathBuf>,
    /// Minutes a console sign-in lasts.
    pub console_session_minutes: u64,
    /// Seconds an audit record is kept (7776000 is 90 days); 0 keeps every
    /// record. Older ones are removed as time passes, except those of calls
    /// still running, and each removal is itself recorded.
    pub audit_retention_secs: u64,
    /// Seconds a stop keeps serving while `/readyz` answers `draining`,
    /// before the port closes: long enough for a balancer to notice (its
    /// probe interval), so no call arrives at a closed port.
    pub shutdown_delay_secs: u64,
    /// Seconds a connection may take to send a request's head (its line
    /// and headers), counted from the connection's opening or the head's
    /// first byte; past it the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds a connection may sit idle between an answer and the next
    /// request (keep-alive) before it is closed. A response still being
    /// sent (an event stream, a long poll) is not idle.
    pub connection_idle_secs: u64,
    /// Seconds a request body may take before it must keep up with
    /// `body-min-bytes-per-sec`: the body's deadline is this plus one
    /// second per that many bytes received (Apache's `mod_reqtimeout`
    /// rule); past it the request is answered 408.
    pub body_timeout_secs: u64,
    /// The slowest rate a request body may arrive at, after the grace of
    /// `body-timeout-secs`; 0: the whole body within `body-timeout-secs`.
    pub body_min_bytes_per_sec: u64,
    /// Connections served at once; lowered at start to what the process's
    /// open-file limit leaves room for. At the cap, a new connection closes
    /// the oldest one that has no request running.
    pub max_connections: usize,
    /// Connections beyond `max-connections` (when each of those has a
    /// request running) that answer only `/healthz` and `/readyz`, so that
    /// health checks are answered whatever clients hold.
    pub health_connections: usize,
    /// Steps one workflow run's jq expressions may take in all (see
    /// `workflow::budget`).
    pub workflow_steps: u64,
    /// Milliseconds one workflow run's jq expressions may take in all.
    pub workflow_eval_ms: u64,
}

impl Server {
    /// The connection keys, refused when one would bound nothing or
    /// everything.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("header-timeout-secs", self.header_timeout_secs),
            ("connection-idle-secs", self.connection_idle_secs),
            ("body-timeout-secs", self.body_timeout_secs),
            ("max-connections", self.max_connections as u64),
            ("health-connections", self.health_connections as u64),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            compile_cache_dir: None,
            plugins_dir: PathBuf::from("plugins"),
            max_body_bytes: 1024 * 1024,
            max_instances: 256,
            guest_threads: 0,
            watch: true,
            rate_per_minute: DEFAULT_RATE_PER_MINUTE,
            idempotency_retention_secs: crate::app::idempotency::DEFAULT_RETENTION.as_secs(),
            max_warm_instances: 0,
            warm_idle_secs: 30,
            max_mcp_sessions: 1024,
            max_mcp_sessions_per_principal: 64,
            max_console_sessions_per_principal: 16,
            max_pending_approvals_per_principal: 1000,
            failed_bearer_burst: 20,
            mcp_idle_secs: 300,
            mcp_allowed_hosts: Vec::new(),
            mcp_allowed_origins: Vec::new(),
            api_secret_env_prefix: None,
            dns_servers: Vec::new(),
            dns_timeout_ms: OutboundOptions::default().dns_timeout.as_millis() as u64,
            dns_max_in_flight: OutboundOptions::default().dns_max_in_flight,
            extra_ca_roots: None,
            console_session_minutes: 8 * 60,
            audit_retention_secs: 0,
            shutdown_delay_secs: 0,
            header_timeout_secs: 10,
            connection_idle_secs: 30,
            body_timeout_secs: 10,
            body_min_bytes_per_sec: 8 * 1024,
            max_connections: 4096,
            health_connections: 32,
            workflow_steps: crate::workflow::budget::RUN_FUEL,
            workflow_eval_ms: crate::workflow::budget::RUN_TIME.as_millis() as u64,
        }
    }
}

#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    /// Lists and calls the tools it is allowed.
    Agent,
    /// Everything, including managing plugins and grants and reading the audit trail.
    Admin,
    /// Lists and decides held calls, and reads the audit trail; nothing else
    /// (not even calling tools).
    Approver,
    /// Changes nothing and calls nothing; reads metrics, the audit trail,
    /// what is loaded and granted, and runs (a scraper's or an auditor's
    /// token).
    Observer,
}

impl Role {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One bearer token. The token itself is never in the file: its SHA-256
/// (`sha256`, or a list of them while a token is being rotated: old and new
/// both pass), the name of the environment variable holding it (`env`), or
/// a file holding it (`file`, read again when the tokens are reloaded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub sha256: Option<Digests>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// For agents: the tools it may see and call (`plugin.function`, or
    /// `plugin.*`); none listed means all.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Requests per minute; 0 means the default.
    #[serde(default)]
    pub rate_per_minute: u32,
}

/// One SHA-256 (hex), or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Digests {
    One(String),
    Several(Vec<String>),
}

impl Digests {
    pub fn list(&self) -> &[String] {
        match self {
            Digests::One(one) => std::slice::from_ref(one),
            Digests::Several(several) => several,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config, PolicyError> {
        let config: Config = crate::policy::parse_toml(text, origin)?;
        // Validate the policy part the same way a bare policy is validated.
        config.policy()?;
        ApprovalPolicy::accept(config.approvals.clone())?;
        config.server.check().map_err(|message| PolicyError::Parse {
            path: origin.to_string(),
            message: format!("[server] {message}"),
        })?;
        // A source's name is the folder it is pulled into, and the plugin
        // it must hold.
        for name in config.sources.keys() {
            crate::call::names::check_plugin_name(name).map_err(|message| PolicyError::Parse {
                path: origin.to_string(),
                message: format!("[sources] {message}"),
            })?;
        }
        Ok(config)
    }

    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::from_parts(self.limits.clone(), self.signing.clone(), self.plugins.clone())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_are_named_as_serde_names_them() {
        crate::model::tests::names_match::<super::Role>();
    }
}
