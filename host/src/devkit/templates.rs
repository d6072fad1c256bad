//! The projects `toolhost new` writes, one per contract world. The files
//! live in the SDK (`sdk/templates/`), whose crate docs show the coupon one
//! and whose doctests compile all four against the SDK as it is; the binary
//! carries them, so a vendor needs nothing but `toolhost`.

use std::fmt;
use std::str::FromStr;

/// A world of the `toolhost:connector` contract a connector can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Crm,
    Erp,
    Logistics,
    Coupon,
}

impl World {
    pub const ALL: [World; 4] = [World::Crm, World::Erp, World::Logistics, World::Coupon];

    /// The interface it exports (`crm`), also accepted on the command line.
    pub fn interface(self) -> &'static str {
        match self {
            World::Crm => "crm",
            World::Erp => "erp",
            World::Logistics => "logistics",
            World::Coupon => "coupon",
        }
    }

    /// The world's name as manifests write it (`crm-connector`).
    pub fn name(self) -> &'static str {
        match self {
            World::Crm => "crm-connector",
            World::Erp => "erp-connector",
            World::Logistics => "logistics-connector",
            World::Coupon => "coupon-connector",
        }
    }

    /// `connector.toml`: what the connector asks for, one `[tools]` entry
    /// per function of the world's interface.
    pub fn manifest(self) -> &'static str {
        match self {
            World::Crm => include_str!("../../../sdk/templates/crm/connector.toml"),
            World::Erp => include_str!("../../../sdk/templates/erp/connector.toml"),
            World::Logistics => include_str!("../../../sdk/templates/logistics/connector.toml"),
            World::Coupon => include_str!("../../../sdk/templates/coupon/connector.toml"),
        }
    }

    /// `src/lib.rs`: every function of the interface, calling the upstream
    /// at the configured base URL with the granted key, and native tests.
    pub fn source(self) -> &'static str {
        match self {
            World::Crm => include_str!("../../../sdk/templates/crm/lib.rs"),
            World::Erp => include_str!("../../../sdk/templates/erp/lib.rs"),
            World::Logistics => include_str!("../../../sdk/templates/logistics/lib.rs"),
            World::Coupon => include_str!("../../../sdk/templates/coupon/lib.rs"),
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A world name that is not one of the contract's.
#[derive(Debug, thiserror::Error)]
#[error("unknown world {0:?}: the contract's worlds are crm-connector, erp-connector, logistics-connector and coupon-connector (or crm, erp, logistics, coupon)")]
pub struct UnknownWorld(String);

impl FromStr for World {
    type Err = UnknownWorld;

    fn from_str(s: &str) -> Result<World, UnknownWorld> {
        World::ALL
            .into_iter()
            .find(|w| s == w.name() || s == w.interface())
            .ok_or_else(|| UnknownWorld(s.to_string()))
    }
}

/// `Cargo.toml`, the same for every world.
pub const CARGO_TOML: &str = include_str!("../../../sdk/templates/Cargo.toml.in");
/// `dev.toml`: what `toolhost dev` grants.
pub const DEV_TOML: &str = include_str!("../../../sdk/templates/dev.toml.in");
/// `.gitignore`: build output and the built component.
pub const GITIGNORE: &str = include_str!("../../../sdk/templates/gitignore.in");

/// The name the templates are written with; `toolhost new` puts the
/// project's own in its place.
pub const SAMPLE_NAME: &str = "my-connector";
/// The environment variable `dev.toml` takes the API key from, named after
/// the sample name.
pub const SAMPLE_KEY_ENV: &str = "MY_CONNECTOR_API_KEY";
/// The SDK as a crates.io dependency, as the template writes it.
pub const SDK_FROM_CRATES_IO: &str = "toolhost-sdk = \"0.1\"";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::manifest::Manifest;

    /// Each template's manifest is valid, names its world, and lists
    /// exactly the functions the contract's world exports: the templates
    /// stay in step with the WIT.
    #[test]
    fn templates_follow_the_contract() {
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve
            .push_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit")))
            .expect("the contract parses");
        for world in World::ALL {
            let manifest = Manifest::parse(world.manifest(), world.name()).expect("the template manifest is valid");
            assert_eq!(manifest.world, world.name());
            assert_eq!(manifest.name, SAMPLE_NAME);
            let world_id = resolve
                .select_world(&[package], Some(world.name()))
                .expect("the world exists");
            let functions: Vec<String> = resolve.worlds[world_id]
                .exports
                .values()
                .filter_map(|item| match item {
                    wit_parser::WorldItem::Interface { id, .. } => Some(*id),
                    _ => None,
                })
                .flat_map(|id| resolve.interfaces[id].functions.keys().cloned().collect::<Vec<_>>())
                .collect();
            let mut listed: Vec<String> = manifest.tools.keys().cloned().collect();
            let mut exported = functions.clone();
            listed.sort();
            exported.sort();
            assert_eq!(listed, exported, "{world}: connector.toml's [tools] against the WIT");
            for function in &functions {
                let rust = format!("fn {}(", function.replace('-', "_"));
                assert!(world.source().contains(&rust), "{world}: lib.rs has no {rust}");
            }
            assert!(world
                .source()
                .contains(&format!("export_{}!(Connector)", world.interface())));
        }
    }

    #[test]
    fn worlds_by_either_name() {
        assert_eq!("crm".parse::<World>().unwrap(), World::Crm);
        assert_eq!("coupon-connector".parse::<World>().unwrap(), World::Coupon);
        let err = "billing".parse::<World>().unwrap_err().to_string();
        assert!(
            err.contains("\"billing\"") && err.contains("logistics-connector"),
            "{err}"
        );
    }
}
