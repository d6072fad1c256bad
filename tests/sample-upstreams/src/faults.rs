//! Faults armed on demand: the next N requests whose path contains a given
//! fragment fail, or hang. Tests hold a [`Faults`] handle; scripts and people
//! use `GET/POST/DELETE /faults` on the same port. Every request's method and
//! path is also counted, so a test can wait until a request has arrived (and
//! then, say, kill the host that sent it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

/// How long a hung request is held at most (unless released sooner).
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// What happens to a request a fault matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Answer 503 at once, without handling the request.
    Fail,
    /// Never handle the request; after the hang, answer 504.
    Hang,
    /// Handle the request (its effect happens), then withhold the answer:
    /// the caller cannot know whether it took effect.
    HangAfter,
}

/// A fault armed for the next `times` requests whose path contains `path`
/// (a trailing `$` anchors it at the path's end).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Armed {
    pub fault: Fault,
    pub path: String,
    pub times: u32,
}

#[derive(Default)]
struct Board {
    armed: Vec<Armed>,
    /// Every request so far, as "METHOD /path".
    seen: Vec<String>,
}

/// The sample systems' fault switchboard, shared by the server and whoever
/// arms it.
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<Board>>,
    /// Wakes every hung request (see [`Faults::release`]).
    released: Arc<Notify>,
    /// Wakes whoever waits for a request to arrive.
    arrived: Arc<Notify>,
}

impl Faults {
    /// Arm `fault` for the next `times` requests whose path contains `path`.
    pub fn arm(&self, fault: Fault, path: &str, times: u32) {
        self.lock().armed.push(Armed {
            fault,
            path: path.to_string(),
            times,
        });
    }

    /// Disarm every fault and let every hung request go.
    pub fn clear(&self) {
        self.lock().armed.clear();
        self.release();
    }

    /// Let every request hung so far go on (a `Hang` answers 504, a
    /// `HangAfter` its real answer).
    pub fn release(&self) {
        self.released.notify_waiters();
    }

    /// How many requests so far had `fragment` in their "METHOD /path".
    pub fn seen(&self, fragment: &str) -> usize {
        self.lock().seen.iter().filter(|r| r.contains(fragment)).count()
    }

    /// Wait until `count` requests with `fragment` in their "METHOD /path"
    /// have arrived; false if `limit` passed first.
    pub async fn wait_seen(&self, fragment: &str, count: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.arrived.notified();
            if self.seen(fragment) >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.seen(fragment) >= count;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        // A panic elsewhere cannot leave these lists half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count the request and take the first fault armed for it.
    fn take(&self, request: &str) -> Option<Fault> {
        let mut state = self.lock();
        state.seen.push(request.to_string());
        let path = request.split_once(' ').map_or(request, |(_, p)| p);
        let armed = state.armed.iter_mut().find(|a| a.times > 0 && matches(path, &a.path))?;
        armed.times -= 1;
        let fault = armed.fault;
        state.armed.retain(|a| a.times > 0);
        Some(fault)
    }

    async fn hang(&self) {
        let released = self.released.notified();
        let _ = tokio::time::timeout(HANG_LIMIT, released).await;
    }
}

fn matches(path: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('$') {
        Some(end) => path.ends_with(end),
        None => path.contains(pattern),
    }
}

/// The middleware every sample route runs through.
pub(crate) async fn apply(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    if line.ends_with(" /faults") {
        return next.run(request).await;
    }
    let fault = faults.take(&line);
    faults.arrived.notify_waiters();
    match fault {
        None => next.run(request).await,
        Some(Fault::Fail) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "fault injected: unavailable" })),
        )
            .into_response(),
        Some(Fault::Hang) => {
            faults.hang().await;
            (
                StatusCode::GATEWAY_TIMEOUT,
                Json(json!({ "error": "fault injected: hung" })),
            )
                .into_response()
        }
        Some(Fault::HangAfter) => {
            let response = next.run(request).await;
            faults.hang().await;
            response
        }
    }
}

/// `GET /faults`: what is armed, and how many requests were seen.
pub(crate) async fn show(State(faults): State<Faults>) -> Json<serde_json::Value> {
    let state = faults.lock();
    Json(json!({ "armed": state.armed, "seen": state.seen.len() }))
}

/// `POST /faults` with `{"fault": "fail"|"hang"|"hang-after", "path": "/ledger/", "times": 2}`.
pub(crate) async fn arm(State(faults): State<Faults>, Json(armed): Json<Armed>) -> StatusCode {
    faults.arm(armed.fault, &armed.path, armed.times);
    StatusCode::NO_CONTENT
}

/// `DELETE /faults`: disarm all and release every hung request.
pub(crate) async fn clear(State(faults): State<Faults>) -> StatusCode {
    faults.clear();
    StatusCode::NO_CONTENT
}
