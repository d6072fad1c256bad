//! Extractors that authenticate: `Agent` for any valid token, and one per
//! set of roles a route admits: `Admin`, `Reviewer` (approver or admin),
//! `Reader` (admin or observer: what is loaded, metrics, runs) and
//! `AuditReader` (approver, admin or observer: the audit trail). Each takes
//! one request from the token's rate budget.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::{ApiError, Shared};
use crate::app::auth::Principal;
use crate::app::metrics::{BearerFailure, Metrics};
use crate::config::Role;

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
    let principal = bearer(parts, state).map_err(|failure| {
        let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        state.bearer_failures.refuse(failure, source, &state.app.metrics)
    })?;
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

/// The principal the request's bearer token names, or why there is none.
fn bearer(parts: &Parts, state: &Shared) -> Result<Arc<Principal>, BearerFailure> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or(BearerFailure::Missing)?;
    // The scheme's name is case-insensitive (RFC 9110 §11.1): `bearer x`
    // is as good as `Bearer x`.
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(BearerFailure::Malformed)?;
    state.app.auth.check(token.trim()).ok_or(BearerFailure::Unknown)
}

/// Failed bearer checks. Each is counted (`toolhost_bearer_failures_total`
/// by reason) and logged with where it came from, at most
/// [`LOGGED_PER_SECOND`] lines a second; and each is charged to its
/// source's budget ([`SOURCE_BURST`], refilled one every
/// [`SOURCE_REFILL`]): past it, that source's failures are answered 429
/// until the budget refills. A token is checked before anything is charged,
/// so a valid one is never slowed, whatever its source did.
pub struct BearerFailures {
    /// Locked on the failure path only; replaced whole when it must forget.
    sources: std::sync::Mutex<governor::DefaultKeyedRateLimiter<IpAddr>>,
    burst: NonZeroU32,
    log: governor::DefaultDirectRateLimiter,
}

/// One more failed check allowed a source every this long.
const SOURCE_REFILL: Duration = Duration::from_secs(3);
/// Lines about failed checks written to the log a second, at most.
const LOGGED_PER_SECOND: u32 = 5;
/// Sources remembered at once; past this the ones whose budget is full
/// again are forgotten, and if all are still spending, all are.
const SOURCES_KEPT: usize = 16_384;

impl BearerFailures {
    /// Each source may fail `burst` times at once (at least once).
    pub fn new(burst: u32) -> BearerFailures {
        let logged = NonZeroU32::new(LOGGED_PER_SECOND).expect("not zero");
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        BearerFailures {
            sources: std::sync::Mutex::new(sources(burst)),
            burst,
            log: governor::RateLimiter::direct(governor::Quota::per_second(logged)),
        }
    }
}

fn sources(burst: NonZeroU32) -> governor::DefaultKeyedRateLimiter<IpAddr> {
    let per_source = governor::Quota::with_period(SOURCE_REFILL)
        .expect("a period")
        .allow_burst(burst);
    governor::RateLimiter::keyed(per_source)
}

impl BearerFailures {
    /// The refusal for `failure` from `source` (unknown where the request
    /// did not come over a connection: then only counted and logged).
    fn refuse(&self, failure: BearerFailure, source: Option<IpAddr>, metrics: &Metrics) -> ApiError {
        if let Some(wait) = self.charge(failure, source, metrics) {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                "too many requests with a missing or unknown token from this address; wait before trying again",
            )
            .retry_after(wait.as_secs().max(1));
        }
        let message = match failure {
            BearerFailure::Missing => "missing Authorization: Bearer <token>",
            BearerFailure::Malformed => "Authorization must be `Bearer <token>`",
            BearerFailure::Unknown => "unknown token",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Count, log and charge one failed check from `source`: how long the
    /// source must wait if its budget is spent.
    pub(crate) fn charge(&self, failure: BearerFailure, source: Option<IpAddr>, metrics: &Metrics) -> Option<Duration> {
        metrics.bearer_failed(failure);
        let source = source.map(source_key);
        if self.log.check().is_ok() {
            let from = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            tracing::warn!(source = %from, reason = ?failure, "bearer check failed");
        }
        if let Some(source) = source {
            let spent = {
                let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
                if sources.len() >= SOURCES_KEPT {
                    sources.retain_recent();
                    if sources.len() >= SOURCES_KEPT {
                        *sources = self::sources(self.burst);
                    }
                }
                use governor::clock::Clock;
                let now = sources.clock().now();
                sources.check_key(&source).err().map(|until| until.wait_time_from(now))
            };
            return spent;
        }
        None
    }
}

/// The budget a source address spends: an IPv6 address by its /64, which
/// one client usually holds whole.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
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
