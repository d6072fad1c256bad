//! The REST API's OpenAPI 3.1 description. Routes are registered in
//! [`super::router`] through utoipa-axum's `routes!`, which takes each
//! handler's `#[utoipa::path]` with it: a REST route cannot be served
//! without its description. What is not any one handler's lives here: the
//! document's head, the bearer scheme, the error responses the handlers
//! share, and the entry for MCP (served by rmcp's transport, not a handler).
//!
//! `GET /openapi.json` serves the document; `host/openapi.json` is a copy
//! kept in the repository (`cargo run -p toolhost --example openapi >
//! host/openapi.json`), which tests/tests/openapi.rs checks against what a
//! running host serves and answers.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::approvals::Which;
use super::error::ErrorBody;
use super::responses::{
    BadRequest, Conflict, Forbidden, MethodNotAllowed, NotFound, PayloadTooLarge, RateLimited, Unauthorized,
    Unavailable, Unprocessable, UnsupportedMediaType,
};
use crate::model::audit::{Action, Outcome, Via};

/// The name of the bearer scheme the operations' `security` refer to.
pub const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
The agent and operator HTTP API of toolhost, a WebAssembly plugin host for AI-agent tool connectors: agents list and \
call tools (`/v1/tools`), follow held calls and workflow runs; operators load, grant, enable and roll back plugins, \
decide held calls, set the approval rules, reload tokens and read the audit trail.

Every `/v1` route needs `Authorization: Bearer <token>`; without a valid one it answers 401 with \
`WWW-Authenticate: Bearer`. The token's role (agent, approver, admin, observer) decides what it may do (403 names \
what a route needs). Errors are `{\"error\": {\"kind\", \"message\", ...}}`, whatever the status.

400 or 422, one rule: **400** when the request cannot be read as this document describes it (a body that is not \
JSON or not the form the route takes; a body field of the wrong type, unknown or missing; a query parameter that \
does not parse as its type or pattern; a header outside its pattern or length); **422** when it was read and a \
value in it is refused (a body field outside its stated range, length or pattern, a `limit` outside its range, or a \
request refused for what it means: a rule whose condition does not compile, a grant naming an unknown secret, a \
bundle that does not load, arguments the tool's own schema refuses). A body over the host's `max-body-bytes` is 413. A method a path does not \
list is 405, with `Allow` naming those it has and the same JSON error body.

Described only in outline: `/mcp` is listed as one path, but it speaks the Model Context Protocol's Streamable HTTP \
transport (JSON-RPC; https://modelcontextprotocol.io/specification/2025-06-18/basic/transports), whose messages that \
specification describes. The operator console (`/console`, HTML pages and forms for a browser) is not part of the API.

Generated from the handlers; served at `GET /openapi.json` and kept in the repository as `host/openapi.json`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "toolhost", description = DESCRIPTION, license(name = "Apache-2.0", identifier = "Apache-2.0")),
    components(
        // Types that query parameters name: `routes!` gathers the bodies'
        // schemas, not these.
        schemas(ErrorBody, Which, Via, Outcome, Action),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unprocessable,
            RateLimited,
            Unavailable
        )
    ),
    modifiers(&BearerScheme, &McpEntry),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document."),
        (name = "tools", description = "The tools a token may use, and calling them."),
        (name = "plugins", description = "Loading, switching and rolling back plugins (admin)."),
        (name = "grants", description = "What a plugin may do: the operator's grant."),
        (name = "approvals", description = "Calls held for a person's decision, and the rules that hold them."),
        (name = "runs", description = "Workflow runs."),
        (name = "tokens", description = "The tokens in force."),
        (name = "audit", description = "The audit trail."),
        (name = "mcp", description = "The Model Context Protocol endpoint (not REST)."),
    )
)]
pub struct ApiDoc;

/// The document, pretty-printed with a final newline, as `GET
/// /openapi.json` serves it and `host/openapi.json` keeps it. Paths,
/// schemas and fields come in sorted order, so it is stable.
pub fn to_json() -> String {
    let mut json = super::documented()
        .into_openapi()
        .to_pretty_json()
        .expect("an OpenAPI document serializes");
    json.push('\n');
    json
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    responses((status = 200, description = "This OpenAPI 3.1 document (no token needed).", body = Object))
)]
pub async fn serve() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        JSON.get_or_init(to_json).as_str(),
    )
}

/// Adds the bearer token scheme every `/v1` operation names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some("A token from `[[tokens]]` in toolhost.toml (or TOOLHOST_*_TOKEN).".into());
        components.add_security_scheme(BEARER, SecurityScheme::Http(http));
    }
}

/// `/mcp` as one path: its methods are the Streamable HTTP transport's,
/// its bodies JSON-RPC messages the MCP specification describes.
struct McpEntry;

/// `/mcp`'s 400: a body that is not one JSON-RPC message is answered with
/// a JSON-RPC error (`-32700`, `-32600`); a request the transport refuses
/// otherwise (no session where one is needed, ...) in the API's error
/// shape.
fn mcp_bad_request() -> utoipa::openapi::Response {
    let rpc_error = ObjectBuilder::new()
        .title(Some("JSON-RPC error"))
        .property(
            "jsonrpc",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["2.0"])),
        )
        .required("jsonrpc")
        .property("id", ObjectBuilder::new().schema_type(Type::Null))
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", ObjectBuilder::new().schema_type(Type::Integer))
                .required("code")
                .property("message", ObjectBuilder::new().schema_type(Type::String))
                .required("message"),
        )
        .required("error");
    let either = OneOfBuilder::new()
        .item(RefOr::Ref(Ref::from_schema_name("ErrorBody")))
        .item(rpc_error);
    ResponseBuilder::new()
        .description(
            "Not one JSON-RPC message (a JSON-RPC error: -32700 not JSON, -32600 not a message this host \
             takes), or a request the transport refuses (the API's error shape).",
        )
        .content("application/json", ContentBuilder::new().schema(Some(either)).build())
        .build()
}

/// `/mcp`'s 406: the client does not accept what the transport answers
/// with (`application/json` and `text/event-stream` for a POST,
/// `text/event-stream` for a GET).
fn not_acceptable() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("The `Accept` header leaves out what the transport answers with.")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
        .build()
}

impl Modify for McpEntry {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let methods = [
            (
                HttpMethod::Post,
                "mcp_post",
                "Send a JSON-RPC message (initialize, tools/list, tools/call, ...)",
            ),
            (
                HttpMethod::Get,
                "mcp_get",
                "Open the session's server-to-client event stream (SSE)",
            ),
            (
                HttpMethod::Delete,
                "mcp_delete",
                "End the session named by the Mcp-Session-Id header",
            ),
        ];
        let reference = |name: &str| RefOr::Ref(Ref::from_response_name(name));
        let mut item: Option<PathItem> = None;
        for (method, id, summary) in methods {
            let mut operation = OperationBuilder::new()
                .tag("mcp")
                .operation_id(Some(id))
                .summary(Some(summary))
                .description(Some(
                    "The Model Context Protocol over Streamable HTTP: see \
                     https://modelcontextprotocol.io/specification/2025-06-18/basic/transports for the methods, \
                     headers and bodies. Tools are those GET /v1/tools lists for the same token. Whatever the host \
                     refuses is answered in JSON: a body that is not one JSON-RPC message as a JSON-RPC error, \
                     anything else in the API's error shape.",
                ))
                .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
                .response(
                    if method == HttpMethod::Delete { "204" } else { "200" },
                    ResponseBuilder::new().description("As the MCP specification says."),
                )
                .response("400", mcp_bad_request())
                .response("401", reference("Unauthorized"))
                .response("403", reference("Forbidden"))
                .response("404", reference("NotFound"))
                .response("406", not_acceptable())
                .response("429", reference("RateLimited"))
                .response("503", reference("Unavailable"));
            if method == HttpMethod::Post {
                operation = operation
                    .response(
                        "202",
                        ResponseBuilder::new().description("A notification or response, taken."),
                    )
                    .response("413", reference("PayloadTooLarge"))
                    .response("415", reference("UnsupportedMediaType"));
            }
            let operation = operation.build();
            item = Some(match item {
                None => PathItem::new(method, operation),
                Some(mut item) => {
                    item.merge_operations(PathItem::new(method, operation));
                    item
                }
            });
        }
        if let Some(item) = item {
            openapi.paths.paths.insert("/mcp".into(), item);
        }
    }
}
