//! Name resolution for outbound requests: asynchronous (hickory), bounded in
//! time and in lookups in flight, and done once per request, so the
//! addresses the grant was checked against are the only ones a connection
//! may go to (see `upstream.rs`).
//!
//! `getaddrinfo` (what `tokio::net::lookup_host` calls) blocks a thread of
//! tokio's blocking pool for as long as the lookup takes, with no timeout of
//! our own; storage flushes and compiles need that pool too, so a slow or
//! hostile DNS server could starve them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// A DNS server the operator names: `"10.0.0.53"` (port 53) or
/// `"127.0.0.1:5353"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DnsServer(pub SocketAddr);

impl TryFrom<String> for DnsServer {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<SocketAddr>()
            .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map(DnsServer)
            .map_err(|_| format!("{s:?} is not a DNS server address (an IP address, optionally with :port)"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS lookup timed out after {0:?}")]
    Timeout(Duration),
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

pub struct Dns {
    resolver: TokioResolver,
    timeout: Duration,
    /// Lookups in flight across the host: a connector that resolves many
    /// names at once waits here instead of flooding the DNS server.
    in_flight: Semaphore,
}

impl Dns {
    /// A resolver asking `servers` (none: the system's, from
    /// /etc/resolv.conf), where each lookup, waiting for its turn included,
    /// gives up after `timeout`.
    pub fn new(servers: &[DnsServer], timeout: Duration, max_in_flight: usize) -> Result<Dns, DnsError> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| DnsError::Failed(format!("reading the system DNS configuration: {e}")))?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.0.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.0.port();
                    NameServerConfig::new(s.0.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        // A before AAAA: most upstreams on private networks listen on IPv4,
        // and each address tried in vain costs a connect attempt.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder.build().map_err(|e| DnsError::Failed(e.to_string()))?;
        Ok(Dns {
            resolver,
            timeout,
            in_flight: Semaphore::new(max_in_flight.max(1)),
        })
    }

    /// Every address `host` resolves to, in the resolver's order.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let lookup = async {
            let _turn = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| DnsError::Failed("the resolver is shut down".into()))?;
            let answer = self
                .resolver
                .lookup_ip(host)
                .await
                .map_err(|e| DnsError::Failed(e.to_string()))?;
            Ok(answer.iter().collect())
        };
        tokio::time::timeout(self.timeout, lookup)
            .await
            .unwrap_or(Err(DnsError::Timeout(self.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            DnsServer::try_from("10.0.0.53".to_string()).unwrap().0,
            "10.0.0.53:53".parse().unwrap()
        );
        assert_eq!(
            DnsServer::try_from("127.0.0.1:5353".to_string()).unwrap().0,
            "127.0.0.1:5353".parse().unwrap()
        );
        assert!(DnsServer::try_from("ns.example".to_string()).is_err());
    }

    /// A server that never answers: lookups end at the timeout, and those
    /// waiting for a turn beyond the bound end at the same timeout.
    #[tokio::test]
    async fn lookups_are_bounded_in_time_and_number() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = DnsServer(silent.local_addr().unwrap());
        let dns = Dns::new(&[server], Duration::from_millis(200), 1).unwrap();
        let started = std::time::Instant::now();
        let (a, b) = tokio::join!(dns.lookup("a.test."), dns.lookup("b.test."));
        assert!(matches!(a, Err(DnsError::Timeout(_))), "{a:?}");
        assert!(matches!(b, Err(DnsError::Timeout(_))), "{b:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // Literal addresses need no server.
        assert_eq!(
            dns.lookup("127.0.0.9").await.unwrap(),
            vec!["127.0.0.9".parse::<IpAddr>().unwrap()]
        );
    }
}
