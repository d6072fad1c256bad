//! Workflows end to end: the late-parcel reference workflow (plugins/
//! late-parcel) run by a real `toolhost serve` against the sample CRM, ERP
//! and carrier, through the four reference connectors, as one tool call.

use std::net::SocketAddr;

use sample_upstreams::records::{crm_case, erp_order};
use sample_upstreams::scenario::toolhost_config;
use serde_json::{json, Value};
use toolhost_tests::{
    decide, get_json, invoke, reference, repo_root, Scratch, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN,
};

/// The tools the late-parcel workflow's steps call: its operator grant.
const GRANT: &str = r#"
[plugins.late-parcel]
tools = ["erp.get-order", "erp.get-contract", "crm.*", "logistics.find-shipments", "logistics.report-delay", "coupon.issue-voucher"]
"#;

async fn upstreams(dir: &Scratch) -> SocketAddr {
    let (addr, _task) = sample_upstreams::start(dir.path(), "127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap();
    addr
}

fn toolhost(addr: SocketAddr, grant: &str) -> ServerProcess {
    let keys = sample_upstreams::Keys::default();
    let config = toolhost_config(addr, "/nordpost/v2", &keys.nordpost) + grant;
    ServerProcess::start_prepared(&config, |plugins| {
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
    let server = toolhost(addr, GRANT);

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
    let mut server = toolhost(addr, GRANT);
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
async fn a_cancelled_run_carries_out_nothing_more_even_when_its_step_is_approved_later() {
    let data = Scratch::new("wf-cancel");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, GRANT);
    let (status, body) = complaint(&server, "SO-1003").await;
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let approval = body["waiting_on"].as_str().unwrap().to_string();

    let cancelled = toolhost_tests::client()
        .post(server.url(&format!("/v1/runs/{run}/cancel")))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let (status, shown) = get_json(&server, AGENT_TOKEN, &format!("/v1/runs/{run}")).await;
    assert_eq!(status, 409, "{shown}");
    assert_eq!(shown["run"]["state"], "cancelled");
    assert_eq!(shown["run"]["cancelled_by"], "agent");

    // The reviewer approves afterwards: the run is gone, nothing is issued.
    let (status, _) = decide(&server, APPROVER_TOKEN, &approval, "approve", "late").await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(vouchers(&server, "C-1001").await.is_empty());
    // Cancelling twice is a conflict.
    let again = toolhost_tests::client()
        .post(server.url(&format!("/v1/runs/{run}/cancel")))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}
