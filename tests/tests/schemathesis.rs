//! Schemathesis (pinned, from PyPI) against a real `toolhost serve`: it
//! reads `/openapi.json`, generates requests from it (valid ones, and ones
//! the document says are wrong) and checks every answer against the
//! document: status, content type, headers and body schema, no 5xx, wrong
//! input refused, right input taken, 405 with `Allow` for other methods.
//! It runs once with the admin token and once with an agent token, and any
//! finding fails the test. The exceptions are in tests/schemathesis.toml,
//! Schemathesis's own configuration, each with the reason it is one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use toolhost_tests::*;

/// The Schemathesis release the test runs (its checks change between
/// releases; a new one is taken on purpose, with its findings).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Schemathesis's configuration: how much it generates, and the ignore
/// list (each entry with its reason).
const CONFIG: &str = "tests/schemathesis.toml";

fn schemathesis() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| python_venv("py-schemathesis", SCHEMATHESIS, "schemathesis").join("bin/st"))
}

/// A host with a tool to call, and room for the thousands of requests a
/// run makes (by default a token may make 600 a minute, and an address 20
/// failed bearer checks).
fn server() -> ServerProcess {
    ServerProcess::start(
        "[server]\nrate-per-minute = 1000000\nfailed-bearer-burst = 1000000\n",
        &["echo"],
    )
}

/// One run of Schemathesis as `token`: whether it found nothing, and what
/// it printed.
fn run(server: &ServerProcess, token: &str, label: &str) -> (bool, String) {
    let started = Instant::now();
    let output = Command::new(schemathesis())
        .current_dir(repo_root())
        .args(["--no-color", "--config-file", CONFIG, "run"])
        .arg(server.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .output()
        .expect("run schemathesis");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("schemathesis as {label}: {:.0?}\n{said}", started.elapsed());
    (output.status.success(), said)
}

#[test]
fn schemathesis_finds_nothing_with_the_admin_or_an_agent_token() {
    let started = Instant::now();
    let mut failed = Vec::new();
    for (token, label) in [(ADMIN_TOKEN, "admin"), (AGENT_TOKEN, "agent")] {
        // A host of its own for each token: the admin's run may unload the
        // plugin, and the agent's should still have a tool to call.
        let server = server();
        let (clean, said) = run(&server, token, label);
        assert!(
            said.contains("Test cases"),
            "schemathesis as {label} did not run: {said}"
        );
        if !clean {
            failed.push(format!("as {label}:\n{}", summary(&said)));
        }
    }
    eprintln!("schemathesis, both tokens: {:.0?}", started.elapsed());
    assert!(
        failed.is_empty(),
        "Schemathesis found what the OpenAPI document does not say (fix the host or the document; an \
         exception goes in {CONFIG} with its reason):\n{}",
        failed.join("\n")
    );
}

/// Schemathesis's report from its failures section on (the part that says
/// what is wrong), or all of it.
fn summary(said: &str) -> &str {
    said.find("FAILURES").map_or(said, |at| &said[at..])
}

/// The ignore list is a list of reasons: every entry that switches a check
/// or an operation off says why, in a comment right above it.
#[test]
fn every_exception_in_the_ignore_list_says_why() {
    let config = std::fs::read_to_string(repo_root().join(CONFIG)).expect("the config");
    let lines: Vec<&str> = config.lines().collect();
    let mut entries = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "[[operations]]" {
            continue;
        }
        entries += 1;
        let above = lines[..i].iter().rev().map(|l| l.trim()).find(|l| !l.is_empty());
        assert!(
            above.is_some_and(|l| l.starts_with('#') && l.len() > 20),
            "{CONFIG}: the entry at line {} has no reason in a comment above it",
            i + 1
        );
    }
    // Read as TOML by Schemathesis; here only checked to be there.
    assert!(config.contains("max-examples"), "{CONFIG} no longer bounds the run");
    eprintln!("{entries} exceptions");
}
