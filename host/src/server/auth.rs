//! Bearer tokens and their roles (agent, approver, admin). Tokens are kept only as SHA-256
//! digests and compared in constant time; each has its own rate limit.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::call::names;
use crate::config::{Role, TokenConfig};

/// Requests per minute for a token that does not set its own.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 1200;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token {name:?}: {message}")]
    Token { name: String, message: String },
    #[error("generated tokens at {path}: {message}")]
    Generated { path: String, message: String },
}

/// Who is calling.
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Tool patterns an agent may use; empty means all.
    tools: Vec<String>,
    limiter: DefaultDirectRateLimiter,
}

impl Principal {
    fn new(name: &str, role: Role, tools: Vec<String>, rate: NonZeroU32) -> Principal {
        Principal {
            name: name.to_string(),
            role,
            tools,
            limiter: RateLimiter::direct(Quota::per_minute(rate).allow_burst(rate)),
        }
    }

    /// May this caller see and call `tool` (`plugin.function`)?
    pub fn may_use(&self, tool: &str) -> bool {
        match self.role {
            Role::Admin => return true,
            // Reviewers decide calls; they never make them.
            Role::Approver => return false,
            Role::Agent => {}
        }
        self.tools.is_empty() || self.tools.iter().any(|p| names::pattern_matches(p, tool))
    }

    /// Take one request from the budget; `false` when it is spent.
    pub fn admit(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

pub struct Auth {
    tokens: Vec<([u8; 32], Arc<Principal>)>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Tokens made on first start when none are configured, kept (0600) so the
/// operator can read them and restarts keep them.
#[derive(Serialize, Deserialize)]
struct Generated {
    admin: String,
    agent: String,
}

impl Auth {
    /// Tokens from the config, then `TOOLHOST_ADMIN_TOKEN`,
    /// `TOOLHOST_AGENT_TOKEN` and `TOOLHOST_APPROVER_TOKEN`; with none at all, generated ones saved to
    /// `generated_file`. Returns the path of that file when it is in use.
    pub fn new(
        configured: &[TokenConfig],
        default_rate: u32,
        generated_file: &Path,
    ) -> Result<(Auth, Option<String>), AuthError> {
        let fallback = NonZeroU32::new(DEFAULT_RATE_PER_MINUTE).expect("non-zero");
        let default_rate = NonZeroU32::new(default_rate).unwrap_or(fallback);
        let rate = |r: u32| NonZeroU32::new(r).unwrap_or(default_rate);
        let mut tokens = Vec::new();
        for t in configured {
            let bad = |message: &str| AuthError::Token {
                name: t.name.clone(),
                message: message.into(),
            };
            let hash = match (&t.sha256, &t.env) {
                (Some(hex_digest), None) => {
                    let bytes = hex::decode(hex_digest.trim()).map_err(|_| bad("sha256 is not hex"))?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("sha256 must be 32 bytes"))?
                }
                (None, Some(var)) => match std::env::var(var) {
                    Ok(token) if token.len() >= 16 => digest(&token),
                    Ok(_) => return Err(bad("the token in the environment is shorter than 16 characters")),
                    Err(_) => return Err(bad(&format!("environment variable {var} is not set"))),
                },
                _ => return Err(bad("give exactly one of `sha256` or `env`")),
            };
            tokens.push((
                hash,
                Arc::new(Principal::new(
                    &t.name,
                    t.role,
                    t.tools.clone(),
                    rate(t.rate_per_minute),
                )),
            ));
        }
        for (var, name, role) in [
            ("TOOLHOST_ADMIN_TOKEN", "admin", Role::Admin),
            ("TOOLHOST_AGENT_TOKEN", "agent", Role::Agent),
            ("TOOLHOST_APPROVER_TOKEN", "approver", Role::Approver),
        ] {
            if let Ok(token) = std::env::var(var) {
                tokens.push((
                    digest(&token),
                    Arc::new(Principal::new(name, role, Vec::new(), default_rate)),
                ));
            }
        }
        if !tokens.is_empty() {
            check_unique(&tokens)?;
            return Ok((Auth { tokens }, None));
        }
        let generated = load_or_generate(generated_file)?;
        tokens.push((
            digest(&generated.admin),
            Arc::new(Principal::new("admin", Role::Admin, Vec::new(), default_rate)),
        ));
        tokens.push((
            digest(&generated.agent),
            Arc::new(Principal::new("agent", Role::Agent, Vec::new(), default_rate)),
        ));
        Ok((Auth { tokens }, Some(generated_file.display().to_string())))
    }

    /// The principal a presented token belongs to. Every configured digest
    /// is compared, in constant time, so timing says nothing about which.
    pub fn check(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = digest(token);
        let mut found = None;
        for (hash, principal) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }

    /// The principal of the token named `name`, if it is still configured
    /// (a held call re-checks its caller's permission when it runs).
    pub fn named(&self, name: &str) -> Option<Arc<Principal>> {
        self.tokens.iter().find(|(_, p)| p.name == name).map(|(_, p)| p.clone())
    }
}

/// A token's name is who it is (in the audit trail, in idempotency keys):
/// two tokens with one name, or one token listed twice, are refused.
fn check_unique(tokens: &[([u8; 32], Arc<Principal>)]) -> Result<(), AuthError> {
    for (i, (hash, principal)) in tokens.iter().enumerate() {
        for (other_hash, other) in &tokens[..i] {
            let message = if other.name == principal.name {
                "another token has the same name; token names must be unique (an environment token \
                 TOOLHOST_ADMIN_TOKEN, TOOLHOST_AGENT_TOKEN or TOOLHOST_APPROVER_TOKEN is named `admin`, `agent` or `approver`)"
            } else if other_hash == hash {
                "the same token is configured twice"
            } else {
                continue;
            };
            return Err(AuthError::Token {
                name: principal.name.clone(),
                message: message.into(),
            });
        }
    }
    Ok(())
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("th_{}", hex::encode(bytes))
}

fn load_or_generate(path: &Path) -> Result<Generated, AuthError> {
    let err = |message: String| AuthError::Generated {
        path: path.display().to_string(),
        message,
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        return serde_json::from_str(&text).map_err(|e| err(e.to_string()));
    }
    let generated = Generated {
        admin: random_token(),
        agent: random_token(),
    };
    let text = serde_json::to_string_pretty(&generated).map_err(|e| err(e.to_string()))?;
    write_private(path, &text).map_err(|e| err(e.to_string()))?;
    Ok(generated)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
