//! The reference coupon connector: a voucher ledger.
//!
//! Vouchers live in the connector's kv; every state change is first reported
//! to the operator's ledger service (config `ledger-url`, bearer secret
//! `ledger-token`) when one is set, and only stored once the ledger accepted
//! it, so the books never show a voucher the ledger does not know.
//!
//! Keys:
//! - `voucher/<code>`: the voucher (JSON)
//! - `customer/<customer-id>/<issued-at, zero-padded>/<code>`: an index for listing
//! - `idem/issue/<key>`: the voucher an issue key claimed (JSON), written
//!   before the ledger is told, so an issue cut short (the host stopped
//!   mid-call) is finished by the next call with that key, under the same code
//! - `idem/redeem/<key>`: the code a redemption key redeemed

use serde::{Deserialize, Serialize};
use toolhost_sdk::coupon::{Guest, IssueRequest, Validation, Voucher, VoucherStatus};
#[cfg(test)]
use toolhost_sdk::UpstreamFailure;
use toolhost_sdk::{config, http::Request, kv, random, secrets, time, Error, Money, Result};

pub struct Coupon;

/// Largest voucher the connector issues unless the operator sets `max-value-minor`.
const DEFAULT_MAX_VALUE_MINOR: i64 = 100_000;
const MAX_VALID_DAYS: u32 = 730;
const MAX_ID_LEN: usize = 128;
const LIST_LIMIT: u32 = 200;

/// A voucher as stored: the WIT record, plus the request it came from so a
/// reused idempotency key with a different request is caught.
#[derive(Serialize, Deserialize, Clone)]
struct Stored {
    code: String,
    customer_id: String,
    amount_minor: i64,
    currency: String,
    status: String,
    reason: String,
    order_id: Option<String>,
    issued_at: i64,
    expires_at: i64,
    redeemed_at: Option<i64>,
    redeemed_on_order: Option<String>,
    issue_key: String,
}

impl Stored {
    fn status(&self, now: i64) -> VoucherStatus {
        match self.status.as_str() {
            "redeemed" => VoucherStatus::Redeemed,
            "revoked" => VoucherStatus::Revoked,
            _ if now >= self.expires_at => VoucherStatus::Expired,
            _ => VoucherStatus::Active,
        }
    }

    fn to_voucher(&self, now: i64) -> Voucher {
        Voucher {
            code: self.code.clone(),
            customer_id: self.customer_id.clone(),
            value: Money {
                amount_minor: self.amount_minor,
                currency: self.currency.clone(),
            },
            status: self.status(now),
            reason: self.reason.clone(),
            order_id: self.order_id.clone(),
            issued_at: time::format_rfc3339(self.issued_at),
            expires_at: time::format_rfc3339(self.expires_at),
            redeemed_at: self.redeemed_at.map(time::format_rfc3339),
            redeemed_on_order: self.redeemed_on_order.clone(),
        }
    }
}

impl Guest for Coupon {
    fn issue_voucher(request: IssueRequest) -> Result<Voucher> {
        check_id("idempotency-key", &request.idempotency_key)?;
        check_id("customer-id", &request.customer_id)?;
        let memo = format!("idem/issue/{}", request.idempotency_key);
        let now = time::now_unix();
        if let Some(claimed) = claimed(&memo)? {
            return Self::issue_claimed(&memo, claimed, &request, now);
        }
        check_value(&request.value)?;
        if request.valid_days == 0 || request.valid_days > MAX_VALID_DAYS {
            return Err(Error::InvalidInput(format!(
                "valid-days must be 1 to {MAX_VALID_DAYS}, not {}",
                request.valid_days
            )));
        }
        if let Some(order) = &request.order_id {
            check_id("order-id", order)?;
        }
        let stored = Stored {
            code: format!("V-{}", random::code(10)),
            customer_id: request.customer_id.clone(),
            amount_minor: request.value.amount_minor,
            currency: request.value.currency.clone(),
            status: "active".into(),
            reason: request.reason.clone(),
            order_id: request.order_id.clone(),
            issued_at: now,
            expires_at: now + i64::from(request.valid_days) * 86_400,
            redeemed_at: None,
            redeemed_on_order: None,
            issue_key: request.idempotency_key.clone(),
        };
        // Claim the key first: of two racing calls with one key, one wins and
        // the other finishes (or returns) the winner's voucher.
        if !kv::set_if_absent(&memo, &serde_json::to_vec(&stored).map_err(internal)?)? {
            let claimed = claimed(&memo)?.ok_or_else(|| {
                Error::Conflict("a concurrent issue with this key failed; retry".into())
            })?;
            return Self::issue_claimed(&memo, claimed, &request, now);
        }
        Self::finish_issue(&memo, stored, now)
    }

    fn validate_voucher(code: String, customer_id: String) -> Result<Validation> {
        let now = time::now_unix();
        let Some(stored) = find(&code)? else {
            return Ok(Validation {
                valid: false,
                problem: Some(format!("no voucher with code {code:?}")),
                voucher: None,
            });
        };
        let problem = if stored.customer_id != customer_id {
            Some("the voucher belongs to another customer".to_string())
        } else {
            match stored.status(now) {
                VoucherStatus::Active => None,
                VoucherStatus::Redeemed => Some("already redeemed".into()),
                VoucherStatus::Expired => Some("expired".into()),
                VoucherStatus::Revoked => Some("revoked".into()),
            }
        };
        // Never hand one customer's voucher details to a query for another.
        let voucher = (stored.customer_id == customer_id).then(|| stored.to_voucher(now));
        Ok(Validation {
            valid: problem.is_none(),
            problem,
            voucher,
        })
    }

    fn redeem_voucher(code: String, order_id: String, idempotency_key: String) -> Result<Voucher> {
        check_id("order-id", &order_id)?;
        check_id("idempotency-key", &idempotency_key)?;
        let now = time::now_unix();
        let memo = format!("idem/redeem/{idempotency_key}");
        let mut stored = load(&code)?;
        if let Some(done) = kv::get(&memo)? {
            if done != code.as_bytes() {
                return Err(Error::Conflict(format!(
                    "idempotency key {idempotency_key:?} was used to redeem another voucher"
                )));
            }
            return Ok(stored.to_voucher(now));
        }
        match stored.status(now) {
            VoucherStatus::Active => {}
            VoucherStatus::Redeemed => {
                return Err(Error::Conflict(format!(
                    "voucher {code} was already redeemed on order {}",
                    stored.redeemed_on_order.as_deref().unwrap_or("?")
                )))
            }
            VoucherStatus::Expired => {
                return Err(Error::Conflict(format!("voucher {code} has expired")))
            }
            VoucherStatus::Revoked => {
                return Err(Error::Conflict(format!("voucher {code} was revoked")))
            }
        }
        stored.status = "redeemed".into();
        stored.redeemed_at = Some(now);
        stored.redeemed_on_order = Some(order_id);
        report("redeemed", &stored)?;
        kv::set_json(&voucher_key(&code), &stored)?;
        kv::set(&memo, code.as_bytes())?;
        Ok(stored.to_voucher(now))
    }

    fn revoke_voucher(code: String, reason: String) -> Result<Voucher> {
        let now = time::now_unix();
        let mut stored = load(&code)?;
        match stored.status(now) {
            VoucherStatus::Revoked => return Ok(stored.to_voucher(now)),
            VoucherStatus::Redeemed => {
                return Err(Error::Conflict(format!(
                    "voucher {code} was already redeemed"
                )))
            }
            VoucherStatus::Active | VoucherStatus::Expired => {}
        }
        stored.status = "revoked".into();
        stored.reason = format!("{} (revoked: {reason})", stored.reason);
        report("revoked", &stored)?;
        kv::set_json(&voucher_key(&code), &stored)?;
        Ok(stored.to_voucher(now))
    }

    fn list_vouchers(customer_id: String) -> Result<Vec<Voucher>> {
        check_id("customer-id", &customer_id)?;
        let now = time::now_unix();
        let keys = kv::list_keys(&format!("customer/{customer_id}/"), LIST_LIMIT)?;
        let mut vouchers = Vec::with_capacity(keys.len());
        for key in keys.iter().rev() {
            let code = key.rsplit('/').next().unwrap_or_default();
            if let Some(stored) = find(code)? {
                vouchers.push(stored.to_voucher(now));
            }
        }
        Ok(vouchers)
    }
}

impl Coupon {
    /// An issue key already claimed: the voucher it produced, or, when the
    /// claim was never carried through (a call cut short by a host that
    /// stopped, or still under way beside this one), that same voucher
    /// issued now.
    fn issue_claimed(
        memo: &str,
        claimed: Stored,
        request: &IssueRequest,
        now: i64,
    ) -> Result<Voucher> {
        if claimed.customer_id != request.customer_id
            || claimed.amount_minor != request.value.amount_minor
            || claimed.currency != request.value.currency
        {
            return Err(Error::Conflict(format!(
                "idempotency key {:?} was used for a different voucher ({})",
                request.idempotency_key, claimed.code
            )));
        }
        if let Some(stored) = find(&claimed.code)? {
            return Ok(stored.to_voucher(now));
        }
        Self::finish_issue(memo, claimed, now)
    }

    /// Tell the ledger, then keep the voucher. The ledger keeps one entry per
    /// idempotency key: when it already has one under another code (our
    /// claim was lost with a host that crashed after the ledger heard of
    /// it), the voucher takes the ledger's code, so the books and the
    /// customer see one voucher.
    fn finish_issue(memo: &str, mut stored: Stored, now: i64) -> Result<Voucher> {
        let issued = report("issued", &stored).and_then(|kept| {
            if let Some(code) = kept.filter(|code| *code != stored.code) {
                stored.code = code;
                if let Some(existing) = find(&stored.code)? {
                    return Ok(existing);
                }
                kv::set(memo, &serde_json::to_vec(&stored).map_err(internal)?)?;
            }
            save_new(&stored)?;
            Ok(stored)
        });
        match issued {
            Ok(stored) => Ok(stored.to_voucher(now)),
            Err(e) => {
                // Nothing was issued: free the key so a retry can succeed.
                let _ = kv::delete(memo);
                Err(e)
            }
        }
    }
}

/// What an issue key claimed. Claims before this connector kept the whole
/// voucher in them held just its code.
fn claimed(memo: &str) -> Result<Option<Stored>> {
    let Some(bytes) = kv::get(memo)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(stored) => Ok(Some(stored)),
        Err(_) => load(&String::from_utf8_lossy(&bytes)).map(Some),
    }
}

fn internal(e: serde_json::Error) -> Error {
    Error::Internal(e.to_string())
}

fn voucher_key(code: &str) -> String {
    format!("voucher/{code}")
}

fn find(code: &str) -> Result<Option<Stored>> {
    if code.is_empty() || code.len() > MAX_ID_LEN || code.contains('/') {
        return Ok(None);
    }
    Ok(kv::get_json(&voucher_key(code))?)
}

fn load(code: &str) -> Result<Stored> {
    find(code)?.ok_or_else(|| Error::NotFound(format!("no voucher with code {code:?}")))
}

fn save_new(stored: &Stored) -> Result<()> {
    kv::set_json(&voucher_key(&stored.code), stored)?;
    let index = format!(
        "customer/{}/{:012}/{}",
        stored.customer_id, stored.issued_at, stored.code
    );
    kv::set(&index, b"")?;
    Ok(())
}

fn check_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(Error::InvalidInput(format!(
            "{field} must be 1 to {MAX_ID_LEN} characters"
        )));
    }
    if value.contains('/') || value.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "{field} must not contain '/' or control characters"
        )));
    }
    Ok(())
}

fn check_value(value: &Money) -> Result<()> {
    let max = config::get("max-value-minor")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_VALUE_MINOR);
    if value.amount_minor <= 0 || value.amount_minor > max {
        return Err(Error::InvalidInput(format!(
            "value.amount-minor must be 1 to {max}, not {}",
            value.amount_minor
        )));
    }
    if value.currency.len() != 3 || !value.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::InvalidInput(format!(
            "value.currency must be an ISO 4217 code like EUR, not {:?}",
            value.currency
        )));
    }
    Ok(())
}

/// Tell the operator's ledger about a change, if the operator set one; the
/// code of the voucher the ledger keeps for this key and event, if it says.
fn report(event: &str, stored: &Stored) -> Result<Option<String>> {
    let Some(base) = config::get("ledger-url") else {
        return Ok(None);
    };
    let answer = Request::post(format!("{}/events", base.trim_end_matches('/')))
        .bearer(&secrets::get("ledger-token")?)
        .json(&serde_json::json!({
            "event": event,
            "code": stored.code,
            "customer_id": stored.customer_id,
            "amount_minor": stored.amount_minor,
            "currency": stored.currency,
            "order_id": stored.order_id,
            "idempotency_key": stored.issue_key,
        }))
        .send()?
        .error_for_status()?;
    // A ledger that answers with no body, or another shape, kept what we sent.
    let kept: Option<serde_json::Value> = answer.json().ok();
    Ok(kept.and_then(|k| k["code"].as_str().map(str::to_string)))
}

#[cfg(target_arch = "wasm32")]
toolhost_sdk::export_coupon!(Coupon);

#[cfg(test)]
mod tests {
    use super::*;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    fn request(key: &str, amount: i64) -> IssueRequest {
        IssueRequest {
            idempotency_key: key.into(),
            customer_id: "C-1".into(),
            value: Money {
                amount_minor: amount,
                currency: "EUR".into(),
            },
            reason: "late delivery".into(),
            order_id: Some("SO-1".into()),
            valid_days: 30,
        }
    }

    #[test]
    fn issue_is_idempotent_and_redeem_once() {
        let mut host = TestHost::new().now(1_764_000_000);
        host.run(|| {
            let v1 = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            let v2 = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            assert_eq!(v1.code, v2.code);
            assert!(matches!(
                Coupon::issue_voucher(request("k1", 9999)),
                Err(Error::Conflict(_))
            ));
            let r1 = Coupon::redeem_voucher(v1.code.clone(), "SO-2".into(), "r1".into()).unwrap();
            assert_eq!(r1.status, VoucherStatus::Redeemed);
            // the same retry answers the same; a new redemption is refused
            assert!(Coupon::redeem_voucher(v1.code.clone(), "SO-2".into(), "r1".into()).is_ok());
            assert!(matches!(
                Coupon::redeem_voucher(v1.code.clone(), "SO-3".into(), "r2".into()),
                Err(Error::Conflict(_))
            ));
            assert_eq!(Coupon::list_vouchers("C-1".into()).unwrap().len(), 1);
        });
    }

    #[test]
    fn ledger_failure_issues_nothing() {
        let mut host = TestHost::new()
            .config("ledger-url", "https://ledger.example")
            .secret("ledger-token", "t")
            .on_http(|_| {
                Ok(Response::json_body(
                    503,
                    &serde_json::json!({"error": "down"}),
                ))
            });
        host.run(|| {
            let err = Coupon::issue_voucher(request("k1", 1500)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Upstream(UpstreamFailure {
                        status: Some(503),
                        ..
                    })
                ),
                "{err:?}"
            );
            assert!(Coupon::list_vouchers("C-1".into()).unwrap().is_empty());
        });
        assert_eq!(host.requests().len(), 1);
        assert_eq!(
            host.requests()[0].header_value("authorization"),
            Some("Bearer t")
        );
    }

    #[test]
    fn an_issue_cut_short_is_finished_under_its_claimed_code() {
        let mut host = TestHost::new()
            .now(1_764_000_000)
            .config("ledger-url", "https://ledger.example")
            .secret("ledger-token", "t")
            .on_http(|_| Ok(Response::json_body(201, &serde_json::json!({}))));
        host.run(|| {
            // A host that stopped after the claim, before the voucher was kept.
            let first = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            kv::delete(&voucher_key(&first.code)).unwrap();
            let again = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            assert_eq!(again.code, first.code);
            assert_eq!(Coupon::list_vouchers("C-1".into()).unwrap().len(), 1);
        });
        // Both calls told the ledger (which keeps one entry per key).
        assert_eq!(host.requests().len(), 2);
    }

    #[test]
    fn a_claim_kept_by_an_earlier_version_as_just_the_code_still_answers() {
        let mut host = TestHost::new();
        host.run(|| {
            let v = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            kv::set("idem/issue/k1", v.code.as_bytes()).unwrap();
            let again = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            assert_eq!(again.code, v.code);
            assert!(matches!(
                Coupon::issue_voucher(request("k1", 9999)),
                Err(Error::Conflict(_))
            ));
        });
    }

    #[test]
    fn the_ledgers_code_wins_when_it_already_kept_the_key() {
        let mut host = TestHost::new()
            .config("ledger-url", "https://ledger.example")
            .secret("ledger-token", "t")
            .on_http(|_| {
                Ok(Response::json_body(
                    200,
                    &serde_json::json!({"code": "V-KEPT000001", "event": "issued"}),
                ))
            });
        host.run(|| {
            let v = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            assert_eq!(v.code, "V-KEPT000001");
            let again = Coupon::issue_voucher(request("k1", 1500)).unwrap();
            assert_eq!(again.code, "V-KEPT000001");
            let listed = Coupon::list_vouchers("C-1".into()).unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].code, "V-KEPT000001");
        });
    }

    #[test]
    fn rejects_bad_values() {
        let mut host = TestHost::new();
        host.run(|| {
            assert!(matches!(
                Coupon::issue_voucher(request("k", 0)),
                Err(Error::InvalidInput(_))
            ));
            assert!(matches!(
                Coupon::issue_voucher(request("k", 10_000_000)),
                Err(Error::InvalidInput(_))
            ));
            assert!(matches!(
                Coupon::issue_voucher(request("a/b", 100)),
                Err(Error::InvalidInput(_))
            ));
        });
    }
}
