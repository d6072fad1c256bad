//! The operator's side of accountability, through a real `toolhost serve`:
//! every admin action is an audit record naming who and the state before
//! and after; a read-only role reads and changes nothing; tokens are
//! rotated and revoked without a restart; a misspelt audit filter is
//! refused; records past their retention go.

use serde_json::{json, Value};
use toolhost_tests::*;

fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

const OBSERVER: &str = "observer-token-0123456789abcdef";

/// The records of one kind of action, newest first.
async fn actions(server: &ServerProcess, action: &str) -> Vec<Value> {
    let (status, body) = get_json(server, ADMIN_TOKEN, &format!("/v1/audit?action={action}")).await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

async fn post(server: &ServerProcess, token: &str, path: &str) -> (u16, Value) {
    let r = client()
        .post(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_action_is_recorded_with_who_and_before_and_after() {
    let rule = "[[approvals.rules]]\nname = \"all echo\"\ntools = [\"echo.check\"]\nhold = \"always\"\n";
    let server = ServerProcess::start(rule, &["echo"]);

    // Disable, then enable: the state before and after each.
    assert_eq!(post(&server, ADMIN_TOKEN, "/v1/plugins/echo/disable").await.0, 200);
    assert_eq!(post(&server, ADMIN_TOKEN, "/v1/plugins/echo/enable").await.0, 200);
    for (action, before, after) in [("disable", "enabled", "disabled"), ("enable", "disabled", "enabled")] {
        let records = actions(&server, action).await;
        assert_eq!(records.len(), 1, "{action}: {records:?}");
        let r = &records[0];
        assert_eq!(r["token"], "admin", "{r}");
        assert_eq!(r["via"], "api", "{r}");
        assert_eq!(r["tool"], "(plugin) echo", "{r}");
        assert_eq!(r["before"]["state"], before, "{r}");
        assert_eq!(r["after"]["state"], after, "{r}");
    }

    // A grant replaced: the operator's grant before and after.
    let (status, body) = put_grant(&server, "echo", &json!({ "timeout-ms": 1500 })).await;
    assert_eq!(status, 200, "{body}");
    let records = actions(&server, "set_grant").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["token"], "admin");
    assert!(
        records[0]["after"].to_string().contains("1500"),
        "the grant after names the new timeout: {}",
        records[0]
    );
    assert!(
        !records[0]["before"].to_string().contains("1500"),
        "the grant before does not: {}",
        records[0]
    );

    // An upload of a second version, then a rollback to the first: each
    // names the version it found and the one it left.
    let bundle = guest("echo");
    let manifest = std::fs::read_to_string(bundle.join("connector.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    let wasm = std::fs::read(bundle.join("echo.wasm")).unwrap();
    let (status, body) = upload(&server, "echo", manifest, wasm, None).await;
    assert_eq!(status, 200, "{body}");
    let uploaded = actions(&server, "upload").await;
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    assert_eq!(uploaded[0]["before"]["version"], "1.0.0", "{}", uploaded[0]);
    assert_eq!(uploaded[0]["after"]["version"], "1.1.0", "{}", uploaded[0]);
    assert_eq!(uploaded[0]["token"], "admin");
    assert_eq!(post(&server, ADMIN_TOKEN, "/v1/plugins/echo/rollback").await.0, 200);
    let rolled = actions(&server, "rollback").await;
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    assert_eq!(rolled[0]["before"]["version"], "1.1.0", "{}", rolled[0]);
    assert_eq!(rolled[0]["after"]["version"], "1.0.0", "{}", rolled[0]);

    // The approval rules replaced.
    let r = client()
        .put(server.url("/v1/approvals/rules"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "rules": [{ "name": "all echo", "tools": ["echo.check"], "hold": "always" }, { "name": "more", "tools": ["echo.*"], "hold": "always" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rules = actions(&server, "set_rules").await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(!rules[0]["before"].to_string().contains("more"), "{}", rules[0]);
    assert!(rules[0]["after"].to_string().contains("more"), "{}", rules[0]);

    // A reviewer's decision: the approval as found and as left.
    let (status, held) = echo_check(&server, AGENT_TOKEN).await;
    assert_eq!(status, 202, "{held}");
    let (status, body) = decide(&server, APPROVER_TOKEN, &held_id(&held), "approve", "looks right").await;
    assert_eq!(status, 200, "{body}");
    let decided = actions(&server, "decide").await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["token"], "approver");
    assert_eq!(decided[0]["before"]["state"], "pending", "{}", decided[0]);
    assert_eq!(decided[0]["after"]["state"], "approved", "{}", decided[0]);
    assert_eq!(decided[0]["after"]["decisions"][0]["by"], "approver", "{}", decided[0]);

    // Removal: the version it found, nothing after.
    let r = client()
        .delete(server.url("/v1/plugins/echo"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let removed = actions(&server, "remove").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["before"]["version"], "1.0.0", "{}", removed[0]);
    assert_eq!(removed[0]["after"]["removed"], true, "{}", removed[0]);

    // The records survive a restart like any other.
    let mut server = server;
    server.restart();
    assert_eq!(actions(&server, "remove").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observer_reads_metrics_and_the_trail_and_changes_nothing() {
    let config = format!(
        "[[tokens]]\nname = \"scraper\"\nrole = \"observer\"\nsha256 = \"{}\"\n",
        digest(OBSERVER)
    );
    let server = ServerProcess::start(&config, &["echo"]);
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);

    for path in [
        "/metrics",
        "/v1/audit",
        "/v1/audit/export",
        "/v1/plugins",
        "/v1/plugins/echo/versions",
        "/v1/tokens",
        "/v1/runs",
    ] {
        let r = client()
            .get(server.url(path))
            .bearer_auth(OBSERVER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "an observer reads {path}");
    }
    let (_, trail) = get_json(&server, OBSERVER, "/v1/audit?tool=echo.check").await;
    assert_eq!(trail["records"].as_array().map(Vec::len), Some(1), "{trail}");
    // The agent's token may not scrape metrics.
    let r = client()
        .get(server.url("/metrics"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Nothing that changes or calls.
    let (status, body) = echo_check(&server, OBSERVER).await;
    assert_eq!(status, 403, "an observer calls no tool: {body}");
    let (_, tools) = get_json(&server, OBSERVER, "/v1/tools").await;
    assert_eq!(tools, json!([]), "an observer sees no tool to call");
    for path in [
        "/v1/plugins/echo/disable",
        "/v1/plugins/echo/rollback",
        "/v1/tokens/reload",
    ] {
        let (status, body) = post(&server, OBSERVER, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("observer"),
            "{body}"
        );
    }
    let r = client()
        .put(server.url("/v1/plugins/echo/grants"))
        .bearer_auth(OBSERVER)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .delete(server.url("/v1/plugins/echo"))
        .bearer_auth(OBSERVER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Still serving, still enabled.
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_rotated_and_revoked_without_a_restart() {
    const OLD: &str = "ops-token-old-0123456789abcdef";
    const NEW: &str = "ops-token-new-0123456789abcdef";
    let entry = |digests: &str| format!("[[tokens]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = {digests}\n");
    let server = ServerProcess::start(&entry(&format!("\"{}\"", digest(OLD))), &["echo"]);
    let config = server.dir.path().join("toolhost.toml");
    let status = |token: &'static str| {
        let url = server.url("/v1/plugins");
        async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!((status(OLD).await, status(NEW).await), (200, 401));

    // Rotation: both pass while clients switch (reloaded through the API).
    std::fs::write(&config, entry(&format!("[\"{}\", \"{}\"]", digest(OLD), digest(NEW)))).unwrap();
    let (code, body) = post(&server, OLD, "/v1/tokens/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((status(OLD).await, status(NEW).await), (200, 200));

    // Then the old one is dropped, reloaded by SIGHUP as systemd's reload does.
    std::fs::write(&config, entry(&format!("\"{}\"", digest(NEW)))).unwrap();
    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut revoked = false;
    for _ in 0..100 {
        if status(OLD).await == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(revoked, "the old token still passes after SIGHUP");
    assert_eq!(status(NEW).await, 200, "the new token passes");
    // The server kept serving throughout.
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);

    // A configuration that does not hold is refused; the tokens in force stay.
    std::fs::write(&config, entry("\"not hex\"")).unwrap();
    let (code, body) = post(&server, NEW, "/v1/tokens/reload").await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap_or_default().contains("ops"),
        "{body}"
    );
    assert_eq!(status(NEW).await, 200);

    // Both reloads are in the trail: who (the API's admin; the host for the
    // signal) and the tokens before and after, by fingerprint only.
    let records = actions(&server, "reload_tokens").await;
    assert_eq!(records.len(), 2, "{records:?}");
    let (by_signal, by_api) = (&records[0], &records[1]);
    assert_eq!(by_api["token"], "ops", "{by_api}");
    assert_eq!(by_signal["token"], Value::Null, "{by_signal}");
    assert_eq!(by_signal["via"], "host", "{by_signal}");
    let fingerprints = |tokens: &Value| -> Vec<String> {
        let ops = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ops")
            .expect("ops listed");
        ops["fingerprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(fingerprints(&by_api["before"]), vec![digest(OLD)[..8].to_string()]);
    assert_eq!(
        fingerprints(&by_api["after"]),
        vec![digest(OLD)[..8].to_string(), digest(NEW)[..8].to_string()]
    );
    assert_eq!(fingerprints(&by_signal["after"]), vec![digest(NEW)[..8].to_string()]);
    let text = records.iter().map(Value::to_string).collect::<String>();
    assert!(
        !text.contains(OLD) && !text.contains(&digest(NEW)),
        "never a token nor a whole digest: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_audit_filter_is_refused_not_ignored() {
    let server = ServerProcess::start("", &["echo"]);
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
    for path in ["/v1/audit?tol=echo.check", "/v1/audit/export?sesion=abc"] {
        let r = client()
            .get(server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body = r.text().await.unwrap();
        let misspelt = path.split(['?', '=']).nth(1).unwrap();
        assert!(body.contains(misspelt), "the refusal names `{misspelt}`: {body}");
    }
    let (status, body) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    assert_eq!(status, 200);
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_past_their_retention_are_removed_and_the_removal_recorded() {
    let server = ServerProcess::start("[server]\naudit-retention-secs = 3\n", &["echo"]);
    for _ in 0..3 {
        assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
    }
    let count = |body: &Value| body["records"].as_array().map_or(0, Vec::len);
    let (_, body) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    assert_eq!(count(&body), 3, "{body}");

    // Past the retention, the sweep (every 1 s here) removes them, and
    // records that it did.
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, body) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
        if count(&body) == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the calls' records outlived their retention");
    let swept = actions(&server, "sweep_audit").await;
    let removed: u64 = swept.iter().map(|r| r["after"]["removed"].as_u64().unwrap_or(0)).sum();
    assert!(removed >= 3, "the sweeps name what they removed: {swept:?}");
    assert!(
        swept.iter().all(|r| r["via"] == "host" && r["token"].is_null()),
        "{swept:?}"
    );
    // What comes after is kept until it, too, is old.
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
    let (_, body) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=echo.check").await;
    assert_eq!(count(&body), 1, "{body}");
}

/// Operators acting on one plugin at once: each action's record is taken
/// under the plugin's lock, so the trail chains (every record's `before` is
/// the `after` of the one before it) and says what each really changed.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_operators_records_chain() {
    let server = ServerProcess::start("", &["echo"]);
    const OPERATORS: usize = 8;
    const ROUNDS: usize = 12;
    let server = &server;
    let operators = (0..OPERATORS).map(|i| async move {
        for round in 0..ROUNDS {
            let path = if (i + round) % 2 == 0 { "disable" } else { "enable" };
            let (status, body) = post(server, ADMIN_TOKEN, &format!("/v1/plugins/echo/{path}")).await;
            assert_eq!(status, 200, "{body}");
        }
    });
    futures::future::join_all(operators).await;

    let (status, body) = get_json(server, ADMIN_TOKEN, "/v1/audit?tool=(plugin)%20echo&limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let mut records: Vec<Value> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "enable" || r["action"] == "disable")
        .cloned()
        .collect();
    assert_eq!(records.len(), OPERATORS * ROUNDS, "one record per action");
    // Ids are time-ordered; the trail is newest first.
    records.reverse();
    assert_eq!(records[0]["before"]["state"], "enabled", "{}", records[0]);
    for pair in records.windows(2) {
        assert_eq!(
            pair[1]["before"], pair[0]["after"],
            "a record's before is the after of the one before it:\n{}\n{}",
            pair[0], pair[1]
        );
    }
}
