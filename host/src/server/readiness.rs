//! Where the host is in its life, as `/readyz` reports it to a balancer or
//! an orchestrator: starting (the port answers, the plugins are still
//! loading), ready, or draining (a stop has begun; calls still finish).

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the host is: `starting` (loading its plugins), `ready`, or
/// `draining` (a stop has begun).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Ready,
    Draining,
}

/// Set once a stop begins: `/readyz` says `draining` from then on.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn phase(&self) -> Phase {
        if self.0.load(Ordering::Acquire) {
            Phase::Draining
        } else {
            Phase::Ready
        }
    }
}

/// How long a request is told to wait before retrying while the host starts.
const RETRY_AFTER_SECS: &str = "1";

/// What answers while the host starts: alive (`/healthz`), not ready
/// (`/readyz`), and every other request 503 with `Retry-After`, so a client
/// that comes early is told to come back instead of waiting on a socket
/// nobody accepts from.
fn starting_router() -> Router {
    let not_yet = |body: serde_json::Value| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
            axum::Json(body),
        )
            .into_response()
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move { not_yet(serde_json::json!({ "ready": false, "state": Phase::Starting })) }),
        )
        .fallback(move || async move {
            not_yet(serde_json::json!({ "error": {
                "kind": "starting",
                "message": "the host is starting (loading its plugins); retry shortly",
            } }))
        })
}

/// The starting answers, served on the host's own listener until `stop`.
pub struct WhileStarting {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WhileStarting {
    /// Serve the starting answers on a second handle to `listener`; the
    /// caller keeps `listener` for the real router.
    pub(crate) fn serve(
        listener: TcpListener,
        connections: std::sync::Arc<super::connections::Pool>,
    ) -> std::io::Result<(TcpListener, WhileStarting)> {
        let socket = listener.into_std()?;
        let early = TcpListener::from_std(socket.try_clone()?)?;
        let listener = TcpListener::from_std(socket)?;
        let stop = CancellationToken::new();
        let served = super::connections::serve(early, starting_router(), connections, stop.clone().cancelled_owned());
        let task = tokio::spawn(served);
        Ok((listener, WhileStarting { stop, task }))
    }

    /// Stop answering as starting: connections it accepted close once
    /// their request is answered (a second at most), and the real router
    /// takes the next ones.
    pub async fn end(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
