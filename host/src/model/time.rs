//! Time as records keep it: Unix milliseconds (approvals, runs, idempotency
//! answers) or microseconds (audit ids), and RFC 3339 text for people.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds now (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// Unix milliseconds now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// Unix microseconds now (0 if the clock is before 1970).
pub fn now_micros() -> u64 {
    since_epoch().as_micros() as u64
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Unix milliseconds as RFC 3339, UTC, to the second (as pages show times).
pub fn rfc3339_secs(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Unix milliseconds as RFC 3339, UTC, to the millisecond.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Unix microseconds as RFC 3339, UTC, to the microsecond.
pub fn rfc3339_micros(micros: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(micros)).to_string()
}

/// RFC 3339 (or its weaker forms: no zone, a space for `T`) as Unix
/// seconds; `None` for anything else or a time before 1970.
pub fn parse_rfc3339_secs(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}
