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
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::approvals::Which;
use super::error::ErrorBody;
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unauthorized, Unavailable, Unprocessable,
};
use crate::model::audit::{Action, Outcome, Via};

/// The name of the bearer scheme the operations' `security` refer to.
pub const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
The agent and operator HTTP API of toolhost, a WebAssembly plugin host for AI-agent tool connectors: agents list and \
call tools (`/v1/tools`), follow held calls and workflow runs; operators load, grant, enable and roll back plugins, \
decide held calls, set the approval rules, reload tokens and read the audit trail.

Every `/v1` route needs `Authorization: Bearer <token>`; the token's role (agent, approver, admin, observer) decides \
what it may do (403 names what a route needs). Errors are `{\"error\": {\"kind\", \"message\", ...}}`.

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
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable, RateLimited, Unavailable)
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
            let operation = OperationBuilder::new()
                .tag("mcp")
                .operation_id(Some(id))
                .summary(Some(summary))
                .description(Some(
                    "The Model Context Protocol over Streamable HTTP: see \
                     https://modelcontextprotocol.io/specification/2025-06-18/basic/transports for the methods, \
                     headers and bodies. Tools are those GET /v1/tools lists for the same token.",
                ))
                .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
                .response(
                    "200",
                    ResponseBuilder::new().description("As the MCP specification says."),
                )
                .response("401", reference("Unauthorized"))
                .response("429", reference("RateLimited"))
                .build();
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
