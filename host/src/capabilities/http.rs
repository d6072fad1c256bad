//! Outbound HTTP, checked where the request leaves: `wasi:http` hands every
//! request to this hook, after the guest has set method, URL and headers, so
//! neither a Host header nor a URL trick can route around the check.
//!
//! Checks, in order: requests per call; scheme, host, port and method against
//! the grant; then the addresses the name resolves to, resolved once: only
//! those the grant allows (a public name must not lead to loopback, private
//! or link-local space unless the grant says so) are handed to the
//! connection, which goes to one of them and nowhere else. Time and response
//! size are bounded by the grant too.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::dns::{Dns, DnsError};
use super::upstream::Destination;
use super::{
    record_denial, Awaited, Capability, OutboundRecord, PendingRequest, PluginContext, SharedGate, SharedJournal,
};
use crate::policy::{Grant, HttpRule};

/// What drives a response's connection, where it is not driven elsewhere.
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type ResponseFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

pub struct OutboundHttp {
    plugin: Arc<PluginContext>,
    journal: SharedJournal,
    gate: SharedGate,
    sent: u32,
}

impl OutboundHttp {
    pub fn new(plugin: Arc<PluginContext>, journal: SharedJournal, gate: SharedGate) -> OutboundHttp {
        OutboundHttp {
            plugin,
            journal,
            gate,
            sent: 0,
        }
    }

    /// A reused instance starts a new call: a new journal, a gate, a count.
    pub fn reset(&mut self, journal: SharedJournal, gate: SharedGate) {
        self.journal = journal;
        self.gate = gate;
        self.sent = 0;
    }

    fn refuse(&self, detail: String) -> ResponseFuture {
        record_denial(&self.journal, &self.plugin, Capability::Http, detail);
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let grant = &self.plugin.grant;
        self.sent += 1;
        if self.sent > grant.http_requests_per_call {
            return self.refuse(format!(
                "more than {} requests in one call",
                grant.http_requests_per_call
            ));
        }
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let Some(host) = uri.host().map(str::to_ascii_lowercase) else {
            return self.refuse("request without a host".into());
        };
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let method = request.method().as_str().to_string();
        let origin = format!("{scheme}://{host}:{port}");
        let rule = match grant.check_request(&scheme, &host, port, &method) {
            Ok(rule) => rule.clone(),
            Err(reason) => return self.refuse(reason),
        };
        // Kept in the audit record: a token in a path (`/bot<token>/send`)
        // is masked there.
        let mut path = uri.path().to_string();
        self.journal.lock().unwrap_or_else(|p| p.into_inner()).redact(&mut path);
        let in_flight = InFlightGuard::start(&self.journal, &method, &origin, &path);

        let (connect, first_byte, between_bytes) = capped(grant.http_timeout, options);
        let max_body = grant.http_response_bytes;
        let journal = self.journal.clone();
        let context = self.plugin.clone();
        // A request that may change something upstream waits until the
        // call's audit record is durable; reads go at once.
        let gate = (!matches!(request.method(), &http::Method::GET | &http::Method::HEAD)).then(|| self.gate.clone());

        Box::new(async move {
            let started = Instant::now();
            let record = |status: Option<u16>, error: Option<String>| {
                journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .outbound
                    .push(OutboundRecord {
                        method: method.clone(),
                        origin: origin.clone(),
                        path: path.clone(),
                        status,
                        error,
                        micros: started.elapsed().as_micros() as u64,
                    });
            };
            // Resolved once; only the addresses that pass the grant go on,
            // and the connection goes to one of them (see upstream.rs).
            let checked = match resolve_checked(&context.upstreams.outbound().dns, &rule, &host).await {
                Ok(addrs) => addrs,
                Err(Denied(reason)) => {
                    record_denial(&journal, &context, Capability::Http, format!("{origin}: {reason}"));
                    record(None, Some("denied".into()));
                    return Err(Error::HttpRequestDenied);
                }
                Err(Failed(e)) => {
                    record(None, Some(e.to_string()));
                    return Err(e);
                }
            };
            if let Some(gate) = gate {
                if let Err(e) = gate.open().await {
                    record(None, Some(format!("not sent: the audit trail is unavailable: {e}")));
                    return Err(Error::InternalError(Some(format!(
                        "the audit trail is unavailable: {e}"
                    ))));
                }
            }
            let sent = match Destination::new(scheme == "https", bare_host(&host), checked, port) {
                Ok(to) => context.upstreams.send(request, &to, connect, first_byte).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(response) => {
                    record(Some(response.status().as_u16()), None);
                    in_flight.reading_body();
                    // The connection is driven by a task of its own.
                    let io: IoFuture = Box::new(async { Ok(()) });
                    Ok((
                        response.map(|body| Bounded::new(body, max_body, between_bytes, in_flight).boxed_unsync()),
                        io,
                    ))
                }
                Err(e) => {
                    record(None, Some(e.to_string()));
                    Err(e)
                }
            }
        })
    }
}

/// The guest's timeouts for a request (connect, first byte, between bytes):
/// the grant's `cap` caps each, and a guest may only ask for less.
fn capped(
    cap: std::time::Duration,
    options: Option<RequestOptions>,
) -> (std::time::Duration, std::time::Duration, std::time::Duration) {
    let ask = |t: Option<std::time::Duration>| t.map_or(cap, |t| t.min(cap));
    (
        ask(options.and_then(|o| o.connect_timeout)),
        ask(options.and_then(|o| o.first_byte_timeout)),
        ask(options.and_then(|o| o.between_bytes_timeout)),
    )
}

/// An outbound request sent and not finished, as the call's journal lists
/// it until its response has been read (or given up).
#[derive(Debug, Clone)]
pub struct InFlight {
    id: u64,
    method: String,
    origin: String,
    path: String,
    started: Instant,
    waiting_for: Awaited,
}

impl InFlight {
    pub fn pending(&self) -> PendingRequest {
        PendingRequest {
            method: self.method.clone(),
            origin: self.origin.clone(),
            path: self.path.clone(),
            waiting_for: self.waiting_for,
            waited_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}

/// Lists a request in its call's journal while it lives: from when the
/// hook takes it until its response body ends, fails or is dropped.
struct InFlightGuard {
    journal: SharedJournal,
    id: u64,
}

impl InFlightGuard {
    fn start(journal: &SharedJournal, method: &str, origin: &str, path: &str) -> InFlightGuard {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight
            .push(InFlight {
                id,
                method: method.to_string(),
                origin: origin.to_string(),
                path: path.to_string(),
                started: Instant::now(),
                waiting_for: Awaited::Response,
            });
        InFlightGuard {
            journal: journal.clone(),
            id,
        }
    }

    /// The response has come; its body is still to be read.
    fn reading_body(&self) {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = journal.in_flight.iter_mut().find(|e| e.id == self.id) {
            entry.waiting_for = Awaited::Body;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        journal.in_flight.retain(|e| e.id != self.id);
    }
}

enum CheckError {
    Denied(String),
    Failed(Error),
}
use CheckError::{Denied, Failed};

/// `host` without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Resolve the host (once) and keep the addresses the rule allows.
async fn resolve_checked(dns: &Dns, rule: &HttpRule, host: &str) -> Result<Vec<IpAddr>, CheckError> {
    let bare = bare_host(host);
    let addrs = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => dns.lookup(bare).await.map_err(|e| {
            Failed(match e {
                DnsError::Timeout(_) => Error::DnsTimeout,
                DnsError::Failed(message) => Error::DnsError {
                    rcode: Some(message),
                    info_code: None,
                },
            })
        })?,
    };
    Grant::allowed_addresses(rule, &addrs).map_err(Denied)
}

/// A response body bounded by the grant: it fails once it passes its byte
/// limit, or when the upstream sends nothing for `idle`. The request is in
/// flight until the body ends.
struct Bounded {
    inner: WasiBody,
    left: u64,
    limit: u64,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    in_flight: Option<InFlightGuard>,
}

impl Bounded {
    fn new(inner: WasiBody, limit: u64, idle: Duration, in_flight: InFlightGuard) -> Bounded {
        Bounded {
            inner,
            left: limit,
            limit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            in_flight: Some(in_flight),
        }
    }
}

impl Body for Bounded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Pending => {
                return match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.in_flight = None;
                        Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            // The end of the body, or its failure: the request is over.
            other => {
                self.in_flight = None;
                return other;
            }
        };
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                self.in_flight = None;
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.limit)))));
            }
            self.left -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
