//! What a workflow may spend (issue 29): a document nested too deep is
//! refused at upload and at load and the host serves on; a run's
//! expressions stop at their budget with `toolhost:errors/workflow-budget`
//! (422) while the host answers meanwhile; a cancel stops a run that only
//! computes; a loop's tool calls spend the caller's rate.

use std::time::Duration;

use serde_json::{json, Value};
use toolhost_tests::{
    cancel_run, client, echo_check, get_json, invoke, invoke_in_background, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN,
};

/// A workflow named `name` whose one task sets `n` to jq `expr`.
fn computing(name: &str, expr: &str) -> String {
    format!(
        "document: {{ dsl: '1.0.0', namespace: toolhost-tests, name: {name}, version: '1.0.0' }}\n\
         do:\n  - compute:\n      set:\n        n: '${{ {expr} }}'\n"
    )
}

/// A `for` over the agent's items, each turn computing a little.
const EACH_ITEM: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: each-item, version: '1.0.0' }
do:
  - count:
      for: { each: item, in: '${ .items }', at: i }
      do:
        - add:
            set:
              n: '${ [range(50)] | length + $i }'
"#;

/// A `for` of tool calls over the agent's items.
const CALL_EACH: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: call-each, version: '1.0.0' }
do:
  - check:
      for: { each: item, in: '${ .items }' }
      do:
        - one:
            call: echo.check
            with: { ok: true, message: '${ $item }' }
"#;

fn write_workflow(plugins: &std::path::Path, name: &str, document: &str) {
    std::fs::create_dir(plugins.join(name)).unwrap();
    std::fs::write(plugins.join(name).join("workflow.yaml"), document).unwrap();
}

fn server(config: &str) -> ServerProcess {
    ServerProcess::start_prepared(config, |plugins| {
        std::os::unix::fs::symlink(toolhost_tests::guest("echo"), plugins.join("echo")).unwrap();
        write_workflow(
            plugins,
            "sum-range",
            &computing("sum-range", "reduce range(1e8) as $i (0; . + $i)"),
        );
        write_workflow(plugins, "big-array", &computing("big-array", "[range(1e7)] | length"));
        write_workflow(plugins, "each-item", EACH_ITEM);
        write_workflow(plugins, "call-each", CALL_EACH);
        write_workflow(
            plugins,
            "spin",
            &computing("spin", "reduce range(1e15) as $i (0; . + 1)"),
        );
    })
}

/// The 1,000-deep expression of the issue: 2 KB of brackets.
fn deep_document(name: &str) -> String {
    let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
    computing(name, &deep)
}

/// `/healthz` answers while `work` runs; `work`'s result.
async fn healthy_during<T>(server: &ServerProcess, work: impl std::future::Future<Output = T>) -> T {
    let health = server.url("/healthz");
    let probe = tokio::spawn(async move {
        let mut answered = 0u32;
        loop {
            let r = client().get(&health).timeout(Duration::from_secs(5)).send().await;
            assert_eq!(r.expect("/healthz answers").status(), 200);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if answered > 1_000_000 {
                return;
            }
        }
    });
    let out = work.await;
    assert!(!probe.is_finished(), "the health probe failed: {:?}", probe.await);
    probe.abort();
    out
}

fn problem(body: &Value) -> &Value {
    &body["error"]["problem"]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_nested_too_deep_is_refused_at_upload_and_load_and_the_host_serves_on() {
    let server = ServerProcess::start("", &["echo"]);
    let form = reqwest::multipart::Form::new().part("workflow", reqwest::multipart::Part::text(deep_document("deep")));
    let r = client()
        .put(server.url("/v1/plugins/deep"))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .expect("the host answers the upload");
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("deeper than the limit of 64"), "{body}");
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);

    // Dropped into the plugins folder: the watcher refuses it and the host
    // serves on.
    let plugins = server.dir.path().join("plugins");
    let staged = server.dir.path().join("deep-staged");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("workflow.yaml"), deep_document("deep")).unwrap();
    std::fs::rename(&staged, plugins.join("deep")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, trail) = get_json(&server, ADMIN_TOKEN, "/v1/audit?outcome=refused&limit=10").await;
        if trail.to_string().contains("deeper than the limit of 64") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never refused it: {trail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
    assert_eq!(client().get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_expressions_are_stopped_by_the_budget_while_the_host_answers() {
    let server = server("");
    for (workflow, why) in [("sum-range", "steps"), ("big-array", "steps")] {
        let (status, body) = healthy_during(&server, invoke(&server, AGENT_TOKEN, workflow, json!({}))).await;
        assert_eq!(status, 422, "{workflow}: {body}");
        assert_eq!(problem(&body)["type"], "toolhost:errors/workflow-budget", "{body}");
        assert!(problem(&body)["detail"].as_str().unwrap().contains(why), "{body}");
        assert!(body.get("retry_after").is_none(), "{body}");
    }

    // A huge `for` over the agent's list is cut by the bound on the run's
    // transitions, as the same problem, and other calls are answered
    // meanwhile.
    let items: Vec<u32> = (0..140_000).collect();
    let (status, body) = healthy_during(&server, async {
        let flood = invoke(&server, AGENT_TOKEN, "each-item", json!({ "items": items }));
        let (flood, trivial) = tokio::join!(flood, echo_check(&server, ADMIN_TOKEN));
        assert_eq!(trivial.0, 200, "{}", trivial.1);
        flood
    })
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(problem(&body)["type"], "toolhost:errors/workflow-budget", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_run_that_only_computes_stops_it() {
    // A budget no test would wait out: only the cancel can stop these runs.
    let server = server("[server]\nworkflow-steps = 1000000000000\nworkflow-eval-ms = 3600000\n");
    // Each run is cancelled the moment it can be listed, which may be
    // before its driver starts: a cancel then must still stop it.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        // The call answers 202 after its wait; the run is followed by id.
        let call = invoke_in_background(&server, "spin", json!({}));
        let run = loop {
            let (_, runs) = get_json(&server, ADMIN_TOKEN, "/v1/runs?limit=1").await;
            match runs["runs"][0]["id"].as_str() {
                Some(id) if !seen.contains(id) => break id.to_string(),
                _ => tokio::task::yield_now().await,
            }
        };
        seen.insert(run.clone());
        assert_eq!(cancel_run(&server, ADMIN_TOKEN, &run).await, 200);
        let (_, shown) = get_json(&server, ADMIN_TOKEN, &format!("/v1/runs/{run}")).await;
        assert_eq!(shown["run"]["state"], "cancelled", "{shown}");
        // The expression itself stops (its driver ends), and a call is
        // answered meanwhile.
        assert_eq!(echo_check(&server, AGENT_TOKEN).await.0, 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !server.log().contains(&format!("run {run} stopped")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run never stopped:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        call.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loops_tool_calls_spend_the_callers_rate() {
    let server = server("[server]\nrate-per-minute = 20\n\n[plugins.call-each]\ntools = [\"echo.check\"]\n");
    let items: Vec<String> = (0..40).map(|i| format!("item {i}")).collect();
    let (status, body) = invoke(&server, AGENT_TOKEN, "call-each", json!({ "items": items })).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(problem(&body)["type"], "toolhost:errors/resource-exhausted", "{body}");
    let run = body["run"].as_str().unwrap_or_default().to_string();
    let (_, trail) = get_json(
        &server,
        ADMIN_TOKEN,
        &format!("/v1/audit?run={run}&tool=echo.check&limit=100"),
    )
    .await;
    let records = trail["records"].as_array().unwrap();
    let ok = records.iter().filter(|r| r["outcome"] == "ok").count();
    let refused = records.iter().filter(|r| r["outcome"] == "resource_exhausted").count();
    // The token's budget of 20 a minute: the call itself took one.
    assert!(ok <= 20, "{ok} steps ran: {trail}");
    assert_eq!(refused, 1, "{trail}");
}
