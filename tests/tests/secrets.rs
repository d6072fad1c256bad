//! Secret values never leave the host except in the requests a connector
//! makes with them: not through the grants API, not through the connector's
//! log, stdout, stderr, result or error, not into the audit trail. And the
//! admin API cannot name any environment variable of the host as a source.

use serde_json::{json, Value};
use toolhost_tests::*;

/// A value long enough to be masked; nothing else in a test contains it.
const VALUE: &str = "s3cr3t-value-0001";

fn config(extra_server: &str) -> String {
    format!("[server]\n{extra_server}\n[plugins.secret-thief]\nsecrets = {{ mine = {{ value = \"{VALUE}\" }} }}\n")
}

async fn steal(server: &ServerProcess) -> Value {
    let (status, body) = invoke(server, AGENT_TOKEN, "secret-thief.steal", json!({ "name": "mine" })).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grants_api_shows_sources_never_values_and_keeps_them_on_a_round_trip() {
    let server = ServerProcess::start(&config(""), &["secret-thief"]);
    let (status, shown) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/secret-thief/grants").await;
    assert_eq!(status, 200);
    assert!(!shown.to_string().contains(VALUE), "{shown}");
    assert_eq!(
        shown["operator"]["secrets"]["mine"],
        json!({ "source": "value", "set": true })
    );

    // What GET showed, PUT back, keeps the value the grant had.
    let (status, body) = put_grant(&server, "secret-thief", &shown["operator"]).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(VALUE));
    // The connector still gets it (the result shows it masked: see below).
    assert_eq!(steal(&server).await["result"], "[secret mine]");

    // And across a restart, from storage.
    let mut server = server;
    server.restart();
    assert_eq!(steal(&server).await["result"], "[secret mine]");
    let (_, shown) = get_json(&server, ADMIN_TOKEN, "/v1/plugins/secret-thief/grants").await;
    assert!(!shown.to_string().contains(VALUE), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_names_environment_variables_only_under_the_configured_prefix() {
    // Cargo sets CARGO_PKG_* for this test process, and the server inherits it.
    let server = ServerProcess::start(&config("api-secret-env-prefix = \"CARGO_PKG_\""), &["secret-thief"]);
    let grant = |env: &str| json!({ "secrets": { "mine": { "env": env } } });
    let (status, body) = put_grant(&server, "secret-thief", &grant("HOME")).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("CARGO_PKG_"), "{message}");
    let (status, body) = put_grant(&server, "secret-thief", &grant("CARGO_PKG_NAME")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        steal(&server).await["result"],
        "[secret mine]",
        "toolhost-tests, masked"
    );

    // Without a prefix the API names none.
    let server = ServerProcess::start(&config(""), &["secret-thief"]);
    let (status, body) = put_grant(&server, "secret-thief", &grant("CARGO_PKG_NAME")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        steal(&server).await["result"],
        "[secret mine]",
        "the file's value still serves"
    );
}

/// The whole audit trail, as the export gives it.
async fn audit_export(server: &ServerProcess) -> String {
    get_text(server, ADMIN_TOKEN, "/v1/audit/export").await
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_marked_secret_never_reach_the_audit_trail() {
    // echo's manifest marks `check`'s message secret.
    const ARGUMENT: &str = "card 4111-1111-1111-1111";
    let server = ServerProcess::start("", &["echo"]);
    let args = json!({ "ok": true, "message": ARGUMENT });
    let (status, _) = invoke(&server, AGENT_TOKEN, "echo.check", args.clone()).await;
    assert_eq!(status, 200);
    let session = mcp_open(&server).await.expect("a session opens");
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "echo.check", "arguments": args } });
    let answer = mcp_post(&server, &client(), Some(&session), call).await;
    assert_eq!(answer.status(), 200);
    // The answer (an event stream) ends once the call is done and recorded.
    assert!(answer.text().await.unwrap().contains("isError"));
    let export = audit_export(&server).await;
    assert_eq!(export.matches("\"tool\":\"echo.check\"").count(), 2, "{export}");
    assert!(!export.contains("4111"), "{export}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_cannot_let_out_a_secret_it_was_handed() {
    let server = ServerProcess::start(&config(""), &["secret-thief"]);
    let (status, body) = invoke(&server, AGENT_TOKEN, "secret-thief.leak", json!({ "name": "mine" })).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains(VALUE), "the answer: {body}");
    assert!(
        body.to_string().contains("upstream refused key [secret mine]"),
        "{body}"
    );
    let result = steal(&server).await;
    assert!(!result.to_string().contains(VALUE), "{result}");

    // The log shows that it tried, not what.
    let log = server.log();
    assert!(!log.contains(VALUE), "the host log shows the value");
    for line in [
        "auth failed with key=[secret mine]",
        "stdout key=[secret mine]",
        "stderr key=[secret mine]",
    ] {
        assert!(log.contains(line), "{line} not in the log");
    }

    // The audit trail: masked, with where it tried.
    let export = audit_export(&server).await;
    assert!(!export.contains(VALUE), "the audit trail shows the value");
    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=secret-thief.leak").await;
    let echoes = &page["records"][0]["secret_echoes"];
    assert_eq!(
        echoes,
        &json!([{ "secret": "mine", "into": "log" }, { "secret": "mine", "into": "error" }])
    );
    let (_, page) = get_json(&server, ADMIN_TOKEN, "/v1/audit?tool=secret-thief.steal").await;
    assert_eq!(
        page["records"][0]["secret_echoes"],
        json!([{ "secret": "mine", "into": "result" }])
    );
}
