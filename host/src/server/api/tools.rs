//! The agent API: the tools a token may use, and calling one.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Agent;
use super::bodies::{Accepted, Ran};
use super::error::ErrorBody;
use super::responses::{BadRequest, Conflict, NotFound, Unavailable, Unprocessable};
use super::Answer;
use super::{ApiError, Shared};
use crate::app::calls::{call, Called};
use crate::app::idempotency::{Lookup, MAX_KEY_LEN};
use crate::app::recorded::detached;
use crate::call::names;
use crate::model::audit::{Caller, Channel, Via};
use crate::runtime::ToolInfo;

/// Header carrying the caller's conversation or session id into the audit.
pub const SESSION_HEADER: &str = "x-session-id";

/// `GET /v1/tools`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `openai`: the tools as OpenAI-style function calling takes them.
    #[param(inline)]
    format: Option<ListFormat>,
}

/// The shapes the tools list comes in.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// toolhost's own: each tool with its risk, kind, plugin and approval.
    #[default]
    Toolhost,
    /// `[{"type": "function", "function": {name, description, parameters,
    /// strict}}]`, names as function calling accepts them.
    Openai,
}

/// A tool as OpenAI-style function calling takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionTool {
    /// Always `function`.
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Function {
    /// `plugin_function`: the tool's name as function calling accepts it
    /// (`^[a-zA-Z0-9_-]{1,64}$`); invoke takes it as it is.
    name: String,
    description: String,
    /// Its parameters: in the strict subset when `strict` (every property
    /// required, `null` for one left out; see the README), else as toolhost
    /// checks them.
    #[schema(value_type = Object)]
    parameters: Value,
    /// Whether `parameters` is in the strict subset.
    strict: bool,
}

impl From<ToolInfo> for FunctionTool {
    fn from(tool: ToolInfo) -> FunctionTool {
        let strict = crate::call::strict::strict(&tool.parameters);
        if let Err(e) = &strict {
            tracing::debug!(tool = %tool.name, "no strict form: {e}");
        }
        let (parameters, strict) = match strict {
            Ok(parameters) => (parameters, true),
            Err(_) => (tool.parameters, false),
        };
        FunctionTool {
            kind: "function",
            function: Function {
                name: tool.function_name,
                description: tool.description,
                parameters,
                strict,
            },
        }
    }
}

/// The tools list, in the format asked for.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolList {
    Toolhost(Vec<ToolInfo>),
    Openai(Vec<FunctionTool>),
}

// `anyOf`, not the `oneOf` a derive writes: an empty list is either.
impl utoipa::PartialSchema for ToolList {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder};
        use utoipa::openapi::Ref;
        let list = |name: &str| ArrayBuilder::new().items(Ref::from_schema_name(name));
        AnyOfBuilder::new()
            .item(list("ToolInfo"))
            .item(list("FunctionTool"))
            .description(Some("The tools list, in the format asked for."))
            .into()
    }
}

impl ToSchema for ToolList {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((ToolInfo::name().into(), ToolInfo::schema()));
        ToolInfo::schemas(schemas);
        schemas.push((FunctionTool::name().into(), FunctionTool::schema()));
        FunctionTool::schemas(schemas);
    }
}

/// The tools this token may use, each with its JSON Schema and whether its
/// calls may wait for an approval; with `?format=openai`, as OpenAI-style
/// function calling takes them.
#[utoipa::path(
    get,
    path = "/v1/tools",
    tag = "tools",
    operation_id = "list_tools",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The tools this token may use: `[ToolInfo]`, or with `?format=openai`, `[FunctionTool]`.", body = ToolList),
        (status = 400, response = BadRequest),
        super::responses::AnyTokenRefusals,
    )
)]
pub async fn list(
    Agent(principal): Agent,
    State(state): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ToolList>, ApiError> {
    let Query(query) = query?;
    let tools = crate::app::tools::visible(&state.app, &principal);
    Ok(Json(match query.format.unwrap_or_default() {
        ListFormat::Toolhost => ToolList::Toolhost(tools),
        ListFormat::Openai => ToolList::Openai(tools.into_iter().map(FunctionTool::from).collect()),
    }))
}

/// A header's value, if sent; one that is not 1 to `MAX_KEY_LEN` visible
/// ASCII characters is refused.
pub fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= MAX_KEY_LEN => Ok(Some(s.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "header {name} must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))),
        },
    }
}

/// Call a tool with arguments its JSON Schema accepts. A call held for a
/// person's approval, or a workflow's run, answers `202` with where to
/// follow it (`GET /v1/approvals/{id}`, `GET /v1/runs/{id}`). With an
/// `Idempotency-Key`, a retry gets the first call's answer (marked
/// `Idempotent-Replay: true`) instead of running again.
#[utoipa::path(
    post,
    path = "/v1/tools/{tool}/invoke",
    tag = "tools",
    operation_id = "invoke_tool",
    security(("bearer" = [])),
    params(
        ("tool" = String, Path, description = "`plugin.function` (or `plugin_function`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 visible ASCII characters (spaces inside): a retry with the same key and arguments is answered, not run again.", max_length = 200, pattern = r"^[\t\x20-\x7E]*[\x21-\x7E][\t\x20-\x7E]*$"),
        ("X-Session-Id" = Option<String>, Header, description = "The caller's conversation or session (1 to 200 visible ASCII characters), recorded in the audit trail and seen by approval rules.", max_length = 200, pattern = r"^[\t\x20-\x7E]*[\x21-\x7E][\t\x20-\x7E]*$"),
    ),
    request_body(content = Object, description = "The tool's arguments, as its `parameters` schema (`GET /v1/tools`) says. They are checked against that schema, not this document: a refusal there is 422 `invalid_input`."),
    responses(
        (status = 200, description = "The call ran: its result.", body = Ran,
            headers(("Idempotent-Replay" = bool, description = "`true` when this is a stored answer to an earlier call with the same key."))),
        (status = 202, description = "Held for a person's approval, or a workflow run started: where to wait for the result.", body = Accepted),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, description = "The connector faulted (panic, trap) or the call was interrupted.", body = ErrorBody),
        (status = 502, description = "The connector answered an error of no known case.", body = ErrorBody),
        (status = 503, response = Unavailable),
        (status = 504, description = "The call ran out of time (the message names the request it was waiting on).", body = ErrorBody),
        super::responses::JsonBodyRefusals,
    )
)]
pub async fn invoke(
    Agent(principal): Agent,
    State(state): State<Shared>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(args) = body?;
    let tool = names::canonical(&tool)
        .map(std::borrow::Cow::into_owned)
        .unwrap_or(tool);
    let caller = Caller {
        via: Channel::Http,
        token: Some(principal.name.clone()),
        session: header(&headers, SESSION_HEADER)?,
        idempotency_key: header(&headers, "idempotency-key")?,
        ..Default::default()
    };
    // A key only ever replays to a caller that may use the tool: without
    // permission the call goes on to be refused (and recorded) as such.
    let claim = match &caller.idempotency_key {
        Some(key) if principal.may_use(&tool) => {
            match state
                .app
                .idempotency
                .lookup(&principal.name, &tool, key, &args)
                .await
                .map_err(ApiError::internal)?
            {
                Lookup::Replay(stored) => return Ok(replay(stored)),
                Lookup::Mismatch => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_mismatch",
                        "this Idempotency-Key was used with different arguments",
                    ))
                }
                Lookup::InFlight => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "idempotency_in_flight",
                        "a call with this Idempotency-Key is still running; retry once it has finished",
                    )
                    .retry_after(1))
                }
                Lookup::Run(claim) => Some(claim),
            }
        }
        _ => None,
    };

    let answer = detached(&state.app, move |app| async move {
        let called = call(&app, &principal, &tool, &args, &caller).await?;
        let answer = match &called {
            Called::Ran(ran) => Answer::of(&ran.0, &ran.1.id),
            // A retry of a held call is answered with the same approval.
            Called::Held(approval) => Answer::held(approval),
            // A run's steps are recorded as they go; a retry with the key
            // gets this answer (the same run) rather than a second run.
            Called::Started(run) => Answer::run(run),
        };
        if let Some(claim) = claim {
            // An outcome that may have changed something is final: a retry
            // is answered with it, never run again. One that changed nothing
            // (a timeout before any effect, a full host) may be retried.
            if called.is_final() {
                app.idempotency
                    .store(claim, answer.status.as_u16(), &answer.body, &args)
                    .await
                    .map_err(ApiError::internal)?;
            }
        }
        Ok::<_, ApiError>(answer)
    })
    .await?;
    Ok(answer.into_response())
}

fn replay(stored: crate::storage::idempotency::Answer) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(stored.body)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replay", HeaderValue::from_static("true"));
    response
}

/// Answers for the keyed calls a stop cut short (found when the audit trail
/// was opened): a retry is told the call was interrupted, and is not run
/// again, since it may have had effects.
pub async fn settle_interrupted(state: &Shared) -> Result<(), ApiError> {
    for record in state.app.runtime.audit().interrupted() {
        let (Some(token), Some(key), Some(digest), Some(error)) = (
            &record.token,
            &record.idempotency_key,
            &record.arguments_digest,
            &record.error,
        ) else {
            continue;
        };
        if record.via != Via::Http {
            continue;
        }
        let body = json!({ "error": error, "audit_id": record.id });
        state
            .app
            .idempotency
            .settle(
                token,
                &record.tool,
                key,
                digest.clone(),
                StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
                &body,
            )
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}
