//! Logistics connector for the SAMPLE Swiftline API: one document per
//! shipment with epoch-second times and `CC/City/Zip` places, credential in
//! `?apikey=`, and `200 {"ok": false}` for unknown air waybills.

use serde_json::Value;
use toolhost_sdk::api::{segment, Api, Auth};
use toolhost_sdk::logistics::{DelayReport, Guest, Location, Shipment, ShipmentStatus, TrackingEvent};
use toolhost_sdk::{time, Error, Result};

pub struct Swiftline;

fn api() -> Result<Api> {
    Api::configured("base-url", "api-key", |k| Auth::Query("apikey", k))
}

fn status(state: &Value) -> Result<ShipmentStatus> {
    Ok(match state.as_str().unwrap_or_default() {
        "booked" => ShipmentStatus::LabelCreated,
        "transit" => ShipmentStatus::InTransit,
        "held" => ShipmentStatus::CustomsHold,
        "courier" => ShipmentStatus::OutForDelivery,
        "delivered" => ShipmentStatus::Delivered,
        "exception" => ShipmentStatus::DeliveryFailed,
        "returned" => ShipmentStatus::ReturnedToSender,
        "missing" => ShipmentStatus::Lost,
        other => return Err(Error::malformed(format!("unknown state {other:?}"))),
    })
}

fn place(v: &Value) -> Option<Location> {
    let mut parts = v.as_str()?.splitn(3, '/');
    Some(Location {
        country: parts.next()?.to_string(),
        city: parts.next()?.to_string(),
        postal_code: parts.next().filter(|z| !z.is_empty()).map(str::to_string),
    })
}

fn when(v: &Value) -> Option<String> {
    v.as_i64().map(time::format_rfc3339)
}

fn history(doc: &Value) -> Result<Vec<TrackingEvent>> {
    doc["history"]
        .as_array()
        .ok_or_else(|| Error::malformed("`history` missing"))?
        .iter()
        .map(|h| {
            Ok(TrackingEvent {
                at: when(&h["t"]).ok_or_else(|| Error::malformed("event without time"))?,
                status: status(&h["state"])?,
                location: place(&h["where"]),
                description: h["note"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn shipment(doc: &Value) -> Result<Shipment> {
    Ok(Shipment {
        tracking_number: doc["awb"].as_str().ok_or_else(|| Error::malformed("`awb` missing"))?.to_string(),
        carrier: "Swiftline".into(),
        order_reference: doc["ref"].as_str().map(str::to_string),
        status: status(&doc["state"])?,
        service: doc["svc"].as_str().unwrap_or("standard").to_string(),
        origin: place(&doc["origin"]).ok_or_else(|| Error::malformed("`origin` missing"))?,
        destination: place(&doc["dest"]).ok_or_else(|| Error::malformed("`dest` missing"))?,
        shipped_at: when(&doc["pickup_epoch"]),
        promised_by: when(&doc["eta_epoch"]).ok_or_else(|| Error::malformed("`eta_epoch` missing"))?,
        delivered_at: when(&doc["pod_epoch"]),
        last_event: history(doc)?.pop(),
    })
}

fn track(awb: &str) -> Result<Value> {
    let body: Value = api()?.get(&format!("/track?awb={}", segment("tracking-number", awb)?))?;
    if body["ok"] != true {
        return Err(Error::NotFound(format!("no shipment {awb:?}")));
    }
    Ok(body["shipment"].clone())
}

impl Guest for Swiftline {
    fn track_shipment(tracking_number: String) -> Result<Shipment> {
        shipment(&track(&tracking_number)?)
    }

    fn find_shipments(order_reference: String) -> Result<Vec<Shipment>> {
        let body: Value = api()?.get(&format!("/lookup?reference_no={}", segment("order-reference", &order_reference)?))?;
        body["shipments"].as_array().ok_or_else(|| Error::malformed("`shipments` missing"))?.iter().map(shipment).collect()
    }

    fn list_events(tracking_number: String) -> Result<Vec<TrackingEvent>> {
        history(&track(&tracking_number)?)
    }

    fn report_delay(tracking_number: String) -> Result<DelayReport> {
        let doc = track(&tracking_number)?;
        let promised = doc["eta_epoch"].as_i64().ok_or_else(|| Error::malformed("`eta_epoch` missing"))?;
        let delivered = doc["pod_epoch"].as_i64();
        let until = delivered.unwrap_or_else(time::now_unix);
        let status = status(&doc["state"])?;
        Ok(DelayReport {
            tracking_number,
            lost: status == ShipmentStatus::Lost,
            status,
            promised_by: time::format_rfc3339(promised),
            delivered_at: delivered.map(time::format_rfc3339),
            hours_late: ((until - promised).max(0) / 3600) as u32,
        })
    }
}

#[cfg(target_arch = "wasm32")]
toolhost_sdk::export_logistics!(Swiftline);
