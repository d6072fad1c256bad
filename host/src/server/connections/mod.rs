//! The host's accept loop and its HTTP/1 connections, each bounded:
//!
//! - a request's head must be in within `header-timeout-secs` of the
//!   connection opening or of its first byte (slowloris);
//! - a connection idle between requests is closed after
//!   `connection-idle-secs` (a response being sent, an event stream or a
//!   long poll, is not idle);
//! - a request body must keep up with `body-min-bytes-per-sec` after a
//!   grace of `body-timeout-secs`, or the request is answered 408;
//! - at most `max-connections` are served, lowered to what the open-file
//!   limit leaves room for. At the cap a newcomer takes the place of the
//!   oldest connection with no request running; when every one has a
//!   request running, up to `health-connections` more are taken that
//!   answer `/healthz` and `/readyz` only (503 otherwise), so a balancer's
//!   probe is answered whatever clients hold; beyond those, a connection is
//!   closed as soon as it is accepted. Every connection is accepted: one
//!   left in the kernel's backlog would make a probe wait behind it, and
//!   an `accept` failing for want of file descriptors (what stopped the
//!   host at 1,100 idle connections under a 1,024-file limit) cannot
//!   happen while the cap is below the limit.

mod body;
mod io;
mod pool;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use body::BodyRate;
pub(crate) use pool::Pool;
use pool::{Admitted, Conn};

use crate::config::Server;
use crate::server::api::error::ApiError;

/// File descriptors kept for everything but the API's connections: the
/// store, the compile cache, connectors' upstream connections, the
/// PostgreSQL pool, the folder watcher.
const FD_HEADROOM: u64 = 256;
/// The fewest connections served, whatever the file limit.
const MIN_CONNECTIONS: usize = 16;
/// How long the accept loop waits after `accept` fails for want of
/// resources (it also closes an idle connection to free one).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How long a connection may take over what, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body: BodyRate,
    pub max_connections: usize,
    pub health_connections: usize,
}

impl Limits {
    /// The limits `[server]` sets, the cap lowered to what `fd_limit` (the
    /// process's open-file limit, if known) leaves room for.
    pub fn new(server: &Server, fd_limit: Option<u64>) -> Limits {
        let mut max_connections = server.max_connections;
        if let Some(files) = fd_limit {
            let room = files.saturating_sub(FD_HEADROOM + server.health_connections as u64);
            let room = usize::try_from(room).unwrap_or(usize::MAX).max(MIN_CONNECTIONS);
            if room < max_connections {
                tracing::warn!(
                    "max-connections {max_connections} lowered to {room}: the process may open {files} files \
                     (raise LimitNOFILE / ulimit -n for more)"
                );
                max_connections = room;
            }
        }
        Limits {
            header_timeout: Duration::from_secs(server.header_timeout_secs),
            idle_timeout: Duration::from_secs(server.connection_idle_secs),
            body: BodyRate {
                timeout: Duration::from_secs(server.body_timeout_secs),
                min_bytes_per_sec: server.body_min_bytes_per_sec,
            },
            max_connections,
            health_connections: server.health_connections,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Limits {
        Limits::new(&Server::default(), None)
    }
}

/// The pool every listener of this host shares (the starting answers and
/// the API draw from the same files).
pub(crate) fn pool(server: &Server) -> Arc<Pool> {
    Arc::new(Pool::new(Limits::new(server, fd_limit())))
}

/// Serve `router` on `listener` until `shutdown` resolves; then stop
/// accepting, let each connection finish the request it is answering, and
/// return once all have closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    pool: Arc<Pool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let tracker = TaskTracker::new();
    let closing = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&pool, e).await;
                    continue;
                }
            },
        };
        // Beyond the cap and the health reserve: closed now, so the client
        // knows at once instead of waiting in the backlog.
        let Some(admitted) = pool.admit() else { continue };
        tracker.spawn(serve_connection(
            stream,
            peer,
            admitted,
            router.clone(),
            closing.clone(),
        ));
    }
    drop(listener);
    closing.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn accept_failed(pool: &Pool, e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    // Most likely EMFILE/ENFILE: something besides the API holds files.
    // Closing an idle connection frees one; the pause keeps this from
    // spinning.
    let freed = pool.evict_one();
    tracing::warn!("accept failed: {e} (closed an idle connection: {freed})");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Serve one connection until it ends, times out, is evicted, or the
/// host stops (then it finishes the request it is answering).
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    router: Router,
    closing: CancellationToken,
) {
    // Each write goes out at once: an answer is often several writes
    // (headers, then the body as it comes; an event stream event by
    // event), and Nagle's algorithm held the second until the client's
    // delayed acknowledgement, up to 40 ms on Linux.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY on an accepted connection: {e}");
    }
    let conn = admitted.conn.clone();
    let limits = *admitted.pool_limits();
    let io = TokioIo::new(io::Watched::new(stream, conn.clone()));
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let (router, conn) = (router.clone(), conn.clone());
            async move { Ok::<_, Infallible>(answer(request, peer, router, &conn, &limits).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(e) = ended {
                    tracing::trace!("connection ended: {e}");
                }
                return;
            }
            () = sleep_until(deadline) => {
                // Closing drops the socket; a request whose head was still
                // coming gets no answer, as a client that stopped sending
                // expects.
                if conn.deadline(&limits).is_some_and(|d| d <= tokio::time::Instant::now()) {
                    return;
                }
            }
            () = conn.changed.notified() => {}
            () = conn.evicted.notified() => {
                if !conn.busy() {
                    return;
                }
                served.as_mut().graceful_shutdown();
            }
            () = closing.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One request through `router`, its body held to the minimum rate; the
/// connection is busy until the answer's body has been sent.
async fn answer(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    conn: &Arc<Conn>,
    limits: &Limits,
) -> Response<Body> {
    // Who is at the other end, for the routes that ask (axum's extractor).
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    let request_guard = conn.begin_request();
    let response = if conn.health_only() && !is_health_check(request.uri().path()) {
        too_many_connections(limits)
    } else {
        let slow = Arc::new(AtomicBool::new(false));
        let request = request.map(|incoming| Body::new(body::MinRate::new(incoming, limits.body, slow.clone())));
        let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
        if slow.load(Ordering::Acquire) {
            body_too_slow(limits)
        } else {
            response
        }
    };
    let (mut parts, body) = response.into_parts();
    if conn.health_only() {
        // A reserve slot is for one probe at a time.
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // The guard lives as long as the body: hyper drops the body once it
    // has been sent (or the connection has gone).
    let body = body.map_frame(move |frame| {
        let _ = &request_guard;
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

fn is_health_check(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

fn too_many_connections(limits: &Limits) -> Response<Body> {
    use axum::response::IntoResponse;
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        format!(
            "the host serves {} connections at most and each has a request running; \
             this one answers /healthz and /readyz only",
            limits.max_connections
        ),
    )
    .retry_after(1)
    .into_response()
}

fn body_too_slow(limits: &Limits) -> Response<Body> {
    use axum::response::IntoResponse;
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body came too slowly: the host waits {} s, then at least {} bytes a second \
             ([server] body-timeout-secs, body-min-bytes-per-sec)",
            limits.body.timeout.as_secs(),
            limits.body.min_bytes_per_sec
        ),
    )
    .into_response();
    // The rest of the body is not read: the connection cannot carry
    // another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The process's soft open-file limit, if it can be read.
// `rlim_t` is `u64` on 64-bit Linux, not on every target.
#[allow(clippy::unnecessary_cast)]
pub fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// Raise the soft open-file limit to the hard one (systemd and most shells
/// start a process at 1,024 whatever the hard limit allows); the new soft
/// limit.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct they are
    // given and the process's own limit, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur as u64)
}
