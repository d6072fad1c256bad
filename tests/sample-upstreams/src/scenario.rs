//! The late-parcel scenario as a scripted agent: what an LLM planner would
//! do, step by step, through toolhost's HTTP API, with every call under one
//! session id so the audit trail tells the story afterwards.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use crate::grants::{demo_config, toolhost_config, VOUCHER_REVIEW_ABOVE_MINOR, WORKFLOW_GRANT};

/// What happened, for the caller to check and print.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub order: String,
    pub customer: String,
    pub hours_late: u64,
    pub lost: bool,
    /// Basis points of the order total the SLA terms allow.
    pub compensation_bps: u64,
    pub compensation_minor: i64,
    pub currency: String,
    pub voucher: Option<String>,
    /// The voucher's review, when the operator's rules held it.
    pub review: Option<Review>,
    pub case_id: String,
    pub session: String,
    /// Each tool call, in order: (tool, HTTP status).
    pub calls: Vec<(String, u16)>,
    pub elapsed: Duration,
}

/// What a reviewer decided about a held voucher.
#[derive(Debug, Clone)]
pub struct Review {
    pub approval: String,
    pub approved: bool,
    /// The reviewers (token names) and their reasons.
    pub by: Vec<(String, String)>,
}

/// A tool call's end: its result, or the error body of a refusal.
enum Answer {
    Ok(Value),
    Refused(Value),
}

/// The compensation the SLA allows, in basis points of the order total.
pub fn compensation_bps(sla: &Value, hours_late: u64, lost: bool) -> u64 {
    let get = |k: &str| sla[k].as_u64().unwrap_or(0);
    if lost {
        return get("lost-parcel-bps");
    }
    let grace = get("grace-hours");
    if hours_late <= grace {
        return 0;
    }
    let days = (hours_late - grace).div_ceil(24);
    (days * get("per-day-late-bps")).min(get("max-compensation-bps"))
}

struct Agent<'a> {
    http: reqwest::Client,
    base: &'a str,
    token: &'a str,
    session: String,
    calls: Vec<(String, u16)>,
}

impl Agent<'_> {
    async fn call(&mut self, tool: &str, args: Value) -> anyhow::Result<Value> {
        let (status, body) = self.post(tool, args).await?;
        anyhow::ensure!(status == 200, "{tool} failed ({status}): {body}");
        Ok(body["result"].clone())
    }

    async fn post(&mut self, tool: &str, args: Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}/v1/tools/{tool}/invoke", self.base))
            .bearer_auth(self.token)
            .header("x-session-id", &self.session)
            .json(&args)
            .send()
            .await?;
        let status = response.status().as_u16();
        self.calls.push((tool.to_string(), status));
        Ok((status, response.json().await?))
    }

    /// A call that the operator's rules may hold for a reviewer: wait for
    /// the decision (202 until then) and take the call's own answer.
    async fn call_reviewed(&mut self, tool: &str, args: Value) -> anyhow::Result<(Answer, Option<Review>)> {
        let (mut status, mut body) = self.post(tool, args).await?;
        let mut review = None;
        if status == 202 {
            let approval = body["approval"]["id"].as_str().unwrap_or_default().to_string();
            while status == 202 {
                let response = self
                    .http
                    .get(format!("{}/v1/approvals/{approval}?wait=20", self.base))
                    .bearer_auth(self.token)
                    .send()
                    .await?;
                status = response.status().as_u16();
                body = response.json().await?;
            }
            let by = body["decisions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                    (text("by"), text("reason"))
                })
                .collect();
            review = Some(Review {
                approval,
                approved: status == 200,
                by,
            });
        }
        let answer = match status {
            200 => Answer::Ok(body["result"].clone()),
            403 | 409 | 410 if review.is_some() => Answer::Refused(body["error"].clone()),
            _ => anyhow::bail!("{tool} failed ({status}): {body}"),
        };
        Ok((answer, review))
    }
}

/// Handle a customer's complaint about `order`.
pub async fn handle_complaint(base: &str, token: &str, order: &str, complaint: &str) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut agent = Agent {
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        base,
        token,
        session: format!(
            "late-parcel-{order}-{}",
            started.elapsed().as_nanos() ^ std::process::id() as u128
        ),
        calls: Vec::new(),
    };
    // The order, and who placed it.
    let o = agent.call("erp.get-order", json!({ "order-id": order })).await?;
    let customer = o["customer-id"].as_str().unwrap_or_default().to_string();
    agent
        .call("crm.get-customer", json!({ "customer-id": customer }))
        .await?;
    // Where the parcel is, and how late.
    let shipments = agent
        .call("logistics.find-shipments", json!({ "order-reference": order }))
        .await?;
    let tracking = shipments[0]["tracking-number"].as_str().unwrap_or_default().to_string();
    let delay = agent
        .call("logistics.report-delay", json!({ "tracking-number": tracking }))
        .await?;
    let hours_late = delay["hours-late"].as_u64().unwrap_or(0);
    let lost = delay["lost"].as_bool().unwrap_or(false);
    // What the contract promises.
    let contract = agent
        .call("erp.get-contract", json!({ "contract-id": o["contract-id"] }))
        .await?;
    let bps = compensation_bps(&contract["sla"], hours_late, lost);
    let total = o["total"]["amount-minor"].as_i64().unwrap_or(0);
    let currency = o["total"]["currency"].as_str().unwrap_or("EUR").to_string();
    let compensation_minor = total * bps as i64 / 10_000;

    // Log the case, compensate if due, record the decision.
    let key = format!("late-parcel-{order}");
    let case = agent
        .call(
            "crm.open-case",
            json!({ "case": {
                "customer-id": customer, "subject": format!("Late delivery of {order}"), "priority": "high",
                "order-id": order, "description": complaint, "idempotency-key": key,
            }}),
        )
        .await?;
    let case_id = case["case-id"].as_str().unwrap_or_default().to_string();
    let mut voucher = None;
    let mut review = None;
    let mut refusal = None;
    if compensation_minor > 0 {
        // The operator may hold a large voucher for a reviewer: then this
        // waits for the decision.
        let (answer, reviewed) = agent
            .call_reviewed(
                "coupon.issue-voucher",
                json!({ "request": {
                    "idempotency-key": key, "customer-id": customer, "reason": format!("late delivery of {order}"),
                    "order-id": order, "valid-days": 180,
                    "value": { "amount-minor": compensation_minor, "currency": currency },
                }}),
            )
            .await?;
        match answer {
            Answer::Ok(v) => voucher = v["code"].as_str().map(str::to_string),
            Answer::Refused(e) => refusal = Some(e),
        }
        review = reviewed;
    }
    let what = if lost {
        format!("Parcel {tracking} lost")
    } else {
        format!("Parcel {tracking} {hours_late} h late")
    };
    let terms = format!("contract {} allows {bps} bps", contract["contract-id"]);
    let reviewers = |review: &Option<Review>| {
        review
            .iter()
            .flat_map(|r| r.by.iter().map(|(by, reason)| format!("{by} ({reason})")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let decision = match (&voucher, &refusal) {
        (Some(code), _) if review.is_some() => format!(
            "{what}; {terms}; voucher {code} for {compensation_minor} {currency}, approved by {}.",
            reviewers(&review)
        ),
        (Some(code), _) => format!("{what}; {terms}; voucher {code} for {compensation_minor} {currency}."),
        (None, Some(e)) => format!(
            "{what}; {terms}; a voucher for {compensation_minor} {currency} was not issued: {} {}. Referred to a person.",
            e["kind"].as_str().unwrap_or("refused"),
            reviewers(&review)
        ),
        (None, None) => format!("{what}, within the {} h grace of {terms}; no compensation due.", contract["sla"]["grace-hours"]),
    };
    agent
        .call(
            "crm.add-note",
            json!({ "case-id": case_id, "author": "toolhost-agent", "text": decision }),
        )
        .await?;
    agent
        .call(
            "crm.set-case-status",
            json!({ "case-id": case_id, "status": "resolved", "resolution": decision }),
        )
        .await?;

    Ok(Outcome {
        order: order.to_string(),
        customer,
        hours_late,
        lost,
        compensation_bps: bps,
        compensation_minor,
        currency,
        voucher,
        review,
        case_id,
        session: agent.session.clone(),
        calls: agent.calls,
        elapsed: started.elapsed(),
    })
}
