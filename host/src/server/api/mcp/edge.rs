//! What `/mcp` checks at the host's edge, before rmcp: whose each new
//! session is and whether its principal (or the host) has room for it, and
//! a body rmcp cannot read as one JSON-RPC message, which rmcp answers
//! `415` whatever is wrong with it (a batch, a 50,000-deep `params`, text
//! that is not JSON): the host answers that `400` with a JSON-RPC error, as
//! the specification asks, so a client does not retry it as a media-type
//! mix-up. What rmcp refuses in plain text (a missing session id, an
//! `Accept` without `text/event-stream`) is answered in the API's JSON
//! error shape.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::sessions;
use crate::app::auth::Principal;
use crate::server::api::{ApiError, Shared};

/// Turn away a new session while the host has as many open as it allows,
/// or its principal its share ([`Sessions::claim`]), and note whose each new
/// session is. Only an `initialize` opens one: a request with
/// `Mcp-Session-Id`, or without under protocol 2026-07-28 (which has no
/// sessions), passes; but a `subscriptions/listen` of 2026-07-28, a stream
/// that stays open, takes a place as a session does, until it ends.
/// `max_body_bytes` bounds what is read to tell them apart.
pub async fn limit_sessions(
    State((state, max_body_bytes)): State<(Shared, usize)>,
    request: Request,
    next: Next,
) -> Response {
    in_json(sessions_checked(state, max_body_bytes, request, next).await).await
}

/// A refusal that rmcp (or the session check) answers in plain text, such
/// as `400 Bad Request: Session ID is required` or `406 Not Acceptable:
/// ...`, answered in the API's JSON error shape instead, with its words as
/// the message and its headers kept: a client reads every refusal of the
/// host one way, as the OpenAPI document describes it.
async fn in_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // rmcp's refusals are a line of text; a longer body is cut, not kept whole.
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&text).trim().to_string();
    let message = match said.is_empty() {
        true => status.canonical_reason().unwrap_or("refused").to_string(),
        false => said,
    };
    let mut refused = ApiError::rejected(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            refused.headers_mut().insert(name.clone(), value.clone());
        }
    }
    refused
}

async fn sessions_checked(state: Shared, max_body_bytes: usize, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Arc<Principal>>().cloned() else {
        return next.run(request).await;
    };
    if let Some(id) = request.headers().get("mcp-session-id") {
        // A session answers only the principal that opened it: to any other
        // it is as unknown as one that never was (the MCP security
        // guidance), whatever the method, `DELETE` included.
        let theirs = id
            .to_str()
            .is_ok_and(|id| state.mcp_sessions.is_others(id, &principal.name));
        if theirs {
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        let closing = request.method() == axum::http::Method::DELETE;
        let response = next.run(request).await;
        // rmcp answers a closed session `202`; the SDKs take `200` or `204`
        // (the Python SDK logs anything else as a failed close).
        if closing && response.status() == StatusCode::ACCEPTED {
            return StatusCode::NO_CONTENT.into_response();
        }
        return response;
    }
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match read_bounded(body, max_body_bytes).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let sessions = &state.mcp_sessions;
    let opens = opens(&body);
    let claim = match opens {
        Some(_) => match sessions.claim(&principal.name) {
            Ok(claim) => Some(claim),
            Err(refused) => return session_refused(refused).into_response(),
        },
        None => None,
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let claim = match (opens, claim) {
        (Some(Opens::ListenStream), Some(claim)) => return held_while_open(response, claim),
        (_, claim) => claim,
    };
    let opened = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok());
    match (opened, claim) {
        (Some(id), Some(claim)) => claim.bind(id),
        (Some(id), None) => sessions.adopt(id, &principal.name),
        (None, _) => {}
    }
    response
}

/// What a request without a session opens that takes a session's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opens {
    /// `initialize`: a session.
    Session,
    /// `subscriptions/listen` (2026-07-28): a stream open until its client
    /// goes or the idle time ends it.
    ListenStream,
}

/// What a request body without a session opens, if anything.
fn opens(body: &[u8]) -> Option<Opens> {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    let method = serde_json::from_slice::<Method>(body).ok()?.method?;
    match method.as_ref() {
        "initialize" => Some(Opens::Session),
        "subscriptions/listen" => Some(Opens::ListenStream),
        _ => None,
    }
}

/// `response` (a listen stream, or its refusal) with `claim` kept until its
/// body ends or is dropped, which is when its client goes.
fn held_while_open(response: Response, claim: sessions::Claim) -> Response {
    use futures_util::StreamExt;
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &claim;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// The host's cap is 503 (the host is full, whoever asks); a principal's
/// share 429 (this caller has its share). Both pass with time: sessions
/// close when their clients end them or after the idle time.
fn session_refused(refused: sessions::Refused) -> ApiError {
    let (status, kind) = match refused {
        sessions::Refused::Host(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
        sessions::Refused::Principal(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_sessions_for_token"),
    };
    ApiError::new(status, kind, refused.to_string()).retry_after(5)
}

/// The whole body, at most `max` bytes; a longer one is refused with 413,
/// one that breaks off with 400.
pub(super) async fn read_bounded(body: Body, max: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let too_long = std::error::Error::source(&e).is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
        if too_long {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("an MCP request may be at most {max} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("reading the request body: {e}"),
            )
        }
        .into_response()
    })
}

/// `rmcp` answering `request`, except that a JSON body it cannot read as a
/// JSON-RPC message (its `415`) is answered `400` with a JSON-RPC error:
/// `-32700` when the body is not JSON, `-32600` when it is JSON but not a
/// message the host takes. The body is read here (at most `max_body_bytes`,
/// as rmcp would) so that it can be judged after rmcp has refused it; a
/// request whose `Content-Type` is not JSON keeps rmcp's `415`.
pub async fn answer_malformed<F, Fut>(request: Request, max_body_bytes: usize, rmcp: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if request.method() != axum::http::Method::POST || !is_json(request.headers()) {
        return rmcp(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match read_bounded(body, max_body_bytes).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let response = rmcp(Request::from_parts(parts, Body::from(body.clone()))).await;
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    malformed(&body)
}

/// Whether the `Content-Type` is JSON (parameters aside), as rmcp checks it.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

/// The JSON-RPC error for a body rmcp could not read as a message.
/// (`IgnoredAny` walks the JSON without recursing, so no depth can
/// overflow the stack here; rmcp's own parse stops at serde_json's 128.)
fn malformed(body: &[u8]) -> Response {
    let (code, message) = match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Err(e) => (-32700, format!("Parse error: the body is not JSON ({e})")),
        Ok(_) if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') => (
            -32600,
            "Invalid Request: a JSON-RPC batch; MCP takes one message per request".to_string(),
        ),
        Ok(_) => (
            -32600,
            "Invalid Request: not a JSON-RPC message this host takes (a request, notification or response \
             of MCP, nested at most 128 levels deep)"
                .to_string(),
        ),
    };
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
