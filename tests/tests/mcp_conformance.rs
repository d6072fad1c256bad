//! The official MCP conformance suite (`@modelcontextprotocol/conformance`
//! from npm, on Node 22) against `/mcp` of a real `toolhost serve`: the
//! server scenarios that apply to a tools-only server.
//!
//! The suite cannot send a bearer token, and toolhost has no anonymous
//! access, so the test puts a forwarding proxy of its own in front: it adds
//! the agent's `Authorization` header and passes everything else, `Host`
//! and `Origin` included, through unchanged, so that the DNS-rebinding
//! scenario reaches toolhost's own checks.

use std::process::Command;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use toolhost_tests::*;

/// The server scenarios a tools-only server must pass.
const SCENARIOS: &[&str] = &["server-initialize", "ping", "tools-list", "dns-rebinding-protection"];

/// Forward `request` to `upstream` with the agent's token added.
async fn forward(State(upstream): State<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = reqwest::Client::new()
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .expect("toolhost answers the proxy");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .expect("a response")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_conformance_suite_passes_the_server_scenarios() {
    let suite = mcp_conformance();
    // Any port: the suite talks to the proxy's port, and the Host it sends
    // must be one toolhost accepts.
    let config = "[server]\nmcp-allowed-hosts = [\"localhost\", \"127.0.0.1\", \"[::1]\"]\n";
    let server = ServerProcess::start(config, &["echo"]);
    let proxy = serve(axum::Router::new().fallback(forward).with_state(server.base.clone())).await;

    let bin = suite.join("node_modules/.bin");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for scenario in SCENARIOS {
        let suite = suite.to_path_buf();
        let path = path.clone();
        let url = format!("http://127.0.0.1:{}/mcp", proxy.port());
        let output = tokio::task::spawn_blocking(move || {
            Command::new(suite.join("node_modules/.bin/conformance"))
                .args(["server", "--url", &url, "--scenario", scenario])
                .env("PATH", path)
                .current_dir(&suite)
                .output()
                .expect("run the conformance suite")
        })
        .await
        .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("conformance {scenario}:\n{report}");
        assert!(output.status.success(), "{scenario}: {}\n{report}", output.status);
        assert!(!report.contains("FAILURE"), "{scenario}:\n{report}");
        assert!(report.contains(", 0 failed"), "{scenario}: no summary\n{report}");
    }
}
