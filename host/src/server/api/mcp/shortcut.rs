//! A plain tool call in a session, answered before rmcp reads it.
//!
//! Nearly every MCP request an agent sends is the same: a `tools/call` of a
//! connector's tool, in a session, from a client that accepts JSON. rmcp
//! handles such a request generically: it parses the body as any of the
//! JSON-RPC messages a client may send (an untagged enum, so serde buffers
//! it and tries each in turn), checks headers for every protocol revision,
//! moves the HTTP request into the message, and answers as an event stream
//! with a keep-alive timer and a cancellation token of its own. That was a
//! fifth of an MCP call's CPU, and the last gap between MCP and REST.
//!
//! [`Shortcut`] takes only requests whose every part is the plain case, and
//! answers them with one JSON body, which the transport allows for any
//! request and every client accepts (the `Accept` header says so). Its
//! checks are a strict subset of rmcp's: a header rmcp might accept after
//! parsing (a host allowed by name for any port, an origin allowed by
//! wildcard, an `Accept` with weights, a newer protocol's headers) is not
//! judged here but passed on, so the shortcut can never accept what rmcp
//! would refuse. Anything it does not take, body included, goes to rmcp
//! unchanged: the handshake, other methods, a call with `_meta` other than
//! a progress token or any field this module does not know, a workflow or
//! a waiting tool ([`waiting`](super::waiting): they may wait for minutes,
//! so their streams should be resumable and kept alive), an unknown session.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolRequestParams, JsonObject, ProtocolVersion, RequestId};
use serde::Deserialize;

use super::sessions::Sessions;
use super::{McpServer, Transport};
use crate::server::api::ApiError;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// What the shortcut made of a request.
pub enum Taken {
    /// It answered the request.
    Answered(Response),
    /// Not its case: the request, whole, for rmcp.
    Passed(Request),
}

pub struct Shortcut {
    /// `Host` values taken as they are: the allowed hosts that name a port.
    hosts: Vec<String>,
    /// `Origin` values taken as they are: the allowed origins that name
    /// one scheme, host and port.
    origins: Vec<String>,
    max_body_bytes: usize,
    sessions: Sessions,
    server: McpServer,
}

/// The one request the shortcut answers; `deny_unknown_fields` passes
/// anything else on to rmcp.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainCall<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    params: PlainParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
    #[serde(default, rename = "_meta")]
    meta: Option<PlainMeta>,
}

/// The one `_meta` a plain call may carry: a progress token, which clients
/// with a progress display send with every call. A call of a connector that
/// never reports progress answers at once all the same; one that may is
/// passed to rmcp, which sends the notifications (see `progress`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainMeta {
    #[serde(rename = "progressToken")]
    _progress_token: serde::de::IgnoredAny,
}

impl Shortcut {
    pub fn new(transport: &Transport, sessions: Sessions, server: McpServer) -> Shortcut {
        let hosts = transport
            .allowed_hosts
            .iter()
            .filter(|host| http::uri::Authority::try_from(host.as_str()).is_ok_and(|a| a.port().is_some()))
            .cloned()
            .collect();
        let origins = transport
            .allowed_origins
            .iter()
            .filter(|origin| {
                http::Uri::try_from(origin.as_str()).is_ok_and(|uri| {
                    uri.scheme().is_some()
                        && uri.authority().is_some_and(|a| a.port().is_some())
                        && uri.path() == "/"
                        && !origin.ends_with('/')
                })
            })
            .cloned()
            .collect();
        Shortcut {
            hosts,
            origins,
            max_body_bytes: transport.max_body_bytes,
            sessions,
            server,
        }
    }

    /// Answer `request` if it is a plain tool call in a session, or give it
    /// back for rmcp.
    pub async fn take(&self, request: Request) -> Taken {
        if self.plain_headers(&request).is_none() {
            return Taken::Passed(request);
        }
        let (parts, body) = request.into_parts();
        let body = match super::edge::read_bounded(body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(refused) => return Taken::Answered(refused),
        };
        let Some((id, params, supports_tasks)) = self.plain_call(&parts.headers, &body) else {
            return Taken::Passed(Request::from_parts(parts, Body::from(body)));
        };
        let reply = self
            .server
            .answer_in_session(params, super::principal_of(&parts), supports_tasks, id)
            .await;
        Taken::Answered(match serde_json::to_vec(&reply) {
            Ok(json) => ([(header::CONTENT_TYPE, HeaderValue::from_static(JSON))], json).into_response(),
            Err(e) => ApiError::internal(e).into_response(),
        })
    }

    /// The call in `body` if it is a plain call of a tool that answers at
    /// once, in a session the host knows: its id, what to call, and whether
    /// the client takes tasks.
    fn plain_call(&self, headers: &HeaderMap, body: &[u8]) -> Option<(RequestId, CallToolRequestParams, bool)> {
        let call = serde_json::from_slice::<PlainCall>(body).ok()?;
        let listens = call.params.meta.is_some();
        if call.jsonrpc != "2.0"
            || call.method != "tools/call"
            || !self.server.answers_at_once(&call.params.name, listens)
        {
            return None;
        }
        // A session the host does not know: rmcp answers 404.
        let supports_tasks = self.sessions.touch(session_of(headers)?)?;
        let mut params = CallToolRequestParams::new(call.params.name);
        params.arguments = call.params.arguments;
        Some((call.id, params, supports_tasks))
    }

    /// `Some` for a `POST` in a session whose headers are all as rmcp would
    /// take them; `None` for anything else, which rmcp judges itself.
    fn plain_headers(&self, request: &Request) -> Option<()> {
        if request.method() != axum::http::Method::POST {
            return None;
        }
        let headers = request.headers();
        // DNS-rebinding protection: the Host and Origin exactly as allowed.
        let host = headers.get(header::HOST)?.to_str().ok()?;
        if !self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
            return None;
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().ok()?;
            if !self.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
                return None;
            }
        }
        if !accepts_json_and_events(headers) {
            return None;
        }
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = content_type
            .split_once(';')
            .map_or(content_type, |(essence, _)| essence);
        if !essence.trim().eq_ignore_ascii_case(JSON) {
            return None;
        }
        // A session's protocol, one rmcp knows and before the revision
        // whose requests carry headers that must match the body.
        if let Some(version) = headers.get("mcp-protocol-version") {
            let version = version.to_str().ok()?;
            let known = ProtocolVersion::KNOWN_VERSIONS.iter().any(|v| v.as_str() == version);
            if !known || version >= ProtocolVersion::STANDARD_HEADERS.as_str() {
                return None;
            }
        }
        session_of(headers).map(|_| ())
    }
}

/// The request's MCP session id.
fn session_of(headers: &HeaderMap) -> Option<&str> {
    headers.get("mcp-session-id")?.to_str().ok()
}

/// Whether the `Accept` headers name both JSON and event streams, with no
/// parameters (weights included) to weigh.
fn accepts_json_and_events(headers: &HeaderMap) -> bool {
    let (mut json, mut events) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for media in value.split(',').map(str::trim) {
            if media.contains([';', '"']) {
                return false;
            }
            json |= media.eq_ignore_ascii_case(JSON);
            events |= media.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    json && events
}
