//! The audit trail: one append-only record per call, in a sled tree keyed by
//! a time-ordered id, durable before the caller hears the outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capabilities::{Denial, OutboundRecord};
use crate::invoke::CallOutcome;
use crate::storage::{Storage, StorageError};

/// Most records one query returns.
pub const MAX_PAGE: usize = 1000;

/// What one call did, as the operator reads it afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Time-ordered and unique; also the paging cursor.
    pub id: String,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    /// `http`, `mcp` or `cli`.
    pub via: String,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
    pub tool: String,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    /// The arguments, with secret-looking fields redacted.
    pub arguments: Value,
    /// `ok` or the error kind.
    pub outcome: String,
    pub error: Option<Value>,
    pub duration_us: u64,
    pub instantiate_us: u64,
    pub execute_us: u64,
    pub outbound: Vec<OutboundRecord>,
    pub denials: Vec<Denial>,
}

/// Who asked, and how.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub via: &'static str,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Something that happened to a plugin, for the audit trail.
pub struct PluginEvent<'a> {
    /// `folder`, `api`, `rollback`.
    pub origin: &'a str,
    pub plugin: &'a str,
    /// `loaded`, `refused`, `unloaded`.
    pub outcome: &'a str,
    pub detail: String,
    pub version: Option<String>,
    pub digest: Option<String>,
}

/// Which records a query wants. Records come newest first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    pub tool: Option<String>,
    /// `http`, `mcp`, `cli`, or a plugin event's origin (`folder`, `api`, `rollback`).
    pub via: Option<String>,
    pub outcome: Option<String>,
    pub session: Option<String>,
    pub token: Option<String>,
    /// RFC 3339 or Unix seconds; inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only records older than this id (the `next` of the previous page).
    pub before: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("audit: {0}")]
    Sled(#[from] sled::Error),
    #[error("bad filter `{field}`: {message}")]
    BadFilter { field: &'static str, message: String },
}

pub struct AuditLog {
    tree: sled::Tree,
    storage: Storage,
    last: AtomicU64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl AuditLog {
    pub fn open(storage: &Storage) -> Result<AuditLog, AuditError> {
        let tree = storage.db().open_tree("audit")?;
        // Ids stay increasing across restarts, even if the clock stepped back.
        let last = match tree.last()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        Ok(AuditLog {
            tree,
            storage: storage.clone(),
            last: AtomicU64::new(last),
        })
    }

    /// A new id: microseconds since the epoch, shifted to leave room for
    /// calls in the same microsecond.
    fn next_id(&self) -> u64 {
        let candidate = now_micros() << 8;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = candidate.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Record a call and make it durable.
    /// `secret_fields`: argument paths the plugin's manifest marks secret.
    pub async fn append(
        &self,
        caller: &Caller,
        arguments: &Value,
        secret_fields: &[String],
        outcome: &CallOutcome,
    ) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let (outcome_kind, error) = match &outcome.result {
            Ok(_) => ("ok".to_string(), None),
            Err(e) => (
                e.kind().to_string(),
                Some(serde_json::to_value(e).unwrap_or(Value::Null)),
            ),
        };
        let record = AuditRecord {
            id: id.to_string(),
            time: rfc3339_micros(id >> 8),
            via: caller.via.to_string(),
            token: caller.token.clone(),
            session: caller.session.clone(),
            idempotency_key: caller.idempotency_key.clone(),
            tool: outcome.tool.clone(),
            plugin_version: outcome.plugin_version.clone(),
            plugin_digest: outcome.plugin_digest.clone(),
            arguments: redact(arguments, secret_fields),
            outcome: outcome_kind,
            error,
            duration_us: outcome.timings.total_us,
            instantiate_us: outcome.timings.instantiate_us,
            execute_us: outcome.timings.execute_us,
            outbound: outcome.journal.outbound.clone(),
            denials: outcome.journal.denials.clone(),
        };
        self.write(&record, id).await?;
        Ok(record)
    }

    /// Record something that happened to a plugin (loaded, refused,
    /// unloaded): operators find it in the same trail, under the tool name
    /// `(plugin) NAME`.
    pub async fn append_event(&self, event: &PluginEvent<'_>) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let record = AuditRecord {
            id: id.to_string(),
            time: rfc3339_micros(id >> 8),
            via: event.origin.to_string(),
            token: None,
            session: None,
            idempotency_key: None,
            tool: format!("(plugin) {}", event.plugin),
            plugin_version: event.version.clone(),
            plugin_digest: event.digest.clone(),
            arguments: Value::Null,
            outcome: event.outcome.to_string(),
            error: Some(Value::from(event.detail.clone())),
            duration_us: 0,
            instantiate_us: 0,
            execute_us: 0,
            outbound: Vec::new(),
            denials: Vec::new(),
        };
        self.write(&record, id).await?;
        Ok(record)
    }

    async fn write(&self, record: &AuditRecord, id: u64) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.tree.insert(id.to_be_bytes(), bytes)?;
        self.storage.flush().await?;
        Ok(())
    }

    /// Records matching `filter`, newest first, and the cursor of the next
    /// page when there may be more.
    pub fn query(&self, filter: &AuditFilter) -> Result<(Vec<AuditRecord>, Option<String>), AuditError> {
        let limit = filter.limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let since = filter.since.as_deref().map(|s| parse_time("since", s)).transpose()?;
        let until = filter.until.as_deref().map(|s| parse_time("until", s)).transpose()?;
        let before = match &filter.before {
            Some(b) => b.parse::<u64>().map_err(|_| AuditError::BadFilter {
                field: "before",
                message: format!("{b:?} is not a record id"),
            })?,
            None => u64::MAX,
        };
        let upper = until.map_or(before, |u| before.min(((u + 1) * 1_000_000) << 8));
        let lower = since.map_or(0, |s| (s * 1_000_000) << 8);
        let mut records = Vec::new();
        for entry in self.tree.range(lower.to_be_bytes()..upper.to_be_bytes()).rev() {
            let (_, bytes) = entry?;
            let Ok(record) = serde_json::from_slice::<AuditRecord>(&bytes) else {
                continue;
            };
            let matches = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
            if matches(&filter.tool, Some(&record.tool))
                && matches(&filter.via, Some(&record.via))
                && matches(&filter.outcome, Some(&record.outcome))
                && matches(&filter.session, record.session.as_deref())
                && matches(&filter.token, record.token.as_deref())
            {
                records.push(record);
                if records.len() == limit {
                    break;
                }
            }
        }
        let next = (records.len() == limit).then(|| records[records.len() - 1].id.clone());
        Ok((records, next))
    }
}

fn parse_time(field: &'static str, s: &str) -> Result<u64, AuditError> {
    s.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339(s))
        .ok_or_else(|| AuditError::BadFilter {
            field,
            message: format!("{s:?} is neither RFC 3339 nor Unix seconds"),
        })
}

/// Field names whose values never go into the audit trail.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cardnumber",
    "cvv",
    "cvc",
    "iban",
    "ssn",
    "pin",
];

fn is_secret_name(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    SECRET_NAMES
        .iter()
        .any(|s| folded == *s || folded.ends_with(s) && *s != "pin")
}

/// The arguments with the values of secret fields replaced: those the
/// manifest marks (`secret-fields`, dotted paths) and those whose names look
/// secret (`password`, `api-key`, ...).
pub fn redact(value: &Value, marked: &[String]) -> Value {
    redact_at(value, "", marked)
}

fn redact_at(value: &Value, path: &str, marked: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let v = if is_secret_name(k) || marked.contains(&here) {
                        Value::from("[redacted]")
                    } else {
                        redact_at(v, &here, marked)
                    };
                    (k.clone(), v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_at(v, path, marked)).collect()),
        other => other.clone(),
    }
}

fn rfc3339_micros(micros: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(micros)).to_string()
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_marked_paths_and_secret_names() {
        let args = json!({
            "request": { "card-number": "4111", "amount": 5, "lines": [{ "pin": "1234", "sku": "A" }] },
            "password": "hunter2",
            "customer-id": "C-1",
            "shipping": "express",
        });
        let out = redact(&args, &["request.amount".to_string()]);
        assert_eq!(out["request"]["card-number"], "[redacted]");
        assert_eq!(out["request"]["amount"], "[redacted]");
        assert_eq!(out["request"]["lines"][0]["pin"], "[redacted]");
        assert_eq!(out["request"]["lines"][0]["sku"], "A");
        assert_eq!(out["password"], "[redacted]");
        assert_eq!(out["customer-id"], "C-1");
        assert_eq!(out["shipping"], "express");
    }
}
