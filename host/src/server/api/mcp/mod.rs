//! MCP (Model Context Protocol) over streamable HTTP at `/mcp`, through the
//! official Rust SDK (`rmcp`), so existing agent clients connect as they are.
//! Tools are the same as over REST (same names, schemas, permissions, audit);
//! a business failure is a result with `isError: true`.
//!
//! A call held for approval answers at once with a result marked
//! `isError: true` whose content says `approval_required` and names the
//! approval; the agent then calls the tool [`AWAIT_TOOL`] with that id,
//! which waits for the decision and returns the call's own result (or why
//! it did not run). Any MCP client can follow this, since it is only tool
//! calls. A client that declares the tasks extension (SEP-2663,
//! `io.modelcontextprotocol/tasks`) gets a task instead, whose id is the
//! approval's, and polls `tasks/get` for the call's result.

mod edge;
mod listen;
mod sessions;
mod shortcut;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, DetailedTask,
    GetTaskParams, GetTaskResult, Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams, RequestId,
    ServerCapabilities, ServerJsonRpcMessage, ServerResult, Task, TaskPayload, TaskStatus, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use super::error::call_error_body;
use super::tools::visible_tools;
use super::Answer;
use super::{ApiError, Shared};
use crate::app::approvals::{self, ApprovalError, MAX_WAIT};
use crate::app::auth::Principal;
use crate::app::calls::{call, Called};
use crate::app::recorded::detached;
use crate::model::approval::{Answered, Approval, ApprovalState};
use crate::model::audit::Caller;
use crate::model::call::CallError;
use crate::model::run::{Run, RunState};
use crate::policy::approvals::ApprovalSummary;
use crate::runtime::ToolInfo;
pub use edge::limit_sessions;
use listen::Listener;
use sessions::Direct;
pub use sessions::Sessions;
use shortcut::{Shortcut, Taken};

/// The tool an agent calls to wait for a held call's result.
pub const AWAIT_TOOL: &str = "toolhost.await-approval";

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

fn is_object_schema(schema: &Option<Value>) -> bool {
    schema.as_ref().is_some_and(|s| s["type"] == "object")
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
    // Whether a call may wait for a reviewer: MCP has no field for it, so
    // it is in `_meta` for programs and in the description for models.
    if let Some(approval) = t.approval {
        tool["_meta"] = json!({ "toolhost/approval": approval });
        if approval != ApprovalSummary::Never {
            tool["description"] = Value::from(format!(
                "{}\n\nCalls of this tool may wait for a human reviewer's approval (the result then says \
                 approval_required; use {AWAIT_TOOL}).",
                t.description
            ));
        }
    }
    // MCP wants an object for structured output; other results go as text.
    if is_object_schema(&t.output_schema) {
        tool["outputSchema"] = t.output_schema.clone().unwrap_or_default();
    }
    serde_json::from_value(tool).map_err(|e| ErrorData::internal_error(format!("tool {}: {e}", t.name), None))
}

fn result(value: Value, is_error: bool, structured: bool) -> CallToolResult {
    // Built as it goes out: the value is encoded once, as the text.
    let content = vec![ContentBlock::text(value.to_string())];
    let mut result = if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    if structured && value.is_object() {
        result.structured_content = Some(value);
    }
    result
}

/// The answer to a held call: what to do next, in words an LLM follows.
fn held(approval: &Approval) -> CallToolResult {
    result(
        json!({
            "kind": "approval_required",
            "message": format!(
                "This call was not run: it waits for a human reviewer's approval (rule {:?}). \
                 Call the tool {AWAIT_TOOL} with {{\"approval\": \"{}\"}} to wait for the decision and get the result.",
                approval.rule, approval.id
            ),
            "approval": approvals::view(approval),
        }),
        true,
        false,
    )
}

fn await_tool() -> Result<Tool, ErrorData> {
    serde_json::from_value(json!({
        "name": AWAIT_TOOL,
        "description": "Wait for a call that was held for a human reviewer's approval, and get its result \
            once it is decided and has run (or why it did not run). Give the approval id the held call returned.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "approval": { "type": "string", "description": "The approval id of the held call" },
                "wait_secs": { "type": "integer", "minimum": 0, "maximum": MAX_WAIT.as_secs(), "description": "How long to wait for the decision (default 60)" },
            },
            "required": ["approval"],
        },
        "annotations": { "readOnlyHint": true },
    }))
    .map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

impl McpServer {
    /// A workflow call's result: the run's output once it ends (waiting
    /// for it as long as a run may be waited on), its typed error as an
    /// error result, or, while it still waits (for a person, say), the run
    /// and where to follow it.
    async fn run_result(&self, run: &Run) -> Result<CallToolResult, ErrorData> {
        let run = crate::app::runs::wait(&self.state.app, &run.id, crate::app::runs::MAX_WAIT, false)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(match run.state {
            RunState::Completed => result(run.output.clone().unwrap_or_default(), false, false),
            RunState::Failed | RunState::Cancelled => result(Answer::run(&run).body["error"].take(), true, false),
            RunState::Running | RunState::Waiting => result(Answer::run(&run).body, false, false),
        })
    }

    /// Whether `tool`'s results go as structured content.
    fn structured(&self, tool: &str) -> bool {
        self.state
            .app
            .runtime
            .find(tool)
            .is_some_and(|found| is_object_schema(&found.tool().output_schema))
    }

    /// `id`, if `principal` may see it: an agent sees only the calls it
    /// made (another's is not found, as over REST).
    /// The approval `id` if `principal` may see it (an agent only its own:
    /// another's is as unknown as one that never was).
    async fn approval(&self, principal: &Principal, id: &str) -> Result<Option<Arc<Approval>>, ErrorData> {
        let approval = match self.state.app.approvals.get(id).await {
            Ok(a) => a,
            Err(ApprovalError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(ErrorData::internal_error(e.to_string(), None)),
        };
        if approval.token != principal.name && principal.role == crate::config::Role::Agent {
            return Ok(None);
        }
        Ok(Some(approval))
    }

    /// The await tool. A missing or unknown approval is the tool's failure
    /// (a result with `isError`, which the model reads), as any tool's is.
    async fn await_approval(&self, principal: &Principal, args: &Value) -> Result<CallToolResult, ErrorData> {
        let Some(id) = args["approval"].as_str() else {
            let error = json!({
                "kind": "invalid_input",
                "field": "approval",
                "message": "`approval` (the approval id the held call returned) is required",
            });
            return Ok(result(error, true, false));
        };
        if self.approval(principal, id).await?.is_none() {
            let error = json!({ "kind": "not_found", "message": format!("no approval {id:?}"), "approval": id });
            return Ok(result(error, true, false));
        }
        let wait = std::time::Duration::from_secs(args["wait_secs"].as_u64().unwrap_or(60)).min(MAX_WAIT);
        self.approval(principal, id).await?;
        let approval = self
            .state
            .app
            .approvals
            .wait(id, wait)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(match self.final_result(&approval) {
            Some(done) => done,
            None => result(
                json!({
                    "kind": "approval_pending",
                    "message": format!("Still waiting for a reviewer (state: {}). Call {AWAIT_TOOL} again to keep waiting.", approval.state.as_str()),
                    "approval": approvals::view(&approval),
                }),
                true,
                false,
            ),
        })
    }

    /// A final approval's answer as the call's own tool result: its result,
    /// or why it did not run. `None` while it is not final.
    fn final_result(&self, approval: &Approval) -> Option<CallToolResult> {
        let answered = approval.answer.as_ref().filter(|_| approval.state.is_final())?;
        if let Answered::Ran { result: value, .. } = answered {
            return Some(result(value.clone(), false, self.structured(&approval.tool)));
        }
        let mut body = Answer::answered(answered).body["error"].take();
        body["approval"] = Value::from(approval.id.clone());
        Some(result(body, true, false))
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
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let caller = Caller {
            via: crate::model::audit::Channel::Mcp,
            token: Some(principal.name.clone()),
            session,
            idempotency_key: None,
            ..Default::default()
        };
        if request.name == AWAIT_TOOL {
            return self.await_approval(&principal, &args).await.map(Into::into);
        }
        // Detached: a call runs to its end and is recorded even when the
        // client cancels it or goes away (its effects cannot be undone);
        // only the answer is then lost.
        let tool = request.name.to_string();
        let called = match detached(&self.state.app, move |app| async move {
            call(&app, &principal, &tool, &args, &caller).await
        })
        .await
        .map_err(ApiError::from)
        {
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
                let created = task(&approval, TaskPayload::Working);
                return Ok(CallToolResponse::Task(CreateTaskResult::new(created.task)));
            }
            Called::Held(approval) => return Ok(held(&approval).into()),
            Called::Started(run) => return self.run_result(&run).await.map(Into::into),
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
            Ok(caller) => self.call(request, caller, supports_tasks).await,
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

    /// Whether a call of `tool` answers as soon as it has run (a
    /// connector's tool, or a refusal), rather than waiting for a person or
    /// a workflow run, which may take minutes.
    fn answers_at_once(&self, tool: &str) -> bool {
        let canonical = crate::call::names::canonical(tool);
        let tool = canonical.as_deref().unwrap_or(tool);
        tool != AWAIT_TOOL && self.state.app.runtime.plugins().registry().workflow(tool).is_none()
    }
}

/// A held call as an MCP task (SEP-2663): the task id is the approval id.
fn task(approval: &Approval, payload: TaskPayload) -> DetailedTask {
    let message = match approval.state {
        ApprovalState::Pending => format!("waiting for a reviewer's approval (rule {:?})", approval.rule),
        ApprovalState::Approved | ApprovalState::Executing => "approved; running".to_string(),
        state => state.as_str().to_string(),
    };
    let updated = approval.finished.unwrap_or(approval.created);
    let base = Task::new(
        approval.id.clone(),
        TaskStatus::Working,
        crate::model::time::rfc3339_ms(approval.created),
        crate::model::time::rfc3339_ms(updated),
    )
    .with_status_message(message)
    .with_poll_interval_ms(1000);
    DetailedTask::new(base, payload)
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
        let mut tools = visible_tools(&self.state, &principal)
            .iter()
            .map(mcp_tool)
            .collect::<Result<Vec<_>, _>>()?;
        tools.push(await_tool()?);
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
        self.call(request, principal(&ctx.extensions)?, supports_tasks).await
    }

    /// A held call taken as a task: working until it is decided and has
    /// run, then completed with the call's own result (a rejection, expiry
    /// or lapse is a completed result with `isError`, as over the fallback).
    async fn get_task(
        &self,
        request: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let (principal, _) = principal(&ctx.extensions)?;
        let approval = self
            .approval(&principal, &request.task_id)
            .await?
            .ok_or_else(|| ErrorData::invalid_params(format!("no task {:?}", request.task_id), None))?;
        let payload = match self.final_result(&approval) {
            Some(mut done) => {
                // The call's result as the task's payload, in the shape a
                // tools/call answer had before protocol 2026-07-28.
                done.result_type = None;
                let result = match serde_json::to_value(done) {
                    Ok(Value::Object(map)) => map,
                    _ => return Err(ErrorData::internal_error("a tool result is not an object", None)),
                };
                TaskPayload::Completed { result }
            }
            None => TaskPayload::Working,
        };
        Ok(GetTaskResult::new(task(&approval, payload)))
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
