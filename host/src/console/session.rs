//! Signing in to the console: an admin or approver token is exchanged for a
//! session cookie, so the token is typed once and never kept by the browser.
//!
//! The cookie is `HttpOnly` (page scripts cannot read it), `SameSite=Strict`
//! (no other site's page can send it), `Secure` when the console is reached
//! over TLS, and expires. Every change also carries the session's CSRF token
//! in its form and must come from the console's own origin, so a change
//! needs all three. Sessions live in this process: a restart signs everyone
//! out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

pub use super::store::{Flash, Full, Sessions};
use super::Refusal;
use crate::app::auth::Principal;
use crate::config::Role;
use crate::server::api::Shared;

/// The session cookie's name.
pub const COOKIE: &str = "toolhost_console";
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
