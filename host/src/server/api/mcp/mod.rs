//! MCP (Model Context Protocol) over streamable HTTP at `/mcp`, through the
//! official Rust SDK (`rmcp`), so existing agent clients connect as they are.
//! Tools are the same as over REST (same names, schemas, permissions, audit);
//! a business failure is a result with `isError: true`.
//!
//! A call that does not end at once (held for a person's approval, or a
//! workflow run that waits or outlasts the call) answers at once with what
//! to wait on, and a waiting tool or a task follows it: see [`waiting`].

mod edge;
mod listen;
mod progress;
mod sessions;
mod shortcut;
mod waiting;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock, CreateTaskResult,
    GetTaskParams, GetTaskResult, Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams, RequestId,
    ServerCapabilities, ServerJsonRpcMessage, ServerResult, TaskPayload, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use super::error::call_error_body;
use super::{ApiError, Shared};
use crate::app::auth::Principal;
use crate::app::calls::{call, Called};
use crate::app::recorded::detached;
use crate::model::audit::Caller;
use crate::model::call::CallError;
use crate::model::progress::ProgressSink;
use crate::plugins::kind::Kind;
use crate::policy::approvals::ApprovalSummary;
use crate::runtime::ToolInfo;
pub use edge::limit_sessions;
use listen::Listener;
use sessions::Direct;
pub use sessions::Sessions;
use shortcut::{Shortcut, Taken};
use waiting::{approval_task, held};
pub use waiting::{AWAIT_RUN_TOOL, AWAIT_TOOL};

/// How long one session may take to accept a `list_changed` notification;
/// one that does not read its stream is then dropped from the list, and
/// never holds up the others, which are told at the same time.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions and listen streams to tell when the tool set changes
/// ([`Listener`]), each under a number of its own so that the notifier can
/// drop the ones that failed while others are being added.
#[derive(Default)]
struct Peers {
    next: u64,
    open: Vec<(u64, Listener)>,
}

type SharedPeers = Arc<Mutex<Peers>>;

impl Peers {
    /// Add `listener`; its number.
    fn add(&mut self, listener: impl Into<Listener>) -> u64 {
        // Sessions closed since the last change are forgotten here too, so
        // the list never holds more than the sessions open and just closed.
        self.open.retain(|(_, l)| !l.is_closed());
        self.next += 1;
        self.open.push((self.next, listener.into()));
        self.next
    }
}

fn lock(peers: &SharedPeers) -> std::sync::MutexGuard<'_, Peers> {
    peers.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
pub struct McpServer {
    state: Shared,
    peers: SharedPeers,
}

/// What the transport checks before a request reaches a session, and what
/// ends its streams.
#[derive(Clone)]
pub struct Transport {
    /// `Host` values accepted (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted from browsers; a request with any other
    /// `Origin` is refused, one without passes.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// Cancelled when the host stops: every open stream and session ends,
    /// so a graceful shutdown is not held up by a client's event stream.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Transport {
    /// The checks for a host listening on `listen`, from `[server]`: the
    /// operator's lists, or the listen address and `localhost` (the
    /// loopback names when listening on all interfaces), and the origins of
    /// pages those hosts serve.
    pub fn new(server: &crate::config::Server, listen: std::net::SocketAddr) -> Transport {
        let allowed_hosts = if server.mcp_allowed_hosts.is_empty() {
            let port = listen.port();
            let names: Vec<String> = if listen.ip().is_unspecified() {
                vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
            } else {
                // A v6 address goes in brackets, as it is in a Host header.
                let ip = std::net::SocketAddr::new(listen.ip(), 0).to_string();
                let ip = ip.trim_end_matches(":0").to_string();
                vec![ip, "localhost".into()]
            };
            names.into_iter().map(|name| format!("{name}:{port}")).collect()
        } else {
            server.mcp_allowed_hosts.clone()
        };
        let allowed_origins = if server.mcp_allowed_origins.is_empty() {
            allowed_hosts
                .iter()
                .flat_map(|host| {
                    // A host named without a port: its pages on any port.
                    let with_port = http::uri::Authority::try_from(host.as_str()).is_ok_and(|a| a.port().is_some());
                    let host = if with_port { host.clone() } else { format!("{host}:*") };
                    [format!("http://{host}"), format!("https://{host}")]
                })
                .collect()
        } else {
            server.mcp_allowed_origins.clone()
        };
        Transport {
            allowed_hosts,
            allowed_origins,
            max_body_bytes: server.max_body_bytes,
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// The `/mcp` service, and a task that sends `notifications/tools/list_changed`
/// to every open session whenever the plugin set or a grant changes.
///
/// Served through [`StreamableHttpService::handle`] on one shared instance:
/// its `tower::Service` form clones the whole service, allowed host and
/// origin lists included, for every request.
pub fn service(state: Shared, transport: Transport) -> axum::routing::MethodRouter<Shared> {
    let peers = SharedPeers::default();
    tokio::spawn(notify_changes(state.app.runtime.plugins().subscribe(), peers.clone()));
    let sessions = state.mcp_sessions.clone();
    sessions.spawn_idle_sweeper(transport.shutdown.clone());
    let server = McpServer { state, peers };
    let shortcut = Arc::new(Shortcut::new(&transport, sessions.clone(), server.clone()));
    let max_body_bytes = transport.max_body_bytes;
    let manager = Arc::new(Direct::new(sessions, server.clone()));
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(transport.allowed_hosts)
        .with_allowed_origins(transport.allowed_origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(transport.max_body_bytes)
        // A call without a session that is answered by its result alone
        // goes as one JSON body, not as an event stream: the spec lets a
        // server answer either way, and every client accepts both.
        .with_json_response(true)
        .with_cancellation_token(transport.shutdown);
    let service = Arc::new(StreamableHttpService::new(move || Ok(server.clone()), manager, config));
    axum::routing::any(move |request: Request| async move {
        match shortcut.take(request).await {
            Taken::Answered(response) => response,
            Taken::Passed(request) => {
                edge::answer_malformed(request, max_body_bytes, |request| async {
                    service.handle(request).await.into_response()
                })
                .await
            }
        }
    })
}

/// Tell every open session of each change, all at once, each within
/// [`NOTIFY_TIMEOUT`]; forget those that are closed or did not take it.
async fn notify_changes(mut changes: tokio::sync::watch::Receiver<u64>, peers: SharedPeers) {
    while changes.changed().await.is_ok() {
        let open: Vec<(u64, Listener)> = lock(&peers).open.clone();
        let mut sends = tokio::task::JoinSet::new();
        for (id, listener) in open {
            sends.spawn(async move {
                let sent = tokio::time::timeout(NOTIFY_TIMEOUT, listener.tools_changed()).await;
                (id, matches!(sent, Ok(true)))
            });
        }
        let failed: Vec<u64> = sends
            .join_all()
            .await
            .into_iter()
            .filter_map(|(id, sent)| (!sent).then_some(id))
            .collect();
        if !failed.is_empty() {
            lock(&peers).open.retain(|(id, _)| !failed.contains(id));
        }
    }
}

/// Authenticate `/mcp` like the REST API; the principal rides along in the
/// request extensions, which rmcp hands to the handler.
pub async fn authenticate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match super::auth::authenticate(&parts, &state) {
        Ok(principal) => {
            parts.extensions.insert(principal);
            request = Request::from_parts(parts, body);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Who calls, from the request's extensions (where [`authenticate`] put
/// the principal and rmcp the HTTP request), and the conversation.
fn principal(extensions: &rmcp::model::Extensions) -> Result<(Arc<Principal>, Option<String>), ErrorData> {
    let parts = extensions
        .get::<axum::http::request::Parts>()
        .ok_or_else(|| ErrorData::internal_error("no HTTP request context", None))?;
    principal_of(parts)
}

/// Who calls and the conversation, from the HTTP request itself.
fn principal_of(parts: &axum::http::request::Parts) -> Result<(Arc<Principal>, Option<String>), ErrorData> {
    let principal = parts
        .extensions
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| ErrorData::invalid_request("unauthenticated", None))?;
    // The agent's own conversation id when it sends one, as on the REST
    // routes; otherwise the MCP session stands for the conversation.
    let session = match super::tools::header(&parts.headers, super::tools::SESSION_HEADER) {
        Ok(Some(session)) => Some(session),
        Ok(None) => parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Err(e) => {
            let message = e.body["error"]["message"].as_str().unwrap_or_default().to_string();
            return Err(ErrorData::invalid_params(message, None));
        }
    };
    Ok((principal, session))
}

fn mcp_tool(t: &ToolInfo) -> Result<Tool, ErrorData> {
    let mut tool = json!({
        "name": t.name,
        "description": t.description,
        "inputSchema": t.parameters,
        "annotations": {
            "readOnlyHint": t.risk == crate::plugins::manifest::Risk::Read,
            "destructiveHint": t.risk == crate::plugins::manifest::Risk::High,
        },
    });
    // Whether a call may wait: MCP has no field for it, so it is in
    // `_meta` for programs and in the description for models.
    if let Some(approval) = t.approval {
        tool["_meta"] = json!({ "toolhost/approval": approval });
    }
    if let Some(waits) = waits(t) {
        tool["description"] = Value::from(format!("{}\n\n{waits}", t.description));
    }
    // Any schema: rmcp drops one that is not an object's for a client on a
    // protocol before 2026-07-28, which wants objects only (SEP-2106).
    if let Some(schema) = &t.output_schema {
        tool["outputSchema"] = schema.clone();
    }
    serde_json::from_value(tool).map_err(|e| ErrorData::internal_error(format!("tool {}: {e}", t.name), None))
}

/// What a model must know of how `t`'s calls may wait, and which tool
/// waits for them.
fn waits(t: &ToolInfo) -> Option<String> {
    let held = t.approval.is_some_and(|a| a != ApprovalSummary::Never);
    match t.kind {
        Kind::Connector if held => Some(format!(
            "Calls of this tool may wait for a human reviewer's approval (the result then says \
             approval_required; use {AWAIT_TOOL})."
        )),
        Kind::Connector => None,
        Kind::Workflow => Some(format!(
            "A call starts a run of this workflow. If the run has not ended when the call answers (a step waits \
             for a human reviewer's approval, or it takes long), the result says run_pending: use {AWAIT_RUN_TOOL}{}.",
            if held && t.approval != Some(ApprovalSummary::Conditional) {
                format!("; the call itself may wait for approval (approval_required: use {AWAIT_TOOL})")
            } else {
                String::new()
            }
        )),
    }
}

fn result(value: Value, is_error: bool, structured: bool) -> CallToolResult {
    // Built as it goes out: the value is encoded once, as the text.
    let content = vec![ContentBlock::text(value.to_string())];
    let mut result = if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    // Any value: rmcp keeps only an object's for a client on a protocol
    // before 2026-07-28 (SEP-2106); the text carries it either way.
    if structured {
        result.structured_content = Some(value);
    }
    result
}

impl McpServer {
    /// Whether `tool`'s results go as structured content: whether it
    /// declares an output schema (a connector's function, or a workflow).
    fn structured(&self, tool: &str) -> bool {
        match self.state.app.runtime.find(tool) {
            Some(found) => found.tool().output_schema.is_some(),
            None => self
                .state
                .app
                .runtime
                .plugins()
                .registry()
                .workflow(tool)
                .is_some_and(|w| w.definition.output_schema.is_some()),
        }
    }
}

impl McpServer {
    /// A `tools/call`, whether rmcp's session worker, [`Direct`] or the
    /// [`Shortcut`] hands it over, from `principal` in conversation
    /// `session`; `supports_tasks`: whether the client takes a held call as
    /// a task.
    async fn call(
        &self,
        request: CallToolRequestParams,
        (principal, session): (Arc<Principal>, Option<String>),
        supports_tasks: bool,
        recipient: Option<progress::Recipient>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let mut caller = Caller {
            via: crate::model::audit::Channel::Mcp,
            token: Some(principal.name.clone()),
            session,
            idempotency_key: None,
            ..Default::default()
        };
        match request.name.as_ref() {
            AWAIT_TOOL => return self.await_approval(&principal, &args).await.map(Into::into),
            AWAIT_RUN_TOOL => return self.await_run(&principal, &args).await.map(Into::into),
            _ => {}
        }
        // Detached: a call runs to its end and is recorded even when the
        // client cancels it or goes away (its effects cannot be undone);
        // only the answer is then lost.
        let tool = request.name.to_string();
        let listener = recipient.map(|recipient| {
            let (sink, reports) = ProgressSink::channel();
            caller.progress = Some(sink);
            (recipient, reports)
        });
        let work = detached(&self.state.app, move |app| async move {
            call(&app, &principal, &tool, &args, &caller).await
        });
        let called = match listener {
            Some((recipient, reports)) => progress::forwarding(work, reports, recipient).await,
            None => work.await,
        };
        let called = match called.map_err(ApiError::from) {
            Ok(called) => called,
            // A refusal of the caller's (its share of held calls): a
            // failed result the agent reads, as over REST.
            Err(refused) if refused.status.is_client_error() => {
                return Ok(result(refused.body["error"].clone(), true, false).into());
            }
            Err(e) => return Err(ErrorData::internal_error(e.body.to_string(), None)),
        };
        let outcome = match called {
            Called::Ran(ran) => ran.0,
            // A client that takes tasks gets one; any other the fallback.
            Called::Held(approval) if supports_tasks => {
                let created = approval_task(&approval, TaskPayload::Working);
                return Ok(CallToolResponse::Task(CreateTaskResult::new(created.task)));
            }
            Called::Held(approval) => return Ok(held(&approval).into()),
            Called::Started(run) => return Ok(self.started(&run, supports_tasks)),
        };
        // Look up just this tool; listing them all would copy every schema.
        let structured = self.structured(&request.name);
        let result = match outcome.result {
            Ok(value) => result(value, false, structured),
            Err(CallError::NotFound { tool }) => {
                return Err(ErrorData::invalid_params(format!("no tool named {tool:?}"), None));
            }
            Err(e) => result(call_error_body(&e), true, false),
        };
        Ok(result.into())
    }

    /// A connector's `tools/call` in a session answered without the
    /// session's worker ([`Direct`], the [`Shortcut`]): the JSON-RPC answer,
    /// as rmcp's handler gives it. A session's protocol is always one before
    /// 2026-07-28, whose results carry no `resultType` and only objects as
    /// structured content.
    async fn answer_in_session(
        &self,
        request: CallToolRequestParams,
        caller: Result<(Arc<Principal>, Option<String>), ErrorData>,
        supports_tasks: bool,
        id: RequestId,
    ) -> ServerJsonRpcMessage {
        let response = match caller {
            Ok(caller) => self.call(request, caller, supports_tasks, None).await,
            Err(refused) => Err(refused),
        };
        match response {
            Ok(response) => {
                let mut result = ServerResult::from(response);
                result.strip_result_type_for_legacy_peer();
                result.strip_non_object_output_for_legacy_peer();
                ServerJsonRpcMessage::response(result, id)
            }
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        }
    }

    /// Whether a call of `tool` answers in one piece as soon as it has run
    /// (a connector's tool, or a refusal), rather than waiting for a person
    /// or a workflow run, which may take minutes, or sending progress
    /// notifications first (`listens`: the client sent a progress token).
    fn answers_at_once(&self, tool: &str, listens: bool) -> bool {
        let canonical = crate::call::names::canonical(tool);
        let tool = canonical.as_deref().unwrap_or(tool);
        tool != AWAIT_TOOL
            && tool != AWAIT_RUN_TOOL
            && self.state.app.runtime.plugins().registry().workflow(tool).is_none()
            && !(listens && self.reports_progress(tool))
    }

    /// Whether `tool`'s connector may report progress (imports `progress`).
    fn reports_progress(&self, tool: &str) -> bool {
        let canonical = crate::call::names::canonical(tool);
        self.state
            .app
            .runtime
            .find(canonical.as_deref().unwrap_or(tool))
            .is_some_and(|found| found.plugin.reports_progress)
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("toolhost", env!("CARGO_PKG_VERSION")))
        .with_instructions("Tools of the connectors loaded in this toolhost: CRM, ERP, logistics, coupons.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (principal, _) = principal(&ctx.extensions)?;
        let mut tools = crate::app::tools::visible(&self.state.app, &principal)
            .iter()
            .map(mcp_tool)
            .collect::<Result<Vec<_>, _>>()?;
        tools.extend(waiting::tools()?);
        // rmcp's constructor sets what 2026-07-28 requires (`resultType`);
        // a result read from JSON would leave it out.
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let supports_tasks = ctx
            .peer
            .peer_info()
            .is_some_and(|client| client.capabilities.supports_tasks());
        // Only a connector that may report gets the client's token: a call
        // of any other tool answers as it would without one.
        let recipient = ctx
            .meta
            .get_progress_token()
            .filter(|_| self.reports_progress(&request.name))
            .map(|token| progress::Recipient {
                token,
                peer: ctx.peer.clone(),
            });
        self.call(request, principal(&ctx.extensions)?, supports_tasks, recipient)
            .await
    }

    /// A held call's or a workflow run's task (see `waiting`).
    async fn get_task(
        &self,
        request: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let (principal, _) = principal(&ctx.extensions)?;
        Ok(GetTaskResult::new(self.task(&principal, &request.task_id).await?))
    }

    async fn cancel_task(&self, request: CancelTaskParams, ctx: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        let (principal, _) = principal(&ctx.extensions)?;
        self.cancel_task(&principal, &request.task_id).await
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        lock(&self.peers).add(ctx.peer.clone());
    }

    fn accepted_subscription_filter(&self, _requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(listen::accepted())
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        listen::listen(&self.peers, self.state.mcp_sessions.idle(), subscription).await
    }
}

#[cfg(test)]
mod tests {
    //! The notifier against real rmcp sessions over in-memory pipes: one
    //! client reads, the other never does, and its pipe fills up.

    use std::time::{Duration, Instant};

    use rmcp::{Peer, ServiceExt};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    use super::*;

    /// A server with nothing to offer: only its peer matters here.
    #[derive(Clone)]
    struct Bare;

    impl ServerHandler for Bare {}

    /// A session whose client has initialized, the client's end of the pipe,
    /// and the server's running service (kept so the session stays open).
    async fn session(
        pipe_bytes: usize,
    ) -> (
        Peer<RoleServer>,
        tokio::io::DuplexStream,
        rmcp::service::RunningService<RoleServer, Bare>,
    ) {
        let (client, server) = tokio::io::duplex(pipe_bytes);
        let (server_read, server_write) = tokio::io::split(server);
        let running = tokio::spawn(Bare.serve((server_read, server_write)));
        let (read, mut write) = tokio::io::split(client);
        write
            .write_all(
                concat!(
                    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","#,
                    r#""capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
                    "\n",
                    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                    "\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let running = running.await.unwrap().expect("the session starts");
        let peer = running.peer().clone();
        (peer, read.unsplit(write), running)
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_does_not_hold_up_the_others() {
        let peers = SharedPeers::default();
        let (stuck, _stuck_pipe, _s1) = session(1024).await;
        let (reading, pipe, _s2) = session(64 * 1024).await;
        // The client that reads: every line it gets, onto a channel.
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if line.contains("notifications/tools/list_changed") {
                    let _ = lines_tx.send(());
                }
            }
        });
        // The stuck one first, so that a notifier that tells them in turn
        // would never reach the other.
        peers.lock().unwrap().add(stuck);
        peers.lock().unwrap().add(reading);
        let (changes, receiver) = tokio::sync::watch::channel(0u64);
        tokio::spawn(notify_changes(receiver, peers.clone()));

        // Enough changes to fill the stuck client's pipe many times over;
        // each reaches the reading client, the whole run within one
        // notification timeout or two, not one per change.
        let started = Instant::now();
        for change in 1..=60u64 {
            changes.send(change).unwrap();
            tokio::time::timeout(NOTIFY_TIMEOUT * 2, lines.recv())
                .await
                .unwrap_or_else(|_| panic!("change {change} never reached the reading client"))
                .unwrap();
        }
        assert!(
            started.elapsed() < NOTIFY_TIMEOUT * 3,
            "60 changes took {:?}",
            started.elapsed()
        );
        // The client that did not read was dropped from the list.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(peers.lock().unwrap().open.len(), 1);
    }
}
