//! What a plugin is, spelt one way.

/// What a plugin is: a connector (a Wasm component) or a workflow (a
/// document whose steps call tools). Spelt one way everywhere: the admin
/// API's `kind`, the console, a pushed bundle's OCI config.
#[derive(
    strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Kind {
    Connector,
    Workflow,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.into())
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn a_plugins_kind_is_named_as_serde_names_it() {
        crate::model::tests::names_match::<Kind>();
    }
}
