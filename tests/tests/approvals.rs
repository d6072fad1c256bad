//! Held calls through the real server: a call the operator's rules hold
//! does not run until a reviewer approves it, runs once with what was
//! approved, and every step is in the audit trail under the conversation.
//! The side effect is a POST to a local upstream that counts what it got.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use toolhost_tests::{
    client, counting_upstream, decide, get_json, get_text, guest, held_id, netprobe_grant, serve, ServerProcess,
    ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN,
};

/// A second agent and a second reviewer, configured by digest.
const OTHER_AGENT: &str = "test-other-agent-token-0123456789";
const LEAD: &str = "test-lead-approver-token-0123456789";

fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn tokens() -> String {
    format!(
        "[[tokens]]\nname = \"other-agent\"\nrole = \"agent\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nname = \"lead\"\nrole = \"approver\"\nsha256 = \"{}\"\n\n",
        digest(OTHER_AGENT),
        digest(LEAD)
    )
}

fn fetch(method: &str, upstream: SocketAddr, path: &str) -> Value {
    json!({ "method": method, "url": format!("http://{upstream}{path}"), "host-header": null })
}

/// `POST /v1/tools/netprobe.fetch/invoke` with a session and maybe a key.
async fn call(server: &ServerProcess, token: &str, args: &Value, session: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = client()
        .post(server.url("/v1/tools/netprobe.fetch/invoke"))
        .bearer_auth(token)
        .header("x-session-id", session)
        .json(args);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn wait(server: &ServerProcess, token: &str, id: &str, secs: u64) -> (u16, Value) {
    let (status, body) = get_json(server, token, &format!("/v1/approvals/{id}?wait={secs}")).await;
    (status.as_u16(), body)
}

async fn session_trail(server: &ServerProcess, session: &str) -> Vec<Value> {
    let (_, page) = get_json(server, ADMIN_TOKEN, &format!("/v1/audit?session={session}")).await;
    let mut records = page["records"].as_array().unwrap().clone();
    records.reverse();
    records
}

fn outcomes(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["outcome"].as_str().unwrap()).collect()
}

const POSTS: &str =
    "[[approvals.rules]]\nname = \"posts\"\ntools = [\"netprobe.fetch\"]\nwhen = \"args.method == 'POST'\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_held_call_runs_once_after_approval_with_the_approved_arguments() {
    let (upstream, effects) = counting_upstream().await;
    let config = format!("{}{}{POSTS}", tokens(), netprobe_grant(upstream));
    let server = ServerProcess::start(&config, &["netprobe"]);

    // What the rule does not hold runs at once.
    let (status, body) = call(&server, AGENT_TOKEN, &fetch("GET", upstream, "/ok"), "conv-1", None).await;
    assert_eq!((status, &body["result"]), (200, &json!(200)), "{body}");

    // A POST is held: stored, answered 202, not run.
    let post = fetch("POST", upstream, "/effect");
    let (status, held) = call(&server, AGENT_TOKEN, &post, "conv-1", Some("key-1")).await;
    assert_eq!(status, 202, "{held}");
    let id = held_id(&held);
    assert_eq!(held["approval"]["state"], "pending");
    assert_eq!(held["approval"]["rule"], "posts");
    assert_eq!(held["approval"]["arguments"], post);
    assert_eq!(held["wait"], format!("/v1/approvals/{id}?wait=60"));
    assert_eq!(effects.load(Ordering::SeqCst), 0);

    // A retry with the same key gets the same approval, never a second one.
    let (status, again) = call(&server, AGENT_TOKEN, &post, "conv-1", Some("key-1")).await;
    assert_eq!((status, held_id(&again)), (202, id.clone()));
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    let queued: Vec<&str> = queue["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(queued, [id.as_str()]);

    // Only reviewers decide; another agent does not even see it; a reason is
    // required: one of only spaces is read and refused (422, the API's rule
    // for a value outside its bounds), one that is missing is unreadable (400).
    assert_eq!(decide(&server, AGENT_TOKEN, &id, "approve", "mine").await.0, 403);
    assert_eq!(get_json(&server, AGENT_TOKEN, "/v1/approvals").await.0, 403);
    assert_eq!(wait(&server, OTHER_AGENT, &id, 0).await.0, 404);
    assert_eq!(decide(&server, APPROVER_TOKEN, &id, "approve", "  ").await.0, 422);
    assert_eq!(decide(&server, APPROVER_TOKEN, &id, "approve", "").await.0, 422);
    let missing = client()
        .post(server.url(&format!("/v1/approvals/{id}/approve")))
        .bearer_auth(APPROVER_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    // Reviewers do not call tools.
    assert_eq!(call(&server, APPROVER_TOKEN, &post, "conv-x", None).await.0, 403);

    // The agent waits; the approval lets the call run, once, and the wait
    // returns its result as the call would have.
    let waiting = {
        let url = server.url(&format!("/v1/approvals/{id}?wait=30"));
        tokio::spawn(async move {
            let r = client().get(url).bearer_auth(AGENT_TOKEN).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, decided) = decide(&server, APPROVER_TOKEN, &id, "approve", "customer is premium").await;
    assert_eq!(status, 200, "{decided}");
    let (status, result) = waiting.await.unwrap();
    assert_eq!((status, &result["result"]), (200, &json!(200)), "{result}");
    assert_eq!(result["approval"], id);
    assert_eq!(result["decisions"][0]["by"], "approver");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Decided is decided; asking again returns the same answer and runs nothing.
    assert_eq!(decide(&server, APPROVER_TOKEN, &id, "approve", "again").await.0, 409);
    assert_eq!(decide(&server, ADMIN_TOKEN, &id, "reject", "too late").await.0, 409);
    let (status, again) = wait(&server, AGENT_TOKEN, &id, 0).await;
    assert_eq!((status, &again["audit_id"]), (200, &result["audit_id"]));
    let (status, replay) = call(&server, AGENT_TOKEN, &post, "conv-1", Some("key-1")).await;
    assert_eq!((status, held_id(&replay)), (202, id.clone()));
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // The conversation's trail: the GET, the hold, the decision, the call.
    let trail = session_trail(&server, "conv-1").await;
    assert_eq!(outcomes(&trail), ["ok", "held", "approved", "ok"]);
    for r in &trail[1..] {
        assert_eq!(r["approval"], id, "{r}");
    }
    assert_eq!(trail[1]["token"], "agent");
    assert_eq!(
        trail[1]["reason"].as_str().unwrap(),
        "rule \"posts\" (its condition is true)"
    );
    assert_eq!(
        (&trail[2]["token"], &trail[2]["reason"]),
        (&json!("approver"), &json!("customer is premium"))
    );
    assert_eq!(trail[3]["id"], result["audit_id"]);
    assert_eq!(trail[3]["outbound"][0]["method"], "POST");
    let (_, by_approval) = get_json(&server, APPROVER_TOKEN, &format!("/v1/audit?approval={id}")).await;
    assert_eq!(by_approval["records"].as_array().unwrap().len(), 3);

    let metrics = get_text(&server, ADMIN_TOKEN, "/metrics").await;
    for line in [
        "toolhost_approvals_total{tool=\"netprobe.fetch\",outcome=\"held\"} 1",
        "toolhost_approvals_total{tool=\"netprobe.fetch\",outcome=\"approved\"} 1",
        "toolhost_approvals_total{tool=\"netprobe.fetch\",outcome=\"executed\"} 1",
        "toolhost_approvals_pending 0",
        "toolhost_approval_decision_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn separation_of_duties_and_the_two_person_rule() {
    let (upstream, effects) = counting_upstream().await;
    let rule =
        "[[approvals.rules]]\nname = \"two people\"\ntools = [\"netprobe.*\"]\nhold = \"always\"\napprovers = 2\n";
    let config = format!("{}{}{rule}", tokens(), netprobe_grant(upstream));
    let server = ServerProcess::start(&config, &["netprobe"]);
    // An admin may call tools, but never approve its own call.
    let (status, held) = call(&server, ADMIN_TOKEN, &fetch("POST", upstream, "/effect"), "s-2", None).await;
    assert_eq!(status, 202, "{held}");
    let id = held_id(&held);
    let (status, refused) = decide(&server, ADMIN_TOKEN, &id, "approve", "looks fine").await;
    assert_eq!(
        (status, &refused["error"]["kind"]),
        (403, &json!("separation_of_duties"))
    );

    // One approval of two: still pending, nothing ran; the same reviewer twice does not count.
    let (status, first) = decide(&server, APPROVER_TOKEN, &id, "approve", "ok by me").await;
    assert_eq!(
        (status, &first["approval"]["state"]),
        (200, &json!("pending")),
        "{first}"
    );
    let (status, twice) = decide(&server, APPROVER_TOKEN, &id, "approve", "really ok").await;
    assert_eq!((status, &twice["error"]["kind"]), (409, &json!("already_approved")));
    assert_eq!(wait(&server, ADMIN_TOKEN, &id, 1).await.0, 202);
    assert_eq!(effects.load(Ordering::SeqCst), 0);

    let (status, second) = decide(&server, LEAD, &id, "approve", "second pair of eyes").await;
    assert_eq!(
        (status, &second["approval"]["state"]),
        (200, &json!("approved")),
        "{second}"
    );
    let (status, done) = wait(&server, ADMIN_TOKEN, &id, 30).await;
    assert_eq!((status, &done["result"]), (200, &json!(200)), "{done}");
    let by: Vec<&str> = done["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["approver", "lead"]);
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    assert_eq!(
        outcomes(&session_trail(&server, "s-2").await),
        ["held", "approved", "approved", "ok"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_or_expired_call_never_runs() {
    let (upstream, effects) = counting_upstream().await;
    let rules = "[[approvals.rules]]\nname = \"quick\"\ntools = [\"netprobe.fetch\"]\nwhen = \"args.url.endsWith('/effect?soon')\"\nexpiry-secs = 1\n\n\
                 [[approvals.rules]]\nname = \"all\"\ntools = [\"netprobe.*\"]\nhold = \"always\"\n";
    let server = ServerProcess::start(&format!("{}{rules}", netprobe_grant(upstream)), &["netprobe"]);

    let (_, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-3", None).await;
    let rejected = held_id(&held);
    let (status, _) = decide(
        &server,
        APPROVER_TOKEN,
        &rejected,
        "reject",
        "not covered by the contract",
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = wait(&server, AGENT_TOKEN, &rejected, 5).await;
    assert_eq!(
        (status, &answer["error"]["kind"]),
        (403, &json!("approval_rejected")),
        "{answer}"
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not covered by the contract"));
    assert_eq!(
        decide(&server, APPROVER_TOKEN, &rejected, "approve", "changed my mind")
            .await
            .0,
        409
    );

    // Nobody decides: the waiting agent hears of the expiry when it comes.
    let (_, held) = call(
        &server,
        AGENT_TOKEN,
        &fetch("POST", upstream, "/effect?soon"),
        "s-3",
        None,
    )
    .await;
    assert_eq!(held["approval"]["rule"], "quick");
    let expiring = held_id(&held);
    let (status, answer) = wait(&server, AGENT_TOKEN, &expiring, 10).await;
    assert_eq!(
        (status, &answer["error"]["kind"]),
        (410, &json!("approval_expired")),
        "{answer}"
    );
    let (status, late) = decide(&server, APPROVER_TOKEN, &expiring, "approve", "sorry, was at lunch").await;
    assert_eq!((status, &late["error"]["kind"]), (409, &json!("approval_decided")));

    assert_eq!(effects.load(Ordering::SeqCst), 0);
    assert_eq!(
        outcomes(&session_trail(&server, "s-3").await),
        ["held", "rejected", "held", "expired"]
    );
}

/// A component that is the same guest with a custom section added: another
/// digest, so the host treats it as another version.
fn recompiled(wasm: &[u8]) -> Vec<u8> {
    let name = b"toolhost-test";
    let mut out = wasm.to_vec();
    out.extend_from_slice(&[
        0,
        u8::try_from(1 + name.len() + 4).unwrap(),
        u8::try_from(name.len()).unwrap(),
    ]);
    out.extend_from_slice(name);
    out.extend_from_slice(&7u32.to_le_bytes());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_between_hold_and_approval_lapses_it() {
    let (upstream, effects) = counting_upstream().await;
    let server = ServerProcess::start(&format!("{}{POSTS}", netprobe_grant(upstream)), &["netprobe"]);
    let (_, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-4", None).await;
    let id = held_id(&held);

    let bundle = guest("netprobe");
    let form = Form::new()
        .part(
            "manifest",
            Part::text(std::fs::read_to_string(bundle.join("connector.toml")).unwrap()),
        )
        .part(
            "component",
            Part::bytes(recompiled(&std::fs::read(bundle.join("netprobe.wasm")).unwrap())).file_name("c.wasm"),
        );
    let r = client()
        .put(server.url("/v1/plugins/netprobe"))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(decide(&server, APPROVER_TOKEN, &id, "approve", "fine").await.0, 200);
    let (status, answer) = wait(&server, AGENT_TOKEN, &id, 30).await;
    assert_eq!(
        (status, &answer["error"]["kind"]),
        (409, &json!("approval_lapsed")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("plugin changed"),
        "{answer}"
    );
    assert_eq!(effects.load(Ordering::SeqCst), 0);
    assert_eq!(
        outcomes(&session_trail(&server, "s-4").await),
        ["held", "approved", "lapsed"]
    );
    // Asked again, the call is held anew, for the version that serves now.
    let (status, again) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-4", None).await;
    assert_eq!(status, 202);
    assert_ne!(again["approval"]["plugin_digest"], held["approval"]["plugin_digest"]);
}

/// Decisions taken just before a crash, written by the host's own code over
/// the stopped host's files (the state a crash between deciding and running
/// leaves): one approved and not yet running, one caught running.
async fn decide_offline(data: &std::path::Path, approved: &str, running: &str) {
    use toolhost::app::approvals::Approvals;
    use toolhost::config::approvals::ApprovalConfig;
    use toolhost::model::approval::Verdict;
    use toolhost::policy::approvals::ApprovalPolicy;
    let storage = toolhost::storage::Storage::open(&data.join("db")).unwrap();
    let audit = Arc::new(toolhost::audit::AuditLog::open(&storage).unwrap());
    let approvals = Approvals::new(
        ApprovalPolicy::new(ApprovalConfig::default()).unwrap(),
        storage.clone(),
        audit,
        Arc::default(),
        None,
    );
    for id in [approved, running] {
        let a = approvals.decide(id, "approver", Verdict::Approve, "ok").await.unwrap();
        assert_eq!(a.state.as_str(), "approved");
    }
    assert!(approvals.begin_execution(running).await.unwrap().is_some());
    storage.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_survive_a_crash_and_run_exactly_once() {
    let (upstream, effects) = counting_upstream().await;
    let mut server = ServerProcess::start(&format!("{}{POSTS}", netprobe_grant(upstream)), &["netprobe"]);
    let mut ids = Vec::new();
    for session in ["a", "b", "c"] {
        let (status, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), session, None).await;
        assert_eq!(status, 202);
        ids.push(held_id(&held));
    }
    server.crash();
    decide_offline(&server.dir.path().join("data"), &ids[0], &ids[1]).await;

    server.start_again();
    // Approved before the crash: runs after it.
    let (status, ran) = wait(&server, AGENT_TOKEN, &ids[0], 30).await;
    assert_eq!((status, &ran["result"]), (200, &json!(200)), "{ran}");
    // Caught running: closed, never run a second time.
    let (status, cut) = wait(&server, AGENT_TOKEN, &ids[1], 5).await;
    assert_eq!((status, &cut["error"]["kind"]), (500, &json!("interrupted")), "{cut}");
    // Pending before the crash: still pending, and decidable.
    assert_eq!(wait(&server, AGENT_TOKEN, &ids[2], 0).await.0, 202);
    assert_eq!(decide(&server, APPROVER_TOKEN, &ids[2], "approve", "ok").await.0, 200);
    assert_eq!(wait(&server, AGENT_TOKEN, &ids[2], 30).await.0, 200);
    assert_eq!(effects.load(Ordering::SeqCst), 2);

    // Nothing runs twice across another crash.
    server.crash();
    server.start_again();
    for id in &ids {
        assert_ne!(wait(&server, AGENT_TOKEN, id, 0).await.0, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(effects.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_call_in_five_is_sampled_and_a_retry_is_not_resampled() {
    let rule = "[server]\nrate-per-minute = 100000\n\n[[approvals.rules]]\nname = \"spot checks\"\ntools = [\"echo.*\"]\nsample = 0.2\n";
    let server = ServerProcess::start(rule, &["echo"]);
    let check = |i: usize| {
        let url = server.url("/v1/tools/echo.check/invoke");
        async move {
            let r = client()
                .post(url)
                .bearer_auth(AGENT_TOKEN)
                .json(&json!({ "ok": true, "message": format!("call {i}") }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let statuses: Vec<u16> = futures::stream::iter(0..1000).map(check).buffered(16).collect().await;
    assert!(statuses.iter().all(|s| *s == 200 || *s == 202), "{statuses:?}");
    let held = statuses.iter().filter(|s| **s == 202).count();
    // Binomial(1000, 0.2): standard deviation 12.6; 200 ± 50 is four of them.
    assert!((150..=250).contains(&held), "{held} of 1000 held");
    // The same call again draws the same: held ones are held, passed ones pass.
    let again: Vec<u16> = futures::stream::iter(0..100).map(check).buffered(16).collect().await;
    assert_eq!(again, statuses[..100]);
    // Each held call is an approval of its own (no Idempotency-Key binds a retry to the first).
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals?limit=1000").await;
    let held_again = again.iter().filter(|s| **s == 202).count();
    assert_eq!(queue["approvals"].as_array().unwrap().len(), held + held_again);
    assert_eq!(queue["approvals"][0]["reason"], "sampled");
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_set_through_the_api_are_checked_durable_and_shown_per_tool() {
    let (upstream, effects) = counting_upstream().await;
    let mut server = ServerProcess::start(&netprobe_grant(upstream), &["netprobe", "plugins/coupon"]);
    let summary = |tools: &Value, name: &str| {
        tools.as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["approval"].clone()
    };

    // Defaults: a high-risk tool waits, others do not.
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(summary(&tools, "coupon.issue-voucher"), "always");
    assert_eq!(summary(&tools, "coupon.list-vouchers"), "never");
    assert_eq!(summary(&tools, "netprobe.fetch"), "never");
    assert_eq!(
        call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-6", None)
            .await
            .0,
        200
    );

    let put = |token: &'static str, body: Value| {
        let url = server.url("/v1/approvals/rules");
        async move {
            let r = client().put(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let rules = json!({ "expiry-secs": 600, "rules": [
        { "name": "posts", "tools": ["netprobe.fetch"], "when": "args.method == 'POST'" },
        { "name": "vouchers", "tools": ["coupon.*"], "hold": "never" },
    ]});
    assert_eq!(put(APPROVER_TOKEN, rules.clone()).await.0, 403);
    let (status, refused) = put(
        ADMIN_TOKEN,
        json!({ "rules": [{ "name": "broken", "tools": ["*"], "when": "args.amount >" }] }),
    )
    .await;
    assert_eq!(
        (status, &refused["error"]["kind"]),
        (422, &json!("invalid_rules")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("\"broken\""),
        "{refused}"
    );
    let (status, _) = put(
        ADMIN_TOKEN,
        json!({ "rules": [{ "name": "x", "tools": ["*"], "sample": 2 }] }),
    )
    .await;
    assert_eq!(status, 422);
    // Refused rules changed nothing.
    assert_eq!(
        call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-6", None)
            .await
            .0,
        200
    );

    let (status, set) = put(ADMIN_TOKEN, rules.clone()).await;
    assert_eq!(status, 200, "{set}");
    // Applied to the next call, and shown per tool.
    assert_eq!(
        call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-6", None)
            .await
            .0,
        202
    );
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(summary(&tools, "netprobe.fetch"), "conditional");
    assert_eq!(summary(&tools, "coupon.issue-voucher"), "never");

    // An array is no set of rules: serde would read `[]` as all defaults,
    // no rules at all, and replace those in force.
    let (status, refused) = put(ADMIN_TOKEN, json!([])).await;
    assert_eq!(status, 400, "{refused}");
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(summary(&tools, "netprobe.fetch"), "conditional");

    // Durable: a restart keeps them.
    server.restart();
    let (_, kept) = get_json(&server, APPROVER_TOKEN, "/v1/approvals/rules").await;
    let shape = |rules: &Value| -> Vec<Value> {
        rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["name"], r["when"], r["hold"]]))
            .collect()
    };
    assert_eq!(shape(&kept["rules"]), shape(&rules["rules"]));
    assert_eq!(kept["expiry-secs"], 600);
    let (status, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-6", None).await;
    assert_eq!(status, 202);
    assert_eq!(held["approval"]["rule"], "posts");
    assert_eq!(effects.load(Ordering::SeqCst), 2);
    // The pending approval from before the restart is still in the queue.
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    assert_eq!(queue["approvals"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_approval_rules_in_the_file_stop_the_start_with_the_rule_named() {
    let dir = toolhost_tests::Scratch::new("bad-rules");
    std::fs::write(
        dir.path().join("toolhost.toml"),
        "[[approvals.rules]]\nname = \"typo\"\ntools = [\"coupon.*\"]\nwhen = \"args.amount >>> 5\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(toolhost_tests::toolhost_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"typo\"") && stderr.contains("does not parse"),
        "{stderr}"
    );
}

/// Listing and finding approvals: bad queries are refused, unknown ids
/// are not found.
#[tokio::test(flavor = "multi_thread")]
async fn the_queue_pages_and_refuses_what_it_does_not_know() {
    let (upstream, _) = counting_upstream().await;
    let server = ServerProcess::start(&format!("{}{POSTS}", netprobe_grant(upstream)), &["netprobe"]);
    let (_, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "s-8", None).await;
    let id = held_id(&held);
    let (_, all) = get_json(&server, ADMIN_TOKEN, "/v1/approvals?state=all&limit=10").await;
    assert_eq!(all["approvals"][0]["id"], id);
    assert_eq!(get_json(&server, ADMIN_TOKEN, "/v1/approvals?state=maybe").await.0, 400);
    assert_eq!(get_json(&server, ADMIN_TOKEN, "/v1/approvals/nope").await.0, 404);
    assert_eq!(decide(&server, APPROVER_TOKEN, "nope", "approve", "x").await.0, 404);
}

/// A webhook receiver that never answers holds at most
/// `webhook::MAX_IN_FLIGHT` deliveries; the rest are dropped with an error
/// in the log, and held calls are still held and answered at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_hangs_holds_a_bounded_number_of_deliveries() {
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    let receiver = serve(Router::new().route(
        "/hook",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late"
            }
        }),
    ))
    .await;
    let config = format!(
        "[server]\nrate-per-minute = 100000\n\n[approvals.webhook]\nurl = \"http://{receiver}/hook\"\n\
         secret-env = \"TOOLHOST_WEBHOOK_SECRET\"\nattempts = 1\n\n\
         [[approvals.rules]]\nname = \"all\"\ntools = [\"echo.*\"]\nhold = \"always\"\n"
    );
    let server = ServerProcess::start(&config, &["echo"]);
    let bound = toolhost::app::approvals::webhook::MAX_IN_FLIGHT;
    let held = |i: usize| {
        let url = server.url("/v1/tools/echo.check/invoke");
        async move {
            let r = client()
                .post(url)
                .bearer_auth(AGENT_TOKEN)
                .json(&json!({ "ok": true, "message": format!("m{i}") }))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let statuses: Vec<u16> = futures::stream::iter(0..bound + 40)
        .map(held)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 202));
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while arrived.load(Ordering::SeqCst) < bound && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(arrived.load(Ordering::SeqCst), bound);
    let dropped = server.log().matches("this one is dropped").count();
    assert_eq!(dropped, 40, "{dropped} deliveries dropped");
}

/// `1 + 1 + ... > 0` with `terms` terms, for the calls it holds (POSTs):
/// `&&` over it and the method is 2 levels, the chain `terms` deep.
fn summing_rule(terms: usize) -> Value {
    let sum = vec!["1"; terms].join(" + ");
    json!({ "rules": [{
        "name": "sum",
        "tools": ["netprobe.fetch"],
        "when": format!("args.method == 'POST' && {sum} > 0"),
    }]})
}

async fn health(server: &ServerProcess) -> u16 {
    client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn put_rules(server: &ServerProcess, rules: &Value) -> (u16, Value) {
    let r = client()
        .put(server.url("/v1/approvals/rules"))
        .bearer_auth(ADMIN_TOKEN)
        .json(rules)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A condition is bounded in size and depth where it is given: the
/// 3,000-term rule that overflowed a worker's stack (on the next matching
/// call, and after every restart) is refused with the bound named; a rule
/// at the depth bound is taken and judges calls; the host serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_condition_over_its_size_or_depth_bound_is_refused_and_one_at_the_bound_works() {
    use toolhost::policy::condition::{MAX_CONDITION_BYTES, MAX_CONDITION_DEPTH};
    let (upstream, effects) = counting_upstream().await;
    let server = ServerProcess::start(&netprobe_grant(upstream), &["netprobe"]);

    let (status, body) = put_rules(&server, &summing_rule(3000)).await;
    assert_eq!(
        (status, &body["error"]["kind"]),
        (422, &json!("invalid_rules")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"sum\"") && message.contains(&format!("bound of {MAX_CONDITION_BYTES} bytes")),
        "{message}"
    );
    assert!(message.len() < 512, "the refusal quotes {} bytes", message.len());

    // Within the size bound, one level too deep.
    let (status, body) = put_rules(&server, &summing_rule(MAX_CONDITION_DEPTH - 1)).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("bound of {MAX_CONDITION_DEPTH} levels")),
        "{message}"
    );

    // At the bound: taken, and it judges each call.
    let (status, body) = put_rules(&server, &summing_rule(MAX_CONDITION_DEPTH - 2)).await;
    assert_eq!(status, 200, "{body}");
    let (status, held) = call(&server, AGENT_TOKEN, &fetch("POST", upstream, "/effect"), "deep", None).await;
    assert_eq!((status, &held["approval"]["rule"]), (202, &json!("sum")), "{held}");
    let (status, body) = call(&server, AGENT_TOKEN, &fetch("GET", upstream, "/ok"), "deep", None).await;
    assert_eq!((status, &body["result"]), (200, &json!(200)), "{body}");
    assert_eq!(effects.load(Ordering::SeqCst), 0, "the held POST did not run");
    assert_eq!(health(&server).await, 200);
}

/// A rule stored before the bounds existed (written into the store as an
/// older version would have) does not kill the host at start nor on the
/// calls it matches: it is not evaluated, the log says why, and the calls
/// it would judge are held for a person.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_condition_over_its_bound_holds_the_calls_it_would_judge() {
    let (upstream, effects) = counting_upstream().await;
    let mut server = ServerProcess::start(&netprobe_grant(upstream), &["netprobe"]);
    assert_eq!(health(&server).await, 200);
    // Stopped (cleanly or not: the store is opened and written below).
    server.stop();
    {
        let storage = toolhost::storage::Storage::open(&server.dir.path().join("data").join("db")).unwrap();
        let rules: toolhost::config::approvals::ApprovalConfig = serde_json::from_value(summing_rule(3000)).unwrap();
        storage.operator().set_approval_rules(&rules).await.unwrap();
        storage.flush().await.unwrap();
    }
    server.start_again();

    for method in ["GET", "POST"] {
        let (status, held) = call(&server, AGENT_TOKEN, &fetch(method, upstream, "/x"), "old", None).await;
        assert_eq!((status, &held["approval"]["rule"]), (202, &json!("sum")), "{held}");
        let detail = held["approval"]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("bound of 4096 bytes"), "{held}");
    }
    assert_eq!(effects.load(Ordering::SeqCst), 0);
    assert_eq!(health(&server).await, 200);
    let log = server.log();
    assert!(
        log.contains("approval rule \"sum\" is not used") && log.contains("4096"),
        "{log}"
    );
    // Replacing the rules through the API puts things right.
    let (status, body) = put_rules(&server, &summing_rule(3)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, AGENT_TOKEN, &fetch("GET", upstream, "/ok"), "old", None).await;
    assert_eq!(status, 200);
}
