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
    // The whole number: a record's id is random digits, and may hold any
    // four of them.
    assert!(!export.contains("4111-1111-1111-1111"), "{export}");
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

/// A value no other text in these tests holds, nor any six bytes of it.
const PLANTED: &str = "Zq8vK2mW9xPt4LrB";

/// Whether `text` holds any six bytes of [`PLANTED`] in a row, in any
/// ASCII case: a part of the value a cut left, or the host's lower-casing.
fn leaks(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let planted = PLANTED.to_ascii_lowercase();
    (0..=planted.len() - 6).any(|i| text.contains(&planted[i..i + 6]))
}

/// `secret-thief.probe` letting [`PLANTED`] out `how`, after `pad` bytes.
async fn probe(server: &ServerProcess, how: &str, arg: &str, pad: usize) -> Value {
    let args = json!({ "name": "mine", "how": how, "arg": arg, "pad": pad });
    let (_, body) = invoke(server, AGENT_TOKEN, "secret-thief.probe", args).await;
    body
}

/// Every way the host itself writes what a connector did — a refusal's
/// detail, a panic or stderr excerpt, a stdout or stderr line, a URL's
/// path, a value laundered through kv — is masked before it is cut, in
/// the answer, the audit trail and the log. Each case puts the value where
/// a cut falls (straddling it, or ending just at it).
#[tokio::test(flavor = "multi_thread")]
async fn what_the_host_writes_of_a_call_is_masked_before_it_is_cut() {
    let upstream = upstream_with_slow(std::time::Duration::ZERO).await;
    let config = format!(
        "[plugins.secret-thief]\nsecrets = {{ mine = {{ value = \"{PLANTED}\" }} }}\nhttp = [{{ origin = \"http://{upstream}\" }}]\n"
    );
    let server = ServerProcess::start(&config, &["secret-thief"]);
    let n = PLANTED.len();
    // (how, arg, pad): the cut each one meets.
    let cases: Vec<(&str, String, usize)> = vec![
        // A denial's detail is cut at 256 bytes: `secret "x` + pad + value.
        ("deny-secret", String::new(), 256 - 9 - n / 2),
        ("deny-secret", String::new(), 256 - 9 - n),
        // The host names a refused host in lower case.
        ("deny-host", String::new(), 0),
        // The path of a request the grant allows is kept in the record.
        ("path", format!("http://{upstream}"), 0),
        // A panic's message is cut at 1,024 bytes.
        ("panic", String::new(), 1024 - n / 2),
        ("panic", String::new(), 1024 - n),
        // The stderr excerpt is the last 512 bytes: the value straddles
        // its start.
        ("stderr", "#".repeat(512 - n / 2), 0),
        // A stdout and stderr line is cut at 2,048 bytes.
        ("line", String::new(), 2048 - n / 2),
        ("line", String::new(), 2048 - n),
        // Stashed in kv by a call that was handed it...
        ("stash", "loot".into(), 0),
    ];
    for (how, arg, pad) in &cases {
        let body = probe(&server, how, arg, *pad).await;
        assert!(!leaks(&body.to_string()), "{how} (pad {pad}): the answer: {body}");
    }
    // ...and given back by one that was handed nothing.
    let (status, body) = invoke(&server, AGENT_TOKEN, "secret-thief.unstash", json!({ "key": "loot" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "[secret mine]");

    let export = audit_export(&server).await;
    assert!(!leaks(&export), "the audit trail shows the value");
    assert!(export.contains("bot[secret mine]/send"), "the path, masked");
    assert!(export.contains(r#"{"secret":"mine","into":"denial"}"#), "{export}");
    let log = server.log();
    let leaked: Vec<&str> = log.lines().filter(|line| leaks(line)).collect();
    assert!(leaked.is_empty(), "the host log shows the value: {leaked:?}");
    // What was written still says what it was, masked.
    for seen in ["[secret mine]", "capability denied", "panicked at"] {
        assert!(log.contains(seen), "{seen} not in the log");
    }
}

/// A connector's log line is one record of the host's log whatever it
/// holds: a newline in it cannot start a line the host seems to have
/// written.
#[tokio::test(flavor = "multi_thread")]
async fn a_connector_cannot_forge_a_line_of_the_host_log() {
    let server = ServerProcess::start(&config(""), &["secret-thief"]);
    let forged = "FORGED-7f3a: the admin token is revoked";
    let text = format!("ordinary\n2026-12-07T00:00:00.000000Z  WARN toolhost::server: {forged}\r\x1b[2Jdone");
    let (status, body) = invoke(&server, AGENT_TOKEN, "secret-thief.say", json!({ "text": text })).await;
    assert_eq!(status, 200, "{body}");
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(forged)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    assert!(
        line.contains("connector") && line.contains("plugin=\"secret-thief\""),
        "{line}"
    );
    assert!(line.contains("ordinary\\n2026-12-07T00:00:00.000000Z"), "{line}");
    assert!(line.contains("\\r\\x1b[2Jdone"), "{line}");
}
