//! The MCP sessions of this host, and the session manager `/mcp` runs on.
//!
//! rmcp's [`LocalSessionManager`] runs each session as a worker task, and
//! sends every request through it: the request goes to the worker, which
//! opens a channel for its answer, sends a priming event (so the client
//! could resume the stream), hands the request to a task of its own, and
//! routes the answer back through the channel, keeping a copy for a minute
//! in case the client resumes. For a tool call that answers in a fraction
//! of a millisecond, that is most of the cost of the call, and the stream
//! goes out in three writes where one does.
//!
//! [`Direct`] answers a tool call of a connector in the HTTP request's own
//! task instead, as one event: no worker, no priming, no copy. (The plain
//! ones do not even reach it: the [`Shortcut`](super::shortcut) answers them
//! before rmcp reads them.) Everything
//! else (the handshake, the tool list, tasks, notifications, the event
//! stream, the calls that may wait for minutes: a workflow run or
//! the waiting tools (see [`waiting`](super::waiting)), whose streams should be resumable and
//! kept alive) still goes through the worker. rmcp checks the request
//! (host, origin, protocol version, session) before either.
//!
//! Since direct calls never reach the worker, the worker's own idle timer
//! would close a session that only calls tools; the host keeps the idle
//! timer itself instead, counting every request of a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcRequest, RequestMetaObject, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::WorkerTransport;

use super::McpServer;

/// The sessions open: rmcp's manager (which runs them), when each last had
/// a request, what each client said it supports, and whose each is; and the
/// caps on how many may be open at once, in all and per principal.
#[derive(Clone)]
pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    book: Arc<Mutex<Book>>,
    max: usize,
    max_per_principal: usize,
    idle: Duration,
}

/// What the host keeps of the sessions, under one lock.
#[derive(Default)]
struct Book {
    open: HashMap<SessionId, Opened>,
    /// Per principal (token name): its sessions open plus its `initialize`
    /// calls under way and its listen streams open (2026-07-28), so two at
    /// once cannot both take the last place.
    held: HashMap<Arc<str>, usize>,
    /// `initialize` calls under way and listen streams open, all principals.
    opening: usize,
    /// Sessions open that are nobody's yet: their `initialize` is under
    /// way, and counted in `opening` until then, not twice.
    unowned: usize,
}

/// What the host keeps of one session.
struct Opened {
    last_request: Instant,
    /// The client declared the tasks extension (SEP-2663) when it
    /// initialized: a held call is answered as a task.
    supports_tasks: bool,
    /// The principal that opened it, once its `initialize` has answered.
    owner: Option<Arc<str>>,
}

/// Why a new session was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this host has its limit of {0} MCP sessions open; retry later")]
    Host(usize),
    #[error(
        "this token has its share of {0} MCP sessions open; close one (DELETE /mcp) or let one go idle, then retry"
    )]
    Principal(usize),
}

/// A place taken for one `initialize` of one principal: kept by the
/// session it opens ([`Claim::bind`]), given back when dropped unbound.
pub struct Claim {
    sessions: Sessions,
    principal: Arc<str>,
    bound: bool,
}

impl Claim {
    /// The `initialize` opened session `id`: the place is that session's
    /// until it closes.
    pub fn bind(mut self, id: &str) {
        self.bound = true;
        let mut book = self.sessions.lock();
        book.opening = book.opening.saturating_sub(1);
        match book.open.get_mut(id) {
            Some(opened) if opened.owner.is_none() => {
                opened.owner = Some(self.principal.clone());
                book.unowned = book.unowned.saturating_sub(1);
            }
            // Gone already (or somebody's): the place is free again.
            _ => book.release(&self.principal),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.bound {
            let mut book = self.sessions.lock();
            book.opening = book.opening.saturating_sub(1);
            book.release(&self.principal);
        }
    }
}

impl Book {
    /// Sessions open or opening, all principals.
    fn taken(&self) -> usize {
        self.open.len() - self.unowned.min(self.open.len()) + self.opening
    }

    fn release(&mut self, principal: &Arc<str>) {
        if let Some(held) = self.held.get_mut(principal) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(principal);
            }
        }
    }
}

impl Sessions {
    /// At most `max` sessions, `max_per_principal` of them one principal's,
    /// each closed after `idle` without a request.
    pub fn new(max: usize, max_per_principal: usize, idle: Duration) -> Sessions {
        let mut manager = LocalSessionManager::default();
        // The host closes idle sessions itself (see the module's notes).
        manager.session_config.keep_alive = None;
        Sessions {
            manager: Arc::new(manager),
            book: Default::default(),
            max,
            max_per_principal,
            idle,
        }
    }

    /// How long a session may go without a request, and a listen stream
    /// stay open.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Sessions open now.
    pub async fn count(&self) -> usize {
        self.manager.sessions.read().await.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a place for a new session of `principal`: refused while the
    /// host has `max` open (or opening), or the principal its share. A
    /// principal at its share is refused rather than losing its oldest
    /// session: an MCP session is a live conversation (a call may be
    /// running in it, a task waiting), and an abandoned one goes by itself
    /// after the idle time.
    pub fn claim(&self, principal: &str) -> Result<Claim, Refused> {
        let mut book = self.lock();
        if book.taken() >= self.max {
            return Err(Refused::Host(self.max));
        }
        if book.held.get(principal).copied().unwrap_or(0) >= self.max_per_principal {
            return Err(Refused::Principal(self.max_per_principal));
        }
        let principal: Arc<str> = match book.held.get_key_value(principal) {
            Some((name, _)) => name.clone(),
            None => Arc::from(principal),
        };
        *book.held.entry(principal.clone()).or_default() += 1;
        book.opening += 1;
        Ok(Claim {
            sessions: self.clone(),
            principal,
            bound: false,
        })
    }

    /// Session `id`, opened by a request the host did not take for an
    /// `initialize`, is `principal`'s all the same (over its share if need
    /// be: it is open already), so that no session is nobody's.
    pub fn adopt(&self, id: &str, principal: &str) {
        let mut book = self.lock();
        let principal: Arc<str> = Arc::from(principal);
        let Some(opened) = book.open.get_mut(id) else { return };
        if opened.owner.is_none() {
            opened.owner = Some(principal.clone());
            *book.held.entry(principal).or_default() += 1;
            book.unowned = book.unowned.saturating_sub(1);
        }
    }

    /// Whether session `id` is open and another principal's than
    /// `principal`'s.
    pub fn is_others(&self, id: &str, principal: &str) -> bool {
        let book = self.lock();
        let owner = book.open.get(id).and_then(|opened| opened.owner.as_deref());
        owner.is_some_and(|owner| owner != principal)
    }

    /// A request of session `id` came in now: whether its client takes
    /// tasks, `None` for a session the host does not know.
    pub(super) fn touch(&self, id: &str) -> Option<bool> {
        let mut book = self.lock();
        let opened = book.open.get_mut(id)?;
        opened.last_request = Instant::now();
        Some(opened.supports_tasks)
    }

    /// Close, every so often until `stop`, the sessions that have had no
    /// request for the idle time.
    pub fn spawn_idle_sweeper(&self, stop: tokio_util::sync::CancellationToken) {
        let sessions = self.clone();
        let every = (self.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop.cancelled() => return,
                }
                let idle: Vec<SessionId> = sessions
                    .lock()
                    .open
                    .iter()
                    .filter(|(_, opened)| opened.last_request.elapsed() >= sessions.idle)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in idle {
                    let shown = shown(&id);
                    tracing::debug!("closing MCP session {shown}…: idle for {:?}", sessions.idle);
                    if let Err(e) = sessions.close(&id).await {
                        tracing::warn!("closing idle MCP session {shown}…: {e}");
                    }
                }
            }
        });
    }

    async fn close(&self, id: &SessionId) -> Result<(), LocalSessionManagerError> {
        {
            let mut book = self.lock();
            match book.open.remove(id) {
                Some(Opened { owner: Some(owner), .. }) => book.release(&owner),
                Some(Opened { owner: None, .. }) => book.unowned = book.unowned.saturating_sub(1),
                None => {}
            }
        }
        self.manager.close_session(id).await
    }
}

/// The start of a session id, as the log shows it: enough to tell sessions
/// apart, too little to take one over.
fn shown(id: &str) -> &str {
    let end = (0..=8.min(id.len()))
        .rev()
        .find(|&i| id.is_char_boundary(i))
        .unwrap_or(0);
    &id[..end]
}

/// The session manager `/mcp` runs on: rmcp's, with tool calls of
/// connectors answered directly (see the module's notes).
#[derive(Clone)]
pub struct Direct {
    sessions: Sessions,
    server: McpServer,
}

impl Direct {
    pub fn new(sessions: Sessions, server: McpServer) -> Direct {
        Direct { sessions, server }
    }

    /// The answer to `message` if it is a tool call this manager answers
    /// itself, `Err(message)` to hand it to the session's worker.
    /// `supports_tasks`: what the session's client said, `None` for a
    /// session the host does not know (the worker answers it).
    async fn answer(
        &self,
        supports_tasks: Option<bool>,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerSseMessage, ClientJsonRpcMessage> {
        let ClientJsonRpcMessage::Request(JsonRpcRequest {
            id: request_id,
            request: ClientRequest::CallToolRequest(call),
            ..
        }) = message
        else {
            return Err(message);
        };
        // rmcp keeps a request's `_meta` beside its params, in its extensions.
        let listens = call
            .extensions
            .get::<RequestMetaObject>()
            .is_some_and(|meta| meta.get_progress_token().is_some());
        let Some(supports_tasks) = supports_tasks.filter(|_| self.server.answers_at_once(&call.params.name, listens))
        else {
            return Err(ClientJsonRpcMessage::request(
                ClientRequest::CallToolRequest(call),
                request_id,
            ));
        };
        let caller = super::principal(&call.extensions);
        let reply = self
            .server
            .answer_in_session(call.params, caller, supports_tasks, request_id)
            .await;
        Ok(ServerSseMessage::from_message(reply))
    }
}

impl SessionManager for Direct {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.sessions.manager.create_session().await?;
        let opened = Opened {
            last_request: Instant::now(),
            supports_tasks: false,
            owner: None,
        };
        let mut book = self.sessions.lock();
        book.open.insert(id.clone(), opened);
        book.unowned += 1;
        drop(book);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if let ClientJsonRpcMessage::Request(request) = &message {
            if let ClientRequest::InitializeRequest(init) = &request.request {
                if let Some(opened) = self.sessions.lock().open.get_mut(id) {
                    opened.supports_tasks = init.params.capabilities.supports_tasks();
                }
            }
        }
        self.sessions.manager.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.sessions.manager.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.sessions.close(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let supports_tasks = self.sessions.touch(id);
        match self.answer(supports_tasks, message).await {
            Ok(answer) => Ok(stream::once(std::future::ready(answer)).left_stream()),
            Err(message) => Ok(self.sessions.manager.create_stream(id, message).await?.right_stream()),
        }
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.sessions.touch(id);
        self.sessions.manager.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.sessions.touch(id);
        self.sessions.manager.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.sessions.touch(id);
        self.sessions.manager.resume(id, last_event_id).await
    }
}
