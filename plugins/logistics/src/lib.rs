//! Reference logistics connector: the Nordpost tracking API (v2), credential
//! in the `X-Api-Key` header.
//!
//! `GET /parcels/{tn}`, `GET /parcels/{tn}/scans`, `GET /parcels?ref=ORDER`.

use serde_json::Value;
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::logistics::{DelayReport, Guest, Location, Shipment, ShipmentStatus, TrackingEvent};
use toolhost_sdk::{time, Error, Result};

pub struct Logistics;

fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", |k| Auth::Header("x-api-key", k))
}

fn text(v: &Value, field: &str) -> Result<String> {
    v[field].as_str().map(str::to_string).ok_or_else(|| Error::malformed(format!("`{field}` missing")))
}

fn status(code: &Value) -> Result<ShipmentStatus> {
    Ok(match code.as_str().unwrap_or_default() {
        "CREATED" => ShipmentStatus::LabelCreated,
        "IN_TRANSIT" => ShipmentStatus::InTransit,
        "CUSTOMS" => ShipmentStatus::CustomsHold,
        "OUT_FOR_DELIVERY" => ShipmentStatus::OutForDelivery,
        "DELIVERED" => ShipmentStatus::Delivered,
        "FAILED_ATTEMPT" => ShipmentStatus::DeliveryFailed,
        "RETURNED" => ShipmentStatus::ReturnedToSender,
        "LOST" => ShipmentStatus::Lost,
        other => return Err(Error::malformed(format!("unknown status {other:?}"))),
    })
}

fn location(v: &Value) -> Option<Location> {
    Some(Location {
        country: v["cc"].as_str()?.to_string(),
        city: v["city"].as_str()?.to_string(),
        postal_code: v["zip"].as_str().map(str::to_string),
    })
}

fn event(v: &Value) -> Result<TrackingEvent> {
    Ok(TrackingEvent {
        at: text(v, "ts")?,
        status: status(&v["code"])?,
        location: location(&v["place"]),
        description: v["text"].as_str().unwrap_or_default().to_string(),
    })
}

fn events(api: &Api, tn: &str) -> Result<Vec<TrackingEvent>> {
    let body: Value = api.get(&format!("/parcels/{}/scans", segment("tracking-number", tn)?))?;
    body["scans"].as_array().ok_or_else(|| Error::malformed("`scans` missing"))?.iter().map(event).collect()
}

fn shipment(api: &Api, parcel: &Value) -> Result<Shipment> {
    let tn = text(parcel, "trackingNumber")?;
    let last_event = events(api, &tn)?.pop();
    Ok(Shipment {
        tracking_number: tn,
        carrier: "Nordpost".into(),
        order_reference: parcel["reference"].as_str().map(str::to_string),
        status: status(&parcel["status"])?,
        service: parcel["product"].as_str().unwrap_or("standard").to_string(),
        origin: location(&parcel["from"]).ok_or_else(|| Error::malformed("`from` missing"))?,
        destination: location(&parcel["to"]).ok_or_else(|| Error::malformed("`to` missing"))?,
        shipped_at: parcel["shippedAt"].as_str().map(str::to_string),
        promised_by: text(parcel, "promisedBy")?,
        delivered_at: parcel["deliveredAt"].as_str().map(str::to_string),
        last_event,
    })
}

fn parcel(api: &Api, tn: &str) -> Result<Value> {
    api.get(&format!("/parcels/{}", segment("tracking-number", tn)?))
}

/// Whole hours `until` is past `promised` (zero when not).
pub fn hours_late(promised: &str, until: i64) -> Result<u32> {
    let promised = time::parse_rfc3339(promised).ok_or_else(|| Error::malformed(format!("bad timestamp {promised:?}")))?;
    Ok(((until - promised).max(0) / 3600) as u32)
}

impl Guest for Logistics {
    fn track_shipment(tracking_number: String) -> Result<Shipment> {
        let api = api()?;
        shipment(&api, &parcel(&api, &tracking_number)?)
    }

    fn find_shipments(order_reference: String) -> Result<Vec<Shipment>> {
        let api = api()?;
        let body: Value = api.get(&format!("/parcels?ref={}", segment("order-reference", &order_reference)?))?;
        let parcels = body["parcels"].as_array().ok_or_else(|| Error::malformed("`parcels` missing"))?;
        parcels.iter().map(|p| shipment(&api, p)).collect()
    }

    fn list_events(tracking_number: String) -> Result<Vec<TrackingEvent>> {
        events(&api()?, &tracking_number)
    }

    fn report_delay(tracking_number: String) -> Result<DelayReport> {
        let api = api()?;
        let p = parcel(&api, &tracking_number)?;
        let promised_by = text(&p, "promisedBy")?;
        let delivered_at = p["deliveredAt"].as_str().map(str::to_string);
        let until = match &delivered_at {
            Some(at) => time::parse_rfc3339(at).ok_or_else(|| Error::malformed(format!("bad timestamp {at:?}")))?,
            None => time::now_unix(),
        };
        let status = status(&p["status"])?;
        Ok(DelayReport {
            tracking_number,
            lost: status == ShipmentStatus::Lost,
            status,
            hours_late: hours_late(&promised_by, until)?,
            promised_by,
            delivered_at,
        })
    }
}

#[cfg(target_arch = "wasm32")]
toolhost_sdk::export_logistics!(Logistics);

#[cfg(test)]
mod tests {
    use super::*;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    fn host() -> TestHost {
        TestHost::new().config("base-url", "https://np.example/v2").secret("api-key", "k").on_http(|req| {
            assert_eq!(req.header_value("x-api-key"), Some("k"));
            Ok(match req.url.as_str() {
                "https://np.example/v2/parcels/NP1" => Response::json_body(200, &serde_json::json!({
                    "trackingNumber": "NP1", "status": "DELIVERED", "product": "x", "from": {"cc": "DE", "city": "Hamburg"},
                    "to": {"cc": "SE", "city": "Stockholm"}, "promisedBy": "2026-10-05T00:00:00Z", "deliveredAt": "2026-10-07T04:30:00Z",
                })),
                "https://np.example/v2/parcels/NP-429" => Response { status: 429, headers: vec![("retry-after".into(), "7".into())], body: vec![] },
                "https://np.example/v2/parcels/NP-BAD" => Response { status: 200, headers: vec![], body: b"<html>".to_vec() },
                _ => Response::json_body(404, &serde_json::json!({"error": "parcel not found"})),
            })
        })
    }

    #[test]
    fn reports_delay_in_whole_hours() {
        let r = host().run(|| Logistics::report_delay("NP1".into())).unwrap();
        assert_eq!(r.hours_late, 52);
        assert!(!r.lost);
    }

    #[test]
    fn upstream_failures_are_typed() {
        let mut h = host();
        h.run(|| {
            assert!(matches!(Logistics::report_delay("NP-429".into()), Err(Error::RateLimited(Some(7)))));
            assert!(matches!(Logistics::report_delay("NP-BAD".into()), Err(Error::Upstream(_))));
            assert!(matches!(Logistics::report_delay("NP-NONE".into()), Err(Error::NotFound(_))));
            assert!(matches!(Logistics::report_delay("".into()), Err(Error::InvalidInput(_))));
        });
    }
}
