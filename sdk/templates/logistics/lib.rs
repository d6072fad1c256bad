//! A logistics connector: shipments and their tracking in a carrier's
//! upstream system, over its REST API.
//!
//! Where the upstream is and how to reach it are the operator's to say: its
//! base URL is the config value `base-url`, its API key the secret `api-key`
//! (both requested in connector.toml), sent as a bearer token. The upstream's
//! JSON is mapped to the contract's types below: change the paths and field
//! names to your API's.

use serde_json::Value;
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::http::encode_component;
use toolhost_sdk::json::Fields;
use toolhost_sdk::logistics::{DelayReport, Guest, Location, Shipment, ShipmentStatus, TrackingEvent};
use toolhost_sdk::{time, Error, Result};

pub struct Connector;

/// The upstream, as the operator configured it.
fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", Auth::Bearer)
}

const STATUSES: [(&str, ShipmentStatus); 8] = [
    ("label-created", ShipmentStatus::LabelCreated),
    ("in-transit", ShipmentStatus::InTransit),
    ("customs-hold", ShipmentStatus::CustomsHold),
    ("out-for-delivery", ShipmentStatus::OutForDelivery),
    ("delivered", ShipmentStatus::Delivered),
    ("delivery-failed", ShipmentStatus::DeliveryFailed),
    ("returned-to-sender", ShipmentStatus::ReturnedToSender),
    ("lost", ShipmentStatus::Lost),
];

fn location(v: &Value) -> Result<Location> {
    Ok(Location {
        country: v.text("country")?,
        city: v.text("city")?,
        postal_code: v.opt_text("postal_code"),
    })
}

fn event(v: &Value) -> Result<TrackingEvent> {
    Ok(TrackingEvent {
        at: v.text("at")?,
        status: v.one_of("status", &STATUSES)?,
        location: v.opt("location", location)?,
        description: v.text("description")?,
    })
}

fn shipment(v: &Value) -> Result<Shipment> {
    Ok(Shipment {
        tracking_number: v.text("tracking_number")?,
        carrier: v.text("carrier")?,
        order_reference: v.opt_text("order_reference"),
        status: v.one_of("status", &STATUSES)?,
        service: v.text("service")?,
        origin: location(v.field("origin")?)?,
        destination: location(v.field("destination")?)?,
        shipped_at: v.opt_text("shipped_at"),
        promised_by: v.text("promised_by")?,
        delivered_at: v.opt_text("delivered_at"),
        last_event: v.opt("last_event", event)?,
    })
}

fn shipment_path(tracking_number: &str) -> Result<String> {
    Ok(format!("/shipments/{}", segment("tracking-number", tracking_number)?))
}

fn unix(field: &str, timestamp: &str) -> Result<i64> {
    time::parse_rfc3339(timestamp).ok_or_else(|| Error::malformed(format!("`{field}` is not a timestamp")))
}

impl Guest for Connector {
    fn track_shipment(tracking_number: String) -> Result<Shipment> {
        shipment(&api()?.get(&shipment_path(&tracking_number)?)?)
    }

    fn find_shipments(order_reference: String) -> Result<Vec<Shipment>> {
        let path = format!("/shipments?order_reference={}", encode_component(&order_reference));
        api()?.get::<Value>(&path)?.list("shipments", shipment)
    }

    fn list_events(tracking_number: String) -> Result<Vec<TrackingEvent>> {
        let path = format!("{}/events", shipment_path(&tracking_number)?);
        api()?.get::<Value>(&path)?.list("events", event)
    }

    fn report_delay(tracking_number: String) -> Result<DelayReport> {
        let shipment = Self::track_shipment(tracking_number)?;
        let promised = unix("promised_by", &shipment.promised_by)?;
        // Until delivery, or until now while it is still on its way.
        let until = match &shipment.delivered_at {
            Some(at) => unix("delivered_at", at)?,
            None => time::now_unix(),
        };
        let hours_late = ((until - promised).max(0) / 3600).try_into().unwrap_or(u32::MAX);
        Ok(DelayReport {
            tracking_number: shipment.tracking_number,
            lost: shipment.status == ShipmentStatus::Lost,
            status: shipment.status,
            promised_by: shipment.promised_by,
            delivered_at: shipment.delivered_at,
            hours_late,
        })
    }
}

// Makes the component export the `logistics` interface (in a native build,
// such as `cargo test`, it only checks that `Connector` implements it).
toolhost_sdk::export_logistics!(Connector);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use toolhost_sdk::http::Response;
    use toolhost_sdk::testing::TestHost;

    #[test]
    fn reports_the_hours_past_the_promised_time() {
        let parcel = json!({
            "tracking_number": "TN-1", "carrier": "My Carrier", "status": "in-transit",
            "service": "express", "origin": { "country": "DE", "city": "Berlin" },
            "destination": { "country": "FR", "city": "Paris", "postal_code": "75001" },
            "promised_by": "2026-01-10T12:00:00Z",
        });
        let mut host = TestHost::new()
            .config("base-url", "https://carrier.example.com/api")
            .secret("api-key", "test-key")
            .now(time::parse_rfc3339("2026-01-11T15:00:00Z").unwrap())
            .on_http(move |_| Ok(Response::json_body(200, &parcel)));
        let report = host.run(|| Connector::report_delay("TN-1".into())).unwrap();
        let expected = DelayReport {
            tracking_number: "TN-1".into(),
            status: ShipmentStatus::InTransit,
            promised_by: "2026-01-10T12:00:00Z".into(),
            delivered_at: None,
            hours_late: 27,
            lost: false,
        };
        assert_eq!(report, expected);
        let sent = &host.requests()[0];
        assert_eq!(sent.url, "https://carrier.example.com/api/shipments/TN-1");
        assert_eq!(sent.header_value("authorization"), Some("Bearer test-key"));
    }
}
