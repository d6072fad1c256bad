//! The `toolhost` binary as a user runs it: from a folder whose `plugins`
//! holds the built reference connectors, with no flags.

use std::process::{Command, Output};

use serde_json::Value;
use toolhost::model::audit::{Outcome, Via};
use toolhost_tests::{components, field, named, toolhost_bin, Scratch};

fn toolhost(cwd: &Scratch, args: &[&str]) -> Output {
    Command::new(toolhost_bin())
        .args(args)
        .current_dir(cwd.path())
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_CONFIG")
        .output()
        .expect("run toolhost")
}

fn workdir(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    std::os::unix::fs::symlink(components().join("plugins"), dir.path().join("plugins")).unwrap();
    dir
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn tools_lists_the_reference_connectors_with_no_flags() {
    let dir = workdir("cli-tools");
    let tools = stdout_json(&toolhost(&dir, &["tools"]));
    let names = field(&tools, "name");
    assert!(names.contains(&"coupon.issue-voucher"), "{names:?}");
    let issue = named(&tools, "coupon.issue-voucher").unwrap();
    assert_eq!(issue["function_name"], "coupon_issue-voucher");
    assert_eq!(issue["parameters"]["type"], "object");
}

#[test]
fn call_prints_the_result_and_keeps_data_across_runs() {
    let dir = workdir("cli-call");
    let args = r#"{"request":{"idempotency-key":"cli-1","customer-id":"C-9","value":{"amount-minor":250,"currency":"EUR"},"reason":"goodwill","valid-days":10}}"#;
    let voucher = stdout_json(&toolhost(&dir, &["call", "coupon.issue-voucher", args]));
    assert_eq!(voucher["customer-id"], "C-9");
    // A second process sees what the first stored (./data, sled).
    let listed = stdout_json(&toolhost(
        &dir,
        &["call", "coupon.list-vouchers", r#"{"customer-id":"C-9"}"#],
    ));
    assert_eq!(listed[0]["code"], voucher["code"]);
    assert!(dir.path().join("data").is_dir());

    // Both calls are in the audit trail, marked as from the command line.
    let storage = toolhost::storage::Storage::open(&dir.path().join("data/db")).unwrap();
    let audit = toolhost::audit::AuditLog::open(&storage).unwrap();
    let (records, _) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(audit.query(&Default::default()))
        .unwrap();
    let calls: Vec<_> = records.iter().filter(|r| !r.tool.starts_with("(plugin)")).collect();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|r| r.via == Via::Cli && r.outcome == Outcome::Ok));
    assert_eq!(calls[1].tool, "coupon.issue-voucher");
    // Each run loaded the plugin, and said so.
    assert_eq!(
        records
            .iter()
            .filter(|r| r.tool == "(plugin) coupon" && r.outcome == Outcome::Loaded)
            .count(),
        2
    );
}

#[test]
fn call_fails_clearly() {
    let dir = workdir("cli-errors");
    let cases: [(&[&str], &str); 5] = [
        (&["call", "coupon.issue-voucher", "{not json"], "not valid JSON"),
        (
            &["call", "coupon.issue-voucher", r#"{"request": 5}"#],
            "request: expected an object",
        ),
        (&["call", "coupon.nope", "{}"], "no tool named"),
        (&["call", "nothing.here", "{}"], "no plugin named \"nothing\""),
        (&["call", "../../etc/passwd", "{}"], "is not a tool name"),
    ];
    for (args, expected) in cases {
        let out = toolhost(&dir, args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
