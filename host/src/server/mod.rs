//! `toolhost serve`: load the plugins, open the stores, listen, and on
//! shutdown let calls in flight finish and flush storage.

pub mod api;
pub mod connections;
pub mod nodes;
pub mod readiness;

use std::future::Future;
use std::sync::Arc;

use crate::app::auth::Auth;
use crate::app::idempotency::Idempotency;
use crate::app::metrics::Metrics;
use crate::app::App;
use crate::config::Config;
use crate::Runtime;
use api::{AppState, Shared};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Auth(#[from] crate::app::auth::AuthError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot watch the plugins folder: {0}")]
    Watch(String),
    #[error("start-up: {0}")]
    Startup(String),
    #[error(transparent)]
    Webhook(#[from] crate::app::approvals::webhook::WebhookError),
    #[error(transparent)]
    Approvals(#[from] crate::app::approvals::ApprovalError),
    #[error(transparent)]
    Rules(#[from] crate::policy::approvals::RuleError),
}

/// How long a stop waits for calls still running without a client.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a stop waits for clients to finish with their connections
/// (requests still being answered, event streams closing).
const CONNECTIONS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Run until `shutdown` resolves. Prints one line to standard output once
/// listening (`toolhost listening on http://ADDR`), which scripts and tests
/// wait for.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.server.listen.to_string(),
            source,
        })?;
    serve_on(listener, config, shutdown).await
}

/// How a server spawned on a task of its own ended (as `demo` and `dev`
/// run one beside what they print): its own result, or the task's panic.
pub fn served(joined: Result<Result<(), ServeError>, tokio::task::JoinError>) -> Result<(), ServeError> {
    joined.unwrap_or_else(|e| Err(ServeError::Startup(format!("the server stopped: {e}"))))
}

/// `serve` on a listener the caller bound (an embedding, a demo, a test
/// that needs the address before the server starts).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_until(listener, config, Box::pin(shutdown)).await
}

/// The server's body, for one type of stop: generic over the caller's
/// future, it was compiled once per caller (the binary, `demo`, `dev`),
/// the largest piece of code the binary's own build compiled.
async fn serve_until(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Result<(), ServeError> {
    let server = &config.server;
    // One cap on connections for the starting answers and the API alike.
    let connections = connections::pool(server);
    // The port answers from now on: starting until the plugins are loaded.
    let (listener, starting) = readiness::WhileStarting::serve(listener, connections.clone())?;
    tracing::info!("starting on http://{}", listener.local_addr()?);
    let runtime = crate::Runtime::from_config(&config).await?;
    runtime
        .plugins()
        .recover_folder()
        .map_err(crate::runtime::RuntimeError::from)?;
    let (loaded, failed) = load_plugins(&config, &runtime).await?;
    let stopping = tokio_util::sync::CancellationToken::new();
    let (state, generated) = assemble(&config, &runtime, stopping.clone()).await?;
    resume(&state).await?;

    // Bundles dropped into the folder from now on are loaded as they come.
    let _watch = if server.watch {
        Some(crate::plugins::watcher::watch(runtime.clone()).map_err(|e| ServeError::Watch(e.to_string()))?)
    } else {
        None
    };
    let addr = listener.local_addr()?;
    tracing::info!(
        "{} plugin(s) loaded from {}, data in {}",
        loaded - failed.len(),
        server.plugins_dir.display(),
        server.data_dir.display()
    );
    for f in &failed {
        tracing::warn!("not loaded: {f}");
    }
    if let Some(path) = generated {
        tracing::warn!("no tokens configured; generated an admin and an agent token in {path}");
    }

    let mcp = api::mcp::Transport::new(server, addr);
    let streams = mcp.shutdown.clone();
    let stopped = stopping.clone();
    let draining = state.clone();
    let delay = std::time::Duration::from_secs(server.shutdown_delay_secs);
    let router = api::router(state, server.max_body_bytes, mcp, crate::console::router());
    starting.end().await;
    let serving = connections::serve(listener, router, connections, async move {
        shutdown.await;
        // Not ready from now on, while still serving for the delay, so
        // that a balancer stops sending calls before the port closes.
        draining.draining.begin();
        tracing::info!("stopping: draining for {delay:?}");
        tokio::time::sleep(delay).await;
        // Open MCP event streams end, so that their connections close.
        streams.cancel();
        stopping.cancel();
    });
    // Scripts and tests wait for this line: the host serves its plugins.
    println!("toolhost listening on http://{addr}");
    tokio::pin!(serving);
    // A client may still hold a connection open; past the deadline the
    // host stops without it (its calls still drain below).
    tokio::select! {
        () = &mut serving => {}
        () = async {
            stopped.cancelled().await;
            tokio::time::sleep(CONNECTIONS_DEADLINE).await;
        } => tracing::warn!("connections still open after {CONNECTIONS_DEADLINE:?}; closing them"),
    }
    // Calls whose clients hung up still run; let them finish and record.
    if !runtime.drain(DRAIN).await {
        tracing::warn!("calls still running after {DRAIN:?}; they will be recorded as interrupted");
    }
    runtime.storage().flush().await?;
    tracing::info!("stopped; storage flushed");
    Ok(())
}

/// Load the plugins: those the registries' `[sources]` name (pulled into
/// the folder first), the folder's, and where nodes share a store, what it
/// says serves. How many loaded, and what failed (each `where: why`).
async fn load_plugins(config: &Config, runtime: &Runtime) -> Result<(usize, Vec<String>), ServeError> {
    let server = &config.server;
    // Plugins from registries land in the folder first, then load from it
    // like any other bundle (signature, digest pin, compile).
    for outcome in crate::plugins::oci::pull_sources(&config.sources, &server.plugins_dir, &config.registries).await {
        if outcome.failed() {
            tracing::warn!("{outcome}");
        } else {
            tracing::info!("{outcome}");
        }
    }
    let loaded = runtime
        .plugins()
        .load_all()
        .await
        .map_err(crate::runtime::RuntimeError::from)?;
    let mut failed: Vec<String> = loaded
        .iter()
        .filter_map(|(dir, r)| r.as_ref().err().map(|e| format!("{}: {e}", dir.display())))
        .collect();
    // Nodes sharing a store serve what it says serves, whatever this node's
    // folder held (a node started later fetches what was uploaded meanwhile).
    if runtime.storage().is_shared() {
        let converged = runtime
            .plugins()
            .converge_all()
            .await
            .map_err(crate::runtime::RuntimeError::from)?;
        failed.extend(converged.into_iter().map(|(name, e)| format!("{name}: {e}")));
    }
    Ok((loaded.len(), failed))
}

/// The services the routes share, their sweepers started; and the file of
/// tokens generated when none were configured.
async fn assemble(
    config: &Config,
    runtime: &Runtime,
    stopping: tokio_util::sync::CancellationToken,
) -> Result<(Shared, Option<String>), ServeError> {
    let server = &config.server;
    let idempotency = Arc::new(Idempotency::open(
        runtime.storage(),
        std::time::Duration::from_secs(server.idempotency_retention_secs),
    ));
    idempotency.spawn_sweeper();
    runtime.spawn_warm_sweeper();
    if server.audit_retention_secs > 0 {
        runtime
            .audit()
            .spawn_sweeper(std::time::Duration::from_secs(server.audit_retention_secs));
    }
    let (auth, generated) = Auth::new(
        &config.tokens,
        server.rate_per_minute,
        &server.data_dir.join("tokens.json"),
    )?;
    let metrics = Arc::new(Metrics::default());
    let approvals = Arc::new(open_approvals(config, runtime, &metrics).await?);
    let app = Arc::new(App {
        runtime: runtime.clone(),
        auth,
        idempotency,
        metrics,
        approvals,
        runs: crate::app::runs::Runs::new(crate::workflow::budget::Limits {
            steps: server.workflow_steps,
            time: std::time::Duration::from_millis(server.workflow_eval_ms),
        }),
        stopping,
    });
    let state = Arc::new(AppState {
        app,
        mcp_sessions: api::mcp::Sessions::new(
            server.max_mcp_sessions,
            server.max_mcp_sessions_per_principal,
            std::time::Duration::from_secs(server.mcp_idle_secs),
        ),
        console: crate::console::store::Sessions::new(
            std::time::Duration::from_secs(server.console_session_minutes * 60),
            server.max_console_sessions_per_principal,
        ),
        config_path: config.path.clone(),
        draining: Default::default(),
        bearer_failures: api::BearerFailures::new(server.failed_bearer_burst),
    });
    Ok((state, generated))
}

/// Pick up what the last stop left: calls it caught running, decisions
/// taken just before it, workflow runs it left open; and follow the other
/// nodes and the token file from now on.
async fn resume(state: &Shared) -> Result<(), ServeError> {
    api::settle_interrupted(state)
        .await
        .map_err(|e| ServeError::Startup(e.body.to_string()))?;
    // Decisions taken just before the last stop run now; calls it caught
    // running are closed, not run again.
    for id in state.app.approvals.recover().await? {
        crate::app::calls::spawn_execution(&state.app, id);
    }
    spawn_expiry(&state.app.approvals, state.app.stopping.clone());
    api::tokens::spawn_reload_on_hangup(state);
    // Where nodes share the store: follow their changes, and take over the
    // runs of a node that died.
    nodes::spawn_follower(state);
    crate::app::runs::spawn_takeover(&state.app);
    // Workflow runs a stop or a crash left open go on where they were.
    let resumed = crate::app::runs::recover(&state.app)
        .await
        .map_err(|e| ServeError::Startup(format!("resuming workflow runs: {e}")))?;
    if resumed > 0 {
        tracing::info!("resumed {resumed} workflow run(s)");
    }
    Ok(())
}

/// The approval rules (those set through the API replace the file's) and
/// the reviewers' webhook.
async fn open_approvals(
    config: &Config,
    runtime: &Runtime,
    metrics: &Arc<Metrics>,
) -> Result<crate::app::approvals::Approvals, ServeError> {
    let mut rules = match runtime.storage().operator().approval_rules().await? {
        Some(stored) => stored,
        None => config.approvals.clone(),
    };
    rules.webhook = None;
    let webhook = config
        .approvals
        .webhook
        .as_ref()
        .map(crate::app::approvals::webhook::Webhook::new)
        .transpose()?;
    Ok(crate::app::approvals::Approvals::new(
        crate::policy::approvals::ApprovalPolicy::new(rules)?,
        runtime.storage().clone(),
        runtime.audit().clone(),
        metrics.clone(),
        webhook,
    )
    .with_pending_share(config.server.max_pending_approvals_per_principal))
}

/// Expire undecided approvals as their time comes, until the host stops.
fn spawn_expiry(approvals: &Arc<crate::app::approvals::Approvals>, stopping: tokio_util::sync::CancellationToken) {
    let approvals = Arc::downgrade(approvals);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopping.cancelled() => return,
            }
            let Some(approvals) = approvals.upgrade() else { return };
            if let Err(e) = approvals.sweep().await {
                tracing::error!("expiring approvals: {e}");
            }
        }
    });
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
