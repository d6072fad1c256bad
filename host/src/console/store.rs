//! The console's signed-in sessions, kept in this process (a restart signs
//! everyone out): what the HTTP state holds, apart from the pages that use
//! it, so the state does not import the console's handlers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

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
    pub(super) fn find(&self, cookie: &str) -> Option<(String, String)> {
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

    pub(super) fn set_flash(&self, cookie: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&key(cookie)) {
            s.flash = Some(flash);
        }
    }

    pub(super) fn take_flash(&self, cookie: &str) -> Option<Flash> {
        self.lock().get_mut(&key(cookie)).and_then(|s| s.flash.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
