//! Several `toolhost serve` processes on one PostgreSQL database (Debian's,
//! started by the test set-up on 127.0.0.1): what one node does, the others
//! see and serve, and what must happen once happens once whichever node
//! each request lands on.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolhost_tests::postgres::Postgres;
use toolhost_tests::{
    cancel_run, client, counting_upstream, counting_upstream_slow, decide, get_json, guest, held_id, invoke,
    invoke_in_background, named, netprobe_grant, put_grant, upload, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN,
    APPROVER_TOKEN,
};

/// `config` with `[storage]` pointing at `url`, as node `node`.
fn on_database(config: &str, url: &str, node: &str) -> String {
    format!("{config}\n[storage]\nurl = \"{url}\"\nnode = \"{node}\"\n")
}

/// Poll `check` until it holds; how long that took. Fails after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `echo.check` as the agent: the status.
async fn check(server: &ServerProcess) -> u16 {
    toolhost_tests::echo_check(server, AGENT_TOKEN).await.0.as_u16()
}

async fn plugin(server: &ServerProcess, name: &str) -> Value {
    let (_, plugins) = get_json(server, ADMIN_TOKEN, "/v1/plugins").await;
    named(&plugins, name).cloned().unwrap_or(Value::Null)
}

fn fetch(method: &str, url: String) -> Value {
    json!({ "method": method, "url": url, "host-header": null })
}

/// `POST /v1/tools/netprobe.fetch/invoke` with an `Idempotency-Key`.
async fn keyed(server: &ServerProcess, args: &Value, key: &str) -> reqwest::Response {
    client()
        .post(server.url("/v1/tools/netprobe.fetch/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .header("x-session-id", "keyed")
        .header("idempotency-key", key)
        .json(args)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_spread_over_two_nodes_agree_on_kv_idempotency_and_the_audit_trail() {
    let (upstream, effects) = counting_upstream_slow(Duration::from_millis(1500)).await;
    let url = Postgres::shared().database();
    let config = netprobe_grant(upstream);
    let a = ServerProcess::start(&on_database(&config, &url, "a"), &["netprobe", "kv-hog"]);
    let b = ServerProcess::start(&on_database(&config, &url, "b"), &["netprobe", "kv-hog"]);

    // kv: both nodes fill the same space at once; the quota (4 KiB) holds
    // for the two together, as it does for one node.
    let fill = |prefix: &str| json!({ "prefix": prefix, "count": 100, "size": 100 });
    let ((sa, ra), (sb, rb)) = tokio::join!(
        invoke(&a, AGENT_TOKEN, "kv-hog.fill", fill("a")),
        invoke(&b, AGENT_TOKEN, "kv-hog.fill", fill("b"))
    );
    assert_eq!((sa.as_u16(), sb.as_u16()), (200, 200), "{ra} {rb}");
    let written = ra["result"][0].as_u64().unwrap() + rb["result"][0].as_u64().unwrap();
    assert!((30..40).contains(&written), "{written} written: {ra} {rb}");
    // What one node wrote, the other reads.
    let (writer, reader) = if ra["result"][0].as_u64().unwrap() > 0 {
        ("a0", &b)
    } else {
        ("b0", &a)
    };
    let (_, size) = invoke(reader, AGENT_TOKEN, "kv-hog.size-of", json!({ "key": writer })).await;
    assert_eq!(size["result"], 100, "{size}");

    // Idempotency: a retry on b while the first call runs on a is told it
    // is in flight; once a has answered, b replays a's answer; the effect
    // happened once.
    let effect = fetch("POST", format!("http://{upstream}/effect"));
    let first = {
        let (effect, base) = (effect.clone(), a.base.clone());
        tokio::spawn(async move {
            client()
                .post(format!("{base}/v1/tools/netprobe.fetch/invoke"))
                .bearer_auth(AGENT_TOKEN)
                .header("x-session-id", "keyed")
                .header("idempotency-key", "k1")
                .json(&effect)
                .send()
                .await
                .unwrap()
        })
    };
    eventually("the first call's effect reached the upstream", || async {
        effects.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = keyed(&b, &effect, "k1").await;
    assert_eq!(second.status(), 409);
    assert_eq!(
        second.json::<Value>().await.unwrap()["error"]["kind"],
        "idempotency_in_flight"
    );
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let retry = keyed(&b, &effect, "k1").await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replay"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["audit_id"], first["audit_id"], "{retry}");
    // The same key with other arguments is refused on either node.
    let other = keyed(&a, &fetch("POST", format!("http://{upstream}/effect?x")), "k1").await;
    assert_eq!(other.status(), 422);
    assert_eq!(effects.load(Ordering::SeqCst), 1, "the effect happened once");

    // The audit trail: calls on both nodes, one conversation, found whole
    // from either node, newest first, with distinct ids.
    let ok = fetch("GET", format!("http://{upstream}/ok"));
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = client()
            .post(node.url("/v1/tools/netprobe.fetch/invoke"))
            .bearer_auth(AGENT_TOKEN)
            .header("x-session-id", "spread")
            .json(&ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for node in [&a, &b] {
        let (_, page) = get_json(node, ADMIN_TOKEN, "/v1/audit?session=spread").await;
        let records = page["records"].as_array().unwrap();
        assert_eq!(records.len(), 10, "{page}");
        let ids: Vec<u64> = records
            .iter()
            .map(|r| r["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "newest first, no id twice: {ids:?}"
        );
        let slots: std::collections::BTreeSet<u64> = ids.iter().map(|id| id & 0xff).collect();
        assert_eq!(slots.len(), 2, "each node makes ids of its own: {ids:?}");
    }
    let (_, keyed_trail) = get_json(&b, ADMIN_TOKEN, "/v1/audit?session=keyed").await;
    assert_eq!(
        keyed_trail["records"].as_array().unwrap().len(),
        1,
        "the replay is not a second call: {keyed_trail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_node_serves_on_the_other_and_a_node_started_later_pulls_what_serves() {
    let url = Postgres::shared().database();
    let a = ServerProcess::start(&on_database("", &url, "a"), &["echo"]);
    let b = ServerProcess::start(&on_database("", &url, "b"), &["echo"]);
    assert_eq!(check(&b).await, 200);

    // A grant changed on a is in force on b.
    let (status, body) = put_grant(&a, "echo", &json!({ "timeout-ms": 4321 })).await;
    assert_eq!(status, 200, "{body}");
    let grant = eventually("b has a's grant", || async {
        let (_, grants) = get_json(&b, ADMIN_TOKEN, "/v1/plugins/echo/grants").await;
        grants["operator"]["timeout-ms"] == 4321
    })
    .await;

    // Disabled on a: b refuses calls; enabled again: b serves.
    let disable = client()
        .post(a.url("/v1/plugins/echo/disable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), 200);
    let disabled = eventually("b refuses echo", || async { check(&b).await != 200 }).await;
    let enable = client()
        .post(a.url("/v1/plugins/echo/enable"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), 200);
    eventually("b serves echo again", || async { check(&b).await == 200 }).await;

    // A version uploaded to b serves on a; a rollback on a serves on b.
    let manifest = std::fs::read_to_string(guest("echo").join("connector.toml"))
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    let wasm = std::fs::read(guest("echo").join("echo.wasm")).unwrap();
    let (status, body) = upload(&b, "echo", manifest, wasm, None).await;
    assert_eq!(status, 200, "{body}");
    let uploaded = eventually("a serves 1.1.0", || async {
        plugin(&a, "echo").await["version"] == "1.1.0"
    })
    .await;
    assert_eq!(check(&a).await, 200);
    let rollback = client()
        .post(a.url("/v1/plugins/echo/rollback"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rollback.status(), 200);
    let rolled_back = eventually("b serves 1.0.0 again", || async {
        plugin(&b, "echo").await["version"] == "1.0.0"
    })
    .await;
    eprintln!(
        "a change on one node served by the other after: grant {grant:?}, disable {disabled:?}, \
         upload {uploaded:?}, rollback {rolled_back:?}"
    );

    // A node started later, its plugins folder empty, serves what the
    // others serve, with their grant, from the shared store.
    let c = ServerProcess::start(&on_database("", &url, "c"), &[]);
    assert_eq!(plugin(&c, "echo").await["version"], "1.0.0");
    assert_eq!(check(&c).await, 200);
    let (_, grants) = get_json(&c, ADMIN_TOKEN, "/v1/plugins/echo/grants").await;
    assert_eq!(grants["operator"]["timeout-ms"], 4321, "{grants}");
    let (_, ready) = get_json(&c, ADMIN_TOKEN, "/readyz").await;
    assert_eq!(ready["storage"]["backend"], "postgres", "{ready}");
    assert_eq!(ready["storage"]["node"], "c");
    assert_eq!(ready["storage"]["database"]["ok"], true);
    // What changed on the other nodes is counted.
    let metrics = toolhost_tests::get_text(&b, ADMIN_TOKEN, "/metrics").await;
    assert!(
        metrics.contains("toolhost_replication_changes_heard_total{kind=\"plugin\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("toolhost_storage_connections{state=\"max\"} 16"),
        "{metrics}"
    );

    // Removed on c: no node serves it any more (the history the nodes
    // reconcile with names no version).
    let removed = client()
        .delete(c.url("/v1/plugins/echo"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16() / 100, 2);
    for node in [&a, &b] {
        eventually("the others stop serving echo", || async {
            plugin(node, "echo").await.is_null()
        })
        .await;
        assert_ne!(check(node).await, 200);
    }
}

const POSTS: &str =
    "[[approvals.rules]]\nname = \"posts\"\ntools = [\"netprobe.fetch\"]\nwhen = \"args.method == 'POST'\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_held_on_one_node_and_decided_on_the_other_runs_once() {
    let (upstream, effects) = counting_upstream().await;
    let url = Postgres::shared().database();
    let config = format!("{}{POSTS}", netprobe_grant(upstream));
    let a = ServerProcess::start(&on_database(&config, &url, "a"), &["netprobe"]);
    let b = ServerProcess::start(&on_database(&config, &url, "b"), &["netprobe"]);
    let effect = fetch("POST", format!("http://{upstream}/effect"));

    // Held on a; the agent waits on a; the reviewer decides on b.
    let (status, held) = invoke(&a, AGENT_TOKEN, "netprobe.fetch", effect.clone()).await;
    assert_eq!(status.as_u16(), 202, "{held}");
    let id = held_id(&held);
    let (_, queue) = get_json(&b, APPROVER_TOKEN, "/v1/approvals?state=pending").await;
    assert!(
        queue.to_string().contains(&id),
        "b's queue shows a's held call: {queue}"
    );
    let waiting = {
        let url = a.url(&format!("/v1/approvals/{id}?wait=30"));
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(AGENT_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, decided) = decide(&b, APPROVER_TOKEN, &id, "approve", "fine on b").await;
    assert_eq!(status, 200, "{decided}");
    let answer = waiting.await.unwrap();
    // The agent's wait on a ends with the call's own answer, run once.
    assert_eq!(answer["result"], 200, "a's waiter heard b's decision: {answer}");
    assert_eq!(answer["decisions"][0]["by"], "approver", "{answer}");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Two reviewers decide one held call on both nodes at the same moment:
    // one decision wins, the call runs once.
    for round in 0..5 {
        let (_, held) = invoke(&b, AGENT_TOKEN, "netprobe.fetch", effect.clone()).await;
        let id = held_id(&held);
        let ((sa, ba), (sb, bb)) = tokio::join!(
            decide(&a, ADMIN_TOKEN, &id, "approve", "admin on a"),
            decide(&b, APPROVER_TOKEN, &id, "approve", "approver on b")
        );
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {ba} {bb}");
        let (_, done) = get_json(&a, AGENT_TOKEN, &format!("/v1/approvals/{id}?wait=30")).await;
        assert_eq!(done["result"], 200, "{done}");
        assert_eq!(done["decisions"].as_array().map(Vec::len), Some(1), "{done}");
        assert_eq!(effects.load(Ordering::SeqCst), 2 + round, "round {round}");
    }

    // Rules replaced on b hold on a: POSTs no longer wait.
    let rules = json!({ "expiry-secs": 600, "rules": [
        { "name": "posts", "tools": ["netprobe.fetch"], "hold": "never" },
    ]});
    let r = client()
        .put(b.url("/v1/approvals/rules"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("a has b's rules", || async {
        let (_, rules) = get_json(&a, APPROVER_TOKEN, "/v1/approvals/rules").await;
        rules["rules"][0]["hold"] == "never"
    })
    .await;
    let (status, body) = invoke(&a, AGENT_TOKEN, "netprobe.fetch", effect.clone()).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(effects.load(Ordering::SeqCst), 7);
}

/// Sessions ever opened on the database `url` names.
async fn sessions_opened(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    driver.abort();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_applies_another_nodes_rules_on_its_pooled_connections() {
    let url = Postgres::shared().database();
    let a = ServerProcess::start(&on_database("", &url, "a"), &[]);
    let b = ServerProcess::start(&on_database("", &url, "b"), &[]);
    let rules = |i: usize| json!({ "expiry-secs": 600 + i, "rules": [] });
    let put = |i: usize| {
        client()
            .put(a.url("/v1/approvals/rules"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&rules(i))
            .send()
    };
    let heard = |i: usize| {
        let b = &b;
        async move {
            let (_, rules) = get_json(b, APPROVER_TOKEN, "/v1/approvals/rules").await;
            rules["expiry-secs"] == 600 + i
        }
    };
    // Once, so that both pools hold what one change needs.
    assert_eq!(put(0).await.unwrap().status(), 200);
    eventually("b has a's first rules", || heard(0)).await;
    let before = sessions_opened(&url).await;

    // Each change is heard by b, which reads the rules again: through its
    // pool, not on a connection (and a thread and a runtime) of its own.
    const CHANGES: usize = 30;
    for i in 1..=CHANGES {
        assert_eq!(put(i).await.unwrap().status(), 200);
        eventually("b has a's rules", || heard(i)).await;
    }
    // One session here is this count's own; the pools may grow by a few.
    let opened = sessions_opened(&url).await - before;
    eprintln!("sessions opened over {CHANGES} rules changes: {opened}");
    assert!(opened < 5, "{opened} sessions opened for {CHANGES} rules reloads");
}

/// The id of the newest run once its first step is done.
async fn first_step_done(server: &ServerProcess) -> String {
    let start = Instant::now();
    loop {
        let (_, runs) = get_json(server, ADMIN_TOKEN, "/v1/runs").await;
        let mut shown = Value::Null;
        if let Some(id) = runs["runs"][0]["id"].as_str() {
            shown = get_json(server, ADMIN_TOKEN, &format!("/v1/runs/{id}")).await.1;
            if shown["run"]["steps"][0]["state"] == "done" {
                return id.to_string();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no run did its first step: {runs} {shown}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run with a step before and after a pause: long enough to kill its
/// node in the middle.
const SLOW_FILL: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: slow-fill, version: '1.0.0' }
do:
  - first:
      call: kv-hog.fill
      with: { prefix: run-first-, count: 1, size: 10 }
  - pause:
      wait: { milliseconds: 3000 }
  - second:
      call: kv-hog.fill
      with: { prefix: run-second-, count: 1, size: 10 }
  - report:
      set: { done: true }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_node_under_load_loses_no_acknowledged_write_and_its_run_finishes_on_the_other() {
    let url = Postgres::shared().database();
    let config = "[plugins.slow-fill]\ntools = [\"kv-hog.fill\"]\n";
    let node = |name: &str| {
        ServerProcess::start_prepared(&on_database(config, &url, name), |plugins| {
            std::os::unix::fs::symlink(guest("kv-hog"), plugins.join("kv-hog")).unwrap();
            std::fs::create_dir(plugins.join("slow-fill")).unwrap();
            std::fs::write(plugins.join("slow-fill/workflow.yaml"), SLOW_FILL).unwrap();
        })
    };
    let mut a = node("a");
    let b = node("b");
    let start_run = |a: &ServerProcess| invoke_in_background(a, "slow-fill", json!({}));

    // A run driven by a and cancelled on b stops on a: its second step
    // never runs.
    let cancelled = start_run(&a);
    let first = first_step_done(&b).await;
    assert_eq!(cancel_run(&b, ADMIN_TOKEN, &first).await, 200);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let (_, steps) = get_json(&b, ADMIN_TOKEN, &format!("/v1/audit?run={first}&tool=kv-hog.fill")).await;
    assert_eq!(steps["records"].as_array().unwrap().len(), 1, "{steps}");
    let (_, shown) = get_json(&a, ADMIN_TOKEN, &format!("/v1/runs/{first}")).await;
    assert_eq!(shown["run"]["state"], "cancelled", "{shown}");
    cancelled.abort();

    // A run starts on a and does its first step.
    let started = start_run(&a);
    let id = loop {
        let newest = first_step_done(&b).await;
        if newest != first {
            break newest;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Eight agents write to a at once, each key once; a is killed while
    // they do.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let writers: Vec<_> = (0..8)
        .map(|c| {
            let (url, acknowledged) = (a.url("/v1/tools/kv-hog.fill/invoke"), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    let prefix = format!("c{c}i{i}-");
                    let sent = client()
                        .post(&url)
                        .bearer_auth(AGENT_TOKEN)
                        .header("x-session-id", "load")
                        .json(&json!({ "prefix": prefix, "count": 1, "size": 1 }))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    if body["result"][0] == 1 {
                        let audit = body["audit_id"].as_str().unwrap().to_string();
                        acknowledged.lock().unwrap().push((format!("{prefix}0"), audit));
                    }
                }
            })
        })
        .collect();
    eventually("a has acknowledged 60 writes", || {
        let acknowledged = acknowledged.clone();
        async move { acknowledged.lock().unwrap().len() >= 60 }
    })
    .await;
    a.crash();
    for writer in writers {
        writer.await.unwrap();
    }
    started.abort();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 60 && acknowledged.len() < 320,
        "{}",
        acknowledged.len()
    );

    // Every acknowledged write, and its audit record, is there for b.
    let trail = toolhost_tests::get_text(&b, ADMIN_TOKEN, "/v1/audit/export?session=load").await;
    let recorded: std::collections::HashSet<String> = trail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (key, audit) in &acknowledged {
        assert!(recorded.contains(audit), "the audit record of {key} ({audit}) was lost");
        let (_, size) = invoke(&b, AGENT_TOKEN, "kv-hog.size-of", json!({ "key": key })).await;
        assert_eq!(size["result"], 1, "the write of {key} was lost: {size}");
    }

    // b takes the run over once a's lease has run out, and finishes it
    // without doing its first step again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let (_, shown) = get_json(&b, ADMIN_TOKEN, &format!("/v1/runs/{id}?wait=10")).await;
        if shown["run"]["state"] == "completed" || Instant::now() > deadline {
            break shown;
        }
    };
    assert_eq!(finished["run"]["state"], "completed", "{finished}");
    let (_, steps) = get_json(&b, ADMIN_TOKEN, &format!("/v1/audit?run={id}&tool=kv-hog.fill")).await;
    assert_eq!(
        steps["records"].as_array().unwrap().len(),
        2,
        "each step ran once: {steps}"
    );
    assert!(b.log().contains("took over 1 workflow run"), "{}", b.log());

    // a comes back: the calls it was running when killed are closed as
    // interrupted, by a alone.
    a.start_again();
    let trail = toolhost_tests::get_text(&b, ADMIN_TOKEN, "/v1/audit/export?session=load").await;
    assert!(!trail.contains("\"outcome\":\"running\""), "{trail}");
}
