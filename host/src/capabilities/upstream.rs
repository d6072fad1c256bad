//! The connections outbound requests leave on, for `http` and `https`
//! alike: opened only to addresses that passed the grant's check, TLS on
//! that very socket with the requested name for SNI and the certificate
//! check, and kept alive for the plugin's next requests.
//!
//! Why one client of our own instead of a resolving one: a client that
//! resolves the name itself answers a second DNS query, and whoever controls
//! the upstream's DNS can answer it with an internal address after the check
//! passed (DNS rebinding). Here the send hook resolves once (`dns.rs`),
//! filters the answer against the grant and hands over only the addresses
//! left; nothing below resolves anything.
//!
//! Why kept-alive connections: a new TCP connection per request was the
//! largest cost of a real connector's call (host/benches/profile.sh on
//! `crm.get-customer`), and a TLS handshake on top costs more still
//! (host/benches/https.sh).
//!
//! The pool belongs to one plugin's grant: a connection only ever carries
//! that plugin's requests, and a new grant (or an unload) drops the pool with
//! the old context. An idle connection is keyed by the address it is
//! connected to *and* the TLS server name it was verified for, so it is
//! reused only for a request whose checked addresses include that address
//! and whose name is that name.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, WasiBody};

use super::dns::{Dns, DnsError, DnsServer};

/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The host's settings for outbound connections (`[server]`).
#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// DNS servers to ask; none: the system's (/etc/resolv.conf).
    pub dns_servers: Vec<DnsServer>,
    /// How long one lookup may take, waiting for its turn included.
    pub dns_timeout: Duration,
    /// Lookups in flight across the host.
    pub dns_max_in_flight: usize,
    /// A PEM file of CA certificates trusted for `https` upstreams besides
    /// the built-in web roots (for upstreams with a private CA).
    pub extra_ca_roots: Option<PathBuf>,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_secs(3),
            dns_max_in_flight: 64,
            extra_ca_roots: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("extra CA roots {path}: {message}")]
    CaRoots { path: String, message: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error(transparent)]
    Dns(#[from] DnsError),
}

/// What every plugin's outbound requests share: the resolver and the TLS
/// trust.
pub struct Outbound {
    pub dns: Dns,
    tls: tokio_rustls::TlsConnector,
}

impl Outbound {
    pub fn new(options: &OutboundOptions) -> Result<Arc<Outbound>, OutboundError> {
        let mut roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &options.extra_ca_roots {
            let added = add_pem_roots(&mut roots, path)?;
            tracing::info!(path = %path.display(), added, "trusting extra CA roots for https upstreams");
        }
        // The provider is named rather than taken from the process default,
        // so nothing else linked in can change which one we get.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The connections speak HTTP/1.1 only; say so, so no server picks h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Outbound {
            dns: Dns::new(&options.dns_servers, options.dns_timeout, options.dns_max_in_flight)?,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }))
    }
}

fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<usize, OutboundError> {
    let fail = |message: String| OutboundError::CaRoots {
        path: path.display().to_string(),
        message,
    };
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        roots
            .add(cert.map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(added)
}

/// How a connection talks to its upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Plain,
    /// TLS, verified for this name (a DNS name, or an IP address the URL
    /// named).
    Tls(ServerName<'static>),
}

/// Where one checked request may go: the addresses that passed the grant
/// (in the resolver's order), on one port, over one transport.
pub struct Destination {
    pub transport: Transport,
    pub addrs: Vec<IpAddr>,
    pub port: u16,
}

impl Destination {
    /// `host` as the URL names it (brackets already removed).
    pub fn new(https: bool, host: &str, addrs: Vec<IpAddr>, port: u16) -> Result<Destination, Error> {
        let transport = if https {
            Transport::Tls(ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?)
        } else {
            Transport::Plain
        };
        Ok(Destination { transport, addrs, port })
    }

    fn keys(&self) -> impl Iterator<Item = PoolKey> + '_ {
        self.addrs.iter().map(|ip| PoolKey {
            transport: self.transport.clone(),
            addr: SocketAddr::new(*ip, self.port),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    transport: Transport,
    addr: SocketAddr,
}

/// A connection in the pool: idle (ready for a request) or still reading
/// its last response back, which hyper tells without anyone polling it.
struct Kept {
    sender: SendRequest<WasiBody>,
    /// When it last took a request.
    since: Instant,
}

impl Kept {
    /// Closed by the upstream, or idle for too long.
    fn stale(&self) -> bool {
        self.sender.is_closed() || (self.sender.is_ready() && self.since.elapsed() >= IDLE_TIMEOUT)
    }
}

#[derive(Default)]
struct Pool {
    kept: Mutex<HashMap<PoolKey, Vec<Kept>>>,
    /// Whether a task closes the connections left idle too long (started
    /// with the first connection kept, it ends with the pool).
    swept: std::sync::atomic::AtomicBool,
}

impl Pool {
    fn prune(&self) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        for list in kept.values_mut() {
            list.retain(|c| !c.stale());
        }
        kept.retain(|_, list| !list.is_empty());
    }

    fn sweep(pool: &Arc<Pool>) {
        if pool.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(pool);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_TIMEOUT).await;
                let Some(pool) = pool.upgrade() else { return };
                pool.prune();
            }
        });
    }
}

/// One plugin's kept-alive connections.
pub struct Upstreams {
    outbound: Arc<Outbound>,
    pool: Arc<Pool>,
    max_idle: usize,
}

impl Upstreams {
    /// A pool keeping up to `max_idle` connections per address and name: as
    /// many as the plugin may have calls in flight, so a steady load stops
    /// opening connections, and no more, so a plugin cannot hoard an
    /// upstream's.
    pub fn new(outbound: Arc<Outbound>, max_idle: usize) -> Upstreams {
        Upstreams {
            outbound,
            pool: Default::default(),
            max_idle,
        }
    }

    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Send `request` to one of `to`'s addresses, on an idle connection when
    /// there is one; `connect` bounds each connection attempt (TCP and TLS),
    /// `first_byte` the time to the response headers, connecting included.
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        to: &Destination,
        connect: Duration,
        first_byte: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        // On the wire the request line carries the path only; the Host
        // header (set by wasi:http from the URL, never by the guest) keeps
        // the name.
        if !request.headers().contains_key(http::header::HOST) {
            if let Some(authority) = request.uri().authority() {
                let host = http::HeaderValue::from_str(authority.as_str()).map_err(|_| Error::HttpRequestUriInvalid)?;
                request.headers_mut().insert(http::header::HOST, host);
            }
        }
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

        let exchange = async {
            // An idle connection may have been closed by the upstream just
            // as it was taken; the request then comes back unsent and goes
            // on a new connection.
            if let Some((key, mut sender)) = self.checkout(to) {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok((key, sender, response)),
                    Err(mut unsent) => match unsent.take_message() {
                        Some(back) => request = back,
                        None => return Err(Error::from(unsent.into_error())),
                    },
                }
            }
            let (key, mut sender) = self.connect(to, connect).await?;
            let response = sender.send_request(request).await.map_err(Error::from)?;
            Ok((key, sender, response))
        };
        let (key, sender, response) = tokio::time::timeout(first_byte, exchange)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        self.checkin(key, sender);
        Ok(response.map(|body| body.map_err(Error::from).boxed_unsync()))
    }

    /// An idle connection to one of `to`'s addresses, verified for its name.
    fn checkout(&self, to: &Destination) -> Option<(PoolKey, SendRequest<WasiBody>)> {
        let mut kept = self.pool.kept.lock().unwrap_or_else(|p| p.into_inner());
        for key in to.keys() {
            let Some(list) = kept.get_mut(&key) else { continue };
            list.retain(|c| !c.stale());
            if let Some(i) = list.iter().position(|c| c.sender.is_ready()) {
                return Some((key, list.swap_remove(i).sender));
            }
        }
        None
    }

    /// Keep a connection that has just taken a request. It stays in the
    /// pool while its response is read, so it is there for the next request
    /// the moment it is done: a connection put back only after the response
    /// was read (by a task woken for it) was often not back yet when the
    /// plugin's next call came, which then opened another.
    fn checkin(&self, key: PoolKey, sender: SendRequest<WasiBody>) {
        Pool::sweep(&self.pool);
        let mut kept = self.pool.kept.lock().unwrap_or_else(|p| p.into_inner());
        let list = kept.entry(key).or_default();
        if list.len() < self.max_idle {
            list.push(Kept {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// A new connection to the first of `to`'s addresses that accepts it,
    /// with TLS for `https`. Only these addresses are tried: they are the
    /// ones that passed the grant.
    async fn connect(&self, to: &Destination, timeout: Duration) -> Result<(PoolKey, SendRequest<WasiBody>), Error> {
        let mut last = Error::DestinationNotFound;
        for key in to.keys() {
            let tcp = match tokio::time::timeout(timeout, TcpStream::connect(key.addr)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    last = Error::Connect(e);
                    continue;
                }
                Err(_) => {
                    last = Error::ConnectionTimeout;
                    continue;
                }
            };
            // Requests are small and answered at once: send them now.
            let _ = tcp.set_nodelay(true);
            let sender = match &key.transport {
                Transport::Plain => handshake(tcp, timeout).await?,
                Transport::Tls(name) => {
                    let tls = tokio::time::timeout(timeout, self.outbound.tls.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| Error::ConnectionTimeout)?
                        .map_err(Error::Tls)?;
                    handshake(tls, timeout).await?
                }
            };
            return Ok((key, sender));
        }
        Err(last)
    }
}

/// HTTP/1 over `io`, its connection driven by a task of its own until both
/// ends are done with it.
async fn handshake<T>(io: T, timeout: Duration) -> Result<SendRequest<WasiBody>, Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = tokio::time::timeout(timeout, hyper::client::conn::http1::handshake(TokioIo::new(io)))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::from)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA file the host cannot use stops it at start, with the path in
    /// the message, rather than failing every https request later.
    #[tokio::test]
    async fn unusable_extra_roots_are_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("toolhost-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [dir.join("missing.pem"), empty] {
            let options = OutboundOptions {
                extra_ca_roots: Some(path.clone()),
                ..OutboundOptions::default()
            };
            match Outbound::new(&options) {
                Err(e @ OutboundError::CaRoots { .. }) => {
                    assert!(e.to_string().contains(&path.display().to_string()), "{e}")
                }
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{} was accepted", path.display()),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
