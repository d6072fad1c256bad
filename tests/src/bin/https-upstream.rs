//! An HTTPS upstream for host/benches/https.sh: a certificate from a CA made
//! at start (written to the path given as the first argument), every
//! request answered `200 fine`, and what it saw served as plain text on a
//! second, plain-HTTP port: `connections requests`.

use std::net::SocketAddr;
use std::sync::Arc;

use toolhost_tests::{serve, HttpsUpstream, TestCa};

#[tokio::main]
async fn main() {
    let Some(ca_path) = std::env::args().nth(1) else {
        eprintln!("usage: https-upstream CA.pem");
        std::process::exit(2);
    };
    let ca = TestCa::new(&["127.0.0.1", "localhost"]);
    std::fs::write(&ca_path, &ca.ca_pem).expect("write the CA certificate");
    let upstream = Arc::new(HttpsUpstream::start(SocketAddr::from(([127, 0, 0, 1], 0)), &ca).await);
    let counted = upstream.clone();
    let stats = serve(axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            let seen = counted.seen();
            format!("{} {}\n", seen.connections, seen.requests.len())
        }),
    ))
    .await;
    println!("https {} stats {stats}", upstream.addr);
    std::future::pending::<()>().await;
}
