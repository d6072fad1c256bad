//! What one run's expressions may spend, and the threads they spend it on.
//!
//! jq is a full language: `reduce range(1e8) as $i (0; . + $i)` spins for
//! half a minute and `[range(1e7)]` holds hundreds of megabytes. A run's
//! [`Budget`] meters its expressions the way epochs meter guest code: every
//! generator step and every turn of a loop of the standard library passes
//! through a native `toolhost_tick` (see `expr`'s prelude), which takes one
//! unit of fuel, refuses a string or collection over [`MAX_VALUE_LEN`], and
//! every [`CHECK_EVERY`] units looks at the run's clock and its halt (so a
//! cancel stops the work within a tick). Past the budget the expression
//! fails with `ExprError::Budget` (from [`Stopped`]), which no `catch` handles.
//!
//! Runs are driven on an executor of their own ([`executor`]): a few threads
//! with large stacks, apart from the API's workers and the guest threads, so
//! a run that computes never delays a health check or a connector's call.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Ticks one run's expressions may take in all: a `for` over 10,000 items
/// whose body computes a little stays well inside; `reduce range(1e8)` is
/// stopped after about 0.3 s of a core.
pub const RUN_FUEL: u64 = 1_000_000;
/// Time one run's expressions may take in all (measured on the thread that
/// evaluates them).
pub const RUN_TIME: Duration = Duration::from_secs(5);
/// Longest string, array or object a tick lets through (bytes or items).
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Ticks between looks at the clock and the halt.
const CHECK_EVERY: u64 = 1024;
/// Stack of a thread that drives runs: deep enough for any expression the
/// shape bounds of `expr` let through (a 8 KiB chain of `try` or `as`
/// bindings), committed only as it is used.
pub const STACK_BYTES: usize = 256 << 20;

/// What each run may spend (`[server] workflow-steps`, `workflow-eval-ms`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub steps: u64,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            steps: RUN_FUEL,
            time: RUN_TIME,
        }
    }
}

/// One run's allowance, shared by every expression it evaluates.
#[derive(Debug)]
pub struct Budget {
    fuel: AtomicU64,
    /// Nanoseconds spent so far.
    spent: AtomicU64,
    fuel_limit: u64,
    time_limit: Duration,
    halt: CancellationToken,
}

impl Budget {
    pub fn new(limits: Limits, halt: CancellationToken) -> Arc<Budget> {
        Budget::with_limits(limits.steps, limits.time, halt)
    }

    pub fn with_limits(fuel: u64, time: Duration, halt: CancellationToken) -> Arc<Budget> {
        Arc::new(Budget {
            fuel: AtomicU64::new(fuel),
            spent: AtomicU64::new(0),
            fuel_limit: fuel,
            time_limit: time,
            halt,
        })
    }

    /// A budget that never runs out (tests, and checks at load).
    pub fn unmetered() -> Arc<Budget> {
        Budget::with_limits(u64::MAX, Duration::from_secs(u32::MAX as u64), CancellationToken::new())
    }

    /// The run's halt: its budget ends with it.
    pub fn halt(&self) -> &CancellationToken {
        &self.halt
    }

    /// Run `eval` with this budget installed on the current thread.
    pub fn meter<T>(&self, expr: &str, eval: impl FnOnce() -> T) -> Result<T, Stopped> {
        let spent = Duration::from_nanos(self.spent.load(Ordering::Relaxed));
        let over = |why: Over| Stopped {
            expr: expr.chars().take(200).collect(),
            message: why.describe(self),
        };
        if self.fuel.load(Ordering::Relaxed) == 0 {
            return Err(over(Over::Fuel));
        }
        if spent >= self.time_limit {
            return Err(over(Over::Time));
        }
        let started = Instant::now();
        let meter = Meter {
            fuel: self.fuel.load(Ordering::Relaxed),
            deadline: started + (self.time_limit - spent),
            halt: self.halt.clone(),
            since_check: 0,
            over: None,
        };
        let previous = METER.with(|m| m.replace(Some(meter)));
        let result = eval();
        let meter = METER.with(|m| m.replace(previous)).expect("installed above");
        self.fuel.store(meter.fuel, Ordering::Relaxed);
        self.spent
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match meter.over {
            Some(why) => Err(over(why)),
            None => Ok(result),
        }
    }
}

/// An evaluation the budget stopped: the expression (its start) and why.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub expr: String,
    pub message: String,
}

/// Why an evaluation was stopped.
#[derive(Debug, Clone, Copy)]
enum Over {
    Fuel,
    Time,
    Size(usize),
    Halted,
}

impl Over {
    fn describe(self, budget: &Budget) -> String {
        match self {
            Over::Fuel => format!("the run's expressions took over {} steps", budget.fuel_limit),
            Over::Time => format!("the run's expressions ran over {:?}", budget.time_limit),
            Over::Size(n) => format!("a value of {n} bytes or items is over the {MAX_VALUE_LEN} limit"),
            Over::Halted => "the run was stopped".to_string(),
        }
    }
}

/// The budget of the evaluation in progress on this thread.
struct Meter {
    fuel: u64,
    deadline: Instant,
    halt: CancellationToken,
    since_check: u64,
    over: Option<Over>,
}

thread_local! {
    static METER: RefCell<Option<Meter>> = const { RefCell::new(None) };
}

/// One step of an expression, whose value is `len` long (bytes or items):
/// `Err` with why once the budget is spent. Without a budget installed
/// (compiling, unit tests) every step is allowed.
pub fn tick(len: usize) -> Result<(), String> {
    METER.with(|m| {
        let mut m = m.borrow_mut();
        let Some(meter) = m.as_mut() else {
            return Ok(());
        };
        if meter.over.is_none() {
            meter.over = meter.step(len);
        }
        match meter.over {
            Some(_) => Err("the run's expression budget is spent".to_string()),
            None => Ok(()),
        }
    })
}

impl Meter {
    fn step(&mut self, len: usize) -> Option<Over> {
        if len > MAX_VALUE_LEN {
            return Some(Over::Size(len));
        }
        if self.fuel == 0 {
            return Some(Over::Fuel);
        }
        self.fuel -= 1;
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            if self.halt.is_cancelled() {
                return Some(Over::Halted);
            }
            if Instant::now() >= self.deadline {
                return Some(Over::Time);
            }
        }
        None
    }
}

/// Threads that drive runs when the host sets none: half the cores (at
/// least one), so runs that compute leave the rest to the API and guests.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The runtime runs are driven on: a few threads with [`STACK_BYTES`]
/// stacks, apart from the API's workers and the guest threads; `None` if
/// the system would not give it threads (runs then stay where they are
/// started, as they did before it existed).
pub fn executor() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(default_threads())
                .thread_name("toolhost-workflow")
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()
                .inspect_err(|e| tracing::error!("cannot start the threads that drive workflow runs: {e}"))
                .ok()
        })
        .as_ref()
}

/// Run `work` on a thread with a [`STACK_BYTES`] stack and wait for it
/// (compiling a document: jaq's parser recurses once per nesting level).
pub fn on_large_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    crate::stack::on_own_stack("toolhost-jq-compile", STACK_BYTES, work)
        .ok_or_else(|| "compiling it failed (no thread for it, or it panicked)".to_string())
}
