//! Every error the API returns: a status and a typed JSON body,
//! `{"error": {"kind": ..., "message": ..., ...}}`.
//!
//! 400 or 422, one rule (the OpenAPI document states it too): **400**
//! when the request cannot be read as the document describes it (a body
//! that is not JSON or not the form the route takes; a body field of the
//! wrong type, unknown or missing; a query parameter that does not parse
//! as its type or pattern; a header outside its pattern or length);
//! **422** when it was read and a value in it is refused (a body field
//! outside its stated range, length or pattern, a `limit` outside its
//! range, or a request refused for what it means: a rule whose condition
//! does not compile, a grant naming an unknown secret, a bundle that does
//! not load, arguments the tool's own schema refuses).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::app::operator::OperatorError;
use crate::app::recorded::AppError;
use crate::model::call::CallError;
use crate::policy::PolicyError;

/// Every error body: `{"error": {"kind": ..., "message": ...}}`, with more
/// fields beside those where the error has them (a failed call's own
/// fields, `retry_after`, `missing`, ...). [`ApiError::new`] builds it from
/// this type, so the OpenAPI document describes what is sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, as a stable word a client can branch on
    /// (`unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `invalid_input`, `rate_limited`, ...).
    pub kind: String,
    /// What went wrong and what to do, in words.
    pub message: String,
    /// Seconds after which a retry may succeed (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: serde_json::to_value(ErrorBody {
                error: ErrorDetail {
                    kind: kind.to_string(),
                    message: message.into(),
                    retry_after: None,
                },
            })
            .unwrap_or_default(),
            retry_after: None,
        }
    }

    /// A request refused before any handler read it (a body too large, of
    /// the wrong media type, unreadable), with the kind its status names.
    pub fn rejected(status: StatusCode, message: impl Into<String>) -> ApiError {
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::NOT_ACCEPTABLE => "not_acceptable",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "bad_request",
        };
        ApiError::new(status, kind, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {message}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message.to_string())
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// A failed call: its kind decides the status; a connector's own typed
    /// error decides it by its case (not-found → 404, conflict → 409, ...).
    pub fn from_call(e: &CallError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({ "error": call_error_body(e) }),
            retry_after: e.retry_after(),
        }
    }
}

/// A failed call's error as agents read it, over REST and MCP alike: its
/// kind and fields, the message in words, and `retry_after` (seconds) when
/// waiting that long is worth a retry.
pub fn call_error_body(e: &CallError) -> Value {
    let mut body = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert("message".into(), Value::from(e.to_string()));
        if let Some(seconds) = e.retry_after() {
            map.insert("retry_after".into(), Value::from(seconds));
        }
    }
    body
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // RFC 9110: a 401 names the scheme that would have been accepted.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body read as `T`, which must be an object: serde would also read
/// a struct from an array (`[]` as every field's default), which no client
/// means and which would replace the rules or a grant with nothing.
pub fn object_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    let Json(value) = body?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("Failed to deserialize the JSON body: {e}")))
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection;
        // JSON of the wrong shape (a field of the wrong type, unknown or
        // missing) is as unreadable as bad JSON: 400, not axum's 422, which
        // this API keeps for values it read and refuses (see `ApiError`).
        let status = match &e {
            JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            _ => e.status(),
        };
        ApiError::rejected(status, e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::Approval(e) => e.into(),
            AppError::Internal(message) => ApiError::internal(message),
        }
    }
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> ApiError {
        let message = e.to_string();
        match e {
            OperatorError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            OperatorError::NoPrevious(_) => ApiError::new(StatusCode::CONFLICT, "no_previous_version", message),
            OperatorError::BundleRefused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bundle_refused", message)
            }
            OperatorError::GrantRefused(PolicyError::UnsetRequested { missing, .. }) => {
                let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unset_requested", message);
                error.body["error"]["missing"] = serde_json::json!(missing);
                error
            }
            OperatorError::GrantRefused(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message),
            OperatorError::Internal(message) => ApiError::internal(message),
        }
    }
}
