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
//! [`secrets`], plain settings ([`config`]) and logging ([`log`]); it may tell
//! the caller how far a long call has come ([`progress`]).
//!
//! ## A complete connector
//!
//! `toolhost new coupon my-connector` creates this project (one of four: the
//! `crm`, `erp` and `logistics` worlds have theirs); what follows is what it
//! writes, word for word, and this crate's doctests compile it.
//!
//! `Cargo.toml` (where the project is made inside a toolhost checkout, the
//! `toolhost-sdk` line points at that checkout's `sdk/` instead):
//!
#![doc = concat!("```toml\n", include_str!("../templates/Cargo.toml.in"), "```\n")]
//!
//! `connector.toml`, beside it, says what the connector is and needs; the
//! operator grants some or all of it:
//!
#![doc = concat!("```toml\n", include_str!("../templates/coupon/connector.toml"), "```\n")]
//!
//! `src/lib.rs`:
//!
#![doc = concat!("```\n", include_str!("../templates/coupon/lib.rs"), "```\n")]
//!
//! `dev.toml`, what `toolhost dev` grants while you work on it:
//!
#![doc = concat!("```toml\n", include_str!("../templates/dev.toml.in"), "```\n")]
//!
//! ## Build, run, call
//!
//! `toolhost build` compiles the project into a component and puts it beside
//! `connector.toml` as `<name>.wasm` (the manifest's `name`): that folder is
//! the bundle an operator loads. It installs the WebAssembly toolchain it
//! needs the first time, also where `rustup target add wasm32-wasip2` is not
//! possible. Where that target is installed, `cargo build --release --target
//! wasm32-wasip2` builds the same component (as `target/wasm32-wasip2/release/
//! my_connector.wasm`, to be copied beside `connector.toml` as
//! `my-connector.wasm`).
//!
//! `toolhost dev` builds it, serves it on 127.0.0.1 with a development grant
//! (what connector.toml asks for, with `dev.toml`'s settings and secrets),
//! prints a token and a `curl` that calls a tool, and rebuilds and reloads
//! on every change to the sources.
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
pub mod json;
pub mod kv;
pub mod log;
pub mod progress;
pub mod random;
pub mod secrets;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

pub use error::{Error, Money, Result, UpstreamFailure};

/// The projects `toolhost new` makes for the other worlds, compiled by the
/// doctests like the coupon one above, so that every template builds
/// against this SDK as it is.
#[cfg(doctest)]
mod templates {
    #[doc = concat!("```\n", include_str!("../templates/crm/lib.rs"), "```")]
    struct Crm;
    #[doc = concat!("```\n", include_str!("../templates/erp/lib.rs"), "```")]
    struct Erp;
    #[doc = concat!("```\n", include_str!("../templates/logistics/lib.rs"), "```")]
    struct Logistics;
}

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

/// Export an implementation of [`crm::Guest`] from the component:
/// `toolhost_sdk::export_crm!(MyConnector);`. See [`export_world!`].
#[macro_export]
macro_rules! export_crm {
    ($ty:ident) => {
        $crate::export_world!(crm_world::export_crm, crm, $ty);
    };
}

/// Export an implementation of [`erp::Guest`] from the component:
/// `toolhost_sdk::export_erp!(MyConnector);`. See [`export_world!`].
#[macro_export]
macro_rules! export_erp {
    ($ty:ident) => {
        $crate::export_world!(erp_world::export_erp, erp, $ty);
    };
}

/// Export an implementation of [`logistics::Guest`] from the component:
/// `toolhost_sdk::export_logistics!(MyConnector);`. See [`export_world!`].
#[macro_export]
macro_rules! export_logistics {
    ($ty:ident) => {
        $crate::export_world!(logistics_world::export_logistics, logistics, $ty);
    };
}

/// Export an implementation of [`coupon::Guest`] from the component:
/// `toolhost_sdk::export_coupon!(MyConnector);`. See [`export_world!`].
#[macro_export]
macro_rules! export_coupon {
    ($ty:ident) => {
        $crate::export_world!(coupon_world::export_coupon, coupon, $ty);
    };
}

/// What the `export_*!` macros expand to. In a component (wasm32) it is
/// wit-bindgen's export: the functions the host calls. Anywhere else (a
/// native `cargo test`, a doctest) there is nothing to export and nothing
/// to link those functions against, so it only checks at compile time that
/// the type implements the interface; the same line serves both builds.
#[doc(hidden)]
#[macro_export]
macro_rules! export_world {
    ($world:ident :: $export:ident, $interface:ident, $ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::$world::$export!($ty);
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn implements_the_interface<T: $crate::$interface::Guest>() {}
            let _ = implements_the_interface::<$ty>;
        };
    };
}
