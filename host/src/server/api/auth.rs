//! Extractors that authenticate: `Agent` for any valid token, and one per
//! set of roles a route admits: `Admin`, `Reviewer` (approver or admin),
//! `Reader` (admin or observer: what is loaded, metrics, runs) and
//! `AuditReader` (approver, admin or observer: the audit trail). Each takes
//! one request from the token's rate budget.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::{ApiError, Shared};
use crate::config::Role;
use crate::server::auth::Principal;

pub struct Agent(pub Arc<Principal>);

/// The principal, if its role is one of `roles`; otherwise 403 naming what
/// the route needs.
fn require(principal: Arc<Principal>, roles: &[Role], needs: &str) -> Result<Arc<Principal>, ApiError> {
    if roles.contains(&principal.role) {
        return Ok(principal);
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "token {:?} is an {} token; this needs {needs}",
            principal.name,
            principal.role.as_str()
        ),
    ))
}

pub(super) fn authenticate(parts: &Parts, state: &Shared) -> Result<Arc<Principal>, ApiError> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing Authorization: Bearer <token>",
        )
    })?;
    // The scheme's name is case-insensitive (RFC 9110 §11.1): `bearer x`
    // is as good as `Bearer x`.
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authorization must be `Bearer <token>`",
            )
        })?;
    let principal = state
        .auth
        .check(token.trim())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown token"))?;
    if !principal.admit() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("token {:?} is over its request rate", principal.name),
        )
        .retry_after(1));
    }
    Ok(principal)
}

impl FromRequestParts<Shared> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        authenticate(parts, state).map(Agent)
    }
}

/// An extractor admitting the tokens of `roles`; any other is refused
/// (403) with what the route needs.
macro_rules! roles {
    ($(#[$doc:meta])* $name:ident, [$($role:ident),+], $needs:literal) => {
        $(#[$doc])*
        // Some routes need only the check, not who passed it.
        #[allow(dead_code)]
        pub struct $name(pub Arc<Principal>);

        impl FromRequestParts<Shared> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
                require(authenticate(parts, state)?, &[$(Role::$role),+], $needs).map($name)
            }
        }
    };
}

roles!(
    /// Changes what is loaded, granted and allowed.
    Admin,
    [Admin],
    "an admin token"
);
roles!(
    /// Decides held calls.
    Reviewer,
    [Approver, Admin],
    "an approver or admin token"
);
roles!(
    /// Reads what is loaded and granted, metrics and runs.
    Reader,
    [Admin, Observer],
    "an admin or observer token"
);
roles!(
    /// Reads the audit trail and the workflow runs.
    AuditReader,
    [Approver, Admin, Observer],
    "an approver, admin or observer token"
);
