//! A CRM connector: customers and their support cases in an upstream CRM
//! system, over its REST API.
//!
//! Where the upstream is and how to reach it are the operator's to say: its
//! base URL is the config value `base-url`, its API key the secret `api-key`
//! (both requested in connector.toml), sent as a bearer token. The upstream's
//! JSON is mapped to the contract's types below: change the paths and field
//! names to your API's.

use serde_json::{json, Value};
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::crm::{CaseNote, CaseStatus, Customer, CustomerQuery, Guest, NewCase, Priority, SupportCase};
use toolhost_sdk::http::encode_component;
use toolhost_sdk::json::{name_of, Fields};
use toolhost_sdk::{Error, Result};

pub struct Connector;

/// The upstream, as the operator configured it.
fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

const STATUSES: [(&str, CaseStatus); 4] = [
    ("open", CaseStatus::Open),
    ("pending", CaseStatus::Pending),
    ("resolved", CaseStatus::Resolved),
    ("closed", CaseStatus::Closed),
];

const PRIORITIES: [(&str, Priority); 4] = [
    ("low", Priority::Low),
    ("normal", Priority::Normal),
    ("high", Priority::High),
    ("urgent", Priority::Urgent),
];

fn customer(v: &Value) -> Result<Customer> {
    Ok(Customer {
        customer_id: v.text("id")?,
        name: v.text("name")?,
        email: v.text("email")?,
        country: v.text("country")?,
        tier: v.text("tier")?,
        created_at: v.text("created_at")?,
    })
}

fn note(v: &Value) -> Result<CaseNote> {
    Ok(CaseNote {
        at: v.text("at")?,
        author: v.text("author")?,
        text: v.text("text")?,
    })
}

fn case(v: &Value) -> Result<SupportCase> {
    Ok(SupportCase {
        case_id: v.text("id")?,
        customer_id: v.text("customer_id")?,
        subject: v.text("subject")?,
        status: v.one_of("status", &STATUSES)?,
        priority: v.one_of("priority", &PRIORITIES)?,
        opened_at: v.text("opened_at")?,
        order_id: v.opt_text("order_id"),
        notes: v.list("notes", note)?,
        resolution: v.opt_text("resolution"),
    })
}

fn case_path(case_id: &str) -> Result<String> {
    Ok(format!("/cases/{}", segment("case-id", case_id)?))
}

impl Guest for Connector {
    fn find_customers(query: CustomerQuery) -> Result<Vec<Customer>> {
        let api = api()?;
        let search = match &query {
            CustomerQuery::ById(id) => {
                // One customer or none: a missing id is an empty answer here.
                return match api.get::<Value>(&format!("/customers/{}", segment("by-id", id)?)) {
                    Ok(v) => Ok(vec![customer(&v)?]),
                    Err(Error::NotFound(_)) => Ok(Vec::new()),
                    Err(e) => Err(e),
                };
            }
            CustomerQuery::ByEmail(email) => format!("email={}", encode_component(email)),
            CustomerQuery::ByName(name) => format!("name={}", encode_component(name)),
        };
        let mut found = api.get::<Value>(&format!("/customers?{search}"))?.list("customers", customer)?;
        found.truncate(20);
        Ok(found)
    }

    fn get_customer(customer_id: String) -> Result<Customer> {
        customer(&api()?.get(&format!("/customers/{}", segment("customer-id", &customer_id)?))?)
    }

    fn open_case(new: NewCase) -> Result<SupportCase> {
        let api = api()?;
        // The upstream remembers the key: a retry gets the first case back.
        let post = api
            .request("POST", "/cases")
            .header("idempotency-key", &new.idempotency_key)
            .json(&json!({
                "customer_id": new.customer_id,
                "subject": new.subject,
                "priority": name_of(&PRIORITIES, &new.priority),
                "order_id": new.order_id,
                "description": new.description,
            }));
        case(&api.send(post)?)
    }

    fn add_note(case_id: String, author: String, text: String) -> Result<SupportCase> {
        let path = format!("{}/notes", case_path(&case_id)?);
        case(&api()?.post(&path, &json!({ "author": author, "text": text }))?)
    }

    fn set_case_status(case_id: String, status: CaseStatus, resolution: Option<String>) -> Result<SupportCase> {
        let body = json!({ "status": name_of(&STATUSES, &status), "resolution": resolution });
        case(&api()?.patch(&case_path(&case_id)?, &body)?)
    }

    fn list_cases(customer_id: String, status: Option<CaseStatus>) -> Result<Vec<SupportCase>> {
        let mut path = format!("/customers/{}/cases", segment("customer-id", &customer_id)?);
        if let Some(status) = status {
            path.push_str(&format!("?status={}", name_of(&STATUSES, &status)));
        }
        api()?.get::<Value>(&path)?.list("cases", case)
    }
}

// Makes the component export the `crm` interface (in a native build, such
// as `cargo test`, it only checks that `Connector` implements it).
toolhost_sdk::export_crm!(Connector);

#[cfg(test)]
mod tests {
    use super::*;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    fn host(status: u16, body: Value) -> TestHost {
        TestHost::new()
            .config("base-url", "https://crm.example.com/api")
            .secret("api-key", "test-key")
            .on_http(move |_| Ok(Response::json_body(status, &body)))
    }

    #[test]
    fn gets_a_customer_from_the_configured_upstream_with_the_key() {
        let mut host = host(
            200,
            json!({ "id": "C-1", "name": "Ada", "email": "ada@example.com", "country": "DE",
                    "tier": "premium", "created_at": "2025-03-01T09:00:00Z" }),
        );
        let found = host.run(|| Connector::get_customer("C-1".into())).unwrap();
        let expected = Customer {
            customer_id: "C-1".into(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            country: "DE".into(),
            tier: "premium".into(),
            created_at: "2025-03-01T09:00:00Z".into(),
        };
        assert_eq!(found, expected);
        let sent = &host.requests()[0];
        assert_eq!(sent.url, "https://crm.example.com/api/customers/C-1");
        assert_eq!(sent.header_value("authorization"), Some("Bearer test-key"));
    }

    #[test]
    fn an_unknown_id_finds_no_one() {
        let found = host(404, json!({ "error": "no such customer" }))
            .run(|| Connector::find_customers(CustomerQuery::ById("C-404".into())));
        assert_eq!(found, Ok(Vec::new()));
    }
}
