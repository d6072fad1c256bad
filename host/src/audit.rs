//! The audit trail: one append-only record per call, in a sled tree keyed by
//! a time-ordered id, durable before the caller hears the outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capabilities::{Denial, Echo, EffectGate, OutboundRecord};
use crate::idempotency::arguments_digest;
use crate::invoke::{CallError, CallOutcome};
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
    pub via: Via,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
    pub tool: String,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    /// The arguments, with secret-looking fields redacted.
    pub arguments: Value,
    /// SHA-256 of the arguments as given: what an idempotency key or an
    /// approval binds.
    #[serde(default)]
    pub arguments_digest: Option<String>,
    /// `ok` or the error kind; `running` while a call that has begun to
    /// change things is in flight, `interrupted` for one the host stopped
    /// in the middle of.
    pub outcome: String,
    /// Whether a side effect (kv write, outbound request other than GET or
    /// HEAD) may have left the host.
    #[serde(default)]
    pub effects: bool,
    pub error: Option<Value>,
    pub duration_us: u64,
    pub instantiate_us: u64,
    pub execute_us: u64,
    pub outbound: Vec<OutboundRecord>,
    /// The first denials of the call (at most `capabilities::DENIALS_KEPT`).
    pub denials: Vec<Denial>,
    /// How many there were in all.
    #[serde(default)]
    pub denials_total: u32,
    /// Where the connector wrote a secret it was handed (masked there).
    #[serde(default)]
    pub secret_echoes: Vec<Echo>,
}

/// How something reached the host: a call (REST, MCP, the CLI), or a
/// bundle (the plugins folder, an upload, a rollback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    #[default]
    Http,
    Mcp,
    Cli,
    Folder,
    Api,
    Rollback,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Mcp => "mcp",
            Via::Cli => "cli",
            Via::Folder => "folder",
            Via::Api => "api",
            Via::Rollback => "rollback",
        }
    }
}

/// Who asked, and how.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub via: Via,
    pub token: Option<String>,
    pub session: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Something that happened to a plugin, for the audit trail.
pub struct PluginEvent<'a> {
    /// `Folder`, `Api` or `Rollback`.
    pub via: Via,
    pub plugin: &'a str,
    /// `loaded`, `refused`, `unloaded`.
    pub outcome: &'a str,
    pub detail: String,
    pub version: Option<String>,
    pub digest: Option<String>,
}

/// The record of a call in flight; see [`AuditLog::begin`]. It is the
/// call's [`EffectGate`]: opening it makes the record durable as `running`.
pub struct OpenRecord {
    id: u64,
    record: Mutex<AuditRecord>,
    tree: sled::Tree,
    open: sled::Tree,
    storage: Storage,
    /// Set once the `running` record is durable (or failed to become so).
    durable: tokio::sync::OnceCell<Result<(), String>>,
    opened: AtomicBool,
}

impl OpenRecord {
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// The version expected to serve the call, so that even a record a
    /// crash leaves `running` names it (`finish` sets what really served).
    pub fn set_plugin(&self, version: String, digest: String) {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        record.plugin_version = Some(version);
        record.plugin_digest = Some(digest);
    }

    async fn write_running(&self) -> Result<(), String> {
        let bytes = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            record.effects = true;
            serde_json::to_vec(&*record).unwrap_or_default()
        };
        let key = self.id.to_be_bytes();
        let write = || -> Result<(), sled::Error> {
            self.tree.insert(key, bytes)?;
            self.open.insert(key, &[])?;
            Ok(())
        };
        write().map_err(|e| e.to_string())?;
        self.storage.flush().await.map_err(|e| e.to_string())
    }

    /// Close the record with the call's outcome and make it durable: the
    /// one record of the call, under the id it had from the start.
    pub async fn finish(&self, outcome: &CallOutcome) -> Result<AuditRecord, AuditError> {
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            let (kind, error) = match &outcome.result {
                Ok(_) => ("ok".to_string(), None),
                Err(e) => (
                    e.kind().to_string(),
                    Some(serde_json::to_value(e).unwrap_or(Value::Null)),
                ),
            };
            record.tool = outcome.tool.clone();
            record.plugin_version = outcome.plugin_version.clone();
            record.plugin_digest = outcome.plugin_digest.clone();
            record.outcome = kind;
            record.error = error;
            record.effects |= outcome.effects;
            record.duration_us = outcome.timings.total_us;
            record.instantiate_us = outcome.timings.instantiate_us;
            record.execute_us = outcome.timings.execute_us;
            record.outbound = outcome.journal.outbound.clone();
            record.denials = outcome.journal.denials.clone();
            record.denials_total = outcome.journal.denials_total();
            record.secret_echoes = outcome.journal.echoes.clone();
            record.clone()
        };
        let key = self.id.to_be_bytes();
        self.tree.insert(key, serde_json::to_vec(&record).unwrap_or_default())?;
        if self.opened.load(Ordering::Acquire) {
            self.open.remove(key)?;
        }
        self.storage.flush().await?;
        Ok(record)
    }
}

impl EffectGate for OpenRecord {
    fn open(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.opened.store(true, Ordering::Release);
            self.durable.get_or_init(|| self.write_running()).await.clone()
        })
    }

    fn opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }
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
    /// Ids of records written as `running`: a call that started changing
    /// things and has not finished. What is left here at start belongs to
    /// calls a crash cut short.
    open: sled::Tree,
    storage: Storage,
    last: AtomicU64,
    /// The records closed as `interrupted` when this log was opened.
    interrupted: Vec<AuditRecord>,
}

/// Outcome of a call the host stopped in the middle of.
pub const INTERRUPTED: &str = "interrupted";
/// Outcome of a call in flight that has begun to change things.
pub const RUNNING: &str = "running";

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl AuditLog {
    /// Open the trail; records a crash left `running` are closed as
    /// `interrupted` (durably) before anything else happens.
    pub fn open(storage: &Storage) -> Result<AuditLog, AuditError> {
        let tree = storage.db().open_tree("audit")?;
        let open = storage.db().open_tree("audit-open")?;
        // Ids stay increasing across restarts, even if the clock stepped back.
        let last = match tree.last()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let mut log = AuditLog {
            tree,
            open,
            storage: storage.clone(),
            last: AtomicU64::new(last),
            interrupted: Vec::new(),
        };
        log.interrupted = log.close_interrupted()?;
        Ok(log)
    }

    /// At start, before any call: blocking is fine here.
    fn close_interrupted(&self) -> Result<Vec<AuditRecord>, AuditError> {
        let mut closed = Vec::new();
        for entry in self.open.iter() {
            let (key, _) = entry?;
            if let Some(bytes) = self.tree.get(&key)? {
                if let Ok(mut record) = serde_json::from_slice::<AuditRecord>(&bytes) {
                    let error = CallError::Interrupted {
                        message: "the host stopped while this call ran; it may have had effects and was not run again"
                            .into(),
                    };
                    record.outcome = INTERRUPTED.into();
                    record.error = Some(serde_json::to_value(&error).unwrap_or(Value::Null));
                    record.effects = true;
                    self.tree
                        .insert(&key, serde_json::to_vec(&record).unwrap_or_default())?;
                    tracing::warn!(id = %record.id, tool = %record.tool, "audit: a call cut short by a stop is recorded as interrupted");
                    closed.push(record);
                }
            }
            self.open.remove(&key)?;
        }
        if !closed.is_empty() {
            self.storage.db().flush()?;
        }
        Ok(closed)
    }

    /// Calls found cut short when the trail was opened.
    pub fn interrupted(&self) -> &[AuditRecord] {
        &self.interrupted
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

    /// Record a call and make it durable, in one step (for calls that
    /// were already over before anyone recorded them).
    /// `secret_fields`: argument paths the plugin's manifest marks secret.
    pub async fn append(
        &self,
        caller: &Caller,
        arguments: &Value,
        secret_fields: &[String],
        outcome: &CallOutcome,
    ) -> Result<AuditRecord, AuditError> {
        let open = self.begin(caller, &outcome.tool, arguments, secret_fields);
        open.finish(outcome).await
    }

    /// Begin the record of a call, before the connector runs. Nothing is
    /// written yet: the record becomes durable (as `running`) when the
    /// call's first side effect opens its gate, or at `finish`, whichever
    /// comes first, so read-only calls write once.
    pub fn begin(&self, caller: &Caller, tool: &str, arguments: &Value, secret_fields: &[String]) -> OpenRecord {
        let id = self.next_id();
        let record = AuditRecord {
            id: id.to_string(),
            time: rfc3339_micros(id >> 8),
            via: caller.via,
            token: caller.token.clone(),
            session: caller.session.clone(),
            idempotency_key: caller.idempotency_key.clone(),
            tool: tool.to_string(),
            plugin_version: None,
            plugin_digest: None,
            arguments: redact(arguments, secret_fields),
            arguments_digest: Some(arguments_digest(arguments)),
            outcome: RUNNING.into(),
            error: None,
            effects: false,
            duration_us: 0,
            instantiate_us: 0,
            execute_us: 0,
            outbound: Vec::new(),
            denials: Vec::new(),
            denials_total: 0,
            secret_echoes: Vec::new(),
        };
        OpenRecord {
            id,
            record: Mutex::new(record),
            tree: self.tree.clone(),
            open: self.open.clone(),
            storage: self.storage.clone(),
            durable: tokio::sync::OnceCell::new(),
            opened: AtomicBool::new(false),
        }
    }

    /// Record something that happened to a plugin (loaded, refused,
    /// unloaded): operators find it in the same trail, under the tool name
    /// `(plugin) NAME`.
    pub async fn append_event(&self, event: &PluginEvent<'_>) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let record = AuditRecord {
            id: id.to_string(),
            time: rfc3339_micros(id >> 8),
            via: event.via,
            token: None,
            session: None,
            idempotency_key: None,
            tool: format!("(plugin) {}", event.plugin),
            plugin_version: event.version.clone(),
            plugin_digest: event.digest.clone(),
            arguments: Value::Null,
            arguments_digest: None,
            outcome: event.outcome.to_string(),
            effects: false,
            error: Some(Value::from(event.detail.clone())),
            duration_us: 0,
            instantiate_us: 0,
            execute_us: 0,
            outbound: Vec::new(),
            denials: Vec::new(),
            denials_total: 0,
            secret_echoes: Vec::new(),
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
                && matches(&filter.via, Some(record.via.as_str()))
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
