//! Reading the audit trail: filtered pages, or everything as JSON Lines.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{BoxError, Json};
use futures_util::Stream;

use super::auth::AuditReader;
use super::bodies::AuditPage;
use super::responses::{BadRequest, Unprocessable};
use super::{ApiError, Shared};
use crate::audit::{AuditError, AuditFilter, AuditLog, MAX_PAGE};
use crate::model::audit::AuditRecord;

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
        (status = 200, description = "A page of records, newest first.", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn query(
    _: AuditReader,
    State(state): State<Shared>,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(filter) = filter?;
    super::page_size(filter.limit, MAX_PAGE, MAX_PAGE)?;
    let (records, next) = state.app.runtime.audit().query(&filter).await.map_err(bad_filter)?;
    Ok(Json(AuditPage { records, next }))
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
        (status = 422, response = Unprocessable),
        super::responses::RoleRefusals,
    )
)]
pub async fn export(
    _: AuditReader,
    State(state): State<Shared>,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(mut filter) = filter?;
    super::page_size(filter.limit, MAX_PAGE, MAX_PAGE)?;
    filter.limit = Some(MAX_PAGE);
    // The first page before answering, so that a bad filter is still a 400.
    let first = state.app.runtime.audit().query(&filter).await.map_err(bad_filter)?;
    let pages = pages_as_lines(state.app.runtime.audit().clone(), filter, first);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    ))
}

/// A page of records and the cursor of the next, as the audit log answers.
type Page = (Vec<AuditRecord>, Option<String>);

/// The export's body: each page one chunk of JSON Lines, the next page
/// queried only once the client has taken this one (the body is polled as
/// the connection drains), so that an export holds one page, never the
/// trail. A client that goes away drops the body and the paging stops.
fn pages_as_lines(
    audit: Arc<AuditLog>,
    filter: AuditFilter,
    first: Page,
) -> impl Stream<Item = Result<Bytes, BoxError>> {
    futures_util::stream::try_unfold(Some((filter, Some(first))), move |state| {
        let audit = audit.clone();
        async move {
            let Some((mut filter, page)) = state else {
                return Ok(None);
            };
            let (records, next) = match page {
                Some(page) => page,
                None => audit.query(&filter).await.inspect_err(|e| {
                    tracing::error!("the audit export stopped short: {e}");
                })?,
            };
            let mut lines = Vec::new();
            for record in &records {
                serde_json::to_writer(&mut lines, record)?;
                lines.push(b'\n');
            }
            let state = next.map(|cursor| {
                filter.before = Some(cursor);
                (filter, None)
            });
            Ok(Some((Bytes::from(lines), state)))
        }
    })
}
