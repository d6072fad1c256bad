//! The late-parcel scenario end to end: the sample CRM, ERP and carrier on
//! 127.0.0.1, `toolhost serve` with the four reference connectors, and a
//! scripted agent calling the tools over HTTP. The figures are checked
//! against the seeded data and the contract terms; the swap test runs the
//! same agent against a second vendor's logistics connector.

use std::net::SocketAddr;
use std::path::Path;

use sample_upstreams::records::{crm_case, erp_order};
use sample_upstreams::scenario::{handle_complaint, toolhost_config, Outcome, VOUCHER_REVIEW_ABOVE_MINOR};
use serde_json::Value;
use toolhost_tests::{
    get_json, guest, invoke, named, reference, Scratch, ServerProcess, ADMIN_TOKEN, AGENT_TOKEN, APPROVER_TOKEN,
};

async fn upstreams(dir: &Scratch) -> SocketAddr {
    sample_upstreams::start(dir.path(), "127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap()
        .addr
}

fn link(plugins: &Path, name: &str, bundle: &Path) {
    std::os::unix::fs::symlink(bundle, plugins.join(name)).unwrap();
}

fn toolhost(addr: SocketAddr, swiftline: bool) -> ServerProcess {
    let keys = sample_upstreams::Keys::default();
    let config = if swiftline {
        toolhost_config(addr, "/swiftline", &keys.swiftline)
    } else {
        toolhost_config(addr, "/nordpost/v2", &keys.nordpost)
    };
    ServerProcess::start_prepared(&config, |plugins| {
        for name in ["crm", "erp", "coupon"] {
            link(plugins, name, &reference(name));
        }
        let logistics = if swiftline {
            guest("logistics-swiftline")
        } else {
            reference("logistics")
        };
        link(plugins, "logistics", &logistics);
    })
}

async fn audit(server: &ServerProcess, session: &str) -> Vec<Value> {
    let (_, page) = get_json(server, ADMIN_TOKEN, &format!("/v1/audit?session={session}&limit=100")).await;
    page["records"].as_array().unwrap().clone()
}

/// Time inside toolhost for the session: each call's duration less the time
/// its connector waited on the upstream.
fn inside_toolhost_us(records: &[Value]) -> u64 {
    records
        .iter()
        .map(|r| {
            let waited: u64 = r["outbound"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["micros"].as_u64().unwrap())
                .sum();
            r["duration_us"].as_u64().unwrap().saturating_sub(waited)
        })
        .sum()
}

fn report(label: &str, o: &Outcome, records: &[Value]) {
    let inside = inside_toolhost_us(records);
    eprintln!(
        "{label}: {} tool calls, {:.1} ms through HTTP, {:.1} ms inside toolhost ({:.0} %)",
        o.calls.len(),
        o.elapsed.as_secs_f64() * 1e3,
        inside as f64 / 1e3,
        inside as f64 / 1e3 / (o.elapsed.as_secs_f64() * 1e3) * 100.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_parcel_is_compensated_by_the_contract_and_logged() {
    let data = Scratch::new("upstreams");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, false);

    let late = handle_complaint(
        &server.base,
        AGENT_TOKEN,
        "SO-1001",
        "My parcel from Hamburg is two days late. Where is it?",
    )
    .await
    .unwrap();
    assert_eq!(late.customer, "C-1001");
    assert_eq!(late.hours_late, 52);
    assert!(!late.lost);
    // Premium contract: 6 h grace, 500 bps per started day after it, at most 3000.
    // 52 h - 6 h = 46 h → 2 days → 1000 bps = 10 % of the order total.
    assert_eq!(late.compensation_bps, 1000);
    let total = erp_order(addr, "SO-1001").await["total_cents"].as_i64().unwrap();
    assert_eq!(late.compensation_minor, total / 10);
    let code = late.voucher.clone().expect("a voucher was issued");

    // The voucher, as the coupon connector keeps it.
    let (_, validation) = invoke(
        &server,
        AGENT_TOKEN,
        "coupon.validate-voucher",
        serde_json::json!({ "code": code, "customer-id": "C-1001" }),
    )
    .await;
    assert_eq!(validation["result"]["valid"], true);
    assert_eq!(validation["result"]["voucher"]["value"]["amount-minor"], total / 10);

    // The case on the customer's record, as the CRM has it.
    let case = crm_case(addr, &late.case_id).await;
    assert_eq!(case["status"], "resolved");
    assert_eq!(case["customer_id"], "C-1001");
    let notes = case["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert!(notes[1]["text"].as_str().unwrap().contains(&code));

    // Every step is in the audit trail under the session.
    let records = audit(&server, &late.session).await;
    assert_eq!(records.len(), late.calls.len());
    assert!(records.iter().all(|r| r["outcome"] == "ok"));
    let tools: Vec<&str> = records.iter().rev().map(|r| r["tool"].as_str().unwrap()).collect();
    let called: Vec<&str> = late.calls.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tools, called);
    assert!(records
        .iter()
        .any(|r| r["tool"] == "logistics.report-delay" && r["outbound"][0]["status"] == 200));
    report("late parcel", &late, &records);

    // Handling the same complaint again issues nothing new.
    let again = handle_complaint(&server.base, AGENT_TOKEN, "SO-1001", "Still waiting!")
        .await
        .unwrap();
    assert_eq!(again.voucher, late.voucher);
    assert_eq!(again.case_id, late.case_id);

    // On time: a case, no voucher.
    let on_time = handle_complaint(&server.base, AGENT_TOKEN, "SO-1002", "Is my order late?")
        .await
        .unwrap();
    assert_eq!(
        (on_time.hours_late, on_time.compensation_bps, on_time.voucher.clone()),
        (0, 0, None)
    );
    assert!(!on_time.calls.iter().any(|(t, _)| t == "coupon.issue-voucher"));
    assert_eq!(crm_case(addr, &on_time.case_id).await["status"], "resolved");
    report("on time", &on_time, &audit(&server, &on_time.session).await);

    // Lost: the contract's lost-parcel terms, the whole order (over the
    // operator's threshold, so a reviewer approves it).
    let desk = reviewer(server.base.clone(), vec![("approve", "lost parcel confirmed")]);
    let lost = handle_complaint(&server.base, AGENT_TOKEN, "SO-1003", "It never arrived.")
        .await
        .unwrap();
    desk.await.unwrap();
    assert!(lost.lost);
    assert_eq!(lost.compensation_bps, 10_000);
    assert_eq!(
        lost.compensation_minor,
        erp_order(addr, "SO-1003").await["total_cents"].as_i64().unwrap()
    );
}

/// A reviewer at the queue: decides each held call as it comes, with the
/// next of `verdicts` (`approve` or `reject`, and a reason).
fn reviewer(base: String, verdicts: Vec<(&'static str, &'static str)>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut decided = Vec::new();
        for (verdict, reason) in verdicts {
            let id = loop {
                let queue: Value = http
                    .get(format!("{base}/v1/approvals"))
                    .bearer_auth(APPROVER_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if let Some(id) = queue["approvals"][0]["id"].as_str() {
                    break id.to_string();
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            let r = http
                .post(format!("{base}/v1/approvals/{id}/{verdict}"))
                .bearer_auth(APPROVER_TOKEN)
                .json(&serde_json::json!({ "reason": reason }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            decided.push(id);
        }
        decided
    })
}

async fn vouchers(server: &ServerProcess, customer: &str) -> Vec<Value> {
    let (_, list) = invoke(
        server,
        AGENT_TOKEN,
        "coupon.list-vouchers",
        serde_json::json!({ "customer-id": customer }),
    )
    .await;
    list["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voucher_over_the_threshold_waits_for_a_reviewer() {
    let data = Scratch::new("upstreams-review");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, false);
    let lost_total = erp_order(addr, "SO-1003").await["total_cents"].as_i64().unwrap();
    let late_total = erp_order(addr, "SO-1001").await["total_cents"].as_i64().unwrap();
    assert!(late_total / 10 <= VOUCHER_REVIEW_ABOVE_MINOR && lost_total > VOUCHER_REVIEW_ABOVE_MINOR);

    // A small voucher passes without anyone looking.
    let small = handle_complaint(&server.base, AGENT_TOKEN, "SO-1001", "Two days late!")
        .await
        .unwrap();
    assert!(small.voucher.is_some() && small.review.is_none());

    // The whole order for a lost parcel is over the threshold: it waits,
    // and the reviewer rejects it. Nothing is issued; the case says why.
    let desk = reviewer(
        server.base.clone(),
        vec![("reject", "lost parcels go to the claims team first")],
    );
    let rejected = handle_complaint(&server.base, AGENT_TOKEN, "SO-1003", "It never arrived.")
        .await
        .unwrap();
    let decided = desk.await.unwrap();
    let review = rejected.review.clone().expect("the voucher was held");
    assert_eq!(
        (review.approval.as_str(), review.approved),
        (decided[0].as_str(), false)
    );
    assert_eq!(rejected.voucher, None);
    assert!(!vouchers(&server, "C-1001")
        .await
        .iter()
        .any(|v| v["value"]["amount-minor"] == lost_total));
    let case = crm_case(addr, &rejected.case_id).await;
    let note = case["notes"].as_array().unwrap().last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("approval_rejected") && note.contains("claims team"),
        "{note}"
    );
    assert_eq!(
        rejected
            .calls
            .iter()
            .find(|(t, _)| t == "coupon.issue-voucher")
            .unwrap()
            .1,
        202
    );

    // Asked again, another reviewer's approval lets it through: the voucher
    // is issued once, and the case note names who approved it.
    let desk = reviewer(server.base.clone(), vec![("approve", "claim confirmed by the carrier")]);
    let approved = handle_complaint(&server.base, AGENT_TOKEN, "SO-1003", "Any news?")
        .await
        .unwrap();
    desk.await.unwrap();
    let code = approved.voucher.clone().expect("issued after approval");
    let review = approved.review.clone().unwrap();
    assert!(review.approved);
    assert_eq!(
        review.by,
        vec![("approver".to_string(), "claim confirmed by the carrier".to_string())]
    );
    let issued: Vec<Value> = vouchers(&server, "C-1001")
        .await
        .into_iter()
        .filter(|v| v["code"] == code)
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["value"]["amount-minor"], lost_total);
    let case = crm_case(addr, &approved.case_id).await;
    let note = case["notes"].as_array().unwrap().last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(note.contains(&code) && note.contains("approved by approver"), "{note}");

    // The conversation's trail has the human step in its place.
    let trail: Vec<Value> = audit(&server, &approved.session).await.into_iter().rev().collect();
    let steps: Vec<(String, String)> = trail
        .iter()
        .filter(|r| r["tool"] == "coupon.issue-voucher")
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_string(),
                r["token"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("held".into(), "agent".into()),
            ("approved".into(), "approver".into()),
            ("ok".into(), "agent".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scenario_passes_unchanged_with_another_carriers_connector() {
    let data = Scratch::new("upstreams-swap");
    let addr = upstreams(&data).await;
    let nordpost = toolhost(addr, false);
    let a = handle_complaint(&nordpost.base, AGENT_TOKEN, "SO-1001", "Late!")
        .await
        .unwrap();
    drop(nordpost);
    let swiftline = toolhost(addr, true);
    let b = handle_complaint(&swiftline.base, AGENT_TOKEN, "SO-1001", "Late!")
        .await
        .unwrap();
    assert_eq!(
        (a.hours_late, a.compensation_bps, a.compensation_minor),
        (b.hours_late, b.compensation_bps, b.compensation_minor)
    );
    assert!(b.voucher.is_some());
    // It really was the other vendor's connector talking to the other API.
    let records = audit(&swiftline, &b.session).await;
    let delay = records
        .iter()
        .find(|r| r["tool"] == "logistics.find-shipments")
        .unwrap();
    assert!(
        delay["outbound"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/swiftline/"),
        "{delay}"
    );
    let (_, plugins) = get_json(&swiftline, ADMIN_TOKEN, "/v1/plugins").await;
    let logistics = named(&plugins, "logistics").unwrap();
    assert_eq!(logistics["vendor"], "Swiftline sample vendor");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_come_back_typed() {
    let data = Scratch::new("upstreams-faults");
    let addr = upstreams(&data).await;
    let server = toolhost(addr, false);
    let call = |tool: &'static str, args: Value| {
        reqwest::Client::new()
            .post(server.url(&format!("/v1/tools/{tool}/invoke")))
            .bearer_auth(AGENT_TOKEN)
            .json(&args)
            .send()
    };
    let cases = [
        (
            "erp.get-order",
            serde_json::json!({ "order-id": "SO-NONE" }),
            404,
            "not-found",
        ),
        (
            "erp.get-order",
            serde_json::json!({ "order-id": "SO-FAIL-429" }),
            429,
            "rate-limited",
        ),
        (
            "erp.get-order",
            serde_json::json!({ "order-id": "SO-FAIL-500" }),
            502,
            "upstream",
        ),
        (
            "erp.get-order",
            serde_json::json!({ "order-id": "SO-MALFORMED" }),
            502,
            "upstream",
        ),
        (
            "logistics.track-shipment",
            serde_json::json!({ "tracking-number": "NP-MALFORMED" }),
            502,
            "upstream",
        ),
        (
            "crm.get-customer",
            serde_json::json!({ "customer-id": "C-FAIL-500" }),
            502,
            "upstream",
        ),
    ];
    for (tool, args, status, case) in cases {
        let r = call(tool, args.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{tool} {args}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["error"][case].is_object()
                || body["error"]["error"][case].is_string()
                || body["error"]["error"][case].is_number(),
            "{tool} {args}: {body}"
        );
    }
    // What the upstream said reaches the agent once, in words: not its JSON
    // body escaped inside the connector's error, inside the message.
    let r = call("erp.get-order", serde_json::json!({ "order-id": "SO-NONE" }))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["error"]["not-found"], "order not found", "{body}");
    assert_eq!(
        body["error"]["message"], "the connector reported not-found: order not found",
        "{body}"
    );
    // A hung upstream ends at the connector's time limit, as a typed error.
    let r = call("erp.get-order", serde_json::json!({ "order-id": "SO-SLOW" }))
        .await
        .unwrap();
    assert!(
        r.status().as_u16() == 502 || r.status().as_u16() == 504,
        "{}",
        r.status()
    );
}
