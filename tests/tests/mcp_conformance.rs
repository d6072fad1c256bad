//! The official MCP conformance suite (`@modelcontextprotocol/conformance`
//! from npm, on Node 22) against `/mcp` of one real `toolhost serve` that
//! serves the suite's fixture tools (the `conformance` test connector):
//! 0.1.16's server scenarios, and 0.2.0-alpha.12's scenarios that protocol
//! revisions 2025-11-25 and 2026-07-28 require. Every scenario must pass
//! but those in tests/mcp-conformance-expected-failures.toml (capabilities
//! toolhost does not offer, each with its reason); one listed there that
//! passes fails the test too, so the list never outlives its reason.
//!
//! The suite cannot send a bearer token, and toolhost has no anonymous
//! access, so the test puts a forwarding proxy of its own in front: it adds
//! the agent's `Authorization` header and passes everything else, `Host`
//! and `Origin` included, through unchanged, so that the DNS-rebinding
//! scenario reaches toolhost's own checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use toolhost_tests::*;

/// One run of a suite: which edition, with which arguments.
struct SuiteRun {
    label: &'static str,
    folder: fn() -> &'static Path,
    args: &'static [&'static str],
}

const RUNS: &[SuiteRun] = &[
    SuiteRun {
        label: "0.1.16 (server scenarios)",
        folder: mcp_conformance,
        args: &["--suite", "active"],
    },
    SuiteRun {
        label: "0.2.0-alpha.12 --requirements 2025-11-25",
        folder: mcp_conformance_next,
        args: &["--requirements", "2025-11-25"],
    },
    SuiteRun {
        label: "0.2.0-alpha.12 --requirements 2026-07-28",
        folder: mcp_conformance_next,
        args: &["--requirements", "2026-07-28"],
    },
];

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

/// The scenarios a run's output folder holds results of, each with
/// whether it passed (no check failed) and the failed checks' messages.
fn outcomes(out: &Path) -> BTreeMap<String, Result<(), Vec<String>>> {
    let mut outcomes = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("the suite wrote its results") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        // `server-<scenario>-<ISO time with - for : and .>` (24 characters).
        let Some(scenario) = name
            .strip_prefix("server-")
            .and_then(|rest| rest.get(..rest.len().saturating_sub(25)))
        else {
            continue;
        };
        let checks: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("checks.json")).unwrap_or_default())
                .unwrap_or_else(|_| serde_json::json!([]));
        let failed: Vec<String> = checks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "FAILURE")
            .map(|c| format!("{}: {}", c["id"], c["errorMessage"].as_str().unwrap_or_default()))
            .collect();
        outcomes.insert(
            scenario.to_string(),
            if failed.is_empty() { Ok(()) } else { Err(failed) },
        );
    }
    outcomes
}

/// Scenario → why toolhost does not pass it.
fn expected_failures() -> BTreeMap<String, String> {
    let path = repo_root().join("tests/mcp-conformance-expected-failures.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let scenarios = table["scenarios"].as_table().expect("a [scenarios] table");
    scenarios
        .iter()
        .map(|(name, reason)| {
            let reason = reason.as_str().unwrap_or_default().trim().to_string();
            assert!(!reason.is_empty(), "{name}: an expected failure needs its reason");
            (name.clone(), reason)
        })
        .collect()
}

/// Run `run` against `url`; the outcome of each scenario it ran.
fn run_suite(run: &SuiteRun, url: &str, out: PathBuf) -> BTreeMap<String, Result<(), Vec<String>>> {
    let suite = (run.folder)();
    let output = Command::new(suite.join("node_modules/.bin/conformance"))
        .args(["server", "--url", url])
        .args(run.args)
        .arg("-o")
        .arg(&out)
        .env("PATH", node_path(suite))
        .current_dir(suite)
        .output()
        .expect("run the conformance suite");
    let outcomes = outcomes(&out);
    assert!(
        !outcomes.is_empty(),
        "{}: no results\n{}{}",
        run.label,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    outcomes
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_conformance_suites_pass_all_but_the_capabilities_toolhost_does_not_offer() {
    let expected = expected_failures();
    // Any port: the suite talks to the proxy's port, and the Host it sends
    // must be one toolhost accepts.
    let config = "[server]\nmcp-allowed-hosts = [\"localhost\", \"127.0.0.1\", \"[::1]\"]\n";
    let server = ServerProcess::start(config, &["conformance"]);
    let proxy = serve(axum::Router::new().fallback(forward).with_state(server.base.clone())).await;
    let url = format!("http://127.0.0.1:{}/mcp", proxy.port());
    // Installed before the clock starts: what CI time is spent on is the runs.
    for run in RUNS {
        (run.folder)();
    }

    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (n, run) in RUNS.iter().enumerate() {
        let url = url.clone();
        let out = server.dir.path().join(format!("conformance-{n}"));
        runs.spawn_blocking(move || (n, run_suite(run, &url, out)));
    }
    let mut results = runs.join_all().await;
    results.sort_by_key(|(n, _)| *n);
    eprintln!("conformance suites ran in {:?}", started.elapsed());

    let mut wrong = Vec::new();
    for (n, outcomes) in &results {
        let label = RUNS[*n].label;
        let passed = outcomes.values().filter(|o| o.is_ok()).count();
        eprintln!("{label}: {passed}/{} scenarios pass", outcomes.len());
        for (scenario, outcome) in outcomes {
            match (outcome, expected.get(scenario)) {
                (Ok(()), None) => eprintln!("  pass  {scenario}"),
                (Err(_), Some(reason)) => eprintln!("  xfail {scenario}: {reason}"),
                (Ok(()), Some(_)) => {
                    eprintln!("  XPASS {scenario}");
                    wrong.push(format!("{label}: {scenario} passes: take it off the expected failures"));
                }
                (Err(failed), None) => {
                    eprintln!("  FAIL  {scenario}: {failed:#?}");
                    wrong.push(format!("{label}: {scenario} fails: {failed:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
