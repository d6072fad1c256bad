//! A sample voucher ledger: the operator's books the coupon connector reports
//! every voucher change to (`ledger-url`, bearer `ledger-token`). It keeps one
//! entry per idempotency key and event: a report sent again (a retry after a
//! lost answer, a host that crashed mid-call) gets the entry already kept,
//! with `200` instead of `201`, so the books count each voucher once.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bearer_ok, error, Shared};

const EVENTS: &str = "ledger-events";
const KEYS: &str = "ledger-keys";

fn authorised(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    bearer_ok(headers, &s.keys.ledger)
        .then_some(())
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "bad ledger credentials"))
}

/// `POST /ledger/v1/events`: record a voucher event once per key and event.
pub(crate) async fn record(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(e) = authorised(&s, &headers) {
        return e;
    }
    let (Some(event), Some(key), Some(_code)) = (
        body["event"].as_str(),
        body["idempotency_key"].as_str(),
        body["code"].as_str(),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "event, code and idempotency_key are required",
        );
    };
    // One entry per key and event, even for two reports racing: each writes
    // its entry, then claims the key; the loser takes its entry back and
    // answers with the winner's.
    let id = format!("LE-{:06}", s.next_id("ledger-event"));
    let mut entry = body.clone();
    entry["id"] = json!(id);
    entry["received"] = json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    if let Err(e) = s.put(EVENTS, &id, &entry) {
        return e;
    }
    let dedup = format!("{key}/{event}");
    let claim = s.db.open_tree(KEYS).and_then(|t| {
        t.compare_and_swap(
            &dedup,
            None as Option<&[u8]>,
            Some(serde_json::to_vec(&id).unwrap_or_default()),
        )
    });
    match claim {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            let _ = s.db.open_tree(EVENTS).and_then(|t| t.remove(&id));
            let kept = s
                .get(KEYS, &dedup)
                .and_then(|id| id.as_str().and_then(|id| s.get(EVENTS, id)));
            return super::found(kept, "ledger entry");
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
    (StatusCode::CREATED, Json(entry)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Filter {
    idempotency_key: Option<String>,
    code: Option<String>,
}

/// `GET /ledger/v1/events?idempotency_key=&code=`: the entries kept.
pub(crate) async fn list(State(s): State<Shared>, headers: HeaderMap, Query(f): Query<Filter>) -> Response {
    if let Err(e) = authorised(&s, &headers) {
        return e;
    }
    let entries: Vec<Value> = s
        .all(EVENTS)
        .into_iter()
        .filter(|e| f.idempotency_key.as_deref().is_none_or(|k| e["idempotency_key"] == k))
        .filter(|e| f.code.as_deref().is_none_or(|c| e["code"] == c))
        .collect();
    Json(json!({ "events": entries })).into_response()
}
