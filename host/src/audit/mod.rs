//! The audit trail: one append-only record per call, keyed by a
//! time-ordered id, durable before the caller hears the outcome. Where the
//! records live is an [`AuditStore`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::capabilities::{EffectGate, Journal};
use crate::model::audit::{Action, AuditRecord, Caller, Channel, Interface, Outcome, Source, Via};
use crate::model::call::{CallError, Timings};
use crate::model::digest::arguments_digest;
use crate::model::effects::OutboundRecord;
use crate::model::text::truncated;
use crate::model::time::{now_micros, parse_rfc3339_secs, rfc3339_micros};
use crate::storage::audit::{AuditQuery, Mark};
use crate::storage::{Storage, StorageError};

/// Most records one query returns.
pub const MAX_PAGE: usize = 1000;
/// Arguments longer than this (as JSON) are kept as their digest and a
/// prefix ([`bounded_arguments`]): a refused call's 900 KiB key name was
/// stored whole, 50 such calls adding 222 MB to the data folder.
pub const MAX_RECORDED_ARGUMENTS_BYTES: usize = 16 * 1024;
/// The start of arguments over the bound, kept as a hint of what they were.
const ARGUMENTS_PREFIX_BYTES: usize = 1024;
/// An error (a connector's typed error may be as long as its output
/// grant), a reason or an outbound request's path longer than this is cut.
const MAX_RECORDED_TEXT_BYTES: usize = 4096;

/// An action for the audit trail: who did what to which thing, and the
/// thing's state before and after.
pub struct ActionEvent<'a> {
    pub action: Action,
    /// Where the operator acted; `None`: the host itself.
    pub via: Option<Interface>,
    /// The token that acted; none for the host itself.
    pub by: Option<&'a str>,
    /// What was acted on, as the trail's `tool` names it: `(plugin) crm`,
    /// `(tokens)`, `(approval rules)`, `(audit)`.
    pub subject: String,
    pub before: Value,
    pub after: Value,
}

/// Something that happened to a held call: its hold, a decision, its
/// expiry or lapse (the call itself is recorded as any call is).
pub struct ApprovalEvent<'a> {
    pub approval: &'a str,
    pub outcome: Outcome,
    /// The agent's call: its way in, tool, session, plugin version.
    pub via: Channel,
    pub tool: &'a str,
    pub session: Option<&'a str>,
    pub plugin_version: Option<&'a str>,
    pub plugin_digest: Option<&'a str>,
    /// Who: the agent for a hold, the reviewer for a decision.
    pub token: Option<&'a str>,
    /// The arguments (redacted) and their digest, on the hold.
    pub arguments: Value,
    pub arguments_digest: Option<&'a str>,
    pub reason: String,
    /// The workflow run and step the held call belongs to, if any.
    pub run: Option<&'a str>,
    pub step: Option<&'a str>,
    /// For a decision: the approval as the reviewer found it and as the
    /// decision left it.
    pub change: Option<(Value, Value)>,
}

/// Something that happened to a plugin, for the audit trail.
pub struct PluginEvent<'a> {
    pub via: Source,
    pub plugin: &'a str,
    /// `Loaded`, `Refused` or `Unloaded`.
    pub outcome: Outcome,
    pub detail: String,
    pub version: Option<String>,
    pub digest: Option<String>,
}

/// How a call ended, as its record is closed with: what served it, its
/// error if it failed, and what it did at its imports.
pub struct Ending<'a> {
    pub tool: &'a str,
    pub plugin_version: Option<&'a str>,
    pub plugin_digest: Option<&'a str>,
    pub error: Option<&'a CallError>,
    pub effects: bool,
    pub timings: Timings,
    pub journal: &'a Journal,
}

/// The record of a call in flight; see [`AuditLog::begin`]. It is the
/// call's [`EffectGate`]: opening it makes the record durable as `running`.
pub struct OpenRecord {
    id: u64,
    record: Mutex<AuditRecord>,
    storage: Storage,
    /// Set once the `running` record is durable (or failed to become so).
    durable: tokio::sync::OnceCell<Result<(), String>>,
    opened: AtomicBool,
    published: Published,
}

/// Records as they become final, for whoever watches (the console's live
/// calls). Sent only while someone listens, so the call path pays nothing
/// otherwise; a watcher that falls behind misses records (the trail has
/// them all).
#[derive(Clone)]
struct Published(tokio::sync::broadcast::Sender<Arc<AuditRecord>>);

impl Published {
    fn send(&self, record: &AuditRecord) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(Arc::new(record.clone()));
        }
    }
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
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            record.effects = true;
            record.clone()
        };
        self.storage
            .audit()
            .put(self.id, &record, Mark::Running)
            .await
            .map_err(|e| e.to_string())
    }

    /// Close the record with the call's outcome and make it durable: the
    /// one record of the call, under the id it had from the start.
    pub async fn finish(&self, outcome: &Ending<'_>) -> Result<AuditRecord, AuditError> {
        let record = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            let (kind, error) = match outcome.error {
                None => (Outcome::Ok, None),
                Some(e) => (Outcome::from(e), Some(bounded_error(e))),
            };
            record.tool = outcome.tool.to_string();
            record.plugin_version = outcome.plugin_version.map(str::to_string);
            record.plugin_digest = outcome.plugin_digest.map(str::to_string);
            record.outcome = kind;
            record.error = error;
            record.effects |= outcome.effects;
            record.duration_us = outcome.timings.total_us;
            record.instantiate_us = outcome.timings.instantiate_us;
            record.execute_us = outcome.timings.execute_us;
            record.outbound = outcome.journal.outbound.iter().map(bounded_outbound).collect();
            record.denials = outcome.journal.denials.clone();
            record.denials_total = outcome.journal.denials_total();
            record.secret_echoes = outcome.journal.echoes.clone();
            record.clone()
        };
        let mark = if self.opened.load(Ordering::Acquire) {
            Mark::Closed
        } else {
            Mark::None
        };
        self.storage.audit().put(self.id, &record, mark).await?;
        self.published.send(&record);
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

/// Which records a query wants. Records come newest first. A field not
/// named here is refused, not ignored: a misspelt filter must not export
/// the whole trail.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Records of one tool (`plugin.function`), or of one plugin's events
    /// (`(plugin) name`).
    pub tool: Option<String>,
    /// How the call or bundle came in.
    pub via: Option<Via>,
    /// How the call or event ended.
    pub outcome: Option<Outcome>,
    /// Records of one session (`X-Session-Id`, or the MCP session).
    pub session: Option<String>,
    /// Records of one token's calls and actions (by its name).
    pub token: Option<String>,
    /// Records of one approval: its hold, decisions and the call it let run.
    pub approval: Option<String>,
    /// Records of one workflow run: each step's call, and the run's own.
    pub run: Option<String>,
    /// Records of one kind of operator action.
    pub action: Option<Action>,
    /// RFC 3339 or Unix seconds; inclusive.
    pub since: Option<String>,
    /// RFC 3339 or Unix seconds; inclusive.
    pub until: Option<String>,
    /// Only records older than this id (the `next` of the previous page).
    pub before: Option<String>,
    /// Records on a page: 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("bad filter `{field}`: {message}")]
    BadFilter { field: &'static str, message: String },
}

pub struct AuditLog {
    storage: Storage,
    last: AtomicU64,
    /// The low byte of every id this node makes.
    slot: u8,
    published: Published,
    /// The records closed as `interrupted` when this log was opened.
    interrupted: Vec<AuditRecord>,
}

/// The smallest id from `at` on whose low byte is `slot`.
fn with_slot(at: u64, slot: u8) -> u64 {
    let slot = u64::from(slot);
    ((at.saturating_sub(slot) + 0xff) & !0xff) + slot
}

impl AuditLog {
    /// Open the trail; records a crash left `running` are closed as
    /// `interrupted` (durably) before anything else happens.
    pub fn open(storage: &Storage) -> Result<AuditLog, AuditError> {
        let last = storage.audit().last_id()?;
        let mut log = AuditLog {
            storage: storage.clone(),
            last: AtomicU64::new(last),
            slot: storage.audit().id_slot(),
            published: Published(tokio::sync::broadcast::channel(256).0),
            interrupted: Vec::new(),
        };
        log.interrupted = log.close_interrupted()?;
        Ok(log)
    }

    /// At start, before any call: blocking is fine here.
    fn close_interrupted(&self) -> Result<Vec<AuditRecord>, AuditError> {
        let error = CallError::Interrupted {
            message: "the host stopped while this call ran; it may have had effects and was not run again".into(),
        };
        let mut closed = self.storage.audit().running()?;
        for (_, record) in &mut closed {
            record.outcome = Outcome::Interrupted;
            record.error = Some(serde_json::to_value(&error).unwrap_or(Value::Null));
            record.effects = true;
            tracing::warn!(id = %record.id, tool = %record.tool, "audit: a call cut short by a stop is recorded as interrupted");
        }
        if !closed.is_empty() {
            self.storage.audit().close_at_start(&closed)?;
        }
        Ok(closed.into_iter().map(|(_, r)| r).collect())
    }

    /// Calls found cut short when the trail was opened.
    pub fn interrupted(&self) -> &[AuditRecord] {
        &self.interrupted
    }

    /// A new id: microseconds since the epoch in the high bits, this node's
    /// slot in the low byte. Calls in the same microsecond take the next
    /// microseconds (ids run at most a little ahead of the clock).
    fn next_id(&self) -> u64 {
        let candidate = now_micros() << 8;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = with_slot(candidate.max(last + 1), self.slot);
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
        outcome: &Ending<'_>,
    ) -> Result<AuditRecord, AuditError> {
        let open = self.begin(caller, outcome.tool, arguments, secret_fields);
        open.finish(outcome).await
    }

    /// Begin the record of a call, before the connector runs. Nothing is
    /// written yet: the record becomes durable (as `running`) when the
    /// call's first side effect opens its gate, or at `finish`, whichever
    /// comes first, so read-only calls write once.
    pub fn begin(&self, caller: &Caller, tool: &str, arguments: &Value, secret_fields: &[String]) -> OpenRecord {
        let id = self.next_id();
        let mut record = AuditRecord::new(id, caller.via, tool.to_string());
        record.token = caller.token.clone();
        record.session = caller.session.clone();
        record.idempotency_key = caller.idempotency_key.clone();
        let digest = arguments_digest(arguments);
        record.arguments = bounded_arguments(redact(arguments, secret_fields), &digest);
        record.arguments_digest = Some(digest);
        record.approval = caller.approval.clone();
        record.run = caller.run.clone();
        record.step = caller.step.clone();
        OpenRecord {
            id,
            record: Mutex::new(record),
            storage: self.storage.clone(),
            durable: tokio::sync::OnceCell::new(),
            opened: AtomicBool::new(false),
            published: self.published.clone(),
        }
    }

    /// Every record from now on, as it becomes final.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<AuditRecord>> {
        self.published.0.subscribe()
    }

    /// Record something that happened to a plugin (loaded, refused,
    /// unloaded): operators find it in the same trail, under the tool name
    /// `(plugin) NAME`.
    pub async fn append_event(&self, event: &PluginEvent<'_>) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let mut record = AuditRecord::new(id, event.via, format!("(plugin) {}", event.plugin));
        record.plugin_version = event.version.clone();
        record.plugin_digest = event.digest.clone();
        record.outcome = event.outcome;
        record.error = Some(Value::from(event.detail.clone()));
        self.storage.audit().put(id, &record, Mark::None).await?;
        self.published.send(&record);
        Ok(record)
    }

    /// Record an action (see [`Action`]): who, on what, before and after.
    pub async fn append_action(&self, event: &ActionEvent<'_>) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let mut record = AuditRecord::new(id, event.via, event.subject.clone());
        record.token = event.by.map(str::to_string);
        record.outcome = Outcome::Ok;
        record.action = Some(event.action);
        record.before = Some(event.before.clone());
        record.after = Some(event.after.clone());
        self.storage.audit().put(id, &record, Mark::None).await?;
        self.published.send(&record);
        Ok(record)
    }

    /// Delete the records made before `cutoff` (a call still running is
    /// kept), and record that it happened; how many went.
    pub async fn sweep(&self, cutoff: SystemTime) -> Result<usize, AuditError> {
        let micros = cutoff.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let removed = self.storage.audit().remove_before(micros << 8).await?;
        if removed > 0 {
            self.append_action(&ActionEvent {
                action: Action::SweepAudit,
                via: None,
                by: None,
                subject: "(audit)".into(),
                before: serde_json::json!({ "records_made_before": rfc3339_micros(micros) }),
                after: serde_json::json!({ "removed": removed }),
            })
            .await?;
        }
        Ok(removed)
    }

    /// Sweep records older than `retention` as time passes: at start, then
    /// often enough that none outlives it by more than a tenth (at least
    /// every second, at most every hour), until the log is dropped.
    pub fn spawn_sweeper(self: &Arc<AuditLog>, retention: Duration) {
        let weak = Arc::downgrade(self);
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(this) = weak.upgrade() else { break };
                match this.sweep(SystemTime::now() - retention).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "audit: records past their retention removed"),
                    Err(e) => tracing::error!("audit retention: {e}"),
                    _ => {}
                }
            }
        });
    }

    /// Record a step of a held call, under the call's tool and session so
    /// that the conversation's trail shows the human step in its place.
    pub async fn append_approval(&self, event: &ApprovalEvent<'_>) -> Result<AuditRecord, AuditError> {
        let id = self.next_id();
        let mut record = AuditRecord::new(id, event.via, event.tool.to_string());
        record.token = event.token.map(str::to_string);
        record.session = event.session.map(str::to_string);
        record.plugin_version = event.plugin_version.map(str::to_string);
        record.plugin_digest = event.plugin_digest.map(str::to_string);
        record.arguments = match event.arguments_digest {
            Some(digest) => bounded_arguments(event.arguments.clone(), digest),
            None => bounded_arguments(event.arguments.clone(), &arguments_digest(&event.arguments)),
        };
        record.arguments_digest = event.arguments_digest.map(str::to_string);
        record.outcome = event.outcome;
        record.approval = Some(event.approval.to_string());
        record.reason = Some(truncated(event.reason.clone(), MAX_RECORDED_TEXT_BYTES));
        record.run = event.run.map(str::to_string);
        record.step = event.step.map(str::to_string);
        if let Some((before, after)) = &event.change {
            record.action = Some(Action::Decide);
            record.before = Some(before.clone());
            record.after = Some(after.clone());
        }
        self.storage.audit().put(id, &record, Mark::None).await?;
        self.published.send(&record);
        Ok(record)
    }

    /// Records matching `filter`, newest first, and the cursor of the next
    /// page when there may be more.
    pub async fn query(&self, filter: &AuditFilter) -> Result<(Vec<AuditRecord>, Option<String>), AuditError> {
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
        let query = AuditQuery {
            // A second past what an id can hold matches nothing after it
            // and bounds nothing before it.
            after: since.map_or(0, |s| first_id_of_second(s).unwrap_or(u64::MAX)),
            before: until.map_or(before, |u| {
                u.checked_add(1)
                    .and_then(first_id_of_second)
                    .map_or(before, |b| before.min(b))
            }),
            limit,
            tool: filter.tool.clone(),
            via: filter.via,
            outcome: filter.outcome,
            session: filter.session.clone(),
            token: filter.token.clone(),
            approval: filter.approval.clone(),
            run: filter.run.clone(),
            action: filter.action,
        };
        let records = self.storage.audit().query(&query).await?;
        let next = (records.len() == limit).then(|| records[records.len() - 1].id.clone());
        Ok((records, next))
    }
}

/// The smallest record id of Unix second `secs` (ids are microseconds
/// shifted left by 8, see [`AuditLog::next_id`]), if an id can hold it:
/// `since=99999999999999` is an agent's input, not a reason to overflow.
fn first_id_of_second(secs: u64) -> Option<u64> {
    secs.checked_mul(1_000_000)?.checked_mul(1 << 8)
}

fn parse_time(field: &'static str, s: &str) -> Result<u64, AuditError> {
    s.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339_secs(s))
        .ok_or_else(|| AuditError::BadFilter {
            field,
            message: format!("{s:?} is neither RFC 3339 nor Unix seconds"),
        })
}

/// `arguments` (redacted) as a record keeps them: whole up to
/// [`MAX_RECORDED_ARGUMENTS_BYTES`] of JSON; beyond, a marker with their
/// digest (`digest`, of the arguments as given, as `arguments_digest`), the
/// start of their JSON, and its length.
pub fn bounded_arguments(arguments: Value, digest: &str) -> Value {
    // Every call's record passes here: the common, small case is measured
    // without building its text.
    if json_len_within(&arguments, MAX_RECORDED_ARGUMENTS_BYTES).is_some() {
        return arguments;
    }
    let text = arguments.to_string();
    let bytes = text.len();
    serde_json::json!({
        "truncated": true,
        "digest": digest,
        "prefix": truncated(text, ARGUMENTS_PREFIX_BYTES),
        "bytes": bytes,
    })
}

/// A failed call's error as its record keeps it: whole when short; else
/// its kind, the start of its JSON, and its length.
fn bounded_error(e: &CallError) -> Value {
    let error = serde_json::to_value(e).unwrap_or(Value::Null);
    if json_len_within(&error, MAX_RECORDED_TEXT_BYTES).is_some() {
        return error;
    }
    let text = error.to_string();
    let bytes = text.len();
    serde_json::json!({
        "kind": e.kind(),
        "truncated": true,
        "prefix": truncated(text, MAX_RECORDED_TEXT_BYTES),
        "bytes": bytes,
    })
}

/// The length of `value`'s compact JSON if it is at most `limit` bytes,
/// counted as it is written out and given up past the limit: nothing is
/// built, and a huge value is not walked to its end.
fn json_len_within(value: &Value, limit: usize) -> Option<usize> {
    struct Count {
        bytes: usize,
        limit: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes += buf.len();
            if self.bytes > self.limit {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { bytes: 0, limit };
    serde_json::to_writer(&mut count, value).ok().map(|()| count.bytes)
}

/// An outbound request as its record keeps it: path and error cut (the
/// connector chose them).
fn bounded_outbound(request: &OutboundRecord) -> OutboundRecord {
    let cut = |text: &str| truncated(text.to_string(), MAX_RECORDED_TEXT_BYTES);
    OutboundRecord {
        method: request.method.clone(),
        origin: request.origin.clone(),
        path: cut(&request.path),
        status: request.status,
        error: request.error.as_deref().map(cut),
        micros: request.micros,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_length_is_counted_exactly_up_to_its_limit() {
        let value = json!({ "a": [1, "é", null], "b": { "c": true } });
        let text = value.to_string();
        assert_eq!(json_len_within(&value, text.len()), Some(text.len()));
        assert_eq!(json_len_within(&value, text.len() - 1), None);
        let big = json!({ "k": "x".repeat(MAX_RECORDED_ARGUMENTS_BYTES) });
        assert_eq!(bounded_arguments(big, "d")["truncated"], true);
        assert_eq!(bounded_arguments(json!({ "k": 1 }), "d"), json!({ "k": 1 }));
    }

    #[test]
    fn ids_carry_the_node_slot_and_never_go_back() {
        assert_eq!(with_slot(0x1_00, 5), 0x1_05);
        assert_eq!(with_slot(0x1_05, 5), 0x1_05);
        assert_eq!(with_slot(0x1_06, 5), 0x2_05);
        assert_eq!(with_slot(0x1_00, 0), 0x1_00);
        assert_eq!(with_slot(0x1_01, 0), 0x2_00);
        assert_eq!(with_slot(0x1_ff, 255), 0x1_ff);
        // Two nodes from the same instant never meet.
        for at in 0x1000..0x1400u64 {
            assert_ne!(with_slot(at, 1), with_slot(at, 2));
            assert_eq!(with_slot(at, 7) & 0xff, 7);
            assert!(with_slot(at, 7) >= at);
        }
    }

    #[test]
    fn a_query_needs_what_a_matching_record_contains_as_stored() {
        let mut record = AuditRecord::new(1, Via::Mcp, "crm.get-customer".into());
        record.session = Some("case \"7\"/é".into());
        record.outcome = Outcome::PluginError;
        let stored = serde_json::to_vec(&record).unwrap();
        let query = |session: &str, outcome| AuditQuery {
            after: 0,
            before: u64::MAX,
            limit: 10,
            tool: Some("crm.get-customer".into()),
            via: Some(Via::Mcp),
            outcome: Some(outcome),
            session: Some(session.into()),
            token: None,
            approval: None,
            run: None,
            action: None,
        };
        let contains = |q: &AuditQuery| {
            q.needles()
                .iter()
                .all(|n| stored.windows(n.len()).any(|w| w == n.as_slice()))
        };
        let wanted = query("case \"7\"/é", Outcome::PluginError);
        assert!(contains(&wanted) && wanted.matches(&record));
        assert!(!contains(&query("case 7", Outcome::PluginError)));
        assert!(!contains(&query("case \"7\"/é", Outcome::Ok)));
    }

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
