//! The `toolhost:connector` contract as the host knows it: the WIT files,
//! embedded at build time, parsed for the doc comments that become tool and
//! field descriptions. (A compiled component carries types, not docs.)

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use wit_parser::{Resolve, SourceMap, Type, TypeDefKind};

const PACKAGE: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("crm.wit", include_str!("../../../wit/crm.wit")),
    ("erp.wit", include_str!("../../../wit/erp.wit")),
    ("logistics.wit", include_str!("../../../wit/logistics.wit")),
    ("coupon.wit", include_str!("../../../wit/coupon.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

const DEPS: &[(&str, &str)] = &[
    ("deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    ("deps/clocks.wit", include_str!("../../../wit/deps/clocks.wit")),
    ("deps/random.wit", include_str!("../../../wit/deps/random.wit")),
    ("deps/filesystem.wit", include_str!("../../../wit/deps/filesystem.wit")),
    ("deps/sockets.wit", include_str!("../../../wit/deps/sockets.wit")),
    ("deps/cli.wit", include_str!("../../../wit/deps/cli.wit")),
    ("deps/http.wit", include_str!("../../../wit/deps/http.wit")),
];

/// Documentation attached to a value's type: its own text, and that of its
/// parts (record fields and variant cases by name; `*` for the element of an
/// option or list; `ok` and `err` for a result).
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub text: Option<String>,
    pub parts: BTreeMap<String, Doc>,
}

impl Doc {
    pub fn part(&self, name: &str) -> Option<&Doc> {
        self.parts.get(name)
    }
}

/// What the contract says about one exported function.
#[derive(Debug, Clone, Default)]
pub struct FunctionDoc {
    pub description: Option<String>,
    pub params: HashMap<String, Doc>,
    pub result: Doc,
}

/// Doc comments of every function of every interface of the contract, keyed
/// by unversioned interface name (`toolhost:connector/coupon`) and function.
pub struct Contract {
    functions: HashMap<(String, String), FunctionDoc>,
    worlds: HashMap<String, Vec<String>>,
}

impl Contract {
    /// The contract, parsed once.
    pub fn get() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(|| Contract::parse().expect("the embedded WIT contract parses (checked by a unit test)"))
    }

    fn parse() -> Result<Contract, String> {
        let group = |files: &[(&str, &str)]| {
            let mut map = SourceMap::new();
            for (path, text) in files {
                map.push_str(path, *text);
            }
            map.parse().map_err(|(_, e)| e.to_string())
        };
        let mut resolve = Resolve::default();
        let deps = DEPS
            .iter()
            .map(|f| group(std::slice::from_ref(f)))
            .collect::<Result<Vec<_>, _>>()?;
        let package = resolve.push_groups(group(PACKAGE)?, deps).map_err(|e| e.to_string())?;

        let mut functions = HashMap::new();
        let mut worlds = HashMap::new();
        let pkg = &resolve.packages[package];
        let pkg_name = format!("{}:{}", pkg.name.namespace, pkg.name.name);
        for (iface_name, iface_id) in &pkg.interfaces {
            let iface = &resolve.interfaces[*iface_id];
            for (fname, func) in &iface.functions {
                let doc = FunctionDoc {
                    description: func.docs.contents.clone(),
                    params: func
                        .params
                        .iter()
                        .map(|p| (p.name.clone(), type_doc(&resolve, &p.ty)))
                        .collect(),
                    result: func.result.as_ref().map(|t| type_doc(&resolve, t)).unwrap_or_default(),
                };
                functions.insert((format!("{pkg_name}/{iface_name}"), fname.clone()), doc);
            }
        }
        for (world_name, world_id) in &pkg.worlds {
            let exports = resolve.worlds[*world_id]
                .exports
                .keys()
                .map(|key| resolve.name_world_key(key))
                .collect();
            worlds.insert(world_name.clone(), exports);
        }
        Ok(Contract { functions, worlds })
    }

    /// Docs for `function` of the exported instance `instance` (a component
    /// export name such as `toolhost:connector/coupon@0.1.0`).
    pub fn function(&self, instance: &str, function: &str) -> Option<&FunctionDoc> {
        let unversioned = instance.split('@').next().unwrap_or(instance);
        self.functions.get(&(unversioned.to_string(), function.to_string()))
    }

    /// The interfaces a contract world exports (versioned names), or `None`
    /// when the world is not one of ours.
    pub fn world_exports(&self, world: &str) -> Option<&[String]> {
        self.worlds.get(world).map(Vec::as_slice)
    }
}

fn type_doc(resolve: &Resolve, ty: &Type) -> Doc {
    let Type::Id(id) = ty else {
        return Doc::default();
    };
    let def = &resolve.types[*id];
    let mut doc = Doc {
        text: def.docs.contents.clone(),
        parts: BTreeMap::new(),
    };
    let mut part = |name: &str, docs: Option<&String>, ty: Option<&Type>| {
        let mut child = ty.map(|t| type_doc(resolve, t)).unwrap_or_default();
        if let Some(text) = docs {
            child.text = Some(text.clone());
        }
        doc.parts.insert(name.to_string(), child);
    };
    match &def.kind {
        TypeDefKind::Record(r) => r
            .fields
            .iter()
            .for_each(|f| part(&f.name, f.docs.contents.as_ref(), Some(&f.ty))),
        TypeDefKind::Variant(v) => v
            .cases
            .iter()
            .for_each(|c| part(&c.name, c.docs.contents.as_ref(), c.ty.as_ref())),
        TypeDefKind::Enum(e) => e
            .cases
            .iter()
            .for_each(|c| part(&c.name, c.docs.contents.as_ref(), None)),
        TypeDefKind::Option(t) | TypeDefKind::List(t) => part("*", None, Some(t)),
        TypeDefKind::Result(r) => {
            part("ok", None, r.ok.as_ref());
            part("err", None, r.err.as_ref());
        }
        TypeDefKind::Type(t) => {
            let inner = type_doc(resolve, t);
            doc.text = doc.text.or(inner.text);
            doc.parts = inner.parts;
        }
        _ => {}
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_contract_parses_with_docs() {
        let c = Contract::parse().unwrap();
        let f = c.function("toolhost:connector/coupon@0.1.0", "issue-voucher").unwrap();
        assert!(f.description.as_deref().unwrap().starts_with("Issue a voucher"));
        let value = f.params["request"].part("value").unwrap();
        // A field without docs of its own is described by its type's docs.
        assert!(value.text.as_deref().unwrap().contains("minor units"));
        assert!(value
            .part("amount-minor")
            .unwrap()
            .text
            .as_deref()
            .unwrap()
            .contains("minor unit"));
        assert_eq!(
            c.world_exports("coupon-connector").unwrap(),
            ["toolhost:connector/coupon@0.1.0"]
        );
        assert!(c.world_exports("nope").is_none());
    }
}
