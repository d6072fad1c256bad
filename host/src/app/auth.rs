//! Bearer tokens and their roles (agent, approver, admin). Tokens are kept only as SHA-256
//! digests and compared in constant time; each has its own rate limit.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::call::names;
use crate::config::{Role, TokenConfig, DEFAULT_RATE_PER_MINUTE};

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
    rate: NonZeroU32,
    limiter: DefaultDirectRateLimiter,
}

impl Principal {
    fn new(name: &str, role: Role, tools: Vec<String>, rate: NonZeroU32) -> Principal {
        Principal {
            name: name.to_string(),
            role,
            tools,
            rate,
            limiter: RateLimiter::direct(Quota::per_minute(rate).allow_burst(rate)),
        }
    }

    /// May this caller see and call `tool` (`plugin.function`)?
    pub fn may_use(&self, tool: &str) -> bool {
        match self.role {
            Role::Admin => return true,
            // Reviewers decide calls and observers read; neither makes them.
            Role::Approver | Role::Observer => return false,
            Role::Agent => {}
        }
        self.tools.is_empty() || self.tools.iter().any(|p| names::pattern_matches(p, tool))
    }

    /// Take one request from the budget; `false` when it is spent.
    pub fn admit(&self) -> bool {
        self.limiter.check().is_ok()
    }

    /// The same token settings (a reload keeps this principal, and the
    /// budget it has spent).
    fn same(&self, other: &Principal) -> bool {
        self.name == other.name && self.role == other.role && self.tools == other.tools && self.rate == other.rate
    }
}

/// Where a token comes from, as `GET /v1/tokens` and the audit trail show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `sha256` in the configuration.
    Sha256,
    /// `env` in the configuration.
    Env,
    /// `file` in the configuration.
    File,
    /// `TOOLHOST_ADMIN_TOKEN`, `TOOLHOST_AGENT_TOKEN`, `TOOLHOST_APPROVER_TOKEN`.
    Environment,
    /// Made at first start when none were configured.
    Generated,
}

/// A token as operators see it: never the token, only the first 8 hex
/// digits of each SHA-256 that passes (enough to tell a rotation happened).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub name: String,
    pub role: Role,
    pub source: TokenSource,
    pub fingerprints: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    pub rate_per_minute: u32,
}

/// The tokens in force at one time.
struct Tokens {
    digests: Vec<([u8; 32], Arc<Principal>)>,
    views: Vec<TokenView>,
    /// The file of generated tokens, when those are in use.
    generated: Option<String>,
}

impl Tokens {
    fn add(&mut self, source: TokenSource, hashes: Vec<[u8; 32]>, principal: Arc<Principal>) {
        self.views.push(TokenView {
            name: principal.name.clone(),
            role: principal.role,
            source,
            fingerprints: hashes.iter().map(|h| hex::encode(&h[..4])).collect(),
            tools: principal.tools.clone(),
            rate_per_minute: principal.rate.get(),
        });
        self.digests.extend(hashes.into_iter().map(|h| (h, principal.clone())));
    }
}

/// Every token the host accepts. They can be replaced while serving
/// (`reload`): requests check against the set in force when they arrive.
pub struct Auth {
    tokens: ArcSwap<Tokens>,
    default_rate: NonZeroU32,
    generated_file: PathBuf,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Tokens made on first start when none are configured, kept (0600) so the
/// operator can read them and restarts keep them.
#[derive(Serialize, Deserialize, Default)]
pub struct Generated {
    pub admin: String,
    pub agent: String,
}

impl Generated {
    /// The tokens a host generated into `path` (its data folder's
    /// `tokens.json`), for a command that says them to its user.
    pub fn read(path: &Path) -> Result<Generated, AuthError> {
        let err = |message: String| AuthError::Generated {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

/// A token read from the environment or a file must be at least this long.
const MIN_TOKEN_CHARS: usize = 16;

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
        let auth = Auth {
            tokens: ArcSwap::from_pointee(Tokens {
                digests: Vec::new(),
                views: Vec::new(),
                generated: None,
            }),
            default_rate: NonZeroU32::new(default_rate).unwrap_or(fallback),
            generated_file: generated_file.to_path_buf(),
        };
        let tokens = auth.build(configured)?;
        let generated = tokens.generated.clone();
        auth.tokens.store(Arc::new(tokens));
        Ok((auth, generated))
    }

    /// Put `configured` in force in place of the tokens in force now (the
    /// configuration was read again). A token whose settings did not change
    /// keeps its spent rate budget. Returns the tokens before and after; on
    /// an error nothing changes.
    pub fn reload(&self, configured: &[TokenConfig]) -> Result<(Vec<TokenView>, Vec<TokenView>), AuthError> {
        let tokens = self.build(configured)?;
        let after = tokens.views.clone();
        let before = self.tokens.swap(Arc::new(tokens));
        Ok((before.views.clone(), after))
    }

    /// The tokens in force, as operators see them.
    pub fn list(&self) -> Vec<TokenView> {
        self.tokens.load().views.clone()
    }

    fn build(&self, configured: &[TokenConfig]) -> Result<Tokens, AuthError> {
        let current = self.tokens.load();
        // The principal in force with these settings, if any.
        let principal = |name: &str, role: Role, tools: Vec<String>, rate: NonZeroU32| {
            let wanted = Principal::new(name, role, tools, rate);
            current
                .digests
                .iter()
                .find(|(_, p)| p.same(&wanted))
                .map_or_else(|| Arc::new(wanted), |(_, p)| p.clone())
        };
        let mut tokens = Tokens {
            digests: Vec::new(),
            views: Vec::new(),
            generated: None,
        };
        for t in configured {
            let bad = |message: &str| AuthError::Token {
                name: t.name.clone(),
                message: message.into(),
            };
            let presented = |token: &str, whence: &str| {
                let token = token.trim();
                if token.chars().count() < MIN_TOKEN_CHARS {
                    return Err(bad(&format!(
                        "the token in {whence} is shorter than {MIN_TOKEN_CHARS} characters"
                    )));
                }
                Ok(digest(token))
            };
            let (source, hashes) = match (&t.sha256, &t.env, &t.file) {
                (Some(digests), None, None) => {
                    let hashes = digests
                        .list()
                        .iter()
                        .map(|hex_digest| {
                            let bytes = hex::decode(hex_digest.trim()).map_err(|_| bad("sha256 is not hex"))?;
                            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("sha256 must be 32 bytes"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if hashes.is_empty() {
                        return Err(bad("sha256 lists no digest"));
                    }
                    (TokenSource::Sha256, hashes)
                }
                (None, Some(var), None) => match std::env::var(var) {
                    Ok(token) => (
                        TokenSource::Env,
                        vec![presented(&token, &format!("environment variable {var}"))?],
                    ),
                    Err(_) => return Err(bad(&format!("environment variable {var} is not set"))),
                },
                (None, None, Some(path)) => {
                    let token = std::fs::read_to_string(path)
                        .map_err(|e| bad(&format!("cannot read {}: {e}", path.display())))?;
                    (TokenSource::File, vec![presented(&token, &path.display().to_string())?])
                }
                _ => return Err(bad("give exactly one of `sha256`, `env` or `file`")),
            };
            let rate = NonZeroU32::new(t.rate_per_minute).unwrap_or(self.default_rate);
            tokens.add(source, hashes, principal(&t.name, t.role, t.tools.clone(), rate));
        }
        for (var, name, role) in [
            ("TOOLHOST_ADMIN_TOKEN", "admin", Role::Admin),
            ("TOOLHOST_AGENT_TOKEN", "agent", Role::Agent),
            ("TOOLHOST_APPROVER_TOKEN", "approver", Role::Approver),
        ] {
            if let Ok(token) = std::env::var(var) {
                let p = principal(name, role, Vec::new(), self.default_rate);
                tokens.add(TokenSource::Environment, vec![digest(&token)], p);
            }
        }
        if !tokens.digests.is_empty() {
            check_unique(&tokens)?;
            return Ok(tokens);
        }
        let generated = load_or_generate(&self.generated_file)?;
        for (token, name, role) in [
            (&generated.admin, "admin", Role::Admin),
            (&generated.agent, "agent", Role::Agent),
        ] {
            let p = principal(name, role, Vec::new(), self.default_rate);
            tokens.add(TokenSource::Generated, vec![digest(token)], p);
        }
        tokens.generated = Some(self.generated_file.display().to_string());
        Ok(tokens)
    }

    /// The principal a presented token belongs to. Every configured digest
    /// is compared, in constant time, so timing says nothing about which.
    pub fn check(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = digest(token);
        let mut found = None;
        for (hash, principal) in &self.tokens.load().digests {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }

    /// The principal of the token named `name`, if it is still configured
    /// (a held call re-checks its caller's permission when it runs).
    pub fn named(&self, name: &str) -> Option<Arc<Principal>> {
        self.tokens
            .load()
            .digests
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(_, p)| p.clone())
    }
}

/// A token's name is who it is (in the audit trail, in idempotency keys):
/// two tokens with one name, or one token listed twice, are refused.
fn check_unique(tokens: &Tokens) -> Result<(), AuthError> {
    let refused = |name: &str, message: &str| AuthError::Token {
        name: name.to_string(),
        message: message.into(),
    };
    for (i, view) in tokens.views.iter().enumerate() {
        if tokens.views[..i].iter().any(|other| other.name == view.name) {
            return Err(refused(
                &view.name,
                "another token has the same name; token names must be unique (an environment token \
                 TOOLHOST_ADMIN_TOKEN, TOOLHOST_AGENT_TOKEN or TOOLHOST_APPROVER_TOKEN is named `admin`, `agent` or `approver`)",
            ));
        }
    }
    for (i, (hash, principal)) in tokens.digests.iter().enumerate() {
        if tokens.digests[..i].iter().any(|(other, _)| other == hash) {
            return Err(refused(&principal.name, "the same token is configured twice"));
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
    if path.exists() {
        return Generated::read(path);
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
