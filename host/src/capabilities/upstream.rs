//! Keep-alive connections to the upstreams a connector calls over plain
//! HTTP. A new TCP connection per request was the largest cost of a real
//! connector's call (host/benches/profile.sh on `crm.get-customer`: connect,
//! accept and close on both ends), so each plugin keeps idle connections for
//! its next calls.
//!
//! The pool belongs to one plugin's grant: a connection only ever carries
//! that plugin's requests, and a new grant (or an unload) drops the pool
//! with the old context. Requests arrive here already checked and pinned to
//! the address that was checked, so connections are keyed by that address
//! and no name is resolved again.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::{Error, WasiBody};

/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Upstreams {
    client: Client<HttpConnector, WasiBody>,
}

impl Upstreams {
    /// A pool whose connects give up after `connect_timeout` (the grant's
    /// HTTP timeout; a request may be bounded tighter by its own options),
    /// keeping up to `max_idle` idle connections per address: as many as
    /// the plugin may have calls in flight, so a steady load stops opening
    /// connections, and no more, so a plugin cannot hoard an upstream's.
    pub fn new(connect_timeout: Duration, max_idle: usize) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle)
            .pool_timer(TokioTimer::new())
            // The guest's Host header (the name it asked for) stays; the
            // URI only carries the checked address.
            .set_host(false)
            .build(connector);
        Upstreams { client }
    }

    /// Send a plain-HTTP `request` whose URI is pinned to a checked address,
    /// on an idle connection to it when there is one; `first_byte` bounds
    /// the time to the response headers, connecting included.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        first_byte: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        let response = match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Err(_) => return Err(Error::ConnectionReadTimeout),
            Ok(Err(e)) if e.is_connect() => return Err(Error::Connect(std::io::Error::other(e.to_string()))),
            Ok(Err(e)) => return Err(Error::InternalError(Some(e.to_string()))),
            Ok(Ok(response)) => response,
        };
        Ok(response.map(|body| body.map_err(Error::from).boxed_unsync()))
    }
}
