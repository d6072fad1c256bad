//! Reference ERP connector (bearer credential).
//!
//! `GET /orders/{id}`, `GET /customers/{id}/orders?limit=`,
//! `GET /contracts/{id}`, `POST /credit-notes` (with `Idempotency-Key`).

use serde_json::{json, Value};
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::erp::{Contract, CreditNote, Guest, Order, OrderLine, OrderStatus, SlaTerms};
use toolhost_sdk::{Error, Money, Result};

pub struct Erp;

fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

fn text(v: &Value, field: &str) -> Result<String> {
    v[field].as_str().map(str::to_string).ok_or_else(|| Error::malformed(format!("`{field}` missing")))
}

fn int(v: &Value, field: &str) -> Result<i64> {
    v[field].as_i64().ok_or_else(|| Error::malformed(format!("`{field}` missing")))
}

fn order(v: &Value) -> Result<Order> {
    let currency = text(v, "currency")?;
    let money = |cents| Money { amount_minor: cents, currency: currency.clone() };
    let lines = v["lines"]
        .as_array()
        .ok_or_else(|| Error::malformed("`lines` missing"))?
        .iter()
        .map(|l| {
            Ok(OrderLine {
                sku: text(l, "sku")?,
                description: text(l, "title")?,
                quantity: int(l, "qty")?.try_into().map_err(|_| Error::malformed("bad quantity"))?,
                unit_price: money(int(l, "unit_price_cents")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Order {
        order_id: text(v, "order_no")?,
        customer_id: text(v, "customer")?,
        status: match v["state"].as_str().unwrap_or_default() {
            "open" => OrderStatus::Open,
            "paid" => OrderStatus::Paid,
            "shipped" => OrderStatus::Shipped,
            "delivered" => OrderStatus::Delivered,
            "cancelled" => OrderStatus::Cancelled,
            "returned" => OrderStatus::Returned,
            other => return Err(Error::malformed(format!("unknown order state {other:?}"))),
        },
        placed_at: text(v, "placed")?,
        lines,
        total: money(int(v, "total_cents")?),
        tracking_numbers: v["tracking"].as_array().map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default(),
        contract_id: text(v, "contract")?,
    })
}

fn bps(v: &Value, field: &str) -> Result<u32> {
    int(v, field)?.try_into().map_err(|_| Error::malformed(format!("bad `{field}`")))
}

impl Guest for Erp {
    fn get_order(order_id: String) -> Result<Order> {
        order(&api()?.get(&format!("/orders/{}", segment("order-id", &order_id)?))?)
    }

    fn list_orders(customer_id: String, limit: u32) -> Result<Vec<Order>> {
        let limit = limit.clamp(1, 100);
        let body: Value = api()?.get(&format!("/customers/{}/orders?limit={limit}", segment("customer-id", &customer_id)?))?;
        body["orders"].as_array().ok_or_else(|| Error::malformed("`orders` missing"))?.iter().map(order).collect()
    }

    fn get_contract(contract_id: String) -> Result<Contract> {
        let v: Value = api()?.get(&format!("/contracts/{}", segment("contract-id", &contract_id)?))?;
        let sla = &v["sla"];
        Ok(Contract {
            contract_id: text(&v, "id")?,
            customer_id: text(&v, "customer")?,
            tier: text(&v, "tier")?,
            valid_from: text(&v, "valid_from")?,
            valid_until: v["valid_until"].as_str().map(str::to_string),
            sla: SlaTerms {
                grace_hours: bps(sla, "grace_hours")?,
                per_day_late_bps: bps(sla, "per_day_late_bps")?,
                max_compensation_bps: bps(sla, "max_bps")?,
                lost_parcel_bps: bps(sla, "lost_bps")?,
            },
        })
    }

    fn create_credit_note(order_id: String, amount: Money, reason: String, idempotency_key: String) -> Result<CreditNote> {
        segment("idempotency-key", &idempotency_key)?;
        if amount.amount_minor <= 0 {
            return Err(Error::InvalidInput("amount.amount-minor must be positive".into()));
        }
        let api = api()?;
        let request = api
            .request("POST", "/credit-notes")
            .header("idempotency-key", &idempotency_key)
            .json(&json!({ "order": order_id, "amount_cents": amount.amount_minor, "currency": amount.currency, "reason": reason }));
        let v: Value = api.send(request)?;
        Ok(CreditNote {
            credit_note_id: text(&v, "id")?,
            order_id: text(&v, "order")?,
            amount: Money { amount_minor: int(&v, "amount_cents")?, currency: text(&v, "currency")? },
            reason: v["reason"].as_str().unwrap_or_default().to_string(),
            created_at: text(&v, "created")?,
        })
    }
}

#[cfg(target_arch = "wasm32")]
toolhost_sdk::export_erp!(Erp);
