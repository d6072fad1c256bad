//! Signing in to the console: an admin or approver token is exchanged for a
//! session cookie, so the token is typed once and never kept by the browser.
//!
//! The cookie is `HttpOnly` (page scripts cannot read it), `SameSite=Strict`
//! (no other site's page can send it), `Secure` when the console is reached
//! over TLS, and expires. Every change also carries the session's CSRF token
//! in its form and must come from the console's own origin, so a change
//! needs all three. Sessions live in this process: a restart signs everyone
//! out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Refusal;
use crate::app::auth::Principal;
use crate::config::Role;
use crate::server::api::Shared;

/// The session cookie's name.
pub const COOKIE: &str = "toolhost_console";
/// Sessions open at once, all tokens: a backstop behind each token's share
/// (`[server] max-console-sessions-per-principal`), reached only by more
/// tokens than it divides by; sign-in beyond is refused until some expire.
const MAX_SESSIONS: usize = 10_000;

/// What happened to the last change, shown once on the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

struct Session {
    /// The token's name: its role and rights are looked up on every
    /// request, so a token removed from the configuration signs out.
    token: String,
    csrf: String,
    /// The order it was opened in: the oldest of a token's goes first.
    opened: u64,
    expires: Instant,
    flash: Option<Flash>,
}

/// The console's open sessions, by the SHA-256 of their cookie (so the
/// map never holds a value that would let one in).
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
    lifetime: Duration,
    /// Sessions one token may have at once.
    per_token: usize,
    /// Sessions opened so far (each one's order).
    opened: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("too many console sessions are open; try again when some have expired")]
pub struct Full;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    /// Sessions lasting `lifetime`, at most `per_token` of them one token's.
    pub fn new(lifetime: Duration, per_token: usize) -> Sessions {
        Sessions {
            open: Mutex::new(HashMap::new()),
            lifetime,
            per_token: per_token.max(1),
            opened: Default::default(),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for the token named `token`; the cookie's value. A
    /// token at its share loses its own oldest sessions for it, so signing
    /// in never fails for what another token holds, and never ends another
    /// token's session.
    pub fn open(&self, token: &str) -> Result<String, Full> {
        let mut open = self.lock();
        let mut own: Vec<([u8; 32], u64)> = open
            .iter()
            .filter(|(_, s)| s.token == token)
            .map(|(k, s)| (*k, s.opened))
            .collect();
        if own.len() >= self.per_token {
            own.sort_unstable_by_key(|(_, opened)| *opened);
            for (k, _) in &own[..=own.len() - self.per_token] {
                open.remove(k);
            }
        }
        if open.len() >= MAX_SESSIONS {
            let now = Instant::now();
            open.retain(|_, s| s.expires > now);
            if open.len() >= MAX_SESSIONS {
                return Err(Full);
            }
        }
        let cookie = random_hex(32);
        let now = Instant::now();
        open.insert(
            key(&cookie),
            Session {
                token: token.to_string(),
                csrf: random_hex(32),
                opened: self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                expires: now + self.lifetime,
                flash: None,
            },
        );
        Ok(cookie)
    }

    /// The token name and CSRF token of a live session.
    fn find(&self, cookie: &str) -> Option<(String, String)> {
        let mut open = self.lock();
        let k = key(cookie);
        match open.get(&k) {
            Some(s) if s.expires > Instant::now() => Some((s.token.clone(), s.csrf.clone())),
            Some(_) => {
                open.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, cookie: &str) {
        self.lock().remove(&key(cookie));
    }

    fn set_flash(&self, cookie: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&key(cookie)) {
            s.flash = Some(flash);
        }
    }

    fn take_flash(&self, cookie: &str) -> Option<Flash> {
        self.lock().get_mut(&key(cookie)).and_then(|s| s.flash.take())
    }
}

/// The session cookie's value, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether the browser reached the console over TLS: the host itself
/// serves plain HTTP, so TLS means a proxy in front that says so.
fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(value: &str, lifetime: Duration, headers: &HeaderMap) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        lifetime.as_secs()
    )
}

/// `Set-Cookie` that ends the session in the browser too.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// What a signed-in person may do, one right per kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Plugins: grants, enable and disable, rollback, upload.
    ManagePlugins,
    /// Approve or reject held calls.
    Decide,
    /// Stop a workflow run.
    CancelRuns,
}

impl Right {
    fn of(role: Role, right: Right) -> bool {
        match (role, right) {
            (Role::Admin, _) => true,
            (Role::Approver, Right::Decide) => true,
            (Role::Approver, Right::ManagePlugins | Right::CancelRuns) => false,
            (Role::Agent | Role::Observer, _) => false,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Right::ManagePlugins => "managing plugins needs an admin token",
            Right::Decide => "deciding held calls needs an approver or admin token",
            Right::CancelRuns => "cancelling runs needs an admin token",
        }
    }
}

/// The signed-in person behind a console request.
pub struct Viewer {
    pub principal: Arc<Principal>,
    cookie: String,
    csrf: String,
    state: Shared,
}

impl Viewer {
    pub fn may(&self, right: Right) -> bool {
        Right::of(self.principal.role, right)
    }

    /// 403, naming what the change needs, unless this person may.
    pub fn require(&self, right: Right) -> Result<(), Refusal> {
        if self.may(right) {
            Ok(())
        } else {
            Err(Refusal::page(
                StatusCode::FORBIDDEN,
                format!(
                    "{} (you are signed in as {:?}, an {} token)",
                    right.needs(),
                    self.principal.name,
                    self.principal.role.as_str()
                ),
            ))
        }
    }

    /// A change must carry this session's CSRF token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), Refusal> {
        if bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::page(
                StatusCode::FORBIDDEN,
                "the form's CSRF token does not match this session; reload the page and try again",
            ))
        }
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Say on the next page how the change went.
    pub fn flash(&self, ok: bool, text: impl Into<String>) {
        self.state
            .console
            .set_flash(&self.cookie, Flash { ok, text: text.into() });
    }

    pub fn take_flash(&self) -> Option<Flash> {
        self.state.console.take_flash(&self.cookie)
    }

    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Refusal> {
        let cookie = cookie(&parts.headers).ok_or(Refusal::SignIn)?;
        let (token, csrf) = state.console.find(&cookie).ok_or(Refusal::SignIn)?;
        let principal = state.app.auth.named(&token).ok_or(Refusal::SignIn)?;
        if principal.role == Role::Agent {
            return Err(Refusal::SignIn);
        }
        if !principal.admit() {
            return Err(Refusal::page(
                StatusCode::TOO_MANY_REQUESTS,
                format!("token {:?} is over its request rate; wait a moment", principal.name),
            ));
        }
        Ok(Viewer {
            principal,
            cookie,
            csrf,
            state: state.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; toolhost_console=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers).as_deref(), Some("abc"));
        headers.insert(header::COOKIE, "toolhost_consolex=abc".parse().unwrap());
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn sessions_expire_and_close() {
        let sessions = Sessions::new(Duration::from_millis(50), 4);
        let c = sessions.open("admin").unwrap();
        assert_eq!(sessions.find(&c).map(|(t, _)| t).as_deref(), Some("admin"));
        sessions.close(&c);
        assert!(sessions.find(&c).is_none());
        let c = sessions.open("admin").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.find(&c).is_none(), "an expired session lets nobody in");
    }

    #[test]
    fn sessions_are_bounded_and_expired_ones_make_room() {
        let sessions = Sessions::new(Duration::from_secs(3600), 1);
        let first = sessions.open("admin").unwrap();
        for i in 1..MAX_SESSIONS {
            sessions.open(&format!("token-{i}")).unwrap();
        }
        assert!(sessions.open("another").is_err(), "one more than the bound is refused");
        assert!(sessions.find(&first).is_some(), "and nobody is signed out for it");
        // Their time comes (set here rather than slept for, so a slow
        // machine cannot make the test wrong).
        let past = Instant::now() - Duration::from_secs(1);
        sessions.lock().values_mut().for_each(|s| s.expires = past);
        assert!(sessions.open("another").is_ok(), "expired sessions make room");
        assert_eq!(sessions.lock().len(), 1);
    }

    #[test]
    fn a_token_at_its_share_loses_its_own_oldest_session() {
        let sessions = Sessions::new(Duration::from_secs(3600), 3);
        let admin = sessions.open("admin").unwrap();
        let observer: Vec<String> = (0..5).map(|_| sessions.open("observer").unwrap()).collect();
        assert!(sessions.find(&observer[0]).is_none() && sessions.find(&observer[1]).is_none());
        assert!(observer[2..].iter().all(|c| sessions.find(c).is_some()));
        assert!(sessions.find(&admin).is_some(), "another token's session stays");
        assert_eq!(sessions.lock().len(), 4);
    }

    #[test]
    fn the_cookie_is_secure_only_over_tls() {
        let plain = set_cookie("v", Duration::from_secs(60), &HeaderMap::new());
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict") && plain.contains("Max-Age=60"));
        assert!(!plain.contains("Secure"));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie("v", Duration::from_secs(60), &headers).ends_with("; Secure"));
    }

    #[test]
    fn approvers_decide_and_nothing_more() {
        assert!(Right::of(Role::Approver, Right::Decide));
        assert!(!Right::of(Role::Approver, Right::ManagePlugins));
        assert!(!Right::of(Role::Approver, Right::CancelRuns));
        assert!(Right::of(Role::Admin, Right::ManagePlugins));
        assert!(!Right::of(Role::Agent, Right::Decide));
    }
}
