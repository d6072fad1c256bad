//! A vendor's first day, through the real binary: `toolhost new` for each of
//! the four worlds, `toolhost build`, the generated native tests, every
//! generated tool called through a real server against an upstream on
//! 127.0.0.1 configured by the operator's config and secrets; and `toolhost
//! dev` serving a project, answering the curl it prints, and reloading an
//! edit of the source.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use toolhost_tests::*;

/// The key the operator grants and the upstream expects.
const KEY: &str = "vendor-key";

/// The guest build folder all projects here share (the standard library for
/// the wasm target is compiled once, and kept between runs).
fn guest_target() -> PathBuf {
    repo_root().join("target/vendor-guests")
}

fn customer() -> Value {
    json!({ "id": "C-1", "name": "Ada", "email": "ada@example.com", "country": "DE", "tier": "premium",
            "created_at": "2025-03-01T09:00:00Z" })
}

fn case() -> Value {
    json!({ "id": "CASE-1", "customer_id": "C-1", "subject": "late parcel", "status": "open", "priority": "high",
            "opened_at": "2026-01-12T08:00:00Z", "order_id": "SO-1",
            "notes": [{ "at": "2026-01-12T08:00:00Z", "author": "agent", "text": "where is it" }] })
}

fn money(amount: i64) -> Value {
    json!({ "amount_minor": amount, "currency": "EUR" })
}

fn order() -> Value {
    json!({ "id": "SO-1", "customer_id": "C-1", "status": "shipped", "placed_at": "2026-01-05T10:00:00Z",
            "lines": [{ "sku": "SKU-1", "description": "kettle", "quantity": 1, "unit_price": money(4999) }],
            "total": money(4999), "tracking_numbers": ["TN-1"], "contract_id": "K-1" })
}

fn shipment() -> Value {
    json!({ "tracking_number": "TN-1", "carrier": "Nordpost", "order_reference": "SO-1", "status": "delivered",
            "service": "express", "origin": { "country": "DE", "city": "Berlin" },
            "destination": { "country": "FR", "city": "Paris", "postal_code": "75001" },
            "shipped_at": "2026-01-06T10:00:00Z", "promised_by": "2026-01-10T12:00:00Z",
            "delivered_at": "2026-01-11T15:00:00Z" })
}

fn voucher() -> Value {
    json!({ "code": "V-1", "customer_id": "C-1", "value": money(1500), "status": "active", "reason": "late delivery",
            "issued_at": "2026-01-12T09:00:00Z", "expires_at": "2026-04-12T09:00:00Z" })
}

/// A record the upstream changed.
fn with_status(mut record: Value, status: &str) -> Value {
    record["status"] = json!(status);
    record
}

/// An upstream for all four generated connectors (one path prefix per
/// world), answering what their code asks for, to the granted key only.
async fn upstream(request: Request) -> Response {
    let authorized =
        request.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"));
    if !authorized {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad key" }))).into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let body = match parts.as_slice() {
        ["crm", "customers"] if get => json!({ "customers": [customer()] }),
        ["crm", "customers", "C-1"] if get => customer(),
        ["crm", "customers", "C-1", "cases"] if get => json!({ "cases": [case()] }),
        ["crm", "cases"] if method == Method::POST => case(),
        ["crm", "cases", "CASE-1", "notes"] if method == Method::POST => case(),
        ["crm", "cases", "CASE-1"] if method == Method::PATCH => with_status(case(), "resolved"),
        ["erp", "orders", "SO-1"] if get => order(),
        ["erp", "customers", "C-1", "orders"] if get => json!({ "orders": [order()] }),
        ["erp", "contracts", "K-1"] if get => json!({
            "id": "K-1", "customer_id": "C-1", "tier": "business", "valid_from": "2025-01-01T00:00:00Z",
            "sla": { "grace_hours": 24, "per_day_late_bps": 500, "max_compensation_bps": 2000, "lost_parcel_bps": 10000 } }),
        ["erp", "credit-notes"] if method == Method::POST => json!({
            "id": "CN-1", "order_id": "SO-1", "amount": money(500), "reason": "late", "created_at": "2026-01-12T09:00:00Z" }),
        ["logistics", "shipments"] if get => json!({ "shipments": [shipment()] }),
        ["logistics", "shipments", "TN-1"] if get => shipment(),
        ["logistics", "shipments", "TN-1", "events"] if get => json!({ "events": [
            { "at": "2026-01-11T15:00:00Z", "status": "delivered", "description": "handed over" }] }),
        ["coupon", "vouchers"] if method == Method::POST => voucher(),
        ["coupon", "vouchers", "V-1"] if get => voucher(),
        ["coupon", "vouchers", "V-1", "redeem"] if method == Method::POST => with_status(voucher(), "redeemed"),
        ["coupon", "vouchers", "V-1", "revoke"] if method == Method::POST => with_status(voucher(), "revoked"),
        ["coupon", "customers", "C-1", "vouchers"] if get => json!({ "vouchers": [voucher()] }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": format!("no {method} {path}") })),
            )
                .into_response()
        }
    };
    Json(body).into_response()
}

/// Each world, its plugin name, and one call of each of its tools: the
/// arguments, and one field of the result (a JSON pointer) with its value.
type Call = (&'static str, Value, &'static str, Value);

fn worlds() -> Vec<(&'static str, &'static str, Vec<Call>)> {
    vec![
        (
            "crm",
            "acme-crm",
            vec![
                (
                    "find-customers",
                    json!({ "query": { "by-email": "ada@example.com" } }),
                    "/0/name",
                    json!("Ada"),
                ),
                ("get-customer", json!({ "customer-id": "C-1" }), "/country", json!("DE")),
                (
                    "open-case",
                    json!({ "case": { "customer-id": "C-1", "subject": "late parcel", "priority": "high",
                "description": "where is it", "idempotency-key": "k-1" } }),
                    "/case-id",
                    json!("CASE-1"),
                ),
                (
                    "add-note",
                    json!({ "case-id": "CASE-1", "author": "agent", "text": "looking" }),
                    "/notes/0/author",
                    json!("agent"),
                ),
                (
                    "set-case-status",
                    json!({ "case-id": "CASE-1", "status": "resolved", "resolution": "found" }),
                    "/status",
                    json!("resolved"),
                ),
                (
                    "list-cases",
                    json!({ "customer-id": "C-1" }),
                    "/0/priority",
                    json!("high"),
                ),
            ],
        ),
        (
            "erp",
            "acme-erp",
            vec![
                (
                    "get-order",
                    json!({ "order-id": "SO-1" }),
                    "/total/amount-minor",
                    json!(4999),
                ),
                (
                    "list-orders",
                    json!({ "customer-id": "C-1", "limit": 5 }),
                    "/0/lines/0/sku",
                    json!("SKU-1"),
                ),
                (
                    "get-contract",
                    json!({ "contract-id": "K-1" }),
                    "/sla/grace-hours",
                    json!(24),
                ),
                (
                    "create-credit-note",
                    json!({ "order-id": "SO-1", "amount": { "amount-minor": 500, "currency": "EUR" },
                "reason": "late", "idempotency-key": "k-2" }),
                    "/credit-note-id",
                    json!("CN-1"),
                ),
            ],
        ),
        (
            "logistics",
            "acme-logistics",
            vec![
                (
                    "track-shipment",
                    json!({ "tracking-number": "TN-1" }),
                    "/destination/postal-code",
                    json!("75001"),
                ),
                (
                    "find-shipments",
                    json!({ "order-reference": "SO-1" }),
                    "/0/tracking-number",
                    json!("TN-1"),
                ),
                (
                    "list-events",
                    json!({ "tracking-number": "TN-1" }),
                    "/0/status",
                    json!("delivered"),
                ),
                (
                    "report-delay",
                    json!({ "tracking-number": "TN-1" }),
                    "/hours-late",
                    json!(27),
                ),
            ],
        ),
        (
            "coupon",
            "acme-coupon",
            vec![
                (
                    "issue-voucher",
                    json!({ "request": { "idempotency-key": "k-3", "customer-id": "C-1",
                "value": { "amount-minor": 1500, "currency": "EUR" }, "reason": "late delivery", "valid-days": 90 } }),
                    "/code",
                    json!("V-1"),
                ),
                (
                    "validate-voucher",
                    json!({ "code": "V-1", "customer-id": "C-1" }),
                    "/valid",
                    json!(true),
                ),
                (
                    "redeem-voucher",
                    json!({ "code": "V-1", "order-id": "SO-2", "idempotency-key": "k-4" }),
                    "/status",
                    json!("redeemed"),
                ),
                (
                    "revoke-voucher",
                    json!({ "code": "V-1", "reason": "issued by mistake" }),
                    "/status",
                    json!("revoked"),
                ),
                (
                    "list-vouchers",
                    json!({ "customer-id": "C-1" }),
                    "/0/value/amount-minor",
                    json!(1500),
                ),
            ],
        ),
    ]
}

/// Run `toolhost` with `args`; its output, asserting how it exited.
fn toolhost(args: &[&str], cwd: &Path, succeed: bool) -> std::process::Output {
    let output = Command::new(toolhost_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_CONFIG")
        .output()
        .expect("run toolhost");
    assert_eq!(
        output.status.success(),
        succeed,
        "toolhost {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn new_project(world: &str, name: &str, dir: &Path) {
    let out = toolhost(
        &["new", world, name, "--dir", dir.to_str().unwrap()],
        dir.parent().unwrap(),
        true,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dir.display().to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_world_new_builds_tests_and_serves_its_tools() {
    let scratch = Scratch::new("vendor");
    let worlds = worlds();
    // Folders named unlike the plugins: the component is named from the manifest.
    let dirs: Vec<PathBuf> = worlds
        .iter()
        .map(|(w, _, _)| scratch.path().join(format!("{w}-project")))
        .collect();
    for ((world, name, _), dir) in worlds.iter().zip(&dirs) {
        new_project(world, name, dir);
    }

    // `toolhost tools` over a bundle that cannot load says why and fails.
    let unbuilt = scratch.path().join("unbuilt");
    std::fs::create_dir_all(&unbuilt).unwrap();
    std::os::unix::fs::symlink(&dirs[0], unbuilt.join("crm-project")).unwrap();
    let data = scratch.path().join("data");
    let out = toolhost(
        &[
            "--plugins-dir",
            unbuilt.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "tools",
        ],
        scratch.path(),
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("acme-crm.wasm"),
        "the refusal names the missing component: {stderr}"
    );

    // One build command for all four, sharing the guest build folder.
    let mut args = vec![
        "build".to_string(),
        "--target-dir".into(),
        guest_target().display().to_string(),
    ];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    toolhost(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        scratch.path(),
        true,
    );
    for ((_, name, _), dir) in worlds.iter().zip(&dirs) {
        assert!(
            dir.join(format!("{name}.wasm")).is_file(),
            "{name}.wasm beside {}",
            dir.display()
        );
    }

    // The generated native tests pass as generated.
    for dir in &dirs {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["test", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", repo_root().join("target/vendor-native"))
            // No debug info: a fraction of the disk, and nothing here reads it.
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .status()
            .expect("run cargo test");
        assert!(status.success(), "cargo test in {}", dir.display());
    }

    // An operator serves the four bundles as they are, granting each the
    // upstream by config and its key by secret.
    let upstream_addr = serve(axum::Router::new().fallback(upstream)).await;
    let mut config = String::from("[[approvals.rules]]\nname = \"vendor test\"\ntools = [\"*\"]\nhold = \"never\"\n");
    for (world, name, _) in &worlds {
        config.push_str(&format!(
            "[plugins.{name}]\nhttp = [{{ origin = \"http://{upstream_addr}\" }}]\nconfig = {{ base-url = \"http://{upstream_addr}/{world}\" }}\nsecrets = {{ api-key = {{ value = \"{KEY}\" }} }}\n"
        ));
    }
    let server = ServerProcess::start_prepared(&config, |plugins| {
        for ((world, _, _), dir) in worlds.iter().zip(&dirs) {
            std::os::unix::fs::symlink(dir, plugins.join(world)).unwrap();
        }
    });
    for (_, name, calls) in &worlds {
        for (function, args, pointer, expected) in calls {
            let tool = format!("{name}.{function}");
            let (status, body) = invoke(&server, AGENT_TOKEN, &tool, args.clone()).await;
            assert_eq!(status, 200, "{tool}: {body}");
            assert_eq!(
                body["result"].pointer(pointer),
                Some(expected),
                "{tool} {pointer}: {body}"
            );
        }
    }
}

#[test]
fn new_refuses_unknown_worlds_bad_names_and_occupied_folders() {
    let scratch = Scratch::new("vendor-refusals");
    let out = toolhost(&["new", "billing", "acme"], scratch.path(), false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for world in [
        "crm-connector",
        "erp-connector",
        "logistics-connector",
        "coupon-connector",
    ] {
        assert!(stderr.contains(world), "the refusal lists {world}: {stderr}");
    }
    let out = toolhost(&["new", "crm", "Acme_CRM"], scratch.path(), false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a plugin name"));

    let occupied = scratch.path().join("acme");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let out = toolhost(&["new", "crm", "acme"], scratch.path(), false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(std::fs::read_to_string(occupied.join("notes.txt")).unwrap(), "mine");
    assert!(!occupied.join("Cargo.toml").exists());
}

/// A `toolhost dev` process, its standard output read line by line.
struct DevProcess {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl DevProcess {
    /// The first line printed that starts with `prefix`, without it,
    /// waiting up to `within` for it to come.
    fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(rest) = self.seen.iter().find_map(|l| l.strip_prefix(prefix)) {
                return rest.to_string();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("toolhost dev printed no line starting {prefix:?}"));
            self.seen.push(line);
        }
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_serves_the_project_and_reloads_an_edit() {
    let scratch = Scratch::new("vendor-dev");
    let upstream_addr = serve(axum::Router::new().fallback(upstream)).await;
    // Measured from the vendor's first command, the binary already built.
    toolhost_bin();
    let started = Instant::now();
    let project = scratch.path().join("acme-dev");
    new_project("crm", "acme-dev", &project);
    // The vendor points dev.toml at their upstream; the key comes from the
    // environment variable dev.toml names.
    let dev_toml = std::fs::read_to_string(project.join("dev.toml")).unwrap();
    assert!(dev_toml.contains("ACME_DEV_API_KEY"), "{dev_toml}");
    std::fs::write(
        project.join("dev.toml"),
        dev_toml.replace("http://127.0.0.1:9000", &format!("http://{upstream_addr}/crm")),
    )
    .unwrap();

    let mut child = Command::new(toolhost_bin())
        .args([
            "dev",
            project.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--target-dir",
        ])
        .arg(guest_target())
        .env("ACME_DEV_API_KEY", KEY)
        .env_remove("TOOLHOST_DEV_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start toolhost dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("dev| {line}");
            let _ = tx.send(line);
        }
    });
    let mut dev = DevProcess {
        child,
        lines,
        seen: Vec::new(),
    };
    // A cold build compiles Rust's standard library for the wasm target.
    let grant = dev.line("toolhost dev: acme-dev ", Duration::from_secs(900));
    assert!(grant.contains("crm-connector"), "{grant}");
    let base = dev.line("toolhost listening on ", Duration::from_secs(60));
    let token = dev.line("toolhost dev: token ", Duration::from_secs(60));
    let curl = dev.line("toolhost dev: try: ", Duration::from_secs(60));
    assert!(
        curl.starts_with(&format!("curl -sS -X POST {base}/v1/tools/acme-dev.")),
        "{curl}"
    );

    // The printed curl, pasted into a shell, calls a tool.
    let out = Command::new("sh")
        .args(["-c", &curl])
        .output()
        .expect("run the printed curl");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert!(answer.get("result").is_some(), "{answer}");
    eprintln!(
        "vendor: toolhost new to the first tool call with toolhost dev took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let customer = || async {
        let response = client()
            .post(format!("{base}/v1/tools/acme-dev.get-customer/invoke"))
            .bearer_auth(&token)
            .json(&json!({ "customer-id": "C-1" }))
            .send()
            .await
            .expect("toolhost dev answers");
        let body: Value = response.json().await.unwrap();
        body["result"]["name"].clone()
    };
    assert_eq!(customer().await, json!("Ada"));

    // An edit of the source is built and served without a restart.
    let source = project.join("src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let edited = text.replace(
        "name: v.text(\"name\")?,",
        "name: format!(\"{} (edited)\", v.text(\"name\")?),",
    );
    assert_ne!(text, edited, "the template maps the name as the test expects");
    let edit = Instant::now();
    std::fs::write(&source, edited).unwrap();
    loop {
        if customer().await == json!("Ada (edited)") {
            break;
        }
        assert!(edit.elapsed() < Duration::from_secs(300), "the edit was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "vendor: an edit served {:.1} s after saving",
        edit.elapsed().as_secs_f64()
    );

    let _ = Command::new("kill")
        .args(["-TERM", &dev.child.id().to_string()])
        .status();
    let status = dev.child.wait().unwrap();
    assert!(status.success(), "toolhost dev stopped with {status}");
}
