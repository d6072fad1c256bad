//! Workflow runs on this host: starting one for a caller, driving it (the
//! [`Engine`] with this host's side of each step: the workflow's grant, the
//! approval rules, the call and its audit record, the journal in storage),
//! waiting for one, cancelling one, and resuming those a stop or a crash
//! left open.
//!
//! A run's task is tracked like a detached call, so a stop waits for the
//! step in flight to finish and be journaled; a run waiting (for a person
//! or a timer) stops at once, and resumes at the next start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::model::call::{CallError, Timings};
use crate::model::time::{now_ms, rfc3339_ms};

use super::auth::Principal;
use super::recorded::{self, AppError};
use super::App;
use crate::call::invoke::CallOutcome;
use crate::config::Role;
use crate::model::approval::{Answered, Approval, ApprovalState, NotRun};
use crate::model::audit::{AuditRecord, Caller};
use crate::model::problem::{kinds, Problem};
use crate::model::run::{Run, RunState, Step};
use crate::workflow::engine::{CallEnd, Engine, Halt, Host, StepCall};
use crate::workflow::Workflow;

/// How long a call of a workflow waits for its run to end before it
/// answers `202` with the run (it answers at once when a step waits for a
/// person).
pub const CALL_WAIT: Duration = Duration::from_secs(20);
/// Longest wait a client may ask for on `GET /v1/runs/{id}?wait=`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long a node's lease on a run it drives lasts, where nodes share the
/// store: a run whose node died is taken over this long after its last
/// renewal at most (plus one renewal period).
pub const LEASE: Duration = Duration::from_secs(15);
/// How often the lease is renewed, and other nodes look for runs to take over.
const LEASE_RENEWAL: Duration = Duration::from_secs(5);
/// How often a waiter reads a run again where nodes share the store (the
/// node driving it may be another).
const RECHECK: Duration = Duration::from_secs(2);

/// The runs this process drives.
#[derive(Default)]
pub struct Runs {
    /// What each run's expressions may spend.
    limits: crate::workflow::budget::Limits,
    /// Bumped whenever a run changes; waiters look again.
    changes: tokio::sync::watch::Sender<u64>,
    /// Each running run's halt, by id: cancelling one stops it.
    active: Mutex<HashMap<String, CancellationToken>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no run {0:?}")]
    NotFound(String),
    #[error("run {id} has ended ({state})")]
    Ended { id: String, state: &'static str },
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl Runs {
    pub fn new(limits: crate::workflow::budget::Limits) -> Runs {
        Runs {
            limits,
            ..Runs::default()
        }
    }

    /// Waiters look again (a run changed here, or on another node).
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Start a run of `workflow` for `caller` (input already checked): stored
/// before it starts, then driven in the background. Returns the run once it
/// ended, waits for a person, or [`CALL_WAIT`] passed.
pub async fn start(
    app: &Arc<App>,
    workflow: Arc<Workflow>,
    token: &str,
    caller: &Caller,
    input: &Value,
) -> Result<Run, RunError> {
    let run = begin(app, workflow, token, caller, input).await?;
    wait(app, &run.id, CALL_WAIT, true).await
}

/// Start a run (kept durably first) without waiting for it. The run of an
/// approved call (`caller.approval`) takes the approval's id, so carrying
/// the approval out again finds the run rather than starting another.
pub async fn begin(
    app: &Arc<App>,
    workflow: Arc<Workflow>,
    token: &str,
    caller: &Caller,
    input: &Value,
) -> Result<Run, RunError> {
    let now = now_ms();
    let id = match &caller.approval {
        Some(approval) => {
            if let Some(run) = app.runtime.storage().runs().run(approval).await? {
                return Ok(run);
            }
            approval.clone()
        }
        None => format!("{now:013x}{:08x}", rand::random::<u32>()),
    };
    let run = Run {
        id,
        workflow: workflow.name().to_string(),
        version: workflow.definition.version.to_string(),
        digest: workflow.digest.clone(),
        state: RunState::Running,
        input: input.clone(),
        output: None,
        error: None,
        via: caller.via,
        token: token.to_string(),
        session: caller.session.clone(),
        waiting_on: None,
        created: now,
        updated: now,
        finished: None,
        cancelled_by: None,
        audit_id: None,
        approval: caller.approval.clone(),
    };
    app.runtime.storage().runs().put_run(&run).await?;
    spawn(app, workflow, run.clone());
    Ok(run)
}

/// Drive `run` (new or resumed) in the background. Where nodes share the
/// store, this node holds the run's lease meanwhile, and stops driving it
/// if the lease is lost (another node took the run over).
pub fn spawn(app: &Arc<App>, workflow: Arc<Workflow>, run: Run) {
    let halt = app.stopping.child_token();
    app.runs.active().insert(run.id.clone(), halt.clone());
    let driver = app.clone();
    let lease = app
        .runtime
        .storage()
        .is_shared()
        .then(|| tokio::spawn(hold_lease(app.clone(), run.id.clone(), halt.clone())));
    drop(app.runtime.detach(async move {
        let id = run.id.clone();
        // Driven on the workflow threads (their expressions take CPU; see
        // `workflow::budget`), tracked here so a stop waits for it.
        let driving = {
            let driver = driver.clone();
            async move { drive(&driver, workflow, run, halt).await }
        };
        match crate::workflow::budget::executor() {
            Some(executor) => {
                if let Err(e) = executor.spawn(driving).await {
                    tracing::error!(run = %id, "the run's driver failed: {e}");
                }
            }
            None => driving.await,
        }
        if let Some(lease) = lease {
            lease.abort();
        }
        driver.runs.active().remove(&id);
        driver.runs.changed();
    }));
}

/// Renew this node's lease on run `id` until aborted; if another node has
/// taken the run over, `halt` it here.
async fn hold_lease(app: Arc<App>, id: String, halt: CancellationToken) {
    let storage = app.runtime.storage();
    loop {
        tokio::time::sleep(LEASE_RENEWAL).await;
        let until = now_ms() + LEASE.as_millis() as u64;
        match storage.runs().lease_run(&id, storage.node(), until).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(run = %id, "this run was closed or taken over by another node; it stops here");
                halt.cancel();
                return;
            }
            // Kept trying: if the lease runs out meanwhile, the next renewal
            // finds the run taken over.
            Err(e) => tracing::warn!(run = %id, "cannot renew the run's lease: {e}"),
        }
    }
}

/// Another node changed run `id`: waiters look again, and if this node
/// drives it and it was closed there (cancelled), it stops here.
pub async fn heard(app: &Arc<App>, id: &str) {
    app.runs.changed();
    let Some(halt) = app.runs.active().get(id).cloned() else {
        return;
    };
    match get(app, id).await {
        Ok(run) if !run.state.is_open() => halt.cancel(),
        Ok(_) => {}
        Err(e) => tracing::warn!(run = %id, "reading a run another node changed: {e}"),
    }
}

/// Where nodes share the store, take over the open runs nobody drives (their
/// node died and their lease ran out), now and then, until the host stops.
pub fn spawn_takeover(app: &Arc<App>) {
    if !app.runtime.storage().is_shared() {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(LEASE_RENEWAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = app.stopping.cancelled() => return,
            }
            match recover(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("took over {n} workflow run(s) whose node stopped"),
                Err(e) => tracing::error!("taking over workflow runs: {e}"),
            }
        }
    });
}

/// The run `id` once it has ended (or, with `or_waiting`, waits for a
/// person), or as it stands after `wait`.
pub async fn wait(app: &Arc<App>, id: &str, wait: Duration, or_waiting: bool) -> Result<Run, RunError> {
    let mut changes = app.runs.changes.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let run = get(app, id).await?;
        let settled = !run.state.is_open() || (or_waiting && run.state == RunState::Waiting);
        if settled {
            return Ok(run);
        }
        let wake = if app.runtime.storage().is_shared() {
            deadline.min(tokio::time::Instant::now() + RECHECK)
        } else {
            deadline
        };
        match tokio::time::timeout_at(wake, changes.changed()).await {
            Ok(Ok(())) => {}
            Err(_) if wake < deadline => {}
            Ok(Err(_)) | Err(_) => return get(app, id).await,
        }
    }
}

/// Runs, newest first, older than `before` (a run id), at most `limit`; and
/// the cursor of the next page when there may be more (for the API and the
/// console).
pub async fn page(app: &Arc<App>, before: Option<&str>, limit: usize) -> Result<(Vec<Run>, Option<String>), RunError> {
    let page = app.runtime.storage().runs().runs(before, limit).await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.id.clone()))
        .flatten();
    Ok((page, next))
}

/// The run `id` if `principal` may see it: an agent sees only its own runs
/// (another's is as unknown as one that never was).
pub async fn visible(app: &Arc<App>, principal: &Principal, id: &str) -> Result<Run, RunError> {
    let run = get(app, id).await?;
    if principal.role == Role::Agent && run.token != principal.name {
        return Err(RunError::NotFound(id.to_string()));
    }
    Ok(run)
}

pub async fn get(app: &Arc<App>, id: &str) -> Result<Run, RunError> {
    app.runtime
        .storage()
        .runs()
        .run(id)
        .await?
        .ok_or_else(|| RunError::NotFound(id.to_string()))
}

/// Cancel an open run: recorded first, then its task stops at its next safe
/// point (a step in flight finishes and is journaled; nothing after it runs).
pub async fn cancel(app: &Arc<App>, id: &str, by: &str) -> Result<Run, RunError> {
    let mut run = get(app, id).await?;
    if !run.state.is_open() {
        return Err(RunError::Ended {
            id: id.to_string(),
            state: run.state.as_str(),
        });
    }
    run.state = RunState::Cancelled;
    run.cancelled_by = Some(by.to_string());
    let waiting_on = run.waiting_on.take();
    let problem = Problem::new(
        kinds::TOOL_PREFIX.to_string() + "cancelled",
        409,
        "the run was cancelled",
    )
    .detail(format!("cancelled by {by}"));
    let run = close(app, run, Err(problem)).await?;
    // Halted only once the close is stored: a driver registered after this
    // look finds the run closed when it starts (see `drive`).
    if let Some(halt) = app.runs.active().get(id) {
        halt.cancel();
    }
    // The step it waited on leaves the reviewers' queue.
    if let Some(approval) = waiting_on {
        let why = format!("workflow run {id} was cancelled by {by}");
        if let Err(e) = app.approvals.withdraw(&approval, why).await {
            tracing::error!(run = %id, %approval, "cannot withdraw the approval of a cancelled run: {e}");
        }
    }
    Ok(run)
}

/// At start: drive again every run a stop or a crash left open, on the
/// version of its workflow it started on (where nodes share the store, the
/// open runs no node holds the lease of).
pub async fn recover(app: &Arc<App>) -> Result<usize, RunError> {
    let storage = app.runtime.storage();
    let open = storage.runs().open_runs().await?;
    let mut resumed = 0;
    for run in open {
        if app.runs.active().contains_key(&run.id) {
            continue;
        }
        // Another node drives it (one process owns a store that is not shared).
        let until = now_ms() + LEASE.as_millis() as u64;
        if !storage.runs().lease_run(&run.id, storage.node(), until).await? {
            continue;
        }
        match app.runtime.plugins().workflow_version(&run.workflow, &run.digest).await {
            Some(workflow) => {
                tracing::info!(run = %run.id, workflow = %run.workflow, "resuming a run");
                spawn(app, workflow, run);
                resumed += 1;
            }
            None => {
                let problem = Problem::new(kinds::RUNTIME, 500, "the workflow is gone").detail(format!(
                    "{} version {} ({}) is neither loaded nor archived; the run cannot resume",
                    run.workflow, run.version, run.digest
                ));
                tracing::error!(run = %run.id, "{}", problem.detail.as_deref().unwrap_or_default());
                close(app, run, Err(problem)).await?;
            }
        }
    }
    Ok(resumed)
}

async fn drive(app: &Arc<App>, workflow: Arc<Workflow>, run: Run, halt: CancellationToken) {
    // A cancel that looked for this run's halt before `spawn` registered it
    // has closed the run already: it is not driven.
    match get(app, &run.id).await {
        Ok(stored) if stored.state.is_open() => {}
        Ok(_) => {
            tracing::info!("run {} stopped", run.id);
            return;
        }
        Err(e) => {
            tracing::error!(run = %run.id, "cannot read the run: {e}");
            return;
        }
    }
    let steps = match app.runtime.storage().runs().steps(&run.id).await {
        Ok(steps) => steps,
        Err(e) => {
            tracing::error!(run = %run.id, "cannot read the run's journal: {e}");
            return;
        }
    };
    let host = StepHost {
        app: app.clone(),
        workflow: workflow.clone(),
        run: run.clone(),
    };
    let engine = Engine::new(
        &workflow.definition,
        &host,
        &run.id,
        run.created,
        &run.input,
        steps,
        crate::workflow::budget::Budget::new(app.runs.limits, halt.clone()),
    );
    let ended = match engine {
        Ok(engine) => engine.run().await,
        Err(problem) => Err(Halt::Failed(problem)),
    };
    let result = match ended {
        // Cancelled (already recorded), or the host stops: it resumes at
        // the next start. (An expression told to stop mid-way fails, but
        // the run was stopped, not failed.)
        Err(Halt::Stopped) => {
            tracing::info!("run {} stopped", run.id);
            return;
        }
        Err(Halt::Failed(_)) if halt.is_cancelled() => {
            tracing::info!("run {} stopped", run.id);
            return;
        }
        Ok(output) => workflow.check_output(&output).map(|()| output),
        Err(Halt::Failed(problem)) => Err(problem),
    };
    // Read again: a cancel may have closed it meanwhile.
    let current = match get(app, &run.id).await {
        Ok(current) if current.state.is_open() => current,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(run = %run.id, "{e}");
            return;
        }
    };
    if let Err(e) = close(app, current, result).await {
        tracing::error!(run = %run.id, "cannot record the run's end: {e}");
    }
}

/// Record a run's end: its audit record (the workflow call as a whole),
/// then the run, durably.
async fn close(app: &Arc<App>, mut run: Run, result: Result<Value, Problem>) -> Result<Run, RunError> {
    let now = now_ms();
    let caller = Caller {
        via: run.via,
        token: Some(run.token.clone()),
        session: run.session.clone(),
        run: Some(run.id.clone()),
        ..Default::default()
    };
    let outcome = CallOutcome {
        tool: run.workflow.clone(),
        plugin_version: Some(run.version.clone()),
        plugin_digest: Some(run.digest.clone()),
        result: match &result {
            Ok(output) => Ok(output.clone()),
            Err(problem) if run.state == RunState::Cancelled => Err(CallError::Cancelled {
                message: problem.detail.clone().unwrap_or_default(),
            }),
            Err(problem) => Err(CallError::WorkflowFailed {
                problem: serde_json::to_value(problem).unwrap_or_default(),
            }),
        },
        journal: Default::default(),
        timings: Timings {
            total_us: now.saturating_sub(run.created) * 1000,
            ..Default::default()
        },
        effects: false,
    };
    match app.runtime.record_outcome(&caller, &run.input, &outcome).await {
        Ok(record) => run.audit_id = Some(record.id),
        Err(e) => tracing::error!(run = %run.id, "audit: {e}"),
    }
    app.metrics.record(&outcome);
    match result {
        Ok(output) => {
            run.state = RunState::Completed;
            run.output = Some(output);
        }
        Err(problem) => {
            if run.state != RunState::Cancelled {
                run.state = RunState::Failed;
            }
            run.error = Some(problem);
        }
    }
    run.waiting_on = None;
    run.updated = now;
    run.finished = Some(now);
    app.runtime.storage().runs().put_run(&run).await?;
    app.runs.changed();
    if let Some(approval) = &run.approval {
        answer_approval(app, approval, &run).await;
    }
    Ok(run)
}

/// The run of a workflow call that was held and approved has ended: its
/// answer is the approval's, for the agent waiting on it.
async fn answer_approval(app: &Arc<App>, id: &str, run: &Run) {
    let finished = async {
        let approval = app.approvals.get(id).await?;
        if approval.state != ApprovalState::Executing {
            return Ok(());
        }
        let Some(answered) = Answered::of_run(run) else {
            return Ok(());
        };
        let audit_id = run.audit_id.clone().unwrap_or_default();
        app.approvals
            .finish(Approval::clone(&approval), answered, audit_id)
            .await
            .map(drop)
    };
    if let Err(e) = finished.await {
        tracing::error!(run = %run.id, approval = %id, "cannot answer the approval with the run's end: {e}");
    }
}

/// This host's side of a run's steps.
struct StepHost {
    app: Arc<App>,
    workflow: Arc<Workflow>,
    run: Run,
}

impl StepHost {
    fn caller(&self, call: &StepCall<'_>) -> Caller {
        Caller {
            via: self.run.via,
            token: Some(self.run.token.clone()),
            session: self.run.session.clone(),
            idempotency_key: Some(call.idempotency_key.to_string()),
            approval: None,
            run: Some(self.run.id.clone()),
            step: Some(call.key.to_string()),
            progress: None,
        }
    }

    /// Run `work` (a step's call and its record) detached: a stop waits
    /// for it to end and be recorded.
    async fn detached<F>(&self, work: F) -> CallEnd
    where
        F: std::future::Future<Output = Result<CallEnd, AppError>> + Send + 'static,
    {
        recorded::detached(&self.app, |_| work)
            .await
            .unwrap_or_else(|e: AppError| failed_internally(&e.to_string()))
    }

    /// Carry out an approved (or, after a crash, interrupted) step's call
    /// and keep its answer in the approval.
    async fn execute(&self, call: &StepCall<'_>, approval: Approval) -> CallEnd {
        let (app, tool, args) = (self.app.clone(), call.tool.to_string(), call.arguments.clone());
        let mut caller = self.caller(call);
        caller.approval = Some(approval.id.clone());
        let token = self.run.token.clone();
        self.detached(async move {
            let found = app.runtime.find(&tool);
            let (outcome, record) = recorded::execute_call(&app, &token, &tool, found, &args, &caller).await?;
            let answered = Answered::of(&outcome.result, &record.id, outcome.plugin_version.clone());
            app.approvals
                .finish(approval, answered, record.id.clone())
                .await
                .map_err(AppError::internal)?;
            Ok(end_of(&outcome, &record))
        })
        .await
    }
}

#[async_trait]
impl Host for StepHost {
    async fn call(&self, call: &StepCall<'_>) -> CallEnd {
        let (app, workflow) = (self.app.clone(), self.workflow.clone());
        let (tool, args, caller) = (call.tool.to_string(), call.arguments.clone(), self.caller(call));
        let token = self.run.token.clone();
        self.detached(async move {
            if !workflow.may_call(&tool) {
                let error = CallError::Denied {
                    message: format!(
                        "workflow {:?} may not call {tool}: its grant does not name it",
                        workflow.name()
                    ),
                };
                let (outcome, record) = recorded::refuse(&app, &tool, &args, &caller, error).await?;
                return Ok(end_of(&outcome, &record));
            }
            // A step is a call the agent made through the workflow: it
            // spends the caller's rate like a call of its own, so a loop of
            // calls is no way around the token's rate.
            if app.auth.named(&token).is_some_and(|p| !p.admit()) {
                let error = CallError::ResourceExhausted {
                    reason: crate::model::call::Exhausted::Rate,
                    message: format!(
                        "token {token:?} is over its request rate (a workflow's steps count against its caller's rate)"
                    ),
                };
                let (outcome, record) = recorded::refuse(&app, &tool, &args, &caller, error).await?;
                return Ok(end_of(&outcome, &record));
            }
            // Resolved once, as an agent's own call is (see `calls::call`).
            let found = app.runtime.find(&tool);
            if let Some(found) = &found {
                if let Some(approval) = recorded::hold(&app, &token, found, &args, &caller).await? {
                    return Ok(CallEnd::Held {
                        approval: approval.id.clone(),
                    });
                }
            }
            let (outcome, record) = recorded::execute_call(&app, &token, &tool, found, &args, &caller).await?;
            Ok(end_of(&outcome, &record))
        })
        .await
    }

    async fn held(&self, call: &StepCall<'_>, id: &str) -> CallEnd {
        loop {
            let approval = match self.app.approvals.wait_decided(id, MAX_WAIT).await {
                Ok(approval) => approval,
                Err(e) => return failed_internally(&e.to_string()),
            };
            let refused = |why: NotRun| {
                let reasons: Vec<String> = approval
                    .decisions
                    .iter()
                    .map(|d| format!("{}: {}", d.by, d.reason))
                    .collect();
                let kind = why.kind().replace('_', "-");
                CallEnd::Failed {
                    problem: Problem::new(
                        format!("{}{kind}", kinds::TOOL_PREFIX),
                        why.status(),
                        kind.replace('-', " "),
                    )
                    .detail(if reasons.is_empty() {
                        format!("approval {}", approval.id)
                    } else {
                        format!("approval {}: {}", approval.id, reasons.join("; "))
                    }),
                    audit_id: None,
                }
            };
            match approval.state {
                ApprovalState::Pending => continue,
                ApprovalState::Approved => match self.app.approvals.begin_execution(id).await {
                    Ok(Some(approval)) => return self.execute(call, approval).await,
                    Ok(None) => continue,
                    Err(e) => return failed_internally(&e.to_string()),
                },
                // Only this run carries it out: a restart found it cut
                // short, so it runs again with the same idempotency key.
                ApprovalState::Executing => return self.execute(call, Approval::clone(&approval)).await,
                ApprovalState::Done => {
                    let audit_id = approval.call_audit_id.clone().unwrap_or_default();
                    return match &approval.answer {
                        Some(Answered::Ran { result, .. }) => CallEnd::Done {
                            output: result.clone(),
                            audit_id,
                        },
                        Some(Answered::Failed { error, .. }) => CallEnd::Failed {
                            problem: problem_of(error),
                            audit_id: Some(audit_id),
                        },
                        Some(Answered::NotRun { why, .. }) => refused(*why),
                        None => failed_internally("the approval is done but keeps no answer"),
                    };
                }
                ApprovalState::Rejected => return refused(NotRun::Rejected),
                ApprovalState::Expired => return refused(NotRun::Expired),
                ApprovalState::Lapsed => return refused(NotRun::Lapsed),
            }
        }
    }

    async fn journal(&self, step: &Step) -> Result<(), Problem> {
        let stored = self.app.runtime.storage().runs().put_step(&self.run.id, step).await;
        self.app.runs.changed();
        stored.map_err(|e| Problem::new(kinds::RUNTIME, 500, "cannot journal a step").detail(e.to_string()))
    }

    async fn waiting(&self, approval: Option<&str>) {
        let result = async {
            let mut run = get(&self.app, &self.run.id).await?;
            if !run.state.is_open() {
                return Ok(());
            }
            run.state = if approval.is_some() {
                RunState::Waiting
            } else {
                RunState::Running
            };
            run.waiting_on = approval.map(str::to_string);
            run.updated = now_ms();
            self.app.runtime.storage().runs().put_run(&run).await?;
            self.app.runs.changed();
            Ok::<(), RunError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(run = %self.run.id, "cannot record that the run waits: {e}");
        }
    }
}

fn failed_internally(message: &str) -> CallEnd {
    CallEnd::Failed {
        problem: Problem::new(kinds::RUNTIME, 500, "the host failed to carry out the step").detail(message),
        audit_id: None,
    }
}

/// A step's call as the engine sees it: its result, or the error as a
/// problem.
fn end_of(outcome: &CallOutcome, record: &AuditRecord) -> CallEnd {
    match &outcome.result {
        Ok(value) => CallEnd::Done {
            output: value.clone(),
            audit_id: record.id.clone(),
        },
        Err(error) => CallEnd::Failed {
            problem: problem_of(error),
            audit_id: Some(record.id.clone()),
        },
    }
}

/// The problem for a call's error, at the error's status: the DSL's own
/// error types where one fits, and `toolhost:errors/<kind>` otherwise; a
/// connector's typed error by its case (`toolhost:errors/rate-limited`,
/// `toolhost:errors/upstream`), with the error itself.
pub fn problem_of(error: &CallError) -> Problem {
    let (kind, detail) = match error {
        // A tool's time limit is 504 everywhere; 408 is a task's or the
        // workflow's own `timeout` (the DSL's).
        CallError::Timeout { .. } => (kinds::TIMEOUT.to_string(), None),
        CallError::Denied { .. } => (kinds::AUTHORIZATION.to_string(), None),
        CallError::InvalidInput { .. } => (kinds::VALIDATION.to_string(), None),
        CallError::PluginError { error } => (format!("{}{}", kinds::TOOL_PREFIX, error.case()), error.detail()),
        other => (
            format!("{}{}", kinds::TOOL_PREFIX, other.kind().replace('_', "-")),
            None,
        ),
    };
    let mut problem = Problem::new(kind, error.status(), error.to_string());
    problem.detail = detail;
    if let CallError::PluginError { error } = error {
        problem.error = Some(Box::new(Value::from(error))).filter(|e| !e.is_null());
    }
    problem
}

/// A run as the API shows it, with its steps (arguments a tool's manifest
/// marks secret redacted).
pub fn view(app: &Arc<App>, run: &Run, steps: &[Step]) -> Value {
    let time = rfc3339_ms;
    json!({
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "digest": run.digest,
        "state": run.state,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "token": run.token,
        "session": run.session,
        "waiting_on": run.waiting_on,
        "created": time(run.created),
        "updated": time(run.updated),
        "finished": run.finished.map(time),
        "cancelled_by": run.cancelled_by,
        "audit_id": run.audit_id,
        "steps": steps.iter().map(|s| json!({
            "seq": s.seq,
            "task": s.task,
            "reference": s.reference,
            "key": s.key,
            "kind": s.kind,
            "state": s.state,
            "tool": s.tool,
            "idempotency_key": s.idempotency_key,
            "arguments": s.arguments.as_ref().map(|a| {
                crate::audit::redact(a, &app.runtime.secret_fields(s.tool.as_deref().unwrap_or_default()))
            }),
            "output": s.output,
            "error": s.error,
            "approval": s.approval,
            "audit_ids": s.audit_ids,
            "until": s.until.map(time),
            "started": time(s.started),
            "finished": s.finished.map(time),
        })).collect::<Vec<_>>(),
        "wait": format!("/v1/runs/{}?wait=60", run.id),
        "audit": format!("/v1/audit?run={}", run.id),
    })
}
