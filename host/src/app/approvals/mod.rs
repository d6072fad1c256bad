//! Held calls from hold to answer: the policy decides which calls wait;
//! each held call is stored durably before the agent hears of it; reviewers
//! decide; an approved call runs once (see `app::calls::execute`) and its
//! answer is kept for the agent. Every step is an audit record linked by the
//! approval id, and a notice for the event stream and the webhook.
//!
//! One approval changes under its own lock, so two reviewers deciding at
//! once, or a decision racing the expiry, are taken one after the other.

pub mod happened;
mod locks;
mod session_calls;
mod view;
mod waiters;
pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::app::approvals::webhook::Webhook;
use crate::app::metrics::Metrics;
use crate::audit::{redact, ApprovalEvent, AuditError, AuditLog};
use crate::config::approvals::ApprovalConfig;
use crate::model::approval::{Answered, Approval, ApprovalState, Decision, NotRun, Verdict};
use crate::model::audit::{Caller, Outcome};
use crate::model::call::CallError;
use crate::model::digest::arguments_digest;
use crate::model::time::now_ms;
use crate::plugins::manifest::Risk;
use crate::policy::approvals::{ApprovalPolicy, ApprovalSummary, CallFacts, Held, RuleError};
use crate::storage::{Storage, StorageError};
use happened::Happened;
use locks::Locks;
use session_calls::SessionCalls;
use view::decision_state;
pub use view::view;

/// The longest a long-poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The longest reason a reviewer may give.
pub const MAX_REASON_BYTES: usize = 2048;
/// How often a waiter reads an approval again when other nodes share the
/// store (their announcements are best effort).
const RECHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {0:?}")]
    NotFound(String),
    #[error("approval {id} is already {}", state.as_str())]
    Decided { id: String, state: ApprovalState },
    #[error("token {token:?} made this call and cannot decide it (separation of duties)")]
    OwnCall { token: String },
    #[error("token {token:?} has already approved this call; the rule needs another reviewer")]
    AlreadyApproved { token: String },
    #[error("a reason of 1 to {MAX_REASON_BYTES} bytes is required")]
    Reason,
    #[error(
        "token {token:?} has {max} calls waiting for a reviewer, its share; this call was not held and did not run: \
         call again once a reviewer has decided some"
    )]
    TooManyPending { token: String, max: usize },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Something that happened to an approval, for the event stream and the
/// webhook.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: Happened,
    pub approval: Arc<Approval>,
}

/// What a held call's caller and the tool look like to the policy.
pub struct Call<'a> {
    pub caller: &'a Caller,
    pub token: &'a str,
    pub tool: &'a str,
    pub risk: Risk,
    pub args: &'a Value,
}

/// One page of the queue (see [`Approvals::pending_page`]).
pub struct PendingPage {
    pub page: Vec<Approval>,
    /// More wait after the page's last.
    pub more: bool,
    /// How many wait in all.
    pub total: usize,
}

/// The plugin version that would serve a held call.
pub struct Serving<'a> {
    pub version: &'a str,
    pub digest: &'a str,
    pub secret_fields: Vec<String>,
}

pub struct Approvals {
    policy: ArcSwap<ApprovalPolicy>,
    storage: Storage,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
    webhook: Option<Webhook>,
    notices: broadcast::Sender<Notice>,
    /// One lock per approval being changed on this node (nodes sharing a
    /// store are kept apart by [`crate::storage::approvals::ApprovalStore::update_approval`]).
    locks: Locks,
    /// Calls one token may have waiting for a reviewer at once.
    pending_share: usize,
    /// One lock per token holding a call on this node, so that two of its
    /// calls at once cannot both take its last place. (Nodes sharing a
    /// store each count what the store holds; two holds at the same moment
    /// on two nodes may pass the share by one each.)
    holding: Locks,
    /// How often a waiter looks again when other nodes share the store.
    recheck: Option<Duration>,
    sessions: Mutex<SessionCalls>,
}

impl Approvals {
    pub fn new(
        policy: ApprovalPolicy,
        storage: Storage,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        webhook: Option<Webhook>,
    ) -> Approvals {
        let recheck = storage.is_shared().then_some(RECHECK);
        Approvals {
            policy: ArcSwap::from_pointee(policy),
            storage,
            audit,
            metrics,
            webhook,
            notices: broadcast::channel(1024).0,
            locks: Locks::default(),
            pending_share: usize::MAX,
            holding: Locks::default(),
            recheck,
            sessions: Mutex::default(),
        }
    }

    /// At most `share` calls of one token wait for a reviewer at once.
    pub fn with_pending_share(mut self, share: usize) -> Approvals {
        self.pending_share = share;
        self
    }

    pub fn rules(&self) -> ApprovalConfig {
        self.policy.load().config().clone()
    }

    /// Replace the rules: checked, durable, then applied to the next call.
    pub async fn set_rules(&self, mut rules: ApprovalConfig) -> Result<ApprovalConfig, SetRulesError> {
        rules.webhook = None;
        let policy = ApprovalPolicy::new(rules.clone())?;
        self.storage.operator().set_approval_rules(&rules).await?;
        self.policy.store(Arc::new(policy));
        Ok(rules)
    }

    /// How `tool`'s calls may wait, for the tools list.
    pub fn summary(&self, tool: &str, risk: Risk) -> ApprovalSummary {
        self.policy.load().summary(tool, risk)
    }

    /// Whether this call must wait for a person. Counts the call in its
    /// session either way.
    pub fn check(&self, call: &Call<'_>) -> Option<Held> {
        let session_calls = match call.caller.session.as_deref() {
            Some(session) => self
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .count(call.token, session),
            None => 0,
        };
        self.policy.load().check(&CallFacts {
            tool: call.tool,
            risk: call.risk,
            args: call.args,
            token: call.token,
            session: call.caller.session.as_deref(),
            session_calls,
        })
    }

    /// Keep a held call: its audit record and the approval are durable
    /// before this returns, and reviewers are told. Refused, with nothing
    /// kept, while the caller's token has its share of calls waiting.
    pub async fn hold(
        &self,
        call: &Call<'_>,
        held: Held,
        serving: Serving<'_>,
    ) -> Result<Arc<Approval>, ApprovalError> {
        let lock = self.holding.get(call.token);
        let turn = lock.lock().await;
        let held = self.hold_within_share(call, held, serving).await;
        drop(turn);
        drop(lock);
        self.holding.forget(call.token);
        held
    }

    /// [`Self::hold`], its token's turn taken.
    async fn hold_within_share(
        &self,
        call: &Call<'_>,
        held: Held,
        serving: Serving<'_>,
    ) -> Result<Arc<Approval>, ApprovalError> {
        let now = now_ms();
        if self.pending_share != usize::MAX {
            let waiting = self
                .storage
                .approvals()
                .open_approvals()
                .await?
                .iter()
                .filter(|a| a.state == ApprovalState::Pending && a.expires > now && a.token == call.token)
                .count();
            if waiting >= self.pending_share {
                tracing::warn!(
                    token = call.token,
                    tool = call.tool,
                    "a call not held: its token has {waiting} waiting"
                );
                return Err(ApprovalError::TooManyPending {
                    token: call.token.to_string(),
                    max: self.pending_share,
                });
            }
        }
        let id = format!("{now:013x}{:08x}", rand::random::<u32>());
        let digest = arguments_digest(call.args);
        let reason = match &held.detail {
            Some(detail) => format!("rule {:?} ({}): {detail}", held.rule, reason_word(&held)),
            None => format!("rule {:?} ({})", held.rule, reason_word(&held)),
        };
        let record = self
            .audit
            .append_approval(&ApprovalEvent {
                approval: &id,
                outcome: Outcome::Held,
                via: call.caller.via,
                tool: call.tool,
                session: call.caller.session.as_deref(),
                plugin_version: Some(serving.version),
                plugin_digest: Some(serving.digest),
                token: Some(call.token),
                arguments: redact(call.args, &serving.secret_fields),
                arguments_digest: Some(&digest),
                reason,
                run: call.caller.run.as_deref(),
                step: call.caller.step.as_deref(),
                change: None,
            })
            .await?;
        let approval = Approval {
            id,
            state: ApprovalState::Pending,
            tool: call.tool.to_string(),
            plugin_version: serving.version.to_string(),
            plugin_digest: serving.digest.to_string(),
            arguments: call.args.clone(),
            arguments_digest: digest,
            secret_fields: serving.secret_fields,
            via: call.caller.via,
            token: call.token.to_string(),
            session: call.caller.session.clone(),
            idempotency_key: call.caller.idempotency_key.clone(),
            rule: held.rule,
            reason: held.reason,
            detail: held.detail,
            approvers: held.approvers,
            created: now,
            expires: now + held.expiry_secs * 1000,
            decisions: Vec::new(),
            held_audit_id: record.id,
            call_audit_id: None,
            answer: None,
            finished: None,
            run: call.caller.run.clone(),
            step: call.caller.step.clone(),
            executor: None,
        };
        self.storage.approvals().put_approval(&approval).await?;
        let approval = Arc::new(approval);
        self.announce(Happened::Held, &approval);
        Ok(approval)
    }

    /// One reviewer's decision. Returns the approval after it; its state is
    /// `Approved` when this decision was the last one needed (the caller
    /// then runs it).
    pub async fn decide(
        &self,
        id: &str,
        reviewer: &str,
        verdict: Verdict,
        reason: &str,
    ) -> Result<Arc<Approval>, ApprovalError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
            return Err(ApprovalError::Reason);
        }
        let lock = self.lock(id);
        let _held = lock.lock().await;
        // Another node may change the same call at the same moment: a
        // decision applies only to the approval as it was read; otherwise it
        // is read again and judged afresh.
        let (approval, event, outcome) = loop {
            let mut approval = self.load(id).await?;
            let from = (approval.state, approval.decisions.len());
            let now = now_ms();
            if approval.state == ApprovalState::Pending && approval.expires <= now {
                drop(_held);
                drop(lock);
                let expired = self.expire(id).await?;
                return Err(ApprovalError::Decided {
                    id: id.to_string(),
                    state: expired.state,
                });
            }
            let (event, outcome) = judge(&mut approval, reviewer, verdict, reason, now)?;
            if self.save(&approval, from).await? {
                break (approval, event, outcome);
            }
        };
        // What the decision changed: the reviewer found it pending with one
        // decision fewer.
        let found = decision_state(
            ApprovalState::Pending,
            &approval.decisions[..approval.decisions.len() - 1],
        );
        let left = decision_state(approval.state, &approval.decisions);
        self.record(
            &approval,
            outcome,
            Some(reviewer),
            reason.to_string(),
            Some((found, left)),
        )
        .await?;
        drop(_held);
        drop(lock);
        let approval = Arc::new(approval);
        self.announce(event, &approval);
        if approval.state.is_final() {
            self.unlock(id);
        }
        Ok(approval)
    }

    /// Store `approval`, changed from `from` (its state and decision count
    /// as read). False when another node changed it first: this change must
    /// not apply.
    async fn save(&self, approval: &Approval, from: (ApprovalState, usize)) -> Result<bool, ApprovalError> {
        Ok(self
            .storage
            .approvals()
            .update_approval(approval, from.0, from.1)
            .await?)
    }

    /// Take an approved call for running: marked `executing` durably first,
    /// so that a crash from here on never runs it a second time, and only
    /// if it still was approved as read, so that of the nodes that try, one
    /// runs it. `None` when it is not (or no longer) approved.
    pub async fn begin_execution(&self, id: &str) -> Result<Option<Approval>, ApprovalError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let mut approval = self.load(id).await?;
        if approval.state != ApprovalState::Approved {
            return Ok(None);
        }
        let from = (approval.state, approval.decisions.len());
        approval.state = ApprovalState::Executing;
        approval.executor = Some(self.storage.node().to_string());
        if !self.save(&approval, from).await? {
            return Ok(None);
        }
        self.announce(Happened::Executing, &Arc::new(approval.clone()));
        Ok(Some(approval))
    }

    /// A call that must not run: what was approved changed, or nobody waits
    /// for it any more. Returns the approval as it stands: lapsed, or as
    /// another node left it if that node changed it first.
    pub async fn lapse(&self, mut approval: Approval, why: String) -> Result<Arc<Approval>, ApprovalError> {
        let from = (approval.state, approval.decisions.len());
        approval.state = ApprovalState::Lapsed;
        approval.finished = Some(now_ms());
        approval.answer = Some(Answered::NotRun {
            why: NotRun::Lapsed,
            message: format!("{why}; nothing ran: call again to ask for a new approval"),
        });
        // One this node took for running changes only here (as in
        // `finish`): its record goes first, so that an agent who sees it
        // lapsed finds the lapse in the trail. Any other may have been
        // changed by another node meanwhile, and is recorded once saved.
        let owned = from.0 == ApprovalState::Executing;
        if owned {
            self.record(&approval, Outcome::Lapsed, None, why.clone(), None).await?;
        }
        if !self.save(&approval, from).await? {
            return Ok(Arc::new(self.load(&approval.id).await?));
        }
        if !owned {
            self.record(&approval, Outcome::Lapsed, None, why, None).await?;
        }
        Ok(self.close(approval, Happened::Lapsed))
    }

    /// Take back a held call nobody waits for any more (its workflow run was
    /// cancelled): a pending approval, or an approved one not yet started,
    /// lapses, so it leaves the queue and a later decision is refused.
    /// `None` when it had already gone further.
    pub async fn withdraw(&self, id: &str, why: String) -> Result<Option<Arc<Approval>>, ApprovalError> {
        let lock = self.lock(id);
        let held = lock.lock().await;
        let approval = self.load(id).await?;
        if !matches!(approval.state, ApprovalState::Pending | ApprovalState::Approved) {
            return Ok(None);
        }
        let lapsed = self.lapse(approval, why).await?;
        drop(held);
        drop(lock);
        self.unlock(id);
        Ok(Some(lapsed))
    }

    /// The approved call ran: keep its answer for the agent.
    pub async fn finish(
        &self,
        mut approval: Approval,
        answer: Answered,
        audit_id: String,
    ) -> Result<Arc<Approval>, ApprovalError> {
        let from = (approval.state, approval.decisions.len());
        approval.state = ApprovalState::Done;
        approval.finished = Some(now_ms());
        approval.answer = Some(answer);
        approval.call_audit_id = Some(audit_id);
        // Only this node runs it (it took it for running), so nothing else
        // changes it meanwhile.
        if !self.save(&approval, from).await? {
            tracing::error!(approval = %approval.id, "an approval changed while this node ran it; its answer is kept anyway");
            self.storage.approvals().put_approval(&approval).await?;
        }
        Ok(self.close(approval, Happened::Done))
    }

    fn close(&self, approval: Approval, event: Happened) -> Arc<Approval> {
        let approval = Arc::new(approval);
        self.announce(event, &approval);
        self.unlock(&approval.id);
        approval
    }

    /// Expire `id` if it is still pending and due.
    async fn expire(&self, id: &str) -> Result<Arc<Approval>, ApprovalError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let mut approval = self.load(id).await?;
        let now = now_ms();
        if approval.state != ApprovalState::Pending || approval.expires > now {
            return Ok(Arc::new(approval));
        }
        let from = (approval.state, approval.decisions.len());
        approval.state = ApprovalState::Expired;
        approval.finished = Some(now);
        approval.answer = Some(Answered::NotRun {
            why: NotRun::Expired,
            message: "nobody decided this call in time; nothing ran: call again to ask for a new approval".into(),
        });
        // Every node expires what is due; one of them records it.
        if !self.save(&approval, from).await? {
            return Ok(Arc::new(self.load(id).await?));
        }
        self.record(&approval, Outcome::Expired, None, "not decided in time".into(), None)
            .await?;
        drop(_held);
        drop(lock);
        Ok(self.close(approval, Happened::Expired))
    }

    /// Expire what is due. Returns how many are still pending.
    pub async fn sweep(&self) -> Result<usize, ApprovalError> {
        let now = now_ms();
        let mut pending = 0;
        for approval in self.storage.approvals().open_approvals().await? {
            if approval.state != ApprovalState::Pending {
                continue;
            }
            if approval.expires <= now {
                self.expire(&approval.id).await?;
            } else {
                pending += 1;
            }
        }
        Ok(pending)
    }

    /// At start: approvals decided before a stop, to run now, and those a
    /// stop caught running, closed without running again (they may have
    /// had effects; the agent is told they were interrupted).
    pub async fn recover(&self) -> Result<Vec<String>, ApprovalError> {
        let mut to_run = Vec::new();
        for mut approval in self.storage.approvals().open_approvals().await? {
            // A workflow step's approval is its run's to carry out: the run
            // resumes and takes it from where it stands.
            if approval.run.is_some() {
                continue;
            }
            // A held workflow call whose run started: the run resumes, and
            // its end answers the approval.
            if approval.state == ApprovalState::Executing && self.storage.runs().run(&approval.id).await?.is_some() {
                continue;
            }
            match approval.state {
                ApprovalState::Approved => to_run.push(approval.id.clone()),
                // Another node runs it (or did, and closes it when it
                // starts again).
                ApprovalState::Executing
                    if approval
                        .executor
                        .as_deref()
                        .is_some_and(|node| node != self.storage.node()) => {}
                ApprovalState::Executing => {
                    let from = (approval.state, approval.decisions.len());
                    approval.state = ApprovalState::Done;
                    approval.finished = Some(now_ms());
                    approval.answer = Some(Answered::Failed {
                        error: CallError::Interrupted {
                            message: "the host stopped while this approved call ran; it was not run again (it may have had effects)".into(),
                        },
                        audit_id: None,
                        plugin_version: None,
                        run: None,
                    });
                    self.save(&approval, from).await?;
                }
                _ => {}
            }
        }
        Ok(to_run)
    }

    /// Held calls waiting for a decision.
    pub async fn pending(&self) -> Result<Vec<Approval>, ApprovalError> {
        let open = self.storage.approvals().open_approvals().await?;
        Ok(open.into_iter().filter(|a| a.state == ApprovalState::Pending).collect())
    }

    /// One page of the held calls waiting for a decision, oldest first: at
    /// most `limit` of those after id `after`, whether more follow, and how
    /// many wait in all.
    pub async fn pending_page(&self, after: Option<&str>, limit: usize) -> Result<PendingPage, ApprovalError> {
        let mut pending = self.pending().await?;
        // Ids are time-ordered: the order of the queue and of its pages.
        pending.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let total = pending.len();
        let mut later = pending
            .into_iter()
            .filter(|a| after.is_none_or(|after| a.id.as_str() > after));
        let page: Vec<Approval> = later.by_ref().take(limit).collect();
        let more = later.next().is_some();
        Ok(PendingPage { page, more, total })
    }

    /// Every approval, newest first.
    pub async fn list(&self, before: Option<&str>, limit: usize) -> Result<Vec<Approval>, ApprovalError> {
        Ok(self.storage.approvals().approvals(before, limit).await?)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Another node changed approval `id`: this node's waiters and event
    /// streams hear of it (reviewers' webhook was called by the node that
    /// held the call).
    pub async fn heard(&self, id: &str) -> Result<(), ApprovalError> {
        let approval = Arc::new(self.load(id).await?);
        let _ = self.notices.send(Notice {
            event: Happened::of(&approval),
            approval: approval.clone(),
        });
        if approval.state.is_final() {
            self.unlock(id);
        }
        Ok(())
    }

    /// Another node replaced the approval rules: apply them here too. Read
    /// on every change another node announces and at every reconciliation,
    /// so through the store's pool, never a connection of its own.
    pub async fn reload_rules(&self) -> Result<(), SetRulesError> {
        if let Some(mut rules) = self.storage.operator().approval_rules().await? {
            rules.webhook = None;
            self.policy.store(Arc::new(ApprovalPolicy::new(rules)?));
        }
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<Approval, ApprovalError> {
        self.storage
            .approvals()
            .approval(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))
    }

    async fn record(
        &self,
        approval: &Approval,
        outcome: Outcome,
        by: Option<&str>,
        reason: String,
        change: Option<(Value, Value)>,
    ) -> Result<(), ApprovalError> {
        self.audit
            .append_approval(&ApprovalEvent {
                approval: &approval.id,
                outcome,
                via: approval.via,
                tool: &approval.tool,
                session: approval.session.as_deref(),
                plugin_version: Some(&approval.plugin_version),
                plugin_digest: Some(&approval.plugin_digest),
                token: by,
                arguments: Value::Null,
                arguments_digest: Some(&approval.arguments_digest),
                reason,
                run: approval.run.as_deref(),
                step: approval.step.as_deref(),
                change,
            })
            .await?;
        Ok(())
    }

    /// Tell this node's listeners (and, for a hold, the reviewers' webhook)
    /// what happened, and count it. Another node's changes are heard, not
    /// announced: that node counted them.
    fn announce(&self, event: Happened, approval: &Arc<Approval>) {
        if let Some(counted) = event.counted() {
            self.metrics.approval(&approval.tool, counted);
        }
        if event.decides() {
            self.metrics
                .decided(Duration::from_millis(now_ms().saturating_sub(approval.created)));
        }
        // Nobody listening is fine.
        let _ = self.notices.send(Notice {
            event,
            approval: approval.clone(),
        });
        if let (Some(webhook), Happened::Held) = (&self.webhook, event) {
            let name: &'static str = event.into();
            webhook.deliver(
                approval.id.clone(),
                json!({ "event": name, "approval": view(approval) }),
            );
        }
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.get(id)
    }

    /// Forget the lock of a final approval (nothing changes it any more),
    /// unless someone is still holding or waiting for it.
    fn unlock(&self, id: &str) {
        self.locks.forget(id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetRulesError {
    #[error(transparent)]
    Invalid(#[from] RuleError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// `reviewer`'s decision on `approval`, read as pending and not past its
/// expiry: refused if they may not decide it, else added, and the state it
/// leaves (with the event and outcome it is recorded as).
fn judge(
    approval: &mut Approval,
    reviewer: &str,
    verdict: Verdict,
    reason: &str,
    now: u64,
) -> Result<(Happened, Outcome), ApprovalError> {
    if approval.state != ApprovalState::Pending {
        return Err(ApprovalError::Decided {
            id: approval.id.clone(),
            state: approval.state,
        });
    }
    if approval.token == reviewer {
        return Err(ApprovalError::OwnCall {
            token: reviewer.to_string(),
        });
    }
    if approval.decisions.iter().any(|d| d.by == reviewer) {
        return Err(ApprovalError::AlreadyApproved {
            token: reviewer.to_string(),
        });
    }
    approval.decisions.push(Decision {
        by: reviewer.to_string(),
        verdict,
        reason: reason.to_string(),
        at: now,
    });
    let approvals = approval
        .decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Approve)
        .count();
    Ok(match verdict {
        Verdict::Reject => {
            approval.state = ApprovalState::Rejected;
            approval.finished = Some(now);
            approval.answer = Some(Answered::NotRun {
                why: NotRun::Rejected,
                message: format!("a reviewer ({reviewer}) rejected this call: {reason}"),
            });
            (Happened::Rejected, Outcome::Rejected)
        }
        Verdict::Approve if approvals >= usize::from(approval.approvers) => {
            approval.state = ApprovalState::Approved;
            (Happened::Approved, Outcome::Approved)
        }
        Verdict::Approve => (Happened::Decision, Outcome::Approved),
    })
}

fn reason_word(held: &Held) -> &'static str {
    held.reason.describe()
}
