//! The contract's connector worlds as wasmtime's bindgen sees them, to
//! type-check a component against the world its manifest names: every
//! function the world exports must be there with the world's types, so
//! that two vendors' connectors for one world really are interchangeable.
//! Imports are the host's own bindings (`capabilities`), not generated again.

use wasmtime::component::InstancePre;

macro_rules! world {
    ($module:ident, $world:literal) => {
        mod $module {
            wasmtime::component::bindgen!({
                path: "../wit",
                world: $world,
                // As the host's own bindings are generated, which these reuse.
                require_store_data_send: true,
                with: {
                    "wasi": wasmtime_wasi::p2::bindings,
                    "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                    "toolhost:connector/types": crate::capabilities::wit::types,
                    "toolhost:connector/kv": crate::capabilities::wit::kv,
                    "toolhost:connector/secrets": crate::capabilities::wit::secrets,
                    "toolhost:connector/config": crate::capabilities::wit::config,
                    "toolhost:connector/log": crate::capabilities::wit::log,
                    "toolhost:connector/progress": crate::capabilities::wit::progress,
                },
            });
        }
    };
}

world!(crm, "toolhost:connector/crm-connector");
world!(erp, "toolhost:connector/erp-connector");
world!(logistics, "toolhost:connector/logistics-connector");
world!(coupon, "toolhost:connector/coupon-connector");

/// Check `pre`'s exports against `world` (a contract world's short name);
/// `Ok` for worlds that are not the contract's (a test component's own).
/// The error is wasmtime's, naming the export and function that differ.
pub fn check<T: 'static>(world: &str, pre: &InstancePre<T>) -> wasmtime::Result<()> {
    match world {
        "crm-connector" => crm::CrmConnectorIndices::new(pre).map(drop),
        "erp-connector" => erp::ErpConnectorIndices::new(pre).map(drop),
        "logistics-connector" => logistics::LogisticsConnectorIndices::new(pre).map(drop),
        "coupon-connector" => coupon::CouponConnectorIndices::new(pre).map(drop),
        _ => Ok(()),
    }
}
