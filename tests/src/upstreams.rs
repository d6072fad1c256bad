//! Upstreams the tests stand up on loopback beside a host: an HTTPS server
//! with a certificate authority of its own, and a DNS server.

use std::net::SocketAddr;

/// A certificate authority made for one test, and a server certificate it
/// signed for `names` (DNS names or IP addresses).
pub struct TestCa {
    /// The CA certificate, for `[server] extra-ca-roots`.
    pub ca_pem: String,
    server: std::sync::Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new(names: &[&str]) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "toolhost test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("server parameters")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .expect("server TLS configuration");
        TestCa {
            ca_pem: ca.pem(),
            server: std::sync::Arc::new(server),
        }
    }
}

/// One request an upstream received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Which of the upstream's connections (from 1) it came on.
    pub connection: u32,
    /// The TLS server name the client asked for.
    pub sni: Option<String>,
    pub host: Option<String>,
    pub path: String,
}

/// What an upstream saw: connections accepted, requests received.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub connections: u32,
    pub requests: Vec<SeenRequest>,
}

/// An HTTPS upstream with a certificate from a [`TestCa`]: answers every
/// request `200 fine`, and records what it saw.
pub struct HttpsUpstream {
    pub addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
}

impl HttpsUpstream {
    /// Serve on `bind` (port 0 for a free one) until the process ends.
    pub async fn start(bind: SocketAddr, ca: &TestCa) -> HttpsUpstream {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .expect("bind the HTTPS upstream");
        let addr = listener.local_addr().expect("local addr");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server.clone());
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // As servers commonly do: small responses go out at once
                // rather than waiting for the client's delayed ACK.
                let _ = tcp.set_nodelay(true);
                let connection = {
                    let mut seen = record.lock().unwrap();
                    seen.connections += 1;
                    seen.connections
                };
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        record.lock().unwrap().requests.push(SeenRequest {
                            connection,
                            sni: sni.clone(),
                            host: request
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .map(str::to_string),
                            path: request.uri().path().to_string(),
                        });
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from_static(b"fine"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        HttpsUpstream { addr, seen }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

/// A DNS server on 127.0.0.1 whose A answers come from `answer(name, n)`:
/// the addresses for the `n`th A query (from 0) for `name` (without the
/// final dot), or `None` to leave the query unanswered. Other queries get an
/// empty answer.
pub async fn dns_server(answer: impl Fn(&str, u32) -> Option<Vec<std::net::Ipv4Addr>> + Send + 'static) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind the DNS server");
    let addr = socket.local_addr().expect("local addr");
    tokio::spawn(async move {
        let mut asked: std::collections::HashMap<String, u32> = Default::default();
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = query.queries.first().cloned() else {
                continue;
            };
            let mut response = Message::response(query.metadata.id, query.metadata.op_code);
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.metadata.message_type = MessageType::Response;
            if question.query_type() == RecordType::A {
                let name = question.name().to_ascii();
                let name = name.trim_end_matches('.').to_string();
                let nth = asked.entry(name.clone()).or_default();
                let addresses = answer(&name, *nth);
                *nth += 1;
                let Some(addresses) = addresses else { continue };
                for ip in addresses {
                    response.add_answer(Record::from_rdata(question.name().clone(), 0, RData::A(A(ip))));
                }
            }
            response.add_query(question);
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}
