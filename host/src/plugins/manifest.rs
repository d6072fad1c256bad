//! `connector.toml`: what a vendor says its connector is and needs.
//!
//! The manifest only *requests*; the operator's policy decides what is
//! granted (see `policy`). Everything here is validated on load so that a
//! bad manifest is refused with a reason instead of half-working.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::call::names;

/// Upper bounds no manifest may ask past, whatever the operator grants.
pub const MAX_MEMORY_MB: u32 = 4096;
pub const MAX_TIMEOUT_MS: u64 = 600_000;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid manifest: {message}")]
    Parse { path: String, message: String },
    #[error("manifest field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// How risky a tool is; operators and agents use it to hold high-risk calls
/// for a human.
#[derive(
    strum::IntoStaticStr,
    strum::VariantArray,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Deserialize,
    serde::Serialize,
    Default,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Risk {
    #[default]
    Read,
    Write,
    High,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    pub vendor: String,
    #[serde(default)]
    pub description: String,
    /// The contract world the component targets, e.g. `coupon-connector`.
    pub world: String,
    /// The component file, relative to the manifest; `<name>.wasm` by default.
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub capabilities: Requested,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolMeta>,
}

/// The capabilities a connector asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Requested {
    #[serde(default)]
    pub http: Vec<HttpRequest>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub kv_quota_bytes: u64,
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// The connector keeps nothing between calls that another call must not
    /// see, so the operator may let one instance serve several calls of the
    /// same caller (`reuse-instances` in the grant).
    #[serde(default)]
    pub stateless: bool,
}

/// One outbound destination a connector asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// `https://api.example.com`, `https://*.example.com`, or `*` for "the
    /// origins the operator grants" (for self-hosted upstreams whose address
    /// only the operator knows).
    pub origin: String,
    /// Methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolMeta {
    #[serde(default)]
    pub risk: Risk,
    /// Argument fields whose values never go into the audit trail, as
    /// dotted paths (`request.card-number`); list elements are walked into.
    #[serde(default)]
    pub secret_fields: Vec<String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Manifest::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_string(),
            message: toml_error(&e, text),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        names::check_plugin_name(&self.name).map_err(|m| invalid("name", m))?;
        if self.vendor.trim().is_empty() {
            return Err(invalid("vendor", "must not be empty"));
        }
        if let Some(c) = &self.component {
            if c.contains('/') || c.contains('\\') || c.starts_with('.') || !c.ends_with(".wasm") {
                return Err(invalid(
                    "component",
                    "must be a plain `.wasm` file name beside the manifest",
                ));
            }
        }
        let caps = &self.capabilities;
        for (i, h) in caps.http.iter().enumerate() {
            crate::net::origin::OriginPattern::parse(&h.origin)
                .map_err(|m| invalid(format!("capabilities.http[{i}].origin"), m))?;
            for m in &h.methods {
                crate::net::origin::check_method(m)
                    .map_err(|e| invalid(format!("capabilities.http[{i}].methods"), e))?;
            }
        }
        for (field, list) in [("secrets", &caps.secrets), ("config", &caps.config)] {
            for name in list {
                if name.is_empty()
                    || name.len() > 64
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(invalid(
                        format!("capabilities.{field}"),
                        format!("{name:?} is not a valid name"),
                    ));
                }
            }
        }
        if let Some(mb) = caps.memory_mb {
            if mb == 0 || mb > MAX_MEMORY_MB {
                return Err(invalid(
                    "capabilities.memory-mb",
                    format!("must be 1 to {MAX_MEMORY_MB}"),
                ));
            }
        }
        if let Some(ms) = caps.timeout_ms {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                return Err(invalid(
                    "capabilities.timeout-ms",
                    format!("must be 1 to {MAX_TIMEOUT_MS}"),
                ));
            }
        }
        if caps.max_concurrency == Some(0) {
            return Err(invalid("capabilities.max-concurrency", "must be at least 1"));
        }
        Ok(())
    }

    /// The component file beside the manifest.
    pub fn component_file(&self) -> String {
        self.component.clone().unwrap_or_else(|| format!("{}.wasm", self.name))
    }

    pub fn risk(&self, function: &str) -> Risk {
        self.tools.get(function).map(|t| t.risk).unwrap_or_default()
    }
}

/// A TOML error on one line: where in `text` (line and column, from 1)
/// and what.
pub fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = match e.message().trim() {
        "" => "unexpected end of input",
        message => message,
    };
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// The line and column (from 1; the column in characters) of byte
/// `offset` of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "coupon"
        version = "1.2.3"
        vendor = "Acme"
        world = "coupon-connector"
        [capabilities]
        http = [{ origin = "https://api.acme.example", methods = ["GET"] }]
        secrets = ["api-key"]
        kv-quota-bytes = 1024
        [tools.issue-voucher]
        risk = "high"
    "#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD, "t").unwrap();
        assert_eq!(m.component_file(), "coupon.wasm");
        assert_eq!(m.risk("issue-voucher"), Risk::High);
        assert_eq!(m.risk("list-vouchers"), Risk::Read);
    }

    #[test]
    fn refuses_bad_manifests_with_the_field() {
        let cases = [
            (GOOD.replace("\"coupon\"", "\"Coupon!\""), "name"),
            (GOOD.replace("1.2.3", "one"), "version"),
            (
                GOOD.replace("https://api.acme.example", "ftp://x"),
                "capabilities.http[0].origin",
            ),
            (GOOD.replace("\"GET\"", "\"G ET\""), "capabilities.http[0].methods"),
            (GOOD.replace("kv-quota-bytes", "kv-quota"), "kv-quota"),
        ];
        for (text, field) in cases {
            let err = Manifest::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    /// At the top, where the key belongs: appended, it would land in the
    /// last `[tools.*]` table and be refused as unknown there instead.
    #[test]
    fn a_component_outside_the_bundle_folder_is_refused_by_its_path_check() {
        for path in ["../x.wasm", "sub/x.wasm", "sub\\x.wasm", ".x.wasm", "x.so"] {
            // A TOML literal string: the backslash is the path's.
            let text = format!("component = '{path}'\n{GOOD}");
            let err = Manifest::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains("must be a plain `.wasm` file name"), "{path}: {err}");
        }
        let text = format!("component = \"x.wasm\"\n{GOOD}");
        assert_eq!(Manifest::parse(&text, "t").unwrap().component_file(), "x.wasm");
    }
}
