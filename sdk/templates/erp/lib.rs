//! An ERP connector: orders, contracts and credit notes in an upstream ERP
//! system, over its REST API.
//!
//! Where the upstream is and how to reach it are the operator's to say: its
//! base URL is the config value `base-url`, its API key the secret `api-key`
//! (both requested in connector.toml), sent as a bearer token. The upstream's
//! JSON is mapped to the contract's types below: change the paths and field
//! names to your API's.

use serde_json::{json, Value};
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::erp::{Contract, CreditNote, Guest, Order, OrderLine, OrderStatus, SlaTerms};
use toolhost_sdk::json::Fields;
use toolhost_sdk::{Error, Money, Result};

pub struct Connector;

/// The upstream, as the operator configured it.
fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

const STATUSES: [(&str, OrderStatus); 6] = [
    ("open", OrderStatus::Open),
    ("paid", OrderStatus::Paid),
    ("shipped", OrderStatus::Shipped),
    ("delivered", OrderStatus::Delivered),
    ("cancelled", OrderStatus::Cancelled),
    ("returned", OrderStatus::Returned),
];

fn money(v: &Value) -> Result<Money> {
    Ok(Money {
        amount_minor: v.int("amount_minor")?,
        currency: v.text("currency")?,
    })
}

fn line(v: &Value) -> Result<OrderLine> {
    Ok(OrderLine {
        sku: v.text("sku")?,
        description: v.text("description")?,
        quantity: v.uint("quantity")?,
        unit_price: money(v.field("unit_price")?)?,
    })
}

fn order(v: &Value) -> Result<Order> {
    Ok(Order {
        order_id: v.text("id")?,
        customer_id: v.text("customer_id")?,
        status: v.one_of("status", &STATUSES)?,
        placed_at: v.text("placed_at")?,
        lines: v.list("lines", line)?,
        total: money(v.field("total")?)?,
        tracking_numbers: v.list("tracking_numbers", |t| {
            t.as_str().map(str::to_string).ok_or_else(|| Error::malformed("a tracking number is not a string"))
        })?,
        contract_id: v.text("contract_id")?,
    })
}

fn sla(v: &Value) -> Result<SlaTerms> {
    Ok(SlaTerms {
        grace_hours: v.uint("grace_hours")?,
        per_day_late_bps: v.uint("per_day_late_bps")?,
        max_compensation_bps: v.uint("max_compensation_bps")?,
        lost_parcel_bps: v.uint("lost_parcel_bps")?,
    })
}

fn contract(v: &Value) -> Result<Contract> {
    Ok(Contract {
        contract_id: v.text("id")?,
        customer_id: v.text("customer_id")?,
        tier: v.text("tier")?,
        valid_from: v.text("valid_from")?,
        valid_until: v.opt_text("valid_until"),
        sla: sla(v.field("sla")?)?,
    })
}

fn credit_note(v: &Value) -> Result<CreditNote> {
    Ok(CreditNote {
        credit_note_id: v.text("id")?,
        order_id: v.text("order_id")?,
        amount: money(v.field("amount")?)?,
        reason: v.text("reason")?,
        created_at: v.text("created_at")?,
    })
}

impl Guest for Connector {
    fn get_order(order_id: String) -> Result<Order> {
        order(&api()?.get(&format!("/orders/{}", segment("order-id", &order_id)?))?)
    }

    fn list_orders(customer_id: String, limit: u32) -> Result<Vec<Order>> {
        let path = format!("/customers/{}/orders?limit={}", segment("customer-id", &customer_id)?, limit.min(100));
        let mut orders = api()?.get::<Value>(&path)?.list("orders", order)?;
        orders.truncate(limit as usize);
        Ok(orders)
    }

    fn get_contract(contract_id: String) -> Result<Contract> {
        contract(&api()?.get(&format!("/contracts/{}", segment("contract-id", &contract_id)?))?)
    }

    fn create_credit_note(order_id: String, amount: Money, reason: String, idempotency_key: String) -> Result<CreditNote> {
        if amount.amount_minor <= 0 {
            return Err(Error::InvalidInput("amount must be more than zero".into()));
        }
        let api = api()?;
        // The upstream remembers the key: a retry gets the first credit note back.
        let post = api
            .request("POST", "/credit-notes")
            .header("idempotency-key", &idempotency_key)
            .json(&json!({
                "order_id": order_id,
                "amount": { "amount_minor": amount.amount_minor, "currency": amount.currency },
                "reason": reason,
            }));
        credit_note(&api.send(post)?)
    }
}

// Makes the component export the `erp` interface (in a native build, such
// as `cargo test`, it only checks that `Connector` implements it).
toolhost_sdk::export_erp!(Connector);

#[cfg(test)]
mod tests {
    use super::*;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    fn host(status: u16, body: Value) -> TestHost {
        TestHost::new()
            .config("base-url", "https://erp.example.com/api")
            .secret("api-key", "test-key")
            .on_http(move |_| Ok(Response::json_body(status, &body)))
    }

    #[test]
    fn gets_a_contract_from_the_configured_upstream_with_the_key() {
        let mut host = host(
            200,
            json!({ "id": "K-1", "customer_id": "C-1", "tier": "business", "valid_from": "2025-01-01T00:00:00Z",
                    "sla": { "grace_hours": 24, "per_day_late_bps": 500, "max_compensation_bps": 2000,
                             "lost_parcel_bps": 10000 } }),
        );
        let found = host.run(|| Connector::get_contract("K-1".into())).unwrap();
        let expected = SlaTerms {
            grace_hours: 24,
            per_day_late_bps: 500,
            max_compensation_bps: 2000,
            lost_parcel_bps: 10000,
        };
        assert_eq!(found.sla, expected);
        assert_eq!(found.valid_until, None);
        let sent = &host.requests()[0];
        assert_eq!(sent.url, "https://erp.example.com/api/contracts/K-1");
        assert_eq!(sent.header_value("authorization"), Some("Bearer test-key"));
    }

    #[test]
    fn an_upstream_refusal_is_denied() {
        let money = Money { amount_minor: 500, currency: "EUR".into() };
        let raised = host(403, json!({ "error": "read-only key" }))
            .run(|| Connector::create_credit_note("SO-1".into(), money, "late".into(), "k-1".into()));
        assert!(matches!(raised, Err(Error::Denied(_))), "{raised:?}");
    }
}
