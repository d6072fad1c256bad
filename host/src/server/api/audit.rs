//! Reading the audit trail: filtered pages, or everything as JSON Lines.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::auth::AuditReader;
use super::responses::BadRequest;
use super::{ApiError, Shared};
use crate::audit::{AuditError, AuditFilter, MAX_PAGE};

fn bad_filter(e: AuditError) -> ApiError {
    match e {
        AuditError::BadFilter { .. } => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        other => ApiError::internal(other),
    }
}

/// A page of audit records, newest first, as the filters pick them.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    operation_id = "query_audit",
    security(("bearer" = [])),
    params(AuditFilter),
    responses(
        (status = 200, description = "`{\"records\": [...], \"next\": id or null}`.", body = Object),
        (status = 400, response = BadRequest),
        super::responses::RoleRefusals,
    )
)]
pub async fn query(
    _: AuditReader,
    State(state): State<Shared>,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter?;
    let (records, next) = state.runtime.audit().query(&filter).await.map_err(bad_filter)?;
    Ok(Json(json!({ "records": records, "next": next })))
}

/// Every matching record, oldest page last, one JSON object per line.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    operation_id = "export_audit",
    security(("bearer" = [])),
    params(AuditFilter),
    responses(
        (status = 200, description = "Every matching record as JSON Lines.", body = String, content_type = "application/x-ndjson"),
        (status = 400, response = BadRequest),
        super::responses::RoleRefusals,
    )
)]
pub async fn export(
    _: AuditReader,
    State(state): State<Shared>,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(mut filter) = filter?;
    filter.limit = Some(MAX_PAGE);
    let mut out = String::new();
    loop {
        let (records, next) = state.runtime.audit().query(&filter).await.map_err(bad_filter)?;
        for r in &records {
            out.push_str(&serde_json::to_string(r).map_err(ApiError::internal)?);
            out.push('\n');
        }
        match next {
            Some(cursor) => filter.before = Some(cursor),
            None => break,
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out))
}
