//! Reference CRM connector (bearer credential).
//!
//! `GET /customers/{id}`, `GET /customers?email=|name=`, `POST /cases`
//! (with `Idempotency-Key`), `POST /cases/{id}/notes`, `PATCH /cases/{id}`,
//! `GET /customers/{id}/cases?status=`.

use serde_json::{json, Value};
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::crm::{CaseNote, CaseStatus, Customer, CustomerQuery, Guest, NewCase, Priority, SupportCase};
use toolhost_sdk::{http::encode_component, Error, Result};

pub struct Crm;

fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

fn text(v: &Value, field: &str) -> Result<String> {
    v[field].as_str().map(str::to_string).ok_or_else(|| Error::malformed(format!("`{field}` missing")))
}

fn customer(v: &Value) -> Result<Customer> {
    Ok(Customer {
        customer_id: text(v, "id")?,
        name: text(v, "name")?,
        email: text(v, "email")?,
        country: text(v, "country")?,
        tier: text(v, "tier")?,
        created_at: text(v, "created")?,
    })
}

const STATUSES: [(CaseStatus, &str); 4] = [
    (CaseStatus::Open, "open"),
    (CaseStatus::Pending, "pending"),
    (CaseStatus::Resolved, "resolved"),
    (CaseStatus::Closed, "closed"),
];
const PRIORITIES: [(Priority, &str); 4] = [
    (Priority::Low, "low"),
    (Priority::Normal, "normal"),
    (Priority::High, "high"),
    (Priority::Urgent, "urgent"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table.iter().find(|(v, _)| *v == value).map_or("unknown", |(_, n)| n)
}

fn parse<T: Copy>(table: &[(T, &'static str)], v: &Value, field: &str) -> Result<T> {
    let s = v[field].as_str().unwrap_or_default();
    table.iter().find(|(_, n)| *n == s).map(|(t, _)| *t).ok_or_else(|| Error::malformed(format!("unknown {field} {s:?}")))
}

fn case(v: &Value) -> Result<SupportCase> {
    let notes = v["notes"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| CaseNote {
                    at: n["at"].as_str().unwrap_or_default().to_string(),
                    author: n["author"].as_str().unwrap_or_default().to_string(),
                    text: n["text"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SupportCase {
        case_id: text(v, "id")?,
        customer_id: text(v, "customer_id")?,
        subject: v["subject"].as_str().unwrap_or_default().to_string(),
        status: parse(&STATUSES, v, "status")?,
        priority: parse(&PRIORITIES, v, "priority")?,
        opened_at: text(v, "opened")?,
        order_id: v["order_id"].as_str().map(str::to_string),
        notes,
        resolution: v["resolution"].as_str().map(str::to_string),
    })
}

impl Guest for Crm {
    fn find_customers(query: CustomerQuery) -> Result<Vec<Customer>> {
        let api = api()?;
        let path = match &query {
            CustomerQuery::ById(id) => {
                return match api.get::<Value>(&format!("/customers/{}", segment("by-id", id)?)) {
                    Ok(v) => Ok(vec![customer(&v)?]),
                    Err(Error::NotFound(_)) => Ok(Vec::new()),
                    Err(e) => Err(e),
                };
            }
            CustomerQuery::ByEmail(e) => format!("/customers?email={}", encode_component(e)),
            CustomerQuery::ByName(n) => format!("/customers?name={}", encode_component(n)),
        };
        let body: Value = api.get(&path)?;
        body["customers"].as_array().ok_or_else(|| Error::malformed("`customers` missing"))?.iter().map(customer).collect()
    }

    fn get_customer(customer_id: String) -> Result<Customer> {
        customer(&api()?.get(&format!("/customers/{}", segment("customer-id", &customer_id)?))?)
    }

    fn open_case(case_: NewCase) -> Result<SupportCase> {
        segment("idempotency-key", &case_.idempotency_key)?;
        let api = api()?;
        let request = api.request("POST", "/cases").header("idempotency-key", &case_.idempotency_key).json(&json!({
            "customer_id": case_.customer_id,
            "subject": case_.subject,
            "priority": name_of(&PRIORITIES, case_.priority),
            "order_id": case_.order_id,
            "description": case_.description,
        }));
        case(&api.send(request)?)
    }

    fn add_note(case_id: String, author: String, text: String) -> Result<SupportCase> {
        case(&api()?.post(&format!("/cases/{}/notes", segment("case-id", &case_id)?), &json!({ "author": author, "text": text }))?)
    }

    fn set_case_status(case_id: String, status: CaseStatus, resolution: Option<String>) -> Result<SupportCase> {
        let body = json!({ "status": name_of(&STATUSES, status), "resolution": resolution });
        case(&api()?.patch(&format!("/cases/{}", segment("case-id", &case_id)?), &body)?)
    }

    fn list_cases(customer_id: String, status: Option<CaseStatus>) -> Result<Vec<SupportCase>> {
        let mut path = format!("/customers/{}/cases", segment("customer-id", &customer_id)?);
        if let Some(s) = status {
            path.push_str(&format!("?status={}", name_of(&STATUSES, s)));
        }
        let body: Value = api()?.get(&path)?;
        body["cases"].as_array().ok_or_else(|| Error::malformed("`cases` missing"))?.iter().map(case).collect()
    }
}

#[cfg(target_arch = "wasm32")]
toolhost_sdk::export_crm!(Crm);
