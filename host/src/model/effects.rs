//! What a connector did at its imports, as its call's record keeps it: the
//! outbound requests it made, the capability uses its grant refused, and
//! where it wrote a secret it was handed.

use serde::{Deserialize, Serialize};

/// One outbound HTTP request a connector made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundRecord {
    pub method: String,
    /// `scheme://host:port`.
    pub origin: String,
    pub path: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Time from send to response headers (or failure).
    pub micros: u64,
}

/// An outbound request its call was still waiting on when the call ran out
/// of time: what the timeout's record names, so the operator knows which
/// upstream hung.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub method: String,
    /// `scheme://host:port`.
    pub origin: String,
    pub path: String,
    /// What it was waiting for.
    pub waiting_for: Awaited,
    /// How long it had been in flight.
    pub waited_ms: u64,
}

/// What an outbound request in flight waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaited {
    /// The upstream's answer (status and headers): DNS, connection and
    /// the upstream's own time.
    Response,
    /// The rest of the response body.
    Body,
}

impl std::fmt::Display for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.waiting_for {
            Awaited::Response => "its response",
            Awaited::Body => "the rest of its response body",
        };
        write!(
            f,
            "{} {}{} had waited {} ms for {what}",
            self.method, self.origin, self.path, self.waited_ms
        )
    }
}

/// What a connector may be granted, and so refused.
#[derive(
    strum::IntoStaticStr,
    strum::VariantArray,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Capability {
    Http,
    Kv,
    Secret,
}

impl Capability {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A capability use the grant refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Denial {
    pub capability: Capability,
    pub detail: String,
}

/// Where a connector tried to let a secret out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sink {
    /// Its log lines, stdout or stderr.
    Log,
    /// Its result.
    Result,
    /// Its error (typed or a trap's message).
    Error,
    /// What it asked for and was refused (a secret's name, a URL).
    Denial,
    /// A progress report's message.
    Progress,
}

/// A secret found in what a connector wrote, and masked there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    pub secret: String,
    pub into: Sink,
}
