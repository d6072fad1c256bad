//! Runs a workflow's tasks, top to bottom, against a journal.
//!
//! Durability by replay: everything a task does is a pure function of the
//! data that reaches it (jq expressions, switches, loops), except the steps
//! that touch the world: tool calls and timers. Those are journaled by a
//! key that is the same every time the run reaches them (the task's JSON
//! Pointer, the loop indices and retry attempt it runs in). A run that
//! resumes after a crash runs from the top again; a journaled step that
//! finished gives its recorded result instead of running, a step that was
//! in flight runs again with the same idempotency key, a held step waits
//! for its approval again, and a timer sleeps only what is left of it. A
//! retry's duration limit reads the clock too: when its `try` first began
//! is journaled, so a resumed run spends what is left of that budget.
//!
//! The host side (grants, approval rules, the call itself, its audit
//! record, where the journal is stored) is the [`Host`]'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::definition::{Backoff, Catch, Definition, Flow, ForLoop, Kind, Retry, Task};
use super::expr::{to_val, ExprError, Vars};
use crate::model::problem::{kinds, Problem};
use crate::model::run::{Step, StepKind, StepState};
use crate::model::time::now_ms;

/// Most task transitions in one run (a `then:` loop that never ends stops here).
pub const MAX_TRANSITIONS: u32 = 10_000;

/// Why a run stopped before its end.
#[derive(Debug)]
pub enum Halt {
    /// It failed: the error no `catch` handled.
    Failed(Problem),
    /// It was told to stop (cancelled, or the host is stopping) at a point
    /// where stopping is safe: before a call, or while it waited. No
    /// `catch` sees this.
    Stopped,
}

impl From<Problem> for Halt {
    fn from(p: Problem) -> Halt {
        Halt::Failed(p)
    }
}

/// What a tool call for a step came to.
pub enum CallEnd {
    Done {
        output: Value,
        audit_id: String,
    },
    Failed {
        problem: Problem,
        audit_id: Option<String>,
    },
    /// Held for a reviewer; nothing ran yet.
    Held {
        approval: String,
    },
}

/// A step's tool call, as the host sees it.
pub struct StepCall<'a> {
    pub run: &'a str,
    pub task: &'a Task,
    /// The journal key (see the module doc).
    pub key: &'a str,
    pub idempotency_key: &'a str,
    pub tool: &'a str,
    pub arguments: &'a Value,
}

/// What the engine needs from the host.
#[async_trait]
pub trait Host: Send + Sync {
    /// Call a tool for a step: the workflow's grant, the approval rules,
    /// the call and its audit record.
    async fn call(&self, call: &StepCall<'_>) -> CallEnd;
    /// Wait for a held step's decision, and run it once approved (again,
    /// with the same idempotency key, if a crash cut it short). Never `Held`.
    async fn held(&self, call: &StepCall<'_>, approval: &str) -> CallEnd;
    /// Make a journal entry durable.
    async fn journal(&self, step: &Step) -> Result<(), Problem>;
    /// The run waits for `approval` (`Some`), or no longer (`None`).
    async fn waiting(&self, approval: Option<&str>);
}

/// One run in progress.
pub struct Engine<'a> {
    definition: &'a Definition,
    host: &'a dyn Host,
    run: String,
    /// `$workflow`: id, definition, input, startedAt (as jq's value, read
    /// once: an expression's variables are shared, never copied per task).
    workflow: jaq_json::Val,
    /// `$input`: the workflow's input after `input.from`.
    input: Value,
    /// The same, as jq's value.
    input_jq: jaq_json::Val,
    /// `$context`: what tasks exported, as jq's value.
    context: Mutex<jaq_json::Val>,
    /// What the run's expressions may still spend.
    budget: Arc<Budget>,
    journal: Mutex<Journal>,
    transitions: std::sync::atomic::AtomicU32,
    halt: CancellationToken,
}

#[derive(Default)]
struct Journal {
    by_key: HashMap<String, Step>,
    next: u32,
}

/// Where in the run a task is: loop variables in scope (in the order the
/// definition's scopes declared them) and the loop indices and retry
/// attempts around it.
#[derive(Clone, Default)]
struct Frame {
    vars: Vec<(String, Value)>,
    loops: String,
    attempts: String,
}

impl Frame {
    /// The journal key of `task` here (see the module doc).
    fn key(&self, task: &Task) -> String {
        format!("{}{}{}", task.reference, self.loops, self.attempts)
    }

    fn with(&self, name: &str, value: Value) -> Frame {
        let mut frame = self.clone();
        match frame.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => frame.vars.push((name.to_string(), value)),
        }
        frame
    }
}

/// How a task list ended.
enum Signal {
    Normal,
    /// A task said `then: end`.
    End,
}

impl<'a> Engine<'a> {
    /// `steps` is the run's journal so far (empty for a new run); `halt`,
    /// once cancelled, stops the run at its next safe point.
    pub fn new(
        definition: &'a Definition,
        host: &'a dyn Host,
        run: &str,
        started: u64,
        raw_input: &Value,
        steps: Vec<Step>,
        budget: Arc<Budget>,
    ) -> Result<Engine<'a>, Problem> {
        let halt = budget.halt().clone();
        let workflow = json!({
            "id": run,
            "definition": {
                "namespace": definition.namespace,
                "name": definition.name,
                "version": definition.version.to_string(),
            },
            "input": raw_input,
            "startedAt": started,
        });
        let jq = |v: &Value| to_val(v).map_err(|e| Problem::new(kinds::RUNTIME, 500, "cannot read a value").detail(e));
        let mut engine = Engine {
            definition,
            host,
            run: run.to_string(),
            workflow: jq(&workflow)?,
            input: raw_input.clone(),
            input_jq: jq(raw_input)?,
            context: Mutex::new(jq(&json!({}))?),
            budget,
            journal: Mutex::new(Journal {
                next: steps.iter().map(|s| s.seq + 1).max().unwrap_or(0),
                by_key: steps.into_iter().map(|s| (s.key.clone(), s)).collect(),
            }),
            transitions: Default::default(),
            halt,
        };
        if let Some(from) = &definition.input_from {
            let vars = engine.vars(&Frame::default(), &Value::Null, None);
            engine.input = from.eval(raw_input, &vars).map_err(|e| expression(&e, "/input/from"))?;
            engine.input_jq = jq(&engine.input)?;
        }
        Ok(engine)
    }

    /// Run to the end: the workflow's output, or the error it ended with.
    pub async fn run(&self) -> Result<Value, Halt> {
        let body = self.list(&self.definition.tasks, self.input.clone(), Frame::default());
        let (data, _) = match self.definition.timeout {
            Some(limit) => tokio::time::timeout(limit, body).await.map_err(|_| {
                Problem::new(kinds::TIMEOUT, 408, "the workflow timed out")
                    .detail(format!("it ran longer than {limit:?}"))
            })??,
            None => body.await?,
        };
        match &self.definition.output_as {
            None => Ok(data),
            Some(t) => {
                let vars = self.vars(&Frame::default(), &data, None);
                Ok(t.eval(&data, &vars).map_err(|e| expression(&e, "/output/as"))?)
            }
        }
    }

    /// The variables' values, in the order `definition::Scope` declares
    /// them: the base ones, then the frame's.
    fn vars(&self, frame: &Frame, task_input: &Value, task: Option<(&Task, &str)>) -> Vars {
        let context = self.context.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let task = match task {
            Some((t, idempotency_key)) => json!({
                "name": t.name,
                "reference": t.reference,
                "input": task_input,
                "idempotencyKey": idempotency_key,
            }),
            None => Value::Null,
        };
        let jq = |v: &Value| to_val(v).unwrap_or_default();
        let mut vars = Vars::new(
            vec![context, self.input_jq.clone(), jq(&task), self.workflow.clone()],
            self.budget.clone(),
        );
        for (_, v) in &frame.vars {
            vars.push(jq(v));
        }
        vars
    }

    fn list<'f>(
        &'f self,
        tasks: &'f [Task],
        input: Value,
        frame: Frame,
    ) -> BoxFuture<'f, Result<(Value, Signal), Halt>> {
        Box::pin(async move {
            let mut data = input;
            let mut i = 0;
            while let Some(task) = tasks.get(i) {
                // A run that only computes never reaches a call or a timer:
                // it stops here too, between two tasks.
                if self.halt.is_cancelled() {
                    return Err(Halt::Stopped);
                }
                let n = self.transitions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= MAX_TRANSITIONS {
                    // A bound of the run's budget: the same run would end here again.
                    return Err(Problem::new(kinds::BUDGET, 422, "too many task transitions")
                        .detail(format!("more than {MAX_TRANSITIONS}: does a `then:` loop never end?"))
                        .into());
                }
                let (output, flow) = self.task(task, data, &frame).await?;
                data = output;
                match flow {
                    Flow::Continue => i += 1,
                    Flow::Exit => break,
                    Flow::End => return Ok((data, Signal::End)),
                    Flow::Goto(name) => {
                        i = tasks.iter().position(|t| t.name == name).ok_or_else(|| {
                            Problem::new(kinds::RUNTIME, 500, "no such task").detail(format!("`then: {name}`"))
                        })?;
                    }
                }
            }
            Ok((data, Signal::Normal))
        })
    }

    fn idempotency_key(&self, task: &Task, frame: &Frame) -> String {
        let digest = Sha256::digest(format!("{}{}", task.reference, frame.loops).as_bytes());
        format!("wf-{}-{}", self.run, &hex::encode(digest)[..16])
    }

    async fn task(&self, task: &Task, input: Value, frame: &Frame) -> Result<(Value, Flow), Halt> {
        let key = self.idempotency_key(task, frame);
        // Built when an expression needs them, and again after the body ran:
        // a `do`, `for` or `try` body may have exported a new `$context`.
        let vars = |input: &Value| self.vars(frame, input, Some((task, &key)));
        let at = |e: ExprError, what: &str| expression(&e, &format!("{}/{what}", task.reference));
        let before = (task.when.is_some() || task.input_from.is_some()).then(|| vars(&input));
        if let (Some(condition), Some(before)) = (&task.when, &before) {
            if !condition.test(&input, before).map_err(|e| at(e, "if"))? {
                return Ok((input, Flow::Continue));
            }
        }
        let input = match (&task.input_from, &before) {
            (Some(from), Some(before)) => from.eval(&input, before).map_err(|e| at(e, "input/from"))?,
            _ => input,
        };
        let body = self.kind(task, input, frame, &key);
        let (raw, flow) = match task.timeout {
            Some(limit) => tokio::time::timeout(limit, body).await.map_err(|_| {
                let mut p = Problem::new(kinds::TIMEOUT, 408, "the task timed out")
                    .detail(format!("{} ran longer than {limit:?}", task.name));
                p.instance = Some(task.reference.clone());
                p
            })??,
            None => body.await?,
        };
        let output = match &task.output_as {
            Some(t) => t.eval(&raw, &vars(&raw)).map_err(|e| at(e, "output/as"))?,
            None => raw,
        };
        if let Some(export) = &task.export_as {
            let exported = export.eval(&output, &vars(&output)).map_err(|e| at(e, "export/as"))?;
            let exported = to_val(&exported).map_err(|e| {
                at(
                    ExprError::Output {
                        expr: "export/as".into(),
                        message: e,
                    },
                    "export/as",
                )
            })?;
            *self.context.lock().unwrap_or_else(|p| p.into_inner()) = exported;
        }
        Ok((output, flow.unwrap_or_else(|| task.then.clone())))
    }

    /// What the task does; `Some(flow)` overrides its `then` (a switch's case,
    /// or `end` from a nested list).
    fn kind<'f>(
        &'f self,
        task: &'f Task,
        input: Value,
        frame: &'f Frame,
        key: &'f str,
    ) -> BoxFuture<'f, Result<(Value, Option<Flow>), Halt>> {
        Box::pin(async move {
            let vars = || self.vars(frame, &input, Some((task, key)));
            let at = |e: ExprError, what: &str| failed_at(task, &e, what);
            match &task.kind {
                Kind::Call { tool, with } => {
                    let arguments = with.eval(&input, &vars()).map_err(|e| at(e, "with"))?;
                    let output = self.call(task, frame, key, tool, &arguments).await?;
                    Ok((output, None))
                }
                Kind::Set(set) => Ok((set.eval(&input, &vars()).map_err(|e| at(e, "set"))?, None)),
                Kind::Switch(cases) => {
                    let vars = vars();
                    for case in cases {
                        let matched = match &case.when {
                            None => true,
                            Some(w) => w.test(&input, &vars).map_err(|e| at(e, "switch"))?,
                        };
                        if matched {
                            return Ok((input, Some(case.then.clone())));
                        }
                    }
                    Ok((input, None))
                }
                Kind::Raise(template) => {
                    let raised = template.0.eval(&input, &vars()).map_err(|e| at(e, "raise/error"))?;
                    let mut problem: Problem = serde_json::from_value(raised.clone()).map_err(|e| {
                        Problem::new(kinds::VALIDATION, 400, "a raised error is not an error")
                            .detail(format!("{raised}: {e}"))
                    })?;
                    problem.instance.get_or_insert_with(|| task.reference.clone());
                    Err(problem.into())
                }
                Kind::Do(tasks) => Ok(ended(self.list(tasks, input, frame.clone()).await?)),
                Kind::Wait(duration) => {
                    self.timer(task, &frame.key(task), *duration).await?;
                    Ok((input, None))
                }
                Kind::For(each) => self.for_each(task, each, input, frame, key).await,
                Kind::Try { body, catch } => self.attempt(task, body, catch, input, frame, key).await,
            }
        })
    }

    /// A `for` task: its body once per item, while its `while` holds.
    async fn for_each(
        &self,
        task: &Task,
        each: &ForLoop,
        input: Value,
        frame: &Frame,
        key: &str,
    ) -> Result<(Value, Option<Flow>), Halt> {
        let at = |e: ExprError, what: &str| failed_at(task, &e, what);
        let vars = || self.vars(frame, &input, Some((task, key)));
        let collection = each.collection.eval(&input, &vars()).map_err(|e| at(e, "for/in"))?;
        let items = match collection {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                return Err(Problem::new(kinds::VALIDATION, 400, "`for.in` is not a list")
                    .detail(format!("{}: got {other}", task.reference))
                    .into())
            }
        };
        let mut data = input;
        for (i, item) in items.into_iter().enumerate() {
            let mut inner = frame.with(&each.each, item).with(&each.at, Value::from(i));
            inner.loops.push_str(&format!("[{i}]"));
            if let Some(w) = &each.while_ {
                let vars = self.vars(&inner, &data, Some((task, key)));
                if !w.test(&data, &vars).map_err(|e| at(e, "while"))? {
                    break;
                }
            }
            let (out, signal) = self.list(&each.body, data, inner).await?;
            data = out;
            if let Signal::End = signal {
                return Ok((data, Some(Flow::End)));
            }
        }
        Ok((data, None))
    }

    /// A `try` task: its body, and when that fails with a problem its
    /// `catch` takes, the retries the catch allows, then the catch's body.
    async fn attempt(
        &self,
        task: &Task,
        body: &[Task],
        catch: &Catch,
        input: Value,
        frame: &Frame,
        key: &str,
    ) -> Result<(Value, Option<Flow>), Halt> {
        let at = |e: ExprError, what: &str| failed_at(task, &e, what);
        let began = self.retry_budget(task, &frame.key(task), catch.retry.as_ref()).await?;
        let mut attempt = 1u32;
        loop {
            let mut inner = frame.clone();
            if attempt > 1 {
                inner.attempts.push_str(&format!("@{attempt}"));
            }
            let problem = match self.list(body, input.clone(), inner).await {
                Ok(done) => return Ok(ended(done)),
                // A spent budget is the run's, not the task's: no
                // `catch` can spend it again.
                Err(Halt::Failed(p)) if p.kind != kinds::BUDGET => p,
                Err(Halt::Failed(p)) => return Err(Halt::Failed(p)),
                Err(Halt::Stopped) => return Err(Halt::Stopped),
            };
            let caught = frame.with(&catch.variable, serde_json::to_value(&problem).unwrap_or_default());
            let vars = self.vars(&caught, &input, Some((task, key)));
            if !problem.matches(&catch.with) {
                return Err(problem.into());
            }
            let test = |e: &Option<super::expr::Expr>, what: &str, default: bool| match e {
                None => Ok(default),
                Some(e) => e.test(&input, &vars).map_err(|err| at(err, what)),
            };
            if !test(&catch.when, "catch/when", true)? || test(&catch.except_when, "catch/exceptWhen", false)? {
                return Err(problem.into());
            }
            if let Some(retry) = &catch.retry {
                let wanted = test(&retry.when, "catch/retry/when", true)?
                    && !test(&retry.except_when, "catch/retry/exceptWhen", false)?;
                let elapsed = Duration::from_millis(now_ms().saturating_sub(began));
                if wanted && retry.allows(attempt + 1, elapsed) {
                    let pause = retry.pause(attempt);
                    let timer = format!("{}/retry@{}", frame.key(task), attempt + 1);
                    self.timer(task, &timer, pause).await?;
                    attempt += 1;
                    continue;
                }
            }
            if catch.body.is_empty() {
                return Ok((input, None));
            }
            return Ok(ended(self.list(&catch.body, input, caught).await?));
        }
    }

    fn journaled(&self, key: &str) -> Option<Step> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .get(key)
            .cloned()
    }

    /// Keep `step` (new: numbered now) in the journal, durably.
    async fn record(&self, mut step: Step, new: bool) -> Result<Step, Problem> {
        {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            if new {
                step.seq = journal.next;
                journal.next += 1;
            }
            journal.by_key.insert(step.key.clone(), step.clone());
        }
        self.host.journal(&step).await?;
        Ok(step)
    }

    fn new_step(task: &Task, key: &str, kind: StepKind) -> Step {
        Step {
            seq: 0,
            key: key.to_string(),
            task: task.name.clone(),
            reference: task.reference.clone(),
            kind,
            state: StepState::Started,
            tool: None,
            idempotency_key: None,
            arguments: None,
            output: None,
            error: None,
            approval: None,
            audit_ids: Vec::new(),
            until: None,
            started: now_ms(),
            finished: None,
        }
    }

    /// Wait for a held step's approval and its call, unless told to stop.
    async fn held(&self, call: &StepCall<'_>, approval: &str) -> Result<CallEnd, Halt> {
        self.host.waiting(Some(approval)).await;
        let end = tokio::select! {
            end = self.host.held(call, approval) => end,
            () = self.halt.cancelled() => return Err(Halt::Stopped),
        };
        self.host.waiting(None).await;
        Ok(end)
    }

    /// A tool call, journaled.
    async fn call(
        &self,
        task: &Task,
        frame: &Frame,
        idempotency_key: &str,
        tool: &str,
        arguments: &Value,
    ) -> Result<Value, Halt> {
        let key = frame.key(task);
        let call = StepCall {
            run: &self.run,
            task,
            key: &key,
            idempotency_key,
            tool,
            arguments,
        };
        let prior = self.journaled(&key);
        let (mut step, end) = match prior {
            Some(step) if step.state == StepState::Done => return Ok(step.output.unwrap_or(Value::Null)),
            Some(step) if step.state == StepState::Failed => {
                return Err(step
                    .error
                    .unwrap_or_else(|| Problem::new(kinds::RUNTIME, 500, "failed"))
                    .into())
            }
            Some(step) if step.state == StepState::Held => {
                let approval = step.approval.clone().unwrap_or_default();
                let end = self.held(&call, &approval).await?;
                (step, end)
            }
            _ if self.halt.is_cancelled() => return Err(Halt::Stopped),
            prior => {
                let new = prior.is_none();
                let mut step = prior.unwrap_or_else(|| Self::new_step(task, &key, StepKind::Call));
                step.tool = Some(tool.to_string());
                step.idempotency_key = Some(idempotency_key.to_string());
                step.arguments = Some(arguments.clone());
                step.state = StepState::Started;
                let mut step = self.record(step, new).await?;
                let mut end = self.host.call(&call).await;
                if let CallEnd::Held { approval } = &end {
                    step.state = StepState::Held;
                    step.approval = Some(approval.clone());
                    step = self.record(step, false).await?;
                    end = self.held(&call, approval).await?;
                }
                (step, end)
            }
        };
        step.finished = Some(now_ms());
        let result = match end {
            CallEnd::Done { output, audit_id } => {
                step.state = StepState::Done;
                step.output = Some(output.clone());
                step.audit_ids.push(audit_id);
                Ok(output)
            }
            CallEnd::Failed { mut problem, audit_id } => {
                problem.instance.get_or_insert_with(|| task.reference.clone());
                step.state = StepState::Failed;
                step.error = Some(problem.clone());
                step.audit_ids.extend(audit_id);
                Err(problem)
            }
            CallEnd::Held { approval } => {
                let p = Problem::new(kinds::RUNTIME, 500, "a held call came back held")
                    .detail(format!("approval {approval}"));
                step.state = StepState::Failed;
                step.error = Some(p.clone());
                Err(p)
            }
        };
        self.record(step, false).await?;
        Ok(result?)
    }

    /// When the `try` at `key` first began, Unix ms: the origin of its
    /// retry's duration limit. Journaled when there is such a limit, so that
    /// a run resumed after a crash goes on with the budget it had rather
    /// than a new one (a wall clock, as the journal's timers are, since the
    /// budget outlives the process).
    async fn retry_budget(&self, task: &Task, key: &str, retry: Option<&Retry>) -> Result<u64, Halt> {
        if retry.is_none_or(|r| r.duration.is_none()) {
            return Ok(now_ms());
        }
        let key = format!("{key}/retry-budget");
        if let Some(step) = self.journaled(&key) {
            return Ok(step.started);
        }
        let mut step = Self::new_step(task, &key, StepKind::RetryBudget);
        step.state = StepState::Done;
        step.finished = Some(step.started);
        Ok(self.record(step, true).await?.started)
    }

    /// Sleep `duration`, journaled: a resumed run sleeps only what is left.
    async fn timer(&self, task: &Task, key: &str, duration: Duration) -> Result<(), Halt> {
        let until = match self.journaled(key) {
            Some(step) => step.until.unwrap_or(0),
            None => {
                let mut step = Self::new_step(task, key, StepKind::Timer);
                step.until = Some(now_ms() + duration.as_millis() as u64);
                self.record(step, true).await?.until.unwrap_or(0)
            }
        };
        let left = until.saturating_sub(now_ms());
        if left > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(left)) => {}
                () = self.halt.cancelled() => return Err(Halt::Stopped),
            }
        }
        if let Some(mut step) = self.journaled(key).filter(|s| s.state != StepState::Done) {
            step.state = StepState::Done;
            step.finished = Some(now_ms());
            self.record(step, false).await?;
        }
        Ok(())
    }
}

impl Retry {
    /// Whether attempt `next` (counted from 1, so retry `next - 1`) may start
    /// after `elapsed`.
    fn allows(&self, next: u32, elapsed: Duration) -> bool {
        self.retries.is_none_or(|max| next <= max.saturating_add(1)) && self.duration.is_none_or(|max| elapsed < max)
    }

    /// The pause after failed attempt `attempt` (from 1): the backoff's
    /// delay plus a random jitter within its bounds.
    fn pause(&self, attempt: u32) -> Duration {
        let base = match self.backoff {
            Backoff::Constant => self.delay,
            Backoff::Linear => self.delay.saturating_mul(attempt),
            Backoff::Exponential => self.delay.saturating_mul(1u32 << (attempt - 1).min(20)),
        };
        let jitter = match self.jitter {
            Some((from, to)) if to > from => from + (to - from).mul_f64(rand::random::<f64>()),
            Some((from, _)) => from,
            None => Duration::ZERO,
        };
        (base + jitter).min(Duration::from_secs(24 * 3600))
    }
}

/// A list's end as a task's output: `end` ends the enclosing list too.
fn ended((data, signal): (Value, Signal)) -> (Value, Option<Flow>) {
    match signal {
        Signal::End => (data, Some(Flow::End)),
        Signal::Normal => (data, None),
    }
}

/// `e`, failed in `task` at its field `what`.
fn failed_at(task: &Task, e: &ExprError, what: &str) -> Problem {
    expression(e, &format!("{}/{what}", task.reference))
}

fn expression(e: &ExprError, at: &str) -> Problem {
    let mut p = match e {
        ExprError::Budget { .. } => {
            Problem::new(kinds::BUDGET, 422, "the run is over its budget").detail(e.to_string())
        }
        _ => Problem::new(kinds::EXPRESSION, 400, "an expression failed").detail(e.to_string()),
    };
    p.instance = Some(at.to_string());
    p
}
