//! A deterministic, realistic data set: customers with contracts, orders with
//! lines, and shipments with scan histories — most on time, some late, a few
//! lost. Three fixed cases anchor the late-parcel scenario:
//! - C-1001 (premium) · SO-1001 delivered 52 h late · SO-1002 on time · SO-1003 lost.

use serde_json::{json, Value};

/// Everything seeded, as (tree, key, document).
pub type Doc = (&'static str, String, Value);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// 2026-10-01T00:00:00Z: the data set's calendar starts here.
pub const EPOCH: i64 = 1_790_812_800;
const HOUR: i64 = 3600;

pub fn ts(unix: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64)).to_string()
}

/// The SLA terms each contract tier carries.
pub fn sla(tier: &str) -> Value {
    match tier {
        "premium" => json!({ "grace_hours": 6, "per_day_late_bps": 500, "max_bps": 3000, "lost_bps": 10000 }),
        "business" => json!({ "grace_hours": 12, "per_day_late_bps": 300, "max_bps": 2000, "lost_bps": 10000 }),
        _ => json!({ "grace_hours": 24, "per_day_late_bps": 200, "max_bps": 1000, "lost_bps": 10000 }),
    }
}

const FIRST: &[&str] = &[
    "Ada", "Björn", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas", "Kaito", "Lena", "Mateo",
    "Nora", "Oskar", "Priya",
];
const LAST: &[&str] = &[
    "Lindqvist",
    "Rossi",
    "Novak",
    "Okafor",
    "Schmidt",
    "Tanaka",
    "Dubois",
    "Kowalski",
    "García",
    "Andersen",
    "Müller",
    "Haddad",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("SE", "Stockholm", "111 20"),
    ("DE", "Hamburg", "20095"),
    ("FR", "Lyon", "69001"),
    ("IT", "Milano", "20121"),
    ("NL", "Rotterdam", "3011"),
    ("PL", "Kraków", "31-001"),
    ("ES", "Valencia", "46001"),
    ("DK", "Aarhus", "8000"),
];
const PRODUCTS: &[(&str, &str, i64)] = &[
    ("SKU-HEADSET", "Wireless headset", 8990),
    ("SKU-KETTLE", "Electric kettle", 3450),
    ("SKU-LAMP", "Desk lamp", 2990),
    ("SKU-BOOTS", "Hiking boots", 12900),
    ("SKU-JACKET", "Rain jacket", 9900),
    ("SKU-GRINDER", "Coffee grinder", 5400),
];
const TIERS: &[&str] = &["standard", "standard", "standard", "business", "business", "premium"];

fn place(p: &(&str, &str, &str)) -> Value {
    json!({ "country": p.0, "city": p.1, "postal_code": p.2 })
}

/// One shipment's life, carrier-neutral; each carrier API renders it its own way.
#[allow(clippy::too_many_arguments)]
fn shipment(
    rng: &mut Rng,
    n: u64,
    order: &str,
    from: Value,
    to: Value,
    shipped: i64,
    promised: i64,
    fate: &str,
    late_hours: i64,
) -> Value {
    let mut events = vec![
        json!({ "at": ts(shipped - 4 * HOUR), "status": "label-created", "place": from, "text": "Shipping label created" }),
        json!({ "at": ts(shipped), "status": "in-transit", "place": from, "text": "Picked up by carrier" }),
        json!({ "at": ts(shipped + 20 * HOUR), "status": "in-transit", "place": from, "text": "Departed sorting hub" }),
    ];
    if from["country"] != to["country"] {
        events.push(json!({ "at": ts(shipped + 30 * HOUR), "status": "customs-hold", "place": to, "text": "Held for customs inspection" }));
    }
    let delivered = match fate {
        "lost" => {
            events.push(json!({ "at": ts(promised + 96 * HOUR), "status": "lost", "place": Value::Null, "text": "Declared lost after investigation" }));
            None
        }
        _ => {
            let at = promised + late_hours;
            events.push(json!({ "at": ts(at - 3 * HOUR), "status": "out-for-delivery", "place": to, "text": "Out for delivery" }));
            events.push(json!({ "at": ts(at), "status": "delivered", "place": to, "text": "Delivered to recipient" }));
            Some(ts(at))
        }
    };
    let service = if from["country"] == to["country"] {
        "domestic-standard"
    } else {
        "international-priority"
    };
    json!({
        "order": order,
        "nordpost": format!("NP{:09}{}", 100_000_000 + n, to["country"].as_str().unwrap_or("EU")),
        "swiftline": format!("SWL-{:08}", 40_000_000 + n * 7 + rng.below(7)),
        "status": events.last().map(|e| e["status"].clone()).unwrap_or_default(),
        "service": service,
        "origin": from,
        "destination": to,
        "shipped_at": ts(shipped),
        "promised_by": ts(promised),
        "delivered_at": delivered,
        "events": events,
    })
}

pub fn generate() -> Vec<Doc> {
    let mut rng = Rng(0x7001_4057);
    let mut docs = Vec::new();
    let mut shipment_no = 0;
    for c in 0..300u64 {
        let id = format!("C-{}", 1001 + c);
        let fixed = c == 0;
        let (first, last) = if fixed {
            ("Ada", "Lindqvist")
        } else {
            (*rng.pick(FIRST), *rng.pick(LAST))
        };
        let tier = if fixed { "premium" } else { *rng.pick(TIERS) };
        let home = if fixed { &PLACES[0] } else { rng.pick(PLACES) };
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            if fixed { String::new() } else { c.to_string() }
        );
        docs.push((
            "customers",
            id.clone(),
            json!({
                "id": id, "name": format!("{first} {last}"), "email": email, "country": home.0, "tier": tier,
                "created": ts(EPOCH - (400 + c as i64) * 24 * HOUR),
            }),
        ));
        let contract = format!("K-{}", 1001 + c);
        docs.push(("contracts", contract.clone(), json!({
            "id": contract, "customer": id, "tier": tier, "valid_from": ts(EPOCH - 365 * 24 * HOUR), "valid_until": Value::Null, "sla": sla(tier),
        })));
        let orders = if fixed { 3 } else { 2 };
        for o in 0..orders {
            let order = if fixed {
                format!("SO-{}", 1001 + o)
            } else {
                format!("SO-{}", 2001 + c * 2 + o)
            };
            let mut lines = Vec::new();
            let mut total = 0;
            for _ in 0..(1 + rng.below(3)) {
                let p = rng.pick(PRODUCTS);
                let qty = 1 + rng.below(2) as i64;
                total += p.2 * qty;
                lines.push(json!({ "sku": p.0, "title": p.1, "qty": qty, "unit_price_cents": p.2 }));
            }
            let shipping = 950;
            total += shipping;
            lines.push(json!({ "sku": "SHIPPING", "title": "Shipping", "qty": 1, "unit_price_cents": shipping }));
            let placed = EPOCH + (c as i64 % 40) * 24 * HOUR + o as i64 * 5 * HOUR;
            let shipped = placed + 20 * HOUR;
            let from = if fixed { &PLACES[1] } else { rng.pick(PLACES) };
            let promised = shipped + if from.0 == home.0 { 48 } else { 96 } * HOUR;
            // Fate: fixed ones for the scenario, else mostly on time.
            let (fate, late) = match (fixed, o) {
                (true, 0) => ("delivered", 52),
                (true, 1) => ("delivered", -5),
                (true, _) => ("lost", 0),
                _ => match rng.below(20) {
                    0 => ("lost", 0),
                    1..=4 => ("delivered", 6 + rng.below(120) as i64),
                    _ => ("delivered", -(rng.below(30) as i64)),
                },
            };
            shipment_no += 1;
            let s = shipment(
                &mut rng,
                shipment_no,
                &order,
                place(from),
                place(home),
                shipped,
                promised,
                fate,
                late * HOUR,
            );
            let state = if fate == "lost" { "shipped" } else { "delivered" };
            docs.push((
                "orders",
                order.clone(),
                json!({
                    "order_no": order, "customer": id, "state": state, "placed": ts(placed), "lines": lines,
                    "total_cents": total, "currency": "EUR", "tracking": [s["nordpost"]], "contract": contract,
                }),
            ));
            docs.push(("shipments", order.clone(), s));
        }
    }
    docs
}
