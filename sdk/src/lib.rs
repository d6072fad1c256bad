//! # toolhost-sdk: write a toolhost connector
//!
//! A connector is a WebAssembly component that exports one of the domain
//! interfaces of the `toolhost:connector` contract (`crm`, `erp`, `logistics`,
//! `coupon`). toolhost turns every exported function into a tool an AI agent
//! can call: the name, the description (from the WIT doc comment) and the JSON
//! Schema of its arguments all come from the contract, so you write no schema.
//!
//! Inside the component the connector may only do what the operator granted:
//! outbound HTTP to granted origins ([`http`]), its own storage ([`kv`]), named
//! [`secrets`], plain settings ([`config`]) and logging ([`log`]).
//!
//! ## A complete connector
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "acme-coupons"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! toolhost-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `connector.toml`, beside it, says what the connector needs; the operator
//! grants some or all of it:
//!
//! ```toml
//! name = "acme-coupons"
//! version = "0.1.0"
//! vendor = "Acme"
//! world = "coupon-connector"
//!
//! [capabilities]
//! http = [{ origin = "https://api.acme.example", methods = ["GET", "POST"] }]
//! secrets = ["acme-api-key"]
//! kv-quota-bytes = 1048576
//!
//! [tools.issue-voucher]
//! risk = "write"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use toolhost_sdk::coupon::{Guest, IssueRequest, Validation, Voucher};
//! use toolhost_sdk::{http::Request, kv, secrets, Error, Result};
//!
//! struct AcmeCoupons;
//!
//! const API: &str = "https://api.acme.example";
//!
//! impl Guest for AcmeCoupons {
//!     fn issue_voucher(request: IssueRequest) -> Result<Voucher> {
//!         // Same idempotency key, same voucher: remember what we issued.
//!         let memo = format!("issued/{}", request.idempotency_key);
//!         if let Some(code) = kv::get(&memo)? {
//!             return Self::get_voucher(&String::from_utf8_lossy(&code));
//!         }
//!         let created: serde_json::Value = Request::post(format!("{API}/vouchers"))
//!             .bearer(&secrets::get("acme-api-key")?)
//!             .json(&serde_json::json!({
//!                 "customer": request.customer_id,
//!                 "amount_cents": request.value.amount_minor,
//!                 "currency": request.value.currency,
//!             }))
//!             .send()?
//!             .error_for_status()?
//!             .json()?;
//!         let code = created["code"].as_str().ok_or_else(|| Error::malformed("no code"))?;
//!         kv::set(&memo, code.as_bytes())?;
//!         Self::get_voucher(code)
//!     }
//!     # fn validate_voucher(_: String, _: String) -> Result<Validation> { unimplemented!() }
//!     # fn redeem_voucher(_: String, _: String, _: String) -> Result<Voucher> { unimplemented!() }
//!     # fn revoke_voucher(_: String, _: String) -> Result<Voucher> { unimplemented!() }
//!     # fn list_vouchers(_: String) -> Result<Vec<Voucher>> { unimplemented!() }
//!     // ... validate_voucher, redeem_voucher, revoke_voucher, list_vouchers
//! }
//!
//! impl AcmeCoupons {
//!     fn get_voucher(code: &str) -> Result<Voucher> {
//!         Request::get(format!("{API}/vouchers/{}", toolhost_sdk::http::encode_component(code)))
//!             .bearer(&secrets::get("acme-api-key")?)
//!             .send()?
//!             .error_for_status()?
//!             .json::<serde_json::Value>()
//!             .and_then(|v| Err(Error::malformed(format!("map {v} to a Voucher here"))))
//!     }
//! }
//!
//! // Makes the component export the `coupon` interface.
//! # #[cfg(target_arch = "wasm32")]
//! toolhost_sdk::export_coupon!(AcmeCoupons);
//! ```
//!
//! Build it into a component with `cargo build --release --target wasm32-wasip2`
//! and put the `.wasm` beside `connector.toml`: that folder is the bundle.
//!
//! ## Testing connector logic natively
//!
//! The same functions run in an ordinary `cargo test` against a
//! [`testing::TestHost`], which plays the host: secrets, settings, storage,
//! a fixed clock, and a closure that answers outbound requests.

#[doc(hidden)]
pub mod rt {
    pub use wit_bindgen::rt::*;
}

pub mod api;
mod backend;
pub mod bindings;
pub mod config;
pub mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod random;
pub mod secrets;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

pub use error::{Error, Money, Result, UpstreamFailure};

/// The `crm` interface: the trait to implement and its types.
pub mod crm {
    pub use crate::bindings::crm_world::exports::toolhost::connector::crm::*;
}

/// The `erp` interface: the trait to implement and its types.
pub mod erp {
    pub use crate::bindings::erp_world::exports::toolhost::connector::erp::*;
}

/// The `logistics` interface: the trait to implement and its types.
pub mod logistics {
    pub use crate::bindings::logistics_world::exports::toolhost::connector::logistics::*;
}

/// The `coupon` interface: the trait to implement and its types.
pub mod coupon {
    pub use crate::bindings::coupon_world::exports::toolhost::connector::coupon::*;
}

/// Export an implementation of [`coupon::Guest`] from the component.
pub use bindings::coupon_world::export_coupon;
/// Export an implementation of [`crm::Guest`] from the component.
pub use bindings::crm_world::export_crm;
/// Export an implementation of [`erp::Guest`] from the component.
pub use bindings::erp_world::export_erp;
/// Export an implementation of [`logistics::Guest`] from the component.
pub use bindings::logistics_world::export_logistics;
