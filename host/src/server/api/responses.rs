//! The error responses the handlers share, as the OpenAPI document names
//! them. They describe bodies that `ApiError` builds; none is constructed
//! as such.

use std::collections::BTreeMap;

use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, ToResponse};

use super::error::ErrorBody;

/// The refusals any route behind a bearer token can answer, whatever its
/// role: no or an unknown token (401), over the token's rate (429). Named
/// once here instead of on every operation.
pub struct AnyTokenRefusals;

/// Those of a route only some roles may use: also 403, naming the role it
/// needs.
pub struct RoleRefusals;

/// References to the shared error responses, by status.
fn refusals(by_status: &[(&str, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
    by_status
        .iter()
        .map(|(status, name)| (status.to_string(), RefOr::Ref(Ref::from_response_name(*name))))
        .collect()
}

impl IntoResponses for AnyTokenRefusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        refusals(&[("401", "Unauthorized"), ("429", "RateLimited")])
    }
}

impl IntoResponses for RoleRefusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        refusals(&[("401", "Unauthorized"), ("403", "Forbidden"), ("429", "RateLimited")])
    }
}

/// The request cannot be read as described: a body that is not JSON (or
/// not the form the route takes), a body field of the wrong type, unknown
/// or missing, a query parameter that does not parse as its type or
/// pattern, a header outside its pattern or length.
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "bad_request", "message": "unknown field `tol`, expected one of ..."}}))]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

/// No token, a malformed `Authorization` header, or an unknown token.
#[derive(ToResponse)]
#[response(
    headers(("WWW-Authenticate" = String, description = "`Bearer`: the scheme this API takes.")),
    example = json!({"error": {"kind": "unauthorized", "message": "missing Authorization: Bearer <token>"}})
)]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// The token's role may not do this (the message names what is needed), or
/// the policy refused the call.
#[derive(ToResponse)]
#[response(
    example = json!({"error": {"kind": "forbidden", "message": "token \"agent\" is an agent token; this needs an admin token"}})
)]
#[allow(dead_code)]
pub struct Forbidden(ErrorBody);

/// No such plugin, tool, approval or run (or not one this token may see).
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "not_found", "message": "no plugin named \"crm\""}}))]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

/// The thing's state does not allow this (already decided, ended, no
/// previous version, a keyed call still running).
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "approval_decided", "message": "approval 42 is already approved"}}))]
#[allow(dead_code)]
pub struct Conflict(ErrorBody);

/// Read, but a value is refused: a body field outside its stated range,
/// length or pattern, a `limit` outside its range, or refused for what it
/// means. The message says what is wrong and what to
/// do. (A request that cannot be read as described is 400.)
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "invalid_input", "message": "..."}}))]
#[allow(dead_code)]
pub struct Unprocessable(ErrorBody);

/// Over the token's request rate, or the host or a connector is full; retry
/// after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying.")),
    example = json!({"error": {"kind": "rate_limited", "message": "token \"agent\" is over its request rate"}})
)]
#[allow(dead_code)]
pub struct RateLimited(ErrorBody);

/// Not available now: the host is starting or draining, or the database
/// or an upstream cannot be reached.
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "unavailable", "message": "..."}}))]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// The body is larger than the host takes (`max-body-bytes`; a bundle
/// upload may be as large as its component limit).
#[derive(ToResponse)]
#[response(example = json!({"error": {"kind": "payload_too_large", "message": "length limit exceeded"}}))]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);

/// The body is not of a media type this route takes.
#[derive(ToResponse)]
#[response(
    example = json!({"error": {"kind": "unsupported_media_type", "message": "Expected request with `Content-Type: application/json`"}})
)]
#[allow(dead_code)]
pub struct UnsupportedMediaType(ErrorBody);

/// The path has no such method: `Allow` lists those it has.
#[derive(ToResponse)]
#[response(
    headers(("Allow" = String, description = "The methods the path has.")),
    example = json!({"error": {"kind": "method_not_allowed", "message": "PATCH is not a method of /v1/tools; it has GET"}})
)]
#[allow(dead_code)]
pub struct MethodNotAllowed(ErrorBody);

/// The refusals of a route that reads a JSON body: too large (413), not
/// JSON (415), beside those of its role.
pub struct JsonBodyRefusals;

impl IntoResponses for JsonBodyRefusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        refusals(&[
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
            ("429", "RateLimited"),
        ])
    }
}
