//! The README's "An operator's first hour", run as written: every `sh`
//! block of that section, in order, in one bash with `set -e`, with the
//! real `toolhost` and `sample-upstreams` on `PATH`. Only the ports change
//! (free ones for 8080 and 9400), so that tests can run side by side.

use toolhost_tests::process::free_port;
use toolhost_tests::readme::{section_blocks, Checkout};

const SECTION: &str = "## An operator's first hour";

#[test]
fn the_operators_walkthrough_runs_as_written() {
    let blocks = section_blocks(SECTION);
    assert!(blocks.len() >= 6, "{blocks:#?}");
    let (host, upstreams) = (free_port(), free_port());
    let script = blocks
        .join("\n")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{host}"))
        .replace("127.0.0.1:9400", &format!("127.0.0.1:{upstreams}"));

    // What the reader has: the repository's plugins (built), and the two
    // commands on PATH.
    let root = Checkout::new("walkthrough");
    let out = root.run(&script, 300);
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
