//! The README's "An operator's first hour", run as written: every `sh`
//! block of that section, in order, in one bash with `set -e`, with the
//! real `toolhost` and `sample-upstreams` on `PATH`. Only the ports change
//! (free ones for 8080 and 9400), so that tests can run side by side.

use std::process::Command;

use toolhost_tests::*;

const SECTION: &str = "## An operator's first hour";

/// The `sh` blocks of the README's section, in order.
fn walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find(SECTION).expect("the README has the operator's walkthrough");
    let body = &readme[start + SECTION.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut blocks = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("```sh\n") {
        let code = &rest[open + "```sh\n".len()..];
        let close = code.find("```").expect("a closed block");
        blocks.push(code[..close].to_string());
        rest = &code[close + 3..];
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_operators_walkthrough_runs_as_written() {
    let blocks = walkthrough();
    assert!(blocks.len() >= 6, "{blocks:#?}");
    let (host, upstreams) = (free_port(), free_port());
    let script = blocks
        .join("\n")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{host}"))
        .replace("127.0.0.1:9400", &format!("127.0.0.1:{upstreams}"));

    // What the reader has: the repository's plugins (built), and the two
    // commands on PATH.
    components();
    let root = Scratch::new("walkthrough");
    std::os::unix::fs::symlink(repo_root().join("plugins"), root.path().join("plugins")).unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(toolhost_bin(), bin.join("toolhost")).unwrap();
    std::os::unix::fs::symlink(sample_upstreams_bin(), bin.join("sample-upstreams")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    // Whatever happens, nothing the walkthrough started outlives it.
    let wrapped = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let out = Command::new("timeout")
        .args(["300", "bash", "-c", &wrapped])
        .current_dir(root.path())
        .env("PATH", path)
        .env_remove("TOOLHOST_LOG")
        .env_remove("TOOLHOST_CONFIG")
        .env_remove("TOOLHOST_ADMIN_TOKEN")
        .env_remove("TOOLHOST_AGENT_TOKEN")
        .env_remove("TOOLHOST_APPROVER_TOKEN")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let log = std::fs::read_to_string(root.path().join("first-hour/toolhost.log")).unwrap_or_default();
    let said = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- toolhost.log\n{log}");
    assert!(
        out.status.success(),
        "the walkthrough failed ({:?}):\n{said}",
        out.status
    );

    // What each step printed, in order.
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        "coupon.issue-voucher", // the first tool, in name order
        "delivered",            // SO-1001's status
        "late-parcel ok",       // the conversation's trail has the workflow...
        "erp.get-order ok",     // ...and the first call
        "file",                 // the coupon grant is the file's
        "enable (plugin) crm",  // the admin's actions, newest first
        "disable (plugin) crm",
        "reset_grant (plugin) coupon",
        "set_grant (plugin) coupon",
        "decide coupon.issue-voucher",
    ];
    for want in expected {
        assert!(lines.contains(&want), "no line {want:?} in:\n{said}");
    }
    // The voucher the reviewer let through has a code (`V-` and ten more).
    assert!(
        lines.iter().any(|l| l.starts_with("V-") && l.len() == 12),
        "no voucher code in:\n{said}"
    );
    // `toolhost check` found nothing wrong in the sample configuration.
    assert!(stderr.contains("0 error(s), 0 warning(s)"), "{said}");
    // The host stopped cleanly.
    assert!(log.contains("stopped; storage flushed"), "{said}");
}
