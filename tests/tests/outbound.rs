//! Outbound HTTPS through the real server: a local upstream whose
//! certificate comes from a CA made here, names answered by a DNS server
//! this test runs on 127.0.0.1, and what the upstreams actually received.
//!
//! Everything stays on loopback, which the address check counts as private,
//! so "an address the grant allows" is played by one loopback address
//! (`allow-private = ["127.0.0.2"]`) and "an internal address it must never
//! reach" by another (127.0.0.3, serving on the same port).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::{dns_server, get_json, invoke, HttpsUpstream, ServerProcess, TestCa, ADMIN_TOKEN, AGENT_TOKEN};

/// Start toolhost with netprobe, `ca` written beside the config as ca.pem.
fn start(config: &str, ca: &TestCa) -> ServerProcess {
    let pem = ca.ca_pem.clone();
    ServerProcess::start_prepared(config, |plugins| {
        std::fs::write(plugins.parent().unwrap().join("ca.pem"), pem).unwrap();
        let netprobe = toolhost_tests::guest("netprobe");
        std::os::unix::fs::symlink(&netprobe, plugins.join("netprobe")).unwrap();
    })
}

async fn fetch(server: &ServerProcess, url: &str, host_header: Option<&str>) -> Value {
    let (_, body) = invoke(
        server,
        AGENT_TOKEN,
        "netprobe.fetch",
        json!({ "method": "GET", "url": url, "host-header": host_header }),
    )
    .await;
    body
}

/// The newest audit record of `netprobe.fetch`.
async fn last_record(server: &ServerProcess) -> Value {
    let (_, page) = get_json(server, ADMIN_TOKEN, "/v1/audit?tool=netprobe.fetch&limit=1").await;
    page["records"][0].clone()
}

fn localhost(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_to_a_private_ca_keeps_its_connection_and_the_name() {
    let ca = TestCa::new(&["upstream.test", "other.test"]);
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &ca).await;
    let dns = dns_server(|name, _| name.ends_with(".test").then(|| vec![Ipv4Addr::LOCALHOST])).await;
    let origin = format!("https://upstream.test:{}", upstream.addr.port());
    let other = format!("https://other.test:{}", upstream.addr.port());
    let grant = format!(
        "[plugins.netprobe]\nhttp = [{{ origin = \"{origin}\", allow-private = [\"127.0.0.1\"] }}, {{ origin = \"{other}\", allow-private = [\"127.0.0.1\"] }}]\n"
    );
    let server = start(
        &format!("[server]\ndns-servers = [\"{dns}\"]\nextra-ca-roots = \"ca.pem\"\n{grant}"),
        &ca,
    );

    for _ in 0..3 {
        assert_eq!(fetch(&server, &format!("{origin}/ok"), None).await["result"], 200);
    }
    let (_, many) = invoke(
        &server,
        AGENT_TOKEN,
        "netprobe.fetch-many",
        json!({ "url": format!("{origin}/ok"), "times": 3 }),
    )
    .await;
    assert_eq!(many["result"], json!([3, null]));

    // Six requests in four calls, over one kept-alive TLS connection, each
    // with the name for SNI and in the Host header.
    let seen = upstream.seen();
    assert_eq!(seen.connections, 1, "{seen:?}");
    assert_eq!(seen.requests.len(), 6, "{seen:?}");
    let authority = format!("upstream.test:{}", upstream.addr.port());
    for r in &seen.requests {
        assert_eq!(r.connection, 1);
        assert_eq!(r.sni.as_deref(), Some("upstream.test"));
        assert_eq!(r.host.as_deref(), Some(authority.as_str()));
        assert_eq!(r.path, "/ok");
    }

    // Another name on the same address and port gets a connection of its
    // own: one verified for its name, never the first name's.
    assert_eq!(fetch(&server, &format!("{other}/ok"), None).await["result"], 200);
    let seen = upstream.seen();
    assert_eq!(seen.connections, 2, "{seen:?}");
    let last = seen.requests.last().unwrap();
    assert_eq!((last.connection, last.sni.as_deref()), (2, Some("other.test")));

    // A forged Host header to the granted upstream: wasi:http refuses the
    // header in the guest, so no request leaves; the upstream received only
    // the requests above, each with the granted name.
    let forged = fetch(&server, &format!("{origin}/forged"), Some("169.254.169.254")).await;
    assert!(forged.get("result").is_none(), "{forged}");
    assert!(forged.to_string().contains("Forbidden"), "{forged}");
    let seen = upstream.seen();
    assert_eq!(seen.requests.len(), 7, "{seen:?}");
    assert!(seen.requests.iter().all(|r| r.path == "/ok"), "{seen:?}");
    assert!(
        seen.requests[..6]
            .iter()
            .all(|r| r.host.as_deref() == Some(authority.as_str())),
        "{seen:?}"
    );
    assert_eq!(
        seen.requests[6].host,
        Some(format!("other.test:{}", upstream.addr.port()))
    );
    drop(server);

    // The same upstream without the operator's CA: refused by the
    // certificate check, nothing sent.
    let before = upstream.seen().requests.len();
    let server = start(&format!("[server]\ndns-servers = [\"{dns}\"]\n{grant}"), &ca);
    let refused = fetch(&server, &format!("{origin}/ok"), None).await;
    assert!(refused.get("result").is_none(), "{refused}");
    let record = last_record(&server).await;
    let error = record["outbound"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.to_lowercase().contains("certificate"), "{record}");
    assert_eq!(upstream.seen().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_is_resolved_once_and_only_checked_addresses_are_reached() {
    let names = ["mixed.test", "dead.test", "rebind.test", "private.test", "silent.test"];
    let ca = TestCa::new(&names);
    let good = HttpsUpstream::start(SocketAddr::new(localhost(2).into(), 0), &ca).await;
    let port = good.addr.port();
    // The internal service on another address, same port, same valid
    // certificate: only the address check keeps requests away from it.
    let bad = HttpsUpstream::start(SocketAddr::new(localhost(3).into(), port), &ca).await;
    let queries: Arc<Mutex<Vec<String>>> = Default::default();
    let asked = queries.clone();
    let dns = dns_server(move |name, nth| {
        asked.lock().unwrap().push(name.to_string());
        match name {
            // The internal address first, the granted one second.
            "mixed.test" => Some(vec![localhost(3), localhost(2)]),
            // A granted address that does not answer, then an internal one
            // that does: a client trying every resolved address would get
            // through.
            "dead.test" => Some(vec![localhost(4), localhost(3)]),
            // Rebinding: the granted address once, the internal one after.
            "rebind.test" => Some(vec![if nth == 0 { localhost(2) } else { localhost(3) }]),
            "private.test" => Some(vec![localhost(3)]),
            _ => None,
        }
    })
    .await;
    let grants: Vec<String> = names
        .iter()
        .map(|n| format!("{{ origin = \"https://{n}:{port}\", allow-private = [\"127.0.0.2\", \"127.0.0.4\"] }}"))
        .collect();
    let server = start(
        &format!(
            "[server]\ndns-servers = [\"{dns}\"]\ndns-timeout-ms = 500\nextra-ca-roots = \"ca.pem\"\n[plugins.netprobe]\nhttp = [{}]\n",
            grants.join(", ")
        ),
        &ca,
    );
    let url = |name: &str| format!("https://{name}:{port}/ok");

    // Internal address first, granted second: the request goes to the granted one.
    assert_eq!(fetch(&server, &url("mixed.test"), None).await["result"], 200);
    assert_eq!(good.seen().requests.len(), 1);

    // The granted address is down: the request fails rather than trying
    // the internal address that was in the same answer.
    let dead = fetch(&server, &url("dead.test"), None).await;
    assert!(dead.get("result").is_none(), "{dead}");

    // One lookup per request: the first request goes where its only answer
    // pointed; the next, answered with the internal address, is refused.
    assert_eq!(fetch(&server, &url("rebind.test"), None).await["result"], 200);
    let rebind_queries = || queries.lock().unwrap().iter().filter(|n| *n == "rebind.test").count();
    assert_eq!(rebind_queries(), 1, "resolved more than once for one request");
    assert_eq!(good.seen().requests.len(), 2);
    let again = fetch(&server, &url("rebind.test"), None).await;
    assert!(again.get("result").is_none(), "{again}");
    assert!(last_record(&server).await["denials"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("127.0.0.3"));

    // A granted name that resolves to an address the grant does not name:
    // refused at the address check, and the refusal is on record.
    let private = fetch(&server, &url("private.test"), None).await;
    assert!(private.get("result").is_none(), "{private}");
    let record = last_record(&server).await;
    assert_eq!(record["denials"][0]["capability"], "http");
    assert!(
        record["denials"][0]["detail"].as_str().unwrap().contains("loopback"),
        "{record}"
    );

    // A DNS server that never answers: the call ends at the DNS timeout.
    let started = Instant::now();
    let silent = fetch(&server, &url("silent.test"), None).await;
    assert!(silent.get("result").is_none(), "{silent}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let record = last_record(&server).await;
    assert!(
        record["outbound"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("DNS"),
        "{record}"
    );

    // Through all of it the internal service never saw a connection.
    assert_eq!(bad.seen().connections, 0, "{:?}", bad.seen());
}
