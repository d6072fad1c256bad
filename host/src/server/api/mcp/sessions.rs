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
//! [`AWAIT_TOOL`](super::AWAIT_TOOL), whose streams should be resumable and
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
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcRequest, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::WorkerTransport;

use super::McpServer;

/// The sessions open: rmcp's manager (which runs them), when each last had
/// a request, and what each client said it supports; and the cap on how
/// many may be open at once.
#[derive(Clone)]
pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    open: Arc<Mutex<HashMap<SessionId, Opened>>>,
    pub(super) max: usize,
    idle: Duration,
}

/// What the host keeps of one session.
struct Opened {
    last_request: Instant,
    /// The client declared the tasks extension (SEP-2663) when it
    /// initialized: a held call is answered as a task.
    supports_tasks: bool,
}

impl Sessions {
    /// At most `max` sessions, each closed after `idle` without a request.
    pub fn new(max: usize, idle: Duration) -> Sessions {
        let mut manager = LocalSessionManager::default();
        // The host closes idle sessions itself (see the module's notes).
        manager.session_config.keep_alive = None;
        Sessions {
            manager: Arc::new(manager),
            open: Default::default(),
            max,
            idle,
        }
    }

    /// Sessions open now.
    pub async fn count(&self) -> usize {
        self.manager.sessions.read().await.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Opened>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request of session `id` came in now: whether its client takes
    /// tasks, `None` for a session the host does not know.
    pub(super) fn touch(&self, id: &str) -> Option<bool> {
        let mut open = self.lock();
        let opened = open.get_mut(id)?;
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
                    .iter()
                    .filter(|(_, opened)| opened.last_request.elapsed() >= sessions.idle)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in idle {
                    tracing::debug!("closing MCP session {id}: idle for {:?}", sessions.idle);
                    if let Err(e) = sessions.close(&id).await {
                        tracing::warn!("closing idle MCP session {id}: {e}");
                    }
                }
            }
        });
    }

    async fn close(&self, id: &SessionId) -> Result<(), LocalSessionManagerError> {
        self.lock().remove(id);
        self.manager.close_session(id).await
    }
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
        let Some(supports_tasks) = supports_tasks.filter(|_| self.server.answers_at_once(&call.params.name)) else {
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
        };
        self.sessions.lock().insert(id.clone(), opened);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if let ClientJsonRpcMessage::Request(request) = &message {
            if let ClientRequest::InitializeRequest(init) = &request.request {
                if let Some(opened) = self.sessions.lock().get_mut(id) {
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
