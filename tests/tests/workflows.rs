//! Workflows end to end: the late-parcel reference workflow (plugins/
//! late-parcel) run by a real `toolhost serve` against the sample CRM, ERP
//! and carrier, through the four reference connectors, as one tool call.

use std::net::SocketAddr;

use sample_upstreams::records::{crm_case, erp_order, ledger_events};
use sample_upstreams::scenario::{toolhost_config, WORKFLOW_GRANT};
use sample_upstreams::Fault;
use serde_json::{json, Value};
use toolhost_tests::{
    cancel_run, decide, get_json, invoke, mcp_initialized, mcp_python, mcp_rpc, mcp_task_ended, named, newest_run,
    reference, repo_root, Scratch, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN,
};

async fn upstreams(dir: &Scratch) -> SocketAddr {
    sample_systems(dir).await.addr
}

/// The sample systems, with their fault switchboard.
async fn sample_systems(dir: &Scratch) -> sample_upstreams::Started {
    sample_upstreams::start(dir.path(), "127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap()
}

/// A second workflow, for what the reference one does not use: a `for` loop
/// over tool calls, a `wait`, and a `raise` that ends the run in a typed
/// error of the workflow's own.
const ORDER_TOTALS: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: order-totals, version: '1.0.0' }
input:
  schema:
    format: json
    document:
      type: object
      required: [orders, limit]
      properties:
        orders: { type: array, items: { type: string }, maxItems: 5 }
        limit: { type: integer }
do:
  - sum:
      for: { each: order, in: '${ .orders }', at: i }
      do:
        - get:
            call: erp.get-order
            with: { order-id: '${ $order }' }
            export:
              as: '$context + { total: (($context.total // 0) + .total["amount-minor"]), seen: (($context.seen // []) + [[$i, $order]]) }'
      # Sees the $context the loop's steps exported, and adds to it.
      export:
        as: '$context + { counted: true }'
  - pause:
      wait: { milliseconds: 300 }
  - check:
      switch:
        - over:
            when: '${ $context.total > $input.limit }'
            then: tooMuch
        - fine:
            then: report
  - tooMuch:
      raise:
        error:
          type: https://example.com/errors/over-limit
          status: 422
          title: Over the limit
          detail: '${ "the orders total \($context.total), over the limit of \($input.limit)" }'
  - report:
      set:
        total: '${ $context.total }'
        seen: '${ $context.seen }'
        counted: '${ $context.counted }'
"#;

/// A plan whose `then:` never lets it end: the engine's bound on task
/// transitions ends it.
const ENDLESS: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: endless, version: '1.0.0' }
do:
  - again:
      set: { round: 1 }
      then: again
"#;

/// A workflow whose output breaks the promise its output schema makes.
const MISFIT: &str = r#"
document: { dsl: '1.0.0', namespace: toolhost-tests, name: misfit, version: '1.0.0' }
output:
  schema: { type: object, required: [total], properties: { total: { type: integer } } }
  as: { total: many }
do:
  - nothing:
      set: { x: 1 }
"#;

/// Its grant, and a rule that holds the workflow's call itself when it
/// would sum more than four orders.
const ORDER_TOTALS_GRANT: &str = r#"
[plugins.order-totals]
tools = ["erp.get-order"]

[[approvals.rules]]
name = "totals of more than four orders"
tools = ["order-totals"]
when = "size(args.orders) > 4"
"#;

fn configuration(addr: SocketAddr, grant: &str) -> String {
    let keys = sample_upstreams::Keys::default();
    toolhost_config(addr, "/nordpost/v2", &keys.nordpost) + grant + ORDER_TOTALS_GRANT
}

fn toolhost(addr: SocketAddr, grant: &str) -> ServerProcess {
    start(&configuration(addr, grant))
}

fn start(config: &str) -> ServerProcess {
    ServerProcess::start_prepared(config, |plugins| {
        for name in ["crm", "erp", "logistics", "coupon"] {
            std::os::unix::fs::symlink(reference(name), plugins.join(name)).unwrap();
        }
        let workflow = plugins.join("late-parcel");
        std::fs::create_dir(&workflow).unwrap();
        std::fs::copy(
            repo_root().join("plugins/late-parcel/workflow.yaml"),
            workflow.join("workflow.yaml"),
        )
        .unwrap();
        std::fs::create_dir(plugins.join("order-totals")).unwrap();
        std::fs::write(plugins.join("order-totals/workflow.yaml"), ORDER_TOTALS).unwrap();
        for (name, document) in [("endless", ENDLESS), ("misfit", MISFIT)] {
            std::fs::create_dir(plugins.join(name)).unwrap();
            std::fs::write(plugins.join(name).join("workflow.yaml"), document).unwrap();
        }
    })
}

async fn complaint(server: &ServerProcess, order: &str) -> (reqwest::StatusCode, Value) {
    invoke(
        server,
        AGENT_TOKEN,
        "late-parcel",
        json!({ "order-id": order, "complaint": "Where is my parcel?" }),
    )
    .await
}

/// Wait for a run to end; its final answer.
async fn finished(server: &ServerProcess, run: &str) -> (reqwest::StatusCode, Value) {
    for _ in 0..10 {
        let (status, body) = get_json(server, AGENT_TOKEN, &format!("/v1/runs/{run}?wait=30")).await;
        if status != 202 {
            return (status, body);
        }
    }
    panic!("run {run} did not end");
}

async fn vouchers(server: &ServerProcess, customer: &str) -> Vec<Value> {
    let (_, list) = invoke(
        server,
        AGENT_TOKEN,
        "coupon.list-vouchers",
        json!({ "customer-id": customer }),
    )
    .await;
    list["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_late_parcel_workflow_compensates_by_the_contract_in_one_call() {
    let data = Scratch::new("wf-upstreams");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);

    // Listed like any tool, with the workflow's input schema.
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    let tool = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "late-parcel")
        .unwrap_or_else(|| panic!("late-parcel is not listed:\n{}", server.log()));
    assert_eq!(tool["parameters"]["required"], json!(["order-id", "complaint"]));

    // Bad input is refused before anything runs.
    let (status, body) = invoke(&server, AGENT_TOKEN, "late-parcel", json!({ "order-id": "SO-1001" })).await;
    assert_eq!(status, 422, "{body}");

    // SO-1001: premium contract, 52 h late → 2 started days past the 6 h
    // grace at 500 bps → 10 % of the order total, as a voucher.
    let (status, body) = complaint(&server, "SO-1001").await;
    assert_eq!(status, 200, "{body}");
    let out = &body["result"];
    let total = erp_order(addr, "SO-1001").await["total_cents"].as_i64().unwrap();
    assert_eq!(
        (out["hours-late"].as_u64(), out["compensation-bps"].as_u64()),
        (Some(52), Some(1000))
    );
    assert_eq!(out["compensation-minor"].as_i64(), Some(total / 10));
    let code = out["voucher"].as_str().expect("a voucher").to_string();
    let case = crm_case(addr, out["case-id"].as_str().unwrap()).await;
    assert_eq!(case["status"], "resolved");
    assert!(case["notes"].to_string().contains(&code), "{case}");

    // Every step is an audit record under the run, in order, then the run's own.
    let run = body["run"].as_str().unwrap().to_string();
    let (_, trail) = get_json(&server, ADMIN_TOKEN, &format!("/v1/audit?run={run}&limit=100")).await;
    let tools: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "erp.get-order",
            "crm.get-customer",
            "logistics.find-shipments",
            "logistics.report-delay",
            "erp.get-contract",
            "crm.open-case",
            "coupon.issue-voucher",
            "crm.add-note",
            "crm.set-case-status",
            "late-parcel"
        ]
    );
    // The run, step by step.
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["run"]["state"], "completed");
    assert_eq!(shown["run"]["steps"].as_array().unwrap().len(), 9);

    // Measured (debug build, loopback): the run's own time less the time
    // inside its tool calls, per step; and the scripted agent's nine HTTP
    // calls for the same complaint on the same host.
    let records = trail["records"].as_array().unwrap();
    let run_us = records[0]["duration_us"].as_u64().unwrap();
    let steps_us: u64 = records[1..].iter().map(|r| r["duration_us"].as_u64().unwrap()).sum();
    let started = std::time::Instant::now();
    let scripted = sample_upstreams::scenario::handle_complaint(&server.base, AGENT_TOKEN, "SO-1001", "Late!")
        .await
        .unwrap();
    eprintln!(
        "late-parcel workflow: run {:.1} ms, inside its 9 tool calls {:.1} ms, engine {:.2} ms per step; scripted agent: {} HTTP calls in {:.1} ms",
        run_us as f64 / 1e3,
        steps_us as f64 / 1e3,
        run_us.saturating_sub(steps_us) as f64 / 1e3 / 9.0,
        scripted.calls.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(scripted.voucher.as_deref(), Some(code.as_str()));

    // On time: a case, no voucher.
    let (status, body) = complaint(&server, "SO-1002").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["compensation-bps"], 0);
    assert_eq!(body["result"]["voucher"], Value::Null);

    // The same tool over MCP: listed, and called with the run's output as its result.
    let session = toolhost_tests::mcp_open(&server).await.expect("an MCP session");
    let http = toolhost_tests::client();
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "late-parcel", "arguments": { "order-id": "SO-1002", "complaint": "On time?" } } });
    let answer = toolhost_tests::mcp_post(&server, &http, Some(&session), call)
        .await
        .text()
        .await
        .unwrap();
    let data = answer
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok().filter(|v| v["id"] == 2))
        .unwrap_or_else(|| panic!("no answer to the call: {answer}"));
    assert_eq!(data["result"]["isError"], false, "{data}");
    let text: Value = serde_json::from_str(data["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        (text["order"].as_str(), text["compensation-bps"].as_u64()),
        (Some("SO-1002"), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_the_grant_does_not_name_is_denied_and_the_workflow_catches_it() {
    let data = Scratch::new("wf-grant");
    let addr = upstreams(&data).await;
    // No coupon.issue-voucher: the agent's token could call it, the workflow may not.
    let server = toolhost(
        addr,
        "\n[plugins.late-parcel]\ntools = [\"erp.*\", \"crm.*\", \"logistics.*\"]\n",
    );
    let (status, body) = complaint(&server, "SO-1001").await;
    // The voucher's denial is caught: the case records it and the run completes.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["voucher"], Value::Null);
    let failure = &body["result"]["voucher-failure"];
    assert_eq!(
        failure["type"],
        "https://serverlessworkflow.io/spec/1.0.0/errors/authorization"
    );
    assert!(vouchers(&server, "C-1001").await.is_empty());
    let (_, trail) = get_json(
        &server,
        ADMIN_TOKEN,
        &format!(
            "/v1/audit?run={}&tool=coupon.issue-voucher",
            body["run"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(trail["records"][0]["outcome"], "denied", "{trail}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_step_waits_durably_and_its_run_resumes_after_kill_9() {
    let data = Scratch::new("wf-crash");
    let addr = upstreams(&data).await;
    let mut server = toolhost(addr, WORKFLOW_GRANT);
    let lost_total = erp_order(addr, "SO-1003").await["total_cents"].as_i64().unwrap();

    // Lost parcel: the whole order, over the operator's threshold, so the
    // voucher step is held and the call answers 202 with the run.
    let (status, body) = complaint(&server, "SO-1003").await;
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let approval = body["waiting_on"].as_str().expect("waits on an approval").to_string();
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    assert_eq!(queue["approvals"][0]["run"], run.as_str(), "{queue}");

    // The host dies while the run waits; it comes back and the run with it.
    server.crash();
    server.start_again();
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(status, 202, "{shown}");
    assert_eq!(shown["run"]["state"], "waiting");

    let (status, decided) = decide(&server, APPROVER_TOKEN, &approval, "approve", "claim confirmed").await;
    assert_eq!(status, 200, "{decided}");
    let (status, body) = finished(&server, &run).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["compensation-minor"].as_i64(), Some(lost_total));
    let code = body["result"]["voucher"].as_str().unwrap();

    // Exactly one voucher and one case, and no step ran twice.
    let issued: Vec<Value> = vouchers(&server, "C-1001")
        .await
        .into_iter()
        .filter(|v| v["value"]["amount-minor"] == lost_total)
        .collect();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["code"], code);
    let (_, trail) = get_json(&server, ADMIN_TOKEN, &format!("/v1/audit?run={run}&limit=100")).await;
    let records = trail["records"].as_array().unwrap();
    let count = |tool: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r["tool"] == tool && r["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("crm.open-case", "ok"), 1);
    assert_eq!(count("coupon.issue-voucher", "ok"), 1);
    assert_eq!(count("coupon.issue-voucher", "held"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_withdraws_its_held_step_and_carries_out_nothing_more() {
    let data = Scratch::new("wf-cancel");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let (status, body) = complaint(&server, "SO-1003").await;
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let approval = body["waiting_on"].as_str().unwrap().to_string();

    assert_eq!(cancel_run(&server, AGENT_TOKEN, &run).await, 200);
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(status, 409, "{shown}");
    assert_eq!(shown["run"]["state"], "cancelled");
    assert_eq!(shown["run"]["cancelled_by"], "agent");

    // Its held step left the queue: a reviewer who approves it anyway (from
    // a page loaded before) is refused, and nothing is issued.
    let (_, queue) = get_json(&server, APPROVER_TOKEN, "/v1/approvals").await;
    assert_eq!(queue["approvals"], json!([]), "{queue}");
    let (status, shown) = get_json(&server, APPROVER_TOKEN, &format!("/v1/approvals/{approval}")).await;
    assert_eq!(status, 409, "{shown}");
    assert!(shown.to_string().contains("approval_lapsed"), "{shown}");
    assert!(shown.to_string().contains("was cancelled by agent"), "{shown}");
    let (status, refused) = decide(&server, APPROVER_TOKEN, &approval, "approve", "late").await;
    assert_eq!(status, 409, "{refused}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(vouchers(&server, "C-1001").await.is_empty());
    // Cancelling twice is a conflict.
    assert_eq!(cancel_run(&server, AGENT_TOKEN, &run).await, 409);
}

/// The audit records of one run: how many of `tool` ended with `outcome`.
async fn steps_ended(server: &ServerProcess, run: &str, tool: &str, outcome: &str) -> usize {
    let (_, trail) = get_json(
        server,
        ADMIN_TOKEN,
        &format!("/v1/audit?run={run}&tool={tool}&limit=100"),
    )
    .await;
    trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .count()
}

/// The CRM's cases about `order`.
async fn cases_about(addr: SocketAddr, order: &str) -> Vec<Value> {
    let cases = reqwest::Client::new()
        .get(format!("http://{addr}/crm/v1/customers/C-1001/cases"))
        .bearer_auth(sample_upstreams::Keys::default().crm)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["order_id"] == order)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_and_the_carrier_failing_take_the_workflows_error_paths() {
    let data = Scratch::new("wf-faults");
    let systems = sample_systems(&data).await;
    let (addr, faults) = (systems.addr, systems.faults.clone());
    let server = toolhost(addr, WORKFLOW_GRANT);
    let ledger_posts = || faults.seen("POST /ledger/v1/events");

    // The ledger fails for good: the voucher step is tried five times (one
    // call and four retries, with backoff), then its catch records on the
    // case that no voucher went out.
    faults.arm(Fault::Fail, "/ledger/", 5);
    let (status, body) = complaint(&server, "SO-1001").await;
    assert_eq!(status, 200, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    assert_eq!(ledger_posts(), 5);
    assert_eq!(body["result"]["voucher"], Value::Null);
    assert_eq!(body["result"]["voucher-failure"]["type"], "toolhost:errors/upstream");
    assert_eq!(
        steps_ended(&server, &run, "coupon.issue-voucher", "plugin_error").await,
        5
    );
    assert!(vouchers(&server, "C-1001").await.is_empty());
    assert!(ledger_events(addr, "late-parcel-SO-1001").await.is_empty());
    let case = crm_case(addr, body["result"]["case-id"].as_str().unwrap()).await;
    let notes = case["notes"].to_string();
    assert!(notes.contains("was not issued: upstream"), "{case}");
    assert_eq!(case["status"], "resolved");

    // The ledger fails twice, then recovers: the third try issues, once.
    faults.clear();
    faults.arm(Fault::Fail, "/ledger/", 2);
    let (status, body) = complaint(&server, "SO-1001").await;
    assert_eq!(status, 200, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    assert_eq!(ledger_posts(), 5 + 3);
    let code = body["result"]["voucher"].as_str().expect("a voucher after retries");
    assert_eq!(
        steps_ended(&server, &run, "coupon.issue-voucher", "plugin_error").await,
        2
    );
    assert_eq!(steps_ended(&server, &run, "coupon.issue-voucher", "ok").await, 1);
    let kept = ledger_events(addr, "late-parcel-SO-1001").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["code"], code);
    assert_eq!(vouchers(&server, "C-1001").await.len(), 1);

    // The carrier does not answer: each of the three tries times out, and
    // the case goes to a person with no compensation decided.
    faults.clear();
    let tracking = erp_order(addr, "SO-1002").await["tracking"][0]
        .as_str()
        .unwrap()
        .to_string();
    faults.arm(Fault::Hang, &format!("/nordpost/v2/parcels/{tracking}$"), 3);
    let (status, body) = complaint(&server, "SO-1002").await;
    faults.clear();
    assert_eq!(status, 200, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    assert_eq!(body["result"]["voucher"], Value::Null);
    assert!(
        body["result"]["decision"]
            .as_str()
            .unwrap()
            .starts_with("The carrier did not answer"),
        "{body}"
    );
    assert_eq!(steps_ended(&server, &run, "logistics.report-delay", "ok").await, 0);
    let (_, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    let tries = shown["run"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tool"] == "logistics.report-delay")
        .count();
    assert_eq!(tries, 3, "{shown}");
    let case = crm_case(addr, body["result"]["case-id"].as_str().unwrap()).await;
    assert!(case["notes"].to_string().contains("Referred to a person"), "{case}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_never_issues_a_second_voucher_or_opens_a_second_case() {
    let data = Scratch::new("wf-kill");
    let systems = sample_systems(&data).await;
    let (addr, faults) = (systems.addr, systems.faults.clone());
    let mut server = toolhost(addr, WORKFLOW_GRANT);
    let ledger_posts = || faults.seen("POST /ledger/v1/events");

    // 1. Right after the voucher step returned: the next request (the note
    // on the case) hangs, and the host is killed while it waits on it.
    faults.arm(Fault::Hang, "/notes", 1);
    // The call is cut off with the host; its run is followed by id below.
    let call = toolhost_tests::client()
        .post(server.url("/v1/tools/late-parcel/invoke"))
        .bearer_auth(AGENT_TOKEN)
        .json(&json!({ "order-id": "SO-1001", "complaint": "Late!" }))
        .send();
    let call = tokio::spawn(call);
    assert!(
        faults.wait_seen("/notes", 1, std::time::Duration::from_secs(60)).await,
        "the note was never sent"
    );
    let run = newest_run(&server).await;
    server.crash();
    faults.release();
    let _ = call.await;
    server.start_again();
    let (status, body) = finished(&server, &run).await;
    assert_eq!(status, 200, "{body}");
    let code = body["result"]["voucher"].as_str().unwrap().to_string();
    // The voucher step's result came from the journal: the ledger heard once.
    assert_eq!(ledger_posts(), 1);
    assert_eq!(steps_ended(&server, &run, "coupon.issue-voucher", "ok").await, 1);
    assert_eq!(ledger_events(addr, "late-parcel-SO-1001").await.len(), 1);
    let issued = vouchers(&server, "C-1001").await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["code"], code.as_str());
    let cases = cases_about(addr, "SO-1001").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    // The customer's words and the decision, once each.
    assert_eq!(cases[0]["notes"].as_array().unwrap().len(), 2, "{cases:?}");
    assert_eq!(cases[0]["status"], "resolved");

    // 2. While the voucher call is in flight: a reviewer approves the lost
    // parcel's voucher, the ledger records it but its answer never comes
    // back, and the host is killed. The step runs again with the same key:
    // the ledger keeps one entry, and the voucher carries its code.
    let lost_total = erp_order(addr, "SO-1003").await["total_cents"].as_i64().unwrap();
    faults.arm(Fault::HangAfter, "/ledger/", 1);
    let (status, body) = complaint(&server, "SO-1003").await;
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let approval = body["waiting_on"].as_str().unwrap().to_string();
    let (status, decided) = decide(&server, APPROVER_TOKEN, &approval, "approve", "claim confirmed").await;
    assert_eq!(status, 200, "{decided}");
    assert!(
        faults
            .wait_seen("POST /ledger/", 2, std::time::Duration::from_secs(60))
            .await,
        "the voucher was never reported"
    );
    for _ in 0..100 {
        if !ledger_events(addr, "late-parcel-SO-1003").await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.crash();
    faults.release();
    server.start_again();
    let (status, body) = finished(&server, &run).await;
    assert_eq!(status, 200, "{body}");
    let kept = ledger_events(addr, "late-parcel-SO-1003").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(ledger_posts(), 3, "the in-flight step ran again once");
    assert_eq!(body["result"]["voucher"], kept[0]["code"]);
    let issued: Vec<Value> = vouchers(&server, "C-1001")
        .await
        .into_iter()
        .filter(|v| v["value"]["amount-minor"] == lost_total)
        .collect();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["code"], kept[0]["code"]);
    assert_eq!(cases_about(addr, "SO-1003").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn loops_timers_and_raised_errors_run_as_written() {
    let data = Scratch::new("wf-loops");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let total = |order: &'static str| async move { erp_order(addr, order).await["total_cents"].as_i64().unwrap() };
    let sum = total("SO-1001").await + total("SO-1002").await + total("SO-1003").await;

    // A loop over three orders, one call each, then a timer; under the limit.
    let args = json!({ "orders": ["SO-1001", "SO-1002", "SO-1003"], "limit": sum });
    let (status, body) = invoke(&server, AGENT_TOKEN, "order-totals", args).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["total"].as_i64(), Some(sum));
    assert_eq!(
        body["result"]["seen"],
        json!([[0, "SO-1001"], [1, "SO-1002"], [2, "SO-1003"]])
    );
    assert_eq!(body["result"]["counted"], true, "{body}");
    // Each iteration is its own step in the journal (the loop index in its
    // key), and the timer is journaled with its end.
    let (_, shown) = get_json(
        &server,
        AGENT_TOKEN,
        &format!("/v1/runs/{}", body["run"].as_str().unwrap()),
    )
    .await;
    let steps = shown["run"]["steps"].as_array().unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 4, "{shown}");
    assert!(
        keys[0].ends_with("[0]") && keys[1].ends_with("[1]") && keys[2].ends_with("[2]"),
        "{keys:?}"
    );
    let idempotency: std::collections::HashSet<&str> = steps[..3]
        .iter()
        .map(|s| s["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(idempotency.len(), 3, "one key per iteration: {shown}");
    assert_eq!(steps[3]["kind"], "timer", "{shown}");
    assert!(steps[3]["until"].is_string(), "{shown}");

    // Over the limit: the workflow raises its own error, and the run fails
    // with it, as the call's answer.
    let args = json!({ "orders": ["SO-1001", "SO-1002"], "limit": 1 });
    let (status, body) = invoke(&server, AGENT_TOKEN, "order-totals", args).await;
    assert_eq!(status, 422, "{body}");
    let problem = &body["error"]["problem"];
    assert_eq!(problem["type"], "https://example.com/errors/over-limit", "{body}");
    assert!(
        problem["detail"].as_str().unwrap().ends_with("over the limit of 1"),
        "{body}"
    );
    let (_, trail) = get_json(
        &server,
        ADMIN_TOKEN,
        &format!("/v1/audit?run={}&tool=order-totals", body["run"].as_str().unwrap()),
    )
    .await;
    assert_eq!(trail["records"][0]["outcome"], "workflow_failed", "{trail}");

    // A plan that never ends by itself is ended by the bound on transitions.
    let (status, body) = invoke(&server, AGENT_TOKEN, "endless", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["problem"]["type"], "toolhost:errors/workflow-budget",
        "{body}"
    );
    let problem = &body["error"]["problem"];
    assert_eq!(problem["title"], "too many task transitions", "{body}");
    assert!(
        problem["detail"].as_str().unwrap().contains("more than 10000"),
        "{body}"
    );

    // A rule names the workflow itself: the call waits for a reviewer before
    // anything runs; once approved, its run (under the approval's id)
    // carries it out and its end is the approval's answer.
    let five = json!({ "orders": ["SO-1001", "SO-1002", "SO-1003", "SO-1001", "SO-1002"], "limit": 10 * sum });
    let (status, body) = invoke(&server, AGENT_TOKEN, "order-totals", five).await;
    assert_eq!(status, 202, "{body}");
    let approval = body["approval"]["id"]
        .as_str()
        .expect("held for a reviewer")
        .to_string();
    let (status, _) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{approval}")).await;
    assert_eq!(status, 404, "nothing runs before the decision");
    let (status, decided) = decide(&server, APPROVER_TOKEN, &approval, "approve", "five is fine").await;
    assert_eq!(status, 200, "{decided}");
    let (status, answer) = get_json(&server, AGENT_TOKEN, &format!("/v1/approvals/{approval}?wait=30")).await;
    assert_eq!(status, 200, "{answer}");
    let twice = 2 * total("SO-1001").await + 2 * total("SO-1002").await + total("SO-1003").await;
    assert_eq!(answer["result"]["total"].as_i64(), Some(twice), "{answer}");
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{approval}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["run"]["steps"].as_array().unwrap().len(), 6, "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_withholding_its_answer_times_the_voucher_out_and_the_retry_issues_it_once() {
    let data = Scratch::new("wf-timeout");
    let systems = sample_systems(&data).await;
    let (addr, faults) = (systems.addr, systems.faults.clone());
    // The coupon tool's own time limit, short: the withheld answer ends it.
    let config =
        configuration(addr, WORKFLOW_GRANT).replace("[plugins.coupon]\n", "[plugins.coupon]\ntimeout-ms = 1500\n");
    let server = start(&config);
    // The ledger keeps the voucher but its answer never comes: the call
    // times out (504), the workflow retries it with the same key, and the
    // ledger gives the voucher it kept back.
    faults.arm(Fault::HangAfter, "/ledger/", 1);
    let (status, body) = complaint(&server, "SO-1001").await;
    faults.release();
    assert_eq!(status, 200, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    assert_eq!(
        steps_ended(&server, &run, "coupon.issue-voucher", "timeout").await,
        1,
        "{body}"
    );
    assert_eq!(
        steps_ended(&server, &run, "coupon.issue-voucher", "ok").await,
        1,
        "{body}"
    );
    assert_eq!(faults.seen("POST /ledger/v1/events"), 2);
    let code = body["result"]["voucher"].as_str().expect("the voucher, from the retry");
    let kept = ledger_events(addr, "late-parcel-SO-1001").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["code"], code);
    let issued = vouchers(&server, "C-1001").await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["code"], code);
    let case = crm_case(addr, body["result"]["case-id"].as_str().unwrap()).await;
    assert!(!case["notes"].to_string().contains("not issued"), "{case}");
}

/// A `tools/call` as JSON-RPC.
fn mcp_call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": tool, "arguments": arguments } })
}

/// A failed tool result's error, as the model reads it (its text).
fn error_of(answer: &Value) -> Value {
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn over_mcp_a_run_that_waits_answers_at_once_and_the_await_run_tool_follows_it() {
    let data = Scratch::new("wf-mcp");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let lost_total = erp_order(addr, "SO-1003").await["total_cents"].as_i64().unwrap();

    // Listed as what it is: a workflow whose call runs at once and whose
    // run may wait at a step (the voucher), with the output it promises.
    let (_, listed) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    let rest = named(&listed, "late-parcel").unwrap();
    assert_eq!(
        (rest["kind"].as_str(), rest["approval"].as_str()),
        (Some("workflow"), Some("conditional"))
    );
    let (session, _) = mcp_rpc(
        &server,
        None,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "runs-by-hand", "version": "0" } } }),
    )
    .await;
    let session = session.expect("a session id");
    mcp_initialized(&server, &session).await;
    let s = Some(session.as_str());
    let (_, tools) = mcp_rpc(&server, s, json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })).await;
    let tools = &tools["result"]["tools"];
    let tool = named(tools, "late-parcel").unwrap();
    assert_eq!(
        tool["outputSchema"]["required"],
        json!(["order", "customer", "case-id", "decision"])
    );
    assert_eq!(tool["_meta"]["toolhost/approval"], "conditional");
    assert!(
        tool["description"].as_str().unwrap().contains("toolhost.await-run"),
        "{tool}"
    );
    for waiting in ["toolhost.await-approval", "toolhost.await-run"] {
        assert!(named(tools, waiting).is_some(), "{waiting} is not listed");
    }

    // A lost parcel: the voucher step waits for a reviewer, and the call
    // answers at once that the run is pending, naming it.
    let complaint = json!({ "order-id": "SO-1003", "complaint": "Lost?" });
    let (_, answer) = mcp_rpc(&server, s, mcp_call(3, "late-parcel", complaint)).await;
    let pending = error_of(&answer);
    assert_eq!(pending["kind"], "run_pending", "{pending}");
    assert_eq!(pending["state"], "waiting", "{pending}");
    let run = pending["run"].as_str().unwrap().to_string();
    let approval = pending["waiting_on"].as_str().unwrap().to_string();

    // Waiting no time, it still waits; another agent's or no run is unknown.
    let (_, still) = mcp_rpc(
        &server,
        s,
        mcp_call(4, "toolhost.await-run", json!({ "run": run, "wait_secs": 0 })),
    )
    .await;
    assert_eq!(error_of(&still)["kind"], "run_pending");
    let (_, unknown) = mcp_rpc(&server, s, mcp_call(5, "toolhost.await-run", json!({ "run": "nope" }))).await;
    assert_eq!(error_of(&unknown)["kind"], "not_found");
    let (_, unnamed) = mcp_rpc(&server, s, mcp_call(6, "toolhost.await-run", json!({}))).await;
    assert_eq!(error_of(&unnamed)["kind"], "invalid_input");

    // Approved: the waiting tool answers with the run's output, structured.
    let (status, decided) = decide(&server, APPROVER_TOKEN, &approval, "approve", "lost, confirmed").await;
    assert_eq!(status, 200, "{decided}");
    let (_, done) = mcp_rpc(
        &server,
        s,
        mcp_call(7, "toolhost.await-run", json!({ "run": run, "wait_secs": 30 })),
    )
    .await;
    assert_eq!(done["result"]["isError"], false, "{done}");
    let output = &done["result"]["structuredContent"];
    assert_eq!(output["compensation-minor"].as_i64(), Some(lost_total), "{done}");
    assert!(output["voucher"].is_string(), "{done}");

    // The official Python SDK's default client (protocol 2026-07-28) calls
    // the workflow and holds its output to the tool's output schema.
    let arguments = json!({ "order-id": "SO-1002", "complaint": "On time?" }).to_string();
    let out = std::process::Command::new(mcp_python())
        .arg(repo_root().join("tests/mcp_default_client.py"))
        .args([server.base.as_str(), AGENT_TOKEN, "auto", "late-parcel", &arguments])
        .output()
        .expect("run the MCP client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let called: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(called["is_error"], false, "{called}");
    assert_eq!(called["structured"]["order"], "SO-1002", "{called}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_that_takes_tasks_gets_a_run_as_a_task_that_ends_with_its_output() {
    let data = Scratch::new("wf-mcp-tasks");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let (session, _) = mcp_rpc(
        &server,
        None,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": { "extensions": { "io.modelcontextprotocol/tasks": {} } },
            "clientInfo": { "name": "tasks-by-hand", "version": "0" } } }),
    )
    .await;
    let session = session.expect("a session id");
    mcp_initialized(&server, &session).await;
    let s = Some(session.as_str());
    let get =
        |n: u64, id: &str| json!({ "jsonrpc": "2.0", "id": n, "method": "tasks/get", "params": { "taskId": id } });

    // The run waits at its voucher step: a task, whose id is the run's.
    let complaint = json!({ "order-id": "SO-1003", "complaint": "Lost?" });
    let (_, created) = mcp_rpc(&server, s, mcp_call(2, "late-parcel", complaint.clone())).await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(created["result"]["status"], "working", "{created}");
    let run = created["result"]["taskId"].as_str().unwrap().to_string();
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(
        (status.as_u16(), shown["run"]["state"].as_str()),
        (202, Some("waiting")),
        "{shown}"
    );
    let approval = shown["run"]["waiting_on"].as_str().unwrap().to_string();
    let (_, working) = mcp_rpc(&server, s, get(3, &run)).await;
    assert_eq!(working["result"]["status"], "working", "{working}");
    assert!(
        working["result"]["statusMessage"].as_str().unwrap().contains(&approval),
        "{working}"
    );

    // Approved: the task completes with the run's output.
    assert_eq!(
        decide(&server, APPROVER_TOKEN, &approval, "approve", "lost").await.0,
        200
    );
    let done = mcp_task_ended(&server, s, &run).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(done["result"]["result"]["isError"], false, "{done}");
    assert!(
        done["result"]["result"]["structuredContent"]["voucher"].is_string(),
        "{done}"
    );

    // Cancelled through its task: the run is cancelled, as over REST.
    let (_, created) = mcp_rpc(&server, s, mcp_call(400, "late-parcel", complaint)).await;
    let run = created["result"]["taskId"].as_str().unwrap().to_string();
    let cancel = json!({ "jsonrpc": "2.0", "id": 401, "method": "tasks/cancel", "params": { "taskId": run } });
    let (_, cancelled) = mcp_rpc(&server, s, cancel).await;
    assert!(cancelled.get("error").is_none(), "{cancelled}");
    let (_, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(shown["run"]["state"], "cancelled", "{shown}");
    let (_, polled) = mcp_rpc(&server, s, get(402, &run)).await;
    assert_eq!(polled["result"]["status"], "cancelled", "{polled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_output_breaks_its_output_schema_fails() {
    let data = Scratch::new("wf-misfit");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let (status, body) = invoke(&server, AGENT_TOKEN, "misfit", json!({})).await;
    assert_eq!(status, 500, "{body}");
    let problem = &body["error"]["problem"];
    assert_eq!(
        problem["type"], "https://serverlessworkflow.io/spec/1.0.0/errors/validation",
        "{body}"
    );
    assert!(problem["detail"].as_str().unwrap().starts_with("/total:"), "{body}");
}

/// Where `schema` leaves the strict subset of JSON Schema that OpenAI's
/// function calling takes (`strict: true`), each with where: written from
/// the subset's published rules, not from the host's converter.
fn outside_strict_subset(schema: &Value, at: &str, found: &mut Vec<String>) {
    const ALLOWED: &[&str] = &[
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
        "$ref",
        "$defs",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    ];
    let Some(map) = schema.as_object() else {
        return found.push(format!("{at}: not an object"));
    };
    for key in map.keys().filter(|k| !ALLOWED.contains(&k.as_str())) {
        found.push(format!("{at}: `{key}`"));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            found.push(format!("{at}: additionalProperties is not false"));
        }
        let mut required: Vec<&str> = map["required"]
            .as_array()
            .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        required.sort();
        let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort();
        if required != keys {
            found.push(format!("{at}: required {required:?} is not every property {keys:?}"));
        }
        for (name, property) in properties {
            outside_strict_subset(property, &format!("{at}/properties/{name}"), found);
        }
    } else if map.get("type") == Some(&json!("object")) {
        found.push(format!("{at}: an object without properties"));
    }
    if let Some(items) = map.get("items") {
        outside_strict_subset(items, &format!("{at}/items"), found);
    }
    for (i, case) in map
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        outside_strict_subset(case, &format!("{at}/anyOf/{i}"), found);
    }
}

/// Arguments a strict client could send: `null` for everything it may
/// leave out, the first case or value of everything else.
fn strict_sample(schema: &Value) -> Value {
    if let Some(cases) = schema["anyOf"].as_array() {
        return match cases.iter().find(|c| c["type"] == "null") {
            Some(_) => Value::Null,
            None => strict_sample(&cases[0]),
        };
    }
    if let Some(types) = schema["type"].as_array() {
        if types.iter().any(|t| t == "null") {
            return Value::Null;
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    match schema["type"].as_str() {
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, property)| (name.clone(), strict_sample(property)))
                .collect(),
        ),
        Some("array") => json!([]),
        Some("integer") | Some("number") => schema.get("minimum").cloned().unwrap_or(json!(1)),
        Some("boolean") => json!(true),
        _ => json!("SO-1002"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_is_offered_for_strict_function_calling_and_taken_back_as_a_strict_client_sends_it() {
    let data = Scratch::new("wf-openai");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, WORKFLOW_GRANT);
    let (status, listed) = get_json(&server, AGENT_TOKEN, "/v1/tools?format=openai").await;
    assert_eq!(status, 200, "{listed}");
    let functions = listed.as_array().unwrap();
    let (_, tools) = get_json(&server, AGENT_TOKEN, "/v1/tools").await;
    assert_eq!(functions.len(), tools.as_array().unwrap().len());
    let name_ok =
        |n: &str| (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let mut outside = Vec::new();
    let mut sent_null = 0;
    for tool in functions {
        assert_eq!(tool["type"], "function", "{tool}");
        let function = &tool["function"];
        let name = function["name"].as_str().unwrap();
        assert!(name_ok(name), "{name} is no function name");
        // A workflow that declares no input takes any object, which the
        // subset cannot say: it is offered as it is, not strict.
        if function["parameters"] == json!({ "type": "object" }) {
            assert_eq!(function["strict"], false, "{function}");
            continue;
        }
        assert_eq!(function["strict"], true, "{name} is not strict: {function}");
        assert_eq!(function["parameters"]["type"], "object", "{name}");
        outside_strict_subset(&function["parameters"], name, &mut outside);

        // Invoked back by that name, with what a strict client sends: the
        // host takes the arguments (whatever the tool then makes of them).
        let arguments = strict_sample(&function["parameters"]);
        sent_null += usize::from(arguments.to_string().contains("null"));
        let (status, body) = invoke(&server, AGENT_TOKEN, name, arguments.clone()).await;
        let kind = body["error"]["kind"].as_str().unwrap_or_default();
        assert!(
            !matches!(kind, "invalid_input" | "not_found" | "bad_request"),
            "{name} {arguments}: {status} {body}"
        );
    }
    assert!(outside.is_empty(), "outside the strict subset: {outside:#?}");
    // Options were sent as `null`, as a strict client sends them.
    assert!(sent_null >= 4, "only {sent_null} calls sent a null");
    // Reference connectors and workflows alike.
    for name in ["crm_find-customers", "coupon_issue-voucher", "late-parcel"] {
        assert!(
            functions.iter().any(|t| t["function"]["name"] == name),
            "{name} is not offered"
        );
    }
}
