//! Who owns a plugin's grant, through a real `toolhost serve`: the file's
//! `[plugins.NAME]` until the API sets one, then the API's, with both sides
//! shown and a warning where they differ, until `DELETE .../grants` hands
//! it back to the file; `PATCH` as a JSON merge patch; a grant that leaves
//! a requested secret or config unset refused unless the request says so.

use serde_json::{json, Value};
use toolhost_tests::*;

const VALUE: &str = "grant-secret-value-0001";

fn secret_thief(timeout_ms: u64) -> String {
    format!("[plugins.secret-thief]\ntimeout-ms = {timeout_ms}\nsecrets = {{ mine = {{ value = \"{VALUE}\" }} }}\n")
}

async fn grants(server: &ServerProcess, plugin: &str) -> Value {
    let (status, body) = get_json(server, ADMIN_TOKEN, &format!("/v1/plugins/{plugin}/grants")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn timeout_in_force(grants: &Value) -> &Value {
    &grants["plugin_state"]["effective_grant"]["timeout_ms"]
}

fn warnings(grants: &Value) -> String {
    grants["warnings"].to_string()
}

async fn send(
    server: &ServerProcess,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = client().request(method, server.url(path)).bearer_auth(ADMIN_TOKEN);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let r = request.send().await.expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn patch(server: &ServerProcess, path: &str, patch: &Value) -> (u16, Value) {
    send(
        server,
        reqwest::Method::PATCH,
        path,
        Some("application/merge-patch+json"),
        Some(patch),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_file_owns_a_grant_until_the_api_sets_one_and_a_reset_hands_it_back() {
    let mut server = ServerProcess::start(&secret_thief(1000), &["secret-thief"]);
    let shown = grants(&server, "secret-thief").await;
    assert_eq!(shown["source"], "file", "{shown}");
    assert_eq!(shown["file"]["timeout-ms"], 1000);
    assert_eq!(shown["api"], Value::Null);
    assert_eq!(shown["differs"], false);
    assert_eq!(shown["warnings"], json!([]));
    assert_eq!(timeout_in_force(&shown), 1000);

    // The API sets one: it is in force, and both sides are shown.
    let mut changed = shown["operator"].clone();
    changed["timeout-ms"] = json!(2000);
    let (status, body) = put_grant(&server, "secret-thief", &changed).await;
    assert_eq!(status, 200, "{body}");
    let shown = grants(&server, "secret-thief").await;
    assert_eq!(shown["source"], "api", "{shown}");
    assert_eq!(shown["api"]["timeout-ms"], 2000);
    assert_eq!(shown["file"]["timeout-ms"], 1000);
    assert_eq!(shown["differs"], true);
    assert!(
        warnings(&shown).contains("toolhost.toml's [plugins.secret-thief] differs and is not used"),
        "{shown}"
    );
    assert_eq!(timeout_in_force(&shown), 2000);
    assert!(!shown.to_string().contains(VALUE), "{shown}");

    // The file is edited while the API owns the grant: the edit is shown,
    // not in force, and the start says so.
    std::fs::write(server.dir.path().join("toolhost.toml"), secret_thief(3000)).unwrap();
    server.restart();
    let shown = grants(&server, "secret-thief").await;
    assert_eq!(shown["source"], "api", "{shown}");
    assert_eq!(shown["file"]["timeout-ms"], 3000);
    assert_eq!(shown["api"]["timeout-ms"], 2000);
    assert_eq!(timeout_in_force(&shown), 2000);
    assert_eq!(shown["differs"], true);
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("secret-thief")
            && l.contains("the grant set through the API is in force")),
        "{log}"
    );

    // A reset: the file's grant is in force at once, and after a restart.
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        "/v1/plugins/secret-thief/grants",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "file", "{body}");
    assert_eq!(timeout_in_force(&body), 3000);
    let (_, result) = invoke(&server, AGENT_TOKEN, "secret-thief.steal", json!({ "name": "mine" })).await;
    assert_eq!(result["result"], "[secret mine]", "the file's secret serves: {result}");
    server.restart();
    let shown = grants(&server, "secret-thief").await;
    assert_eq!(shown["source"], "file", "{shown}");
    assert_eq!(shown["api"], Value::Null);
    assert_eq!(timeout_in_force(&shown), 3000);

    // The audit trail names who set and who reset.
    let export = get_text(&server, ADMIN_TOKEN, "/v1/audit/export").await;
    assert!(export.contains("reset_grant"), "{export}");
    assert!(!export.contains(VALUE), "{export}");
}

/// The coupon connector requests secret `ledger-token` and config
/// `ledger-url` and `max-value-minor`: a grant of all three.
const COUPON: &str = r#"[plugins.coupon]
http = [{ origin = "https://ledger.example", methods = ["POST"] }]
secrets = { ledger-token = { value = "ledger-token-value-0001" } }
config = { ledger-url = "https://ledger.example/v1", max-value-minor = "5000" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_patch_changes_only_the_fields_it_names() {
    let server = ServerProcess::start(COUPON, &["plugins/coupon"]);
    let path = "/v1/plugins/coupon/grants";
    let (status, body) = patch(
        &server,
        path,
        &json!({ "config": { "max-value-minor": "2500" }, "timeout-ms": 3000 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let grant = &body["operator"];
    assert_eq!(body["source"], "api");
    assert_eq!(
        grant["config"],
        json!({ "ledger-url": "https://ledger.example/v1", "max-value-minor": "2500" })
    );
    assert_eq!(grant["timeout-ms"], 3000);
    assert_eq!(
        grant["secrets"]["ledger-token"],
        json!({ "source": "value", "set": true })
    );
    assert_eq!(grant["http"][0]["origin"], "https://ledger.example");

    // null removes a field; one the manifest requests only when the request says it means it.
    let remove = json!({ "config": { "max-value-minor": null } });
    let (status, body) = patch(&server, path, &remove).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "unset_requested", "{body}");
    let (status, body) = patch(&server, &format!("{path}?allow_unset=max-value-minor"), &remove).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["operator"]["config"],
        json!({ "ledger-url": "https://ledger.example/v1" })
    );
    assert!(warnings(&body).contains("max-value-minor"), "{body}");
    let (status, body) = patch(&server, path, &json!({ "timeout-ms": null })).await;
    assert_eq!(status, 422, "max-value-minor is still unset and not allowed: {body}");

    // application/json is a merge patch too; anything else is not.
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("{path}?allow_unset=max-value-minor"),
        Some("application/json"),
        Some(&json!({ "timeout-ms": null })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"]["timeout-ms"], Value::Null);
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        path,
        Some("text/plain"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("merge-patch+json"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_that_drops_a_requested_secret_is_refused_naming_it_unless_it_says_so() {
    let server = ServerProcess::start(COUPON, &["plugins/coupon"]);
    let partial = json!({ "http": [{ "origin": "https://ledger.example", "methods": ["POST"] }] });
    let (status, body) = put_grant(&server, "coupon", &partial).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for named in [
        "secret \"ledger-token\"",
        "config \"ledger-url\"",
        "config \"max-value-minor\"",
        "GET /v1/plugins/coupon/grants",
        "?allow_unset=ledger-token,ledger-url,max-value-minor",
    ] {
        assert!(message.contains(named), "{named} in {message}");
    }
    assert_eq!(
        body["error"]["missing"],
        json!([
            { "kind": "secret", "name": "ledger-token" },
            { "kind": "config", "name": "ledger-url" },
            { "kind": "config", "name": "max-value-minor" },
        ])
    );
    // Nothing changed.
    let shown = grants(&server, "coupon").await;
    assert_eq!(shown["source"], "file");
    assert_eq!(shown["operator"]["config"]["max-value-minor"], "5000");

    // A name the manifest does not request is refused (a misspelling).
    let r = client()
        .put(server.url("/v1/plugins/coupon/grants?allow_unset=ledger-tokn"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&partial)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("ledger-tokn"));

    // Said on purpose: accepted, and the answer still warns.
    let r = client()
        .put(server.url("/v1/plugins/coupon/grants?allow_unset=ledger-token,ledger-url,max-value-minor"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&partial)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["operator"]["secrets"], json!({}), "{body}");
    assert!(
        warnings(&body).contains("requests secret \\\"ledger-token\\\""),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_whose_variable_is_unset_is_warned_about_at_start() {
    const VARIABLE: &str = "TOOLHOST_TEST_GRANTS_NEVER_SET_0001";
    assert!(std::env::var_os(VARIABLE).is_none());
    let config = format!("[plugins.secret-thief]\nsecrets = {{ mine = {{ env = \"{VARIABLE}\" }} }}\n");
    let server = ServerProcess::start(&config, &["secret-thief"]);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains(VARIABLE))
        .unwrap_or_else(|| panic!("no warning names {VARIABLE}: {log}"));
    assert!(line.contains("secret-thief") && line.contains("\"mine\""), "{line}");
    let shown = grants(&server, "secret-thief").await;
    assert!(warnings(&shown).contains(VARIABLE), "{shown}");
}

/// Grants no operator means: no memory, a pin that is not a SHA-256, limits
/// beyond any sane maximum.
fn absurd_grants() -> Vec<(Value, &'static str)> {
    vec![
        (json!({ "memory-mb": 0 }), "memory-mb"),
        (json!({ "memory-mb": 1_000_000 }), "memory-mb"),
        (json!({ "digest": "zz" }), "digest"),
        (json!({ "digest": "g".repeat(64) }), "digest"),
        (json!({ "digest": "ab".repeat(31) }), "digest"),
        (json!({ "timeout-ms": 0 }), "timeout-ms"),
        (json!({ "timeout-ms": 1_000_000_000u64 }), "timeout-ms"),
        (json!({ "max-concurrency": 0 }), "max-concurrency"),
        (json!({ "max-concurrency": 1_000_000 }), "max-concurrency"),
        (json!({ "kv-quota-bytes": 1u64 << 50 }), "kv-quota-bytes"),
        (json!({ "reuse-instances": 0 }), "reuse-instances"),
    ]
}

/// `memory-mb: 0`, `digest: "zz"` and absurd limits were taken into a
/// grant; now each is a 422 naming its field through PUT and PATCH, and
/// nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_without_memory_with_a_bad_pin_or_absurd_limits_is_refused_through_the_api() {
    let server = ServerProcess::start("", &["echo"]);
    let path = "/v1/plugins/echo/grants";
    for (grant, field) in absurd_grants() {
        let (status, body) = put_grant(&server, "echo", &grant).await;
        assert_eq!(
            (status, &body["error"]["kind"]),
            (422, &json!("invalid_input")),
            "{grant}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{grant}: {message}");
        let (status, body) = patch(&server, path, &grant).await;
        assert_eq!(status, 422, "{grant}: {body}");
    }
    // An array is no grant: serde would read `[]` as an empty one and put
    // it in force.
    let (status, body) = put_grant(&server, "echo", &json!([])).await;
    assert_eq!(status, 400, "{body}");
    let now = grants(&server, "echo").await;
    assert_eq!((&now["source"], &now["api"]), (&json!("file"), &Value::Null), "{now}");
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
    // At the maxima, taken.
    let (status, body) = put_grant(
        &server,
        "echo",
        &json!({ "memory-mb": 4096, "timeout-ms": 600_000, "max-concurrency": 1024, "kv-quota-bytes": 0 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The same grants in `toolhost.toml` stop `serve` and are errors of
/// `toolhost check`, each naming its field.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_without_memory_with_a_bad_pin_or_absurd_limits_is_refused_from_the_file() {
    for (grant, field) in absurd_grants() {
        let (key, value) = grant.as_object().unwrap().iter().next().unwrap();
        let dir = Scratch::new("absurd-grant");
        std::fs::write(
            dir.path().join("toolhost.toml"),
            format!("[plugins.echo]\n{key} = {value}\n"),
        )
        .unwrap();
        for args in [
            &["serve", "--listen", "127.0.0.1:0"][..],
            &["check", "--config", "toolhost.toml"],
        ] {
            let (out, said) = run_to_exit(dir.path(), args);
            assert!(!out.success(), "{args:?} {key} = {value}: {said}");
            assert!(said.contains(&format!("`{field}`")), "{args:?} {key} = {value}: {said}");
        }
    }
}

/// Run the binary with `args` in `dir` until it exits (killed after a
/// minute: a `serve` that took the file would run on); its status and all
/// it wrote.
fn run_to_exit(dir: &std::path::Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(toolhost_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("TOOLHOST_CONFIG")
        .env_remove("TOOLHOST_DATA_DIR")
        .env_remove("TOOLHOST_PLUGINS_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, said)
}
