//! SAMPLE upstream systems for toolhost's demo and tests — a CRM, an ERP,
//! two carriers' tracking APIs (Nordpost and Swiftline, with different
//! shapes) and a voucher ledger — over HTTP on one port, backed by a sled
//! store seeded with a realistic data set. They play the vendors' systems that the reference
//! connectors talk to; they are not part of toolhost.
//!
//! Each system checks its own credential: `Authorization: Bearer` for the
//! CRM, ERP and ledger, `X-Api-Key` for Nordpost, `?apikey=` for Swiftline.
//! Fault fixtures answer 429, 500, a malformed body, or never; and any
//! request can be made to fail or hang on demand ([`Faults`]).

// The helpers short-circuit a handler with the `Response` it should send;
// boxing it would only add noise to a sample server.
#![allow(clippy::result_large_err)]

mod faults;
pub mod grants;
mod ledger;
#[cfg(feature = "clients")]
pub mod scenario;
mod seed;

pub use faults::{Armed, Fault, Faults};

/// What the sample systems themselves hold, read over their own APIs:
/// what tests check a tool's effects against.
#[cfg(feature = "clients")]
pub mod records {
    use std::net::SocketAddr;

    use serde_json::Value;

    async fn get(addr: SocketAddr, path: &str, key: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("the sample systems answer")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// An order as the ERP system has it.
    pub async fn erp_order(addr: SocketAddr, order: &str) -> Value {
        get(addr, &format!("/erp/v1/orders/{order}"), &super::Keys::default().erp).await
    }

    /// A case as the CRM has it.
    pub async fn crm_case(addr: SocketAddr, id: &str) -> Value {
        get(addr, &format!("/crm/v1/cases/{id}"), &super::Keys::default().crm).await
    }

    /// The voucher ledger's entries for one idempotency key.
    pub async fn ledger_events(addr: SocketAddr, idempotency_key: &str) -> Vec<Value> {
        let path = format!("/ledger/v1/events?idempotency_key={idempotency_key}");
        let body = get(addr, &path, &super::Keys::default().ledger).await;
        body["events"].as_array().cloned().unwrap_or_default()
    }
}

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub use seed::{sla, EPOCH};

/// The credentials each system accepts.
#[derive(Clone, Debug)]
pub struct Keys {
    pub crm: String,
    pub erp: String,
    pub nordpost: String,
    pub swiftline: String,
    pub ledger: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            crm: "crm-demo-key".into(),
            erp: "erp-demo-key".into(),
            nordpost: "nordpost-demo-key".into(),
            swiftline: "swiftline-demo-key".into(),
            ledger: "ledger-demo-key".into(),
        }
    }
}

struct Upstreams {
    db: sled::Db,
    keys: Keys,
}

type Shared = Arc<Upstreams>;

/// The sample systems, serving.
pub struct Started {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
    /// Arms failures and hangs on this server's requests.
    pub faults: Faults,
    /// The store, flushed by [`Started::stop`].
    db: sled::Db,
}

impl Started {
    /// Stop serving and flush the store: the cases, notes and vouchers
    /// the systems recorded are there on the next start.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.task.abort();
        let _ = self.task.await;
        self.db.flush_async().await?;
        Ok(())
    }
}

/// [`start`] with the demo credentials, then write into `grants` the
/// toolhost configuration that lets the reference connectors and the
/// late-parcel workflow reach these systems, with the voucher rule
/// ([`grants::demo_config`]). The file is written aside and renamed:
/// whoever waits for it never reads half of it.
pub async fn start_with_grants(dir: &Path, bind: SocketAddr, grants: &Path) -> anyhow::Result<Started> {
    let started = start(dir, bind, Keys::default()).await?;
    let mut aside = grants.as_os_str().to_owned();
    aside.push(".partial");
    std::fs::write(&aside, grants::demo_config(started.addr))?;
    std::fs::rename(&aside, grants)?;
    Ok(started)
}

/// Open (and on first use seed) the store in `dir`, and serve on `bind`.
pub async fn start(dir: &Path, bind: SocketAddr, keys: Keys) -> anyhow::Result<Started> {
    let db = sled::open(dir)?;
    if !db.contains_key("seeded")? {
        for (tree, key, doc) in seed::generate() {
            db.open_tree(tree)?.insert(key, serde_json::to_vec(&doc)?)?;
        }
        db.insert("seeded", b"1".as_slice())?;
        db.flush_async().await?;
    }
    let state = Arc::new(Upstreams { db: db.clone(), keys });
    let app = Router::new()
        .route("/crm/v1/customers", get(crm_find))
        .route("/crm/v1/customers/{id}", get(crm_customer))
        .route("/crm/v1/customers/{id}/cases", get(crm_cases))
        .route("/crm/v1/cases", post(crm_open_case))
        .route("/crm/v1/cases/{id}", get(crm_case).patch(crm_update_case))
        .route("/crm/v1/cases/{id}/notes", post(crm_add_note))
        .route("/erp/v1/orders/{id}", get(erp_order))
        .route("/erp/v1/customers/{id}/orders", get(erp_orders))
        .route("/erp/v1/contracts/{id}", get(erp_contract))
        .route("/erp/v1/credit-notes", post(erp_credit_note))
        .route("/nordpost/v2/parcels", get(nordpost_search))
        .route("/nordpost/v2/parcels/{tn}", get(nordpost_parcel))
        .route("/nordpost/v2/parcels/{tn}/scans", get(nordpost_scans))
        .route("/swiftline/track", get(swiftline_track))
        .route("/swiftline/lookup", get(swiftline_lookup))
        .route("/ledger/v1/events", get(ledger::list).post(ledger::record))
        .with_state(state);
    let faults = Faults::default();
    let switchboard = Router::new()
        .route("/faults", get(faults::show).post(faults::arm).delete(faults::clear))
        .with_state(faults.clone());
    let app = app
        .merge(switchboard)
        .layer(axum::middleware::from_fn_with_state(faults.clone(), faults::apply));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Started { addr, task, faults, db })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn bearer_ok(headers: &HeaderMap, key: &str) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {key}"))
}

impl Upstreams {
    fn get(&self, tree: &str, key: &str) -> Option<Value> {
        let bytes = self.db.open_tree(tree).ok()?.get(key).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    fn put(&self, tree: &str, key: &str, doc: &Value) -> Result<(), Response> {
        let bytes = serde_json::to_vec(doc).unwrap_or_default();
        self.db
            .open_tree(tree)
            .and_then(|t| t.insert(key, bytes))
            .map(drop)
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
    }

    fn all(&self, tree: &str) -> Vec<Value> {
        self.db
            .open_tree(tree)
            .map(|t| {
                t.iter()
                    .values()
                    .filter_map(|v| v.ok().and_then(|v| serde_json::from_slice(&v).ok()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn next_id(&self, counter: &str) -> u64 {
        self.db
            .update_and_fetch(format!("counter/{counter}"), |old| {
                let n = old.map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
                Some((n + 1).to_be_bytes().to_vec())
            })
            .ok()
            .flatten()
            .map_or(1, |b| u64::from_be_bytes(b.as_ref().try_into().unwrap_or([0; 8])))
    }

    fn crm(&self, headers: &HeaderMap) -> Result<(), Response> {
        bearer_ok(headers, &self.keys.crm)
            .then_some(())
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "bad CRM credentials"))
    }

    fn erp(&self, headers: &HeaderMap) -> Result<(), Response> {
        bearer_ok(headers, &self.keys.erp)
            .then_some(())
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "bad ERP credentials"))
    }
}

fn found(doc: Option<Value>, what: &str) -> Response {
    match doc {
        Some(d) => Json(d).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("{what} not found")),
    }
}

// ---- CRM ----

#[derive(Deserialize)]
struct CustomerQuery {
    email: Option<String>,
    name: Option<String>,
}

async fn crm_find(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<CustomerQuery>) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    let hits: Vec<Value> = s
        .all("customers")
        .into_iter()
        .filter(|c| match (&q.email, &q.name) {
            (Some(e), _) => c["email"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(e)),
            (_, Some(n)) => c["name"]
                .as_str()
                .is_some_and(|x| x.to_lowercase().contains(&n.to_lowercase())),
            _ => false,
        })
        .take(20)
        .collect();
    Json(json!({ "customers": hits })).into_response()
}

async fn crm_customer(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    if id == "C-FAIL-500" {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "database unavailable");
    }
    found(s.get("customers", &id), "customer")
}

#[derive(Deserialize)]
struct CaseFilter {
    status: Option<String>,
}

async fn crm_cases(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(f): Query<CaseFilter>,
) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    let mut cases: Vec<Value> = s
        .all("cases")
        .into_iter()
        .filter(|c| c["customer_id"] == id.as_str() && f.status.as_deref().is_none_or(|st| c["status"] == st))
        .collect();
    cases.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    Json(json!({ "cases": cases })).into_response()
}

async fn crm_case(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    found(s.get("cases", &id), "case")
}

async fn crm_open_case(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    let Some(customer) = body["customer_id"].as_str() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "customer_id is required");
    };
    if s.get("customers", customer).is_none() {
        return error(StatusCode::NOT_FOUND, "customer not found");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(existing) = key.as_ref().and_then(|k| s.get("case-keys", k)) {
        return found(existing.as_str().and_then(|id| s.get("cases", id)), "case");
    }
    let id = format!("CASE-{:06}", s.next_id("case"));
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let case = json!({
        "id": id, "customer_id": customer, "subject": body["subject"], "status": "open",
        "priority": body["priority"].as_str().unwrap_or("normal"), "opened": now, "order_id": body["order_id"],
        "notes": [{ "at": now, "author": "customer", "text": body["description"] }], "resolution": Value::Null,
    });
    if let Err(e) = s.put("cases", &id, &case) {
        return e;
    }
    if let Some(k) = key {
        let _ = s.put("case-keys", &k, &json!(id));
    }
    (StatusCode::CREATED, Json(case)).into_response()
}

async fn crm_add_note(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    let Some(mut case) = s.get("cases", &id) else {
        return error(StatusCode::NOT_FOUND, "case not found");
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    if let Some(notes) = case["notes"].as_array_mut() {
        notes.push(json!({ "at": now, "author": body["author"], "text": body["text"] }));
    }
    if let Err(e) = s.put("cases", &id, &case) {
        return e;
    }
    Json(case).into_response()
}

async fn crm_update_case(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Err(e) = s.crm(&headers) {
        return e;
    }
    let Some(mut case) = s.get("cases", &id) else {
        return error(StatusCode::NOT_FOUND, "case not found");
    };
    if let Some(status) = body["status"].as_str() {
        if case["status"] == "closed" && status != "closed" {
            return error(StatusCode::CONFLICT, "a closed case cannot be reopened");
        }
        case["status"] = json!(status);
    }
    if !body["resolution"].is_null() {
        case["resolution"] = body["resolution"].clone();
    }
    if let Err(e) = s.put("cases", &id, &case) {
        return e;
    }
    Json(case).into_response()
}

// ---- ERP ----

async fn erp_order(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err(e) = s.erp(&headers) {
        return e;
    }
    match id.as_str() {
        "SO-FAIL-429" => return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "slow down").into_response(),
        "SO-FAIL-500" => return error(StatusCode::INTERNAL_SERVER_ERROR, "ERP backend down"),
        "SO-MALFORMED" => {
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"order_no\": ",
            )
                .into_response()
        }
        "SO-SLOW" => {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
        _ => {}
    }
    found(s.get("orders", &id), "order")
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn erp_orders(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(l): Query<Limit>,
) -> Response {
    if let Err(e) = s.erp(&headers) {
        return e;
    }
    let mut orders: Vec<Value> = s
        .all("orders")
        .into_iter()
        .filter(|o| o["customer"] == id.as_str())
        .collect();
    orders.sort_by(|a, b| b["placed"].as_str().cmp(&a["placed"].as_str()));
    orders.truncate(l.limit.unwrap_or(20));
    Json(json!({ "orders": orders })).into_response()
}

async fn erp_contract(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Err(e) = s.erp(&headers) {
        return e;
    }
    found(s.get("contracts", &id), "contract")
}

async fn erp_credit_note(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(e) = s.erp(&headers) {
        return e;
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return error(StatusCode::BAD_REQUEST, "Idempotency-Key is required");
    };
    if let Some(existing) = s.get("credit-note-keys", &key) {
        return found(
            existing.as_str().and_then(|id| s.get("credit-notes", id)),
            "credit note",
        );
    }
    let Some(order) = body["order"].as_str().and_then(|o| s.get("orders", o)) else {
        return error(StatusCode::NOT_FOUND, "order not found");
    };
    let amount = body["amount_cents"].as_i64().unwrap_or(0);
    if amount <= 0 || amount > order["total_cents"].as_i64().unwrap_or(0) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be positive and at most the order total",
        );
    }
    let id = format!("CN-{:06}", s.next_id("credit-note"));
    let note = json!({
        "id": id, "order": order["order_no"], "amount_cents": amount, "currency": order["currency"], "reason": body["reason"],
        "created": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    if let Err(e) = s.put("credit-notes", &id, &note) {
        return e;
    }
    let _ = s.put("credit-note-keys", &key, &json!(id));
    (StatusCode::CREATED, Json(note)).into_response()
}

// ---- Carriers: one set of shipments, two APIs ----

fn shipment_by(s: &Upstreams, field: &str, value: &str) -> Option<Value> {
    s.all("shipments").into_iter().find(|sh| sh[field] == value)
}

const NORDPOST_STATUS: &[(&str, &str)] = &[
    ("label-created", "CREATED"),
    ("in-transit", "IN_TRANSIT"),
    ("customs-hold", "CUSTOMS"),
    ("out-for-delivery", "OUT_FOR_DELIVERY"),
    ("delivered", "DELIVERED"),
    ("delivery-failed", "FAILED_ATTEMPT"),
    ("returned-to-sender", "RETURNED"),
    ("lost", "LOST"),
];

fn nordpost_code(status: &Value) -> &'static str {
    NORDPOST_STATUS
        .iter()
        .find(|(k, _)| status == *k)
        .map_or("UNKNOWN", |(_, v)| v)
}

fn nordpost_place(p: &Value) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    json!({ "cc": p["country"], "city": p["city"], "zip": p["postal_code"] })
}

fn nordpost_doc(sh: &Value) -> Value {
    json!({
        "trackingNumber": sh["nordpost"], "reference": sh["order"], "status": nordpost_code(&sh["status"]),
        "product": sh["service"], "from": nordpost_place(&sh["origin"]), "to": nordpost_place(&sh["destination"]),
        "shippedAt": sh["shipped_at"], "promisedBy": sh["promised_by"], "deliveredAt": sh["delivered_at"],
    })
}

fn nordpost_scan(e: &Value) -> Value {
    json!({ "ts": e["at"], "code": nordpost_code(&e["status"]), "place": nordpost_place(&e["place"]), "text": e["text"] })
}

fn nordpost_auth(s: &Upstreams, headers: &HeaderMap) -> Result<(), Response> {
    (headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(&s.keys.nordpost))
        .then_some(())
        .ok_or_else(|| error(StatusCode::FORBIDDEN, "invalid API key"))
}

fn nordpost_faults(tn: &str) -> Option<Response> {
    match tn {
        "NP-FAIL-429" => Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "rate limited").into_response()),
        "NP-FAIL-500" => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "tracking backend down")),
        "NP-MALFORMED" => Some(
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                "<html>oops</html>",
            )
                .into_response(),
        ),
        _ => None,
    }
}

async fn nordpost_parcel(State(s): State<Shared>, headers: HeaderMap, UrlPath(tn): UrlPath<String>) -> Response {
    if let Err(e) = nordpost_auth(&s, &headers) {
        return e;
    }
    if tn == "NP-SLOW" {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    if let Some(r) = nordpost_faults(&tn) {
        return r;
    }
    found(shipment_by(&s, "nordpost", &tn).map(|sh| nordpost_doc(&sh)), "parcel")
}

async fn nordpost_scans(State(s): State<Shared>, headers: HeaderMap, UrlPath(tn): UrlPath<String>) -> Response {
    if let Err(e) = nordpost_auth(&s, &headers) {
        return e;
    }
    if let Some(r) = nordpost_faults(&tn) {
        return r;
    }
    match shipment_by(&s, "nordpost", &tn) {
        Some(sh) => {
            Json(json!({ "scans": sh["events"].as_array().map(|es| es.iter().map(nordpost_scan).collect::<Vec<_>>()) }))
                .into_response()
        }
        None => error(StatusCode::NOT_FOUND, "parcel not found"),
    }
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "ref")]
    reference: Option<String>,
    reference_no: Option<String>,
    awb: Option<String>,
    apikey: Option<String>,
}

async fn nordpost_search(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<Reference>) -> Response {
    if let Err(e) = nordpost_auth(&s, &headers) {
        return e;
    }
    let reference = q.reference.unwrap_or_default();
    let parcels: Vec<Value> = s
        .all("shipments")
        .iter()
        .filter(|sh| sh["order"] == reference.as_str())
        .map(nordpost_doc)
        .collect();
    Json(json!({ "parcels": parcels })).into_response()
}

fn epoch(ts: &Value) -> Value {
    ts.as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| json!(d.as_secs()))
}

const SWIFTLINE_STATE: &[(&str, &str)] = &[
    ("label-created", "booked"),
    ("in-transit", "transit"),
    ("customs-hold", "held"),
    ("out-for-delivery", "courier"),
    ("delivered", "delivered"),
    ("delivery-failed", "exception"),
    ("returned-to-sender", "returned"),
    ("lost", "missing"),
];

fn swiftline_state(status: &Value) -> &'static str {
    SWIFTLINE_STATE
        .iter()
        .find(|(k, _)| status == *k)
        .map_or("unknown", |(_, v)| v)
}

fn swiftline_where(p: &Value) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    json!(format!(
        "{}/{}/{}",
        p["country"].as_str().unwrap_or(""),
        p["city"].as_str().unwrap_or(""),
        p["postal_code"].as_str().unwrap_or("")
    ))
}

fn swiftline_doc(sh: &Value) -> Value {
    json!({
        "awb": sh["swiftline"], "ref": sh["order"], "state": swiftline_state(&sh["status"]), "svc": sh["service"],
        "origin": swiftline_where(&sh["origin"]), "dest": swiftline_where(&sh["destination"]),
        "pickup_epoch": epoch(&sh["shipped_at"]), "eta_epoch": epoch(&sh["promised_by"]), "pod_epoch": epoch(&sh["delivered_at"]),
        "history": sh["events"].as_array().map(|es| es.iter().map(|e| json!({
            "t": epoch(&e["at"]), "state": swiftline_state(&e["status"]), "where": swiftline_where(&e["place"]), "note": e["text"],
        })).collect::<Vec<_>>()),
    })
}

async fn swiftline_track(State(s): State<Shared>, Query(q): Query<Reference>) -> Response {
    if q.apikey.as_deref() != Some(&s.keys.swiftline) {
        return error(StatusCode::UNAUTHORIZED, "apikey missing or wrong");
    }
    let awb = q.awb.unwrap_or_default();
    match shipment_by(&s, "swiftline", &awb) {
        Some(sh) => Json(json!({ "ok": true, "shipment": swiftline_doc(&sh) })).into_response(),
        None => (StatusCode::OK, Json(json!({ "ok": false, "error": "NO_SUCH_AWB" }))).into_response(),
    }
}

async fn swiftline_lookup(State(s): State<Shared>, Query(q): Query<Reference>) -> Response {
    if q.apikey.as_deref() != Some(&s.keys.swiftline) {
        return error(StatusCode::UNAUTHORIZED, "apikey missing or wrong");
    }
    let reference = q.reference_no.unwrap_or_default();
    let found: Vec<Value> = s
        .all("shipments")
        .iter()
        .filter(|sh| sh["order"] == reference.as_str())
        .map(swiftline_doc)
        .collect();
    Json(json!({ "ok": true, "shipments": found })).into_response()
}
