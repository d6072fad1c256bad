//! A coupon connector: vouchers issued, checked, redeemed and revoked in an
//! upstream voucher system, over its REST API.
//!
//! Where the upstream is and how to reach it are the operator's to say: its
//! base URL is the config value `base-url`, its API key the secret `api-key`
//! (both requested in connector.toml), sent as a bearer token. The upstream's
//! JSON is mapped to the contract's types below: change the paths and field
//! names to your API's.

use serde_json::{json, Value};
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::coupon::{Guest, IssueRequest, Validation, Voucher, VoucherStatus};
use toolhost_sdk::json::{name_of, Fields};
use toolhost_sdk::{Error, Money, Result};

pub struct Connector;

/// The upstream, as the operator configured it.
fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

const STATUSES: [(&str, VoucherStatus); 4] = [
    ("active", VoucherStatus::Active),
    ("redeemed", VoucherStatus::Redeemed),
    ("expired", VoucherStatus::Expired),
    ("revoked", VoucherStatus::Revoked),
];

fn money(v: &Value) -> Result<Money> {
    Ok(Money {
        amount_minor: v.int("amount_minor")?,
        currency: v.text("currency")?,
    })
}

fn voucher(v: &Value) -> Result<Voucher> {
    Ok(Voucher {
        code: v.text("code")?,
        customer_id: v.text("customer_id")?,
        value: money(v.field("value")?)?,
        status: v.one_of("status", &STATUSES)?,
        reason: v.text("reason")?,
        order_id: v.opt_text("order_id"),
        issued_at: v.text("issued_at")?,
        expires_at: v.text("expires_at")?,
        redeemed_at: v.opt_text("redeemed_at"),
        redeemed_on_order: v.opt_text("redeemed_on_order"),
    })
}

fn voucher_path(code: &str) -> Result<String> {
    Ok(format!("/vouchers/{}", segment("code", code)?))
}

impl Guest for Connector {
    fn issue_voucher(request: IssueRequest) -> Result<Voucher> {
        if !(1..=730).contains(&request.valid_days) {
            return Err(Error::InvalidInput("valid-days must be 1 to 730".into()));
        }
        let api = api()?;
        // The upstream remembers the key: a retry gets the first voucher back.
        let post = api
            .request("POST", "/vouchers")
            .header("idempotency-key", &request.idempotency_key)
            .json(&json!({
                "customer_id": request.customer_id,
                "value": { "amount_minor": request.value.amount_minor, "currency": request.value.currency },
                "reason": request.reason,
                "order_id": request.order_id,
                "valid_days": request.valid_days,
            }));
        voucher(&api.send(post)?)
    }

    fn validate_voucher(code: String, customer_id: String) -> Result<Validation> {
        let found = match api()?.get::<Value>(&voucher_path(&code)?) {
            Ok(v) => voucher(&v)?,
            Err(Error::NotFound(_)) => {
                return Ok(Validation {
                    valid: false,
                    problem: Some(format!("there is no voucher {code}")),
                    voucher: None,
                })
            }
            Err(e) => return Err(e),
        };
        // Another customer's voucher is not shown, only refused.
        if found.customer_id != customer_id {
            return Ok(Validation {
                valid: false,
                problem: Some("the voucher belongs to another customer".into()),
                voucher: None,
            });
        }
        let problem = (found.status != VoucherStatus::Active)
            .then(|| format!("the voucher is {}", name_of(&STATUSES, &found.status)));
        Ok(Validation {
            valid: problem.is_none(),
            problem,
            voucher: Some(found),
        })
    }

    fn redeem_voucher(code: String, order_id: String, idempotency_key: String) -> Result<Voucher> {
        let api = api()?;
        let post = api
            .request("POST", &format!("{}/redeem", voucher_path(&code)?))
            .header("idempotency-key", &idempotency_key)
            .json(&json!({ "order_id": order_id }));
        voucher(&api.send(post)?)
    }

    fn revoke_voucher(code: String, reason: String) -> Result<Voucher> {
        let path = format!("{}/revoke", voucher_path(&code)?);
        voucher(&api()?.post(&path, &json!({ "reason": reason }))?)
    }

    fn list_vouchers(customer_id: String) -> Result<Vec<Voucher>> {
        let path = format!("/customers/{}/vouchers", segment("customer-id", &customer_id)?);
        api()?.get::<Value>(&path)?.list("vouchers", voucher)
    }
}

// Makes the component export the `coupon` interface (in a native build, such
// as `cargo test`, it only checks that `Connector` implements it).
toolhost_sdk::export_coupon!(Connector);

#[cfg(test)]
mod tests {
    use super::*;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    fn upstream_voucher() -> Value {
        json!({
            "code": "V-1", "customer_id": "C-1",
            "value": { "amount_minor": 1500, "currency": "EUR" },
            "status": "active", "reason": "late delivery", "order_id": "SO-1",
            "issued_at": "2026-01-05T10:00:00Z", "expires_at": "2026-04-05T10:00:00Z",
        })
    }

    fn host() -> TestHost {
        TestHost::new()
            .config("base-url", "https://vouchers.example.com/api")
            .secret("api-key", "test-key")
            .on_http(|_| Ok(Response::json_body(200, &upstream_voucher())))
    }

    #[test]
    fn issues_a_voucher_at_the_configured_upstream_with_the_key() {
        let mut host = host();
        let issued = host.run(|| {
            Connector::issue_voucher(IssueRequest {
                idempotency_key: "k-1".into(),
                customer_id: "C-1".into(),
                value: Money { amount_minor: 1500, currency: "EUR".into() },
                reason: "late delivery".into(),
                order_id: Some("SO-1".into()),
                valid_days: 90,
            })
        });
        assert_eq!(issued.unwrap().status, VoucherStatus::Active);
        let sent = &host.requests()[0];
        assert_eq!(sent.url, "https://vouchers.example.com/api/vouchers");
        assert_eq!(sent.header_value("authorization"), Some("Bearer test-key"));
        assert_eq!(sent.header_value("idempotency-key"), Some("k-1"));
    }

    #[test]
    fn another_customers_voucher_is_not_valid() {
        let validation = host().run(|| Connector::validate_voucher("V-1".into(), "C-2".into()));
        let expected = Validation {
            valid: false,
            problem: Some("the voucher belongs to another customer".into()),
            voucher: None,
        };
        assert_eq!(validation.unwrap(), expected);
    }
}
