//! Bindings generated from `wit/` by wit-bindgen.
//!
//! The imports (what the host offers) are generated once, in [`host`]; each
//! connector world reuses them and adds its own export, so a vendor's crate
//! sees one `Error`, one `Money` and one HTTP client whichever world it targets.

/// The imports every connector world shares: the `toolhost:connector/host` world.
pub mod host {
    wit_bindgen::generate!({
        path: "../wit",
        world: "toolhost:connector/host",
        runtime_path: "crate::rt",
        generate_all,
        // Tests compare results with `assert_eq!`. A stream error holds a
        // resource handle, which has no equality.
        additional_derives: [PartialEq],
        additional_derives_ignore: ["stream-error"],
    });
}

/// Generates one connector world that reuses [`host`] for all its imports and
/// gives the vendor an `export_<kind>!` macro.
macro_rules! connector_world {
    ($module:ident, $world:literal, $macro_name:literal, $bindings_module:literal) => {
        #[doc = concat!("The `toolhost:connector/", $world, "` world.")]
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit",
                world: $world,
                runtime_path: "crate::rt",
                pub_export_macro: true,
                additional_derives: [PartialEq],
                export_macro_name: $macro_name,
                default_bindings_module: $bindings_module,
                with: {
                    "toolhost:connector/types@0.1.0": crate::bindings::host::toolhost::connector::types,
                    "toolhost:connector/kv@0.1.0": crate::bindings::host::toolhost::connector::kv,
                    "toolhost:connector/secrets@0.1.0": crate::bindings::host::toolhost::connector::secrets,
                    "toolhost:connector/config@0.1.0": crate::bindings::host::toolhost::connector::config,
                    "toolhost:connector/log@0.1.0": crate::bindings::host::toolhost::connector::log,
                    "toolhost:connector/progress@0.1.0": crate::bindings::host::toolhost::connector::progress,
                    "wasi:http/types@0.2.12": crate::bindings::host::wasi::http::types,
                    "wasi:http/outgoing-handler@0.2.12": crate::bindings::host::wasi::http::outgoing_handler,
                    "wasi:io/error@0.2.12": crate::bindings::host::wasi::io::error,
                    "wasi:io/poll@0.2.12": crate::bindings::host::wasi::io::poll,
                    "wasi:io/streams@0.2.12": crate::bindings::host::wasi::io::streams,
                    "wasi:clocks/monotonic-clock@0.2.12": crate::bindings::host::wasi::clocks::monotonic_clock,
                    "wasi:clocks/wall-clock@0.2.12": crate::bindings::host::wasi::clocks::wall_clock,
                    "wasi:random/random@0.2.12": crate::bindings::host::wasi::random::random,
                },
            });
        }
    };
}

connector_world!(
    crm_world,
    "crm-connector",
    "export_crm",
    "toolhost_sdk::bindings::crm_world"
);
connector_world!(
    erp_world,
    "erp-connector",
    "export_erp",
    "toolhost_sdk::bindings::erp_world"
);
connector_world!(
    logistics_world,
    "logistics-connector",
    "export_logistics",
    "toolhost_sdk::bindings::logistics_world"
);
connector_world!(
    coupon_world,
    "coupon-connector",
    "export_coupon",
    "toolhost_sdk::bindings::coupon_world"
);
