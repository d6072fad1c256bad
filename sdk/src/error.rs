//! The error every tool returns: `toolhost:connector/types.error`.
//!
//! Connectors build it from what went wrong upstream, so that an agent sees the
//! same shape (`not-found`, `rate-limited`, ...) from every vendor.

use crate::http::{HttpError, Response};
use crate::kv::KvError;
use crate::secrets::SecretError;

// wit-bindgen derives `Display` and `std::error::Error` for `Error` itself.
pub use crate::bindings::host::toolhost::connector::types::{Error, Money, UpstreamFailure};

/// Shorthand for a tool's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The upstream answered with an error status: map it to what it means
    /// for the agent, with what the upstream said (see
    /// [`Response::error_message`]).
    pub fn from_status(response: &Response) -> Error {
        let status = response.status;
        let message = response.error_message(200);
        match status {
            400 | 422 => Error::InvalidInput(message),
            401 | 403 => Error::Denied(format!("upstream refused ({status}): {message}")),
            404 | 410 => Error::NotFound(message),
            409 => Error::Conflict(message),
            429 => Error::RateLimited(response.header("retry-after").and_then(|v| v.trim().parse().ok())),
            _ => Error::Upstream(UpstreamFailure {
                status: Some(status),
                message,
            }),
        }
    }

    /// An upstream body that could not be understood.
    pub fn malformed(what: impl std::fmt::Display) -> Error {
        Error::Upstream(UpstreamFailure {
            status: None,
            message: format!("malformed upstream response: {what}"),
        })
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        match e {
            HttpError::Denied(m) => Error::Denied(m),
            HttpError::InvalidRequest(m) => Error::InvalidInput(m),
            other => Error::Upstream(UpstreamFailure {
                status: None,
                message: other.to_string(),
            }),
        }
    }
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Error {
        match e {
            KvError::Denied(m) => Error::Denied(format!("storage: {m}")),
            KvError::QuotaExceeded(m) => Error::Internal(format!("storage quota exceeded: {m}")),
            KvError::TooLarge(m) => Error::InvalidInput(format!("too large to store: {m}")),
            KvError::Internal(m) => Error::Internal(format!("storage: {m}")),
        }
    }
}

impl From<SecretError> for Error {
    fn from(e: SecretError) -> Error {
        match e {
            SecretError::NotGranted(name) => Error::Denied(format!("secret {name:?} is not granted")),
            SecretError::NotSet(name) => Error::Internal(format!("secret {name:?} is not set by the operator")),
        }
    }
}
