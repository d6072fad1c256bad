//! Who owns a plugin's grant, and what a grant leaves unset.
//!
//! The rule: `toolhost.toml`'s `[plugins.NAME]` owns a plugin's grant until
//! the API sets one (`PUT` or `PATCH /v1/plugins/NAME/grants`, or the
//! console). From then on the API's grant is in force, across restarts and
//! whatever the file says, until `DELETE /v1/plugins/NAME/grants` hands the
//! plugin back to the file. Neither side hides the other: the grants API
//! shows both, and where they differ the API's answer, the log at start and
//! `toolhost check` say so.
//!
//! A grant that leaves a secret or config key the manifest requests unset
//! is never accepted in silence: the API refuses it unless the request
//! names the keys it means to leave unset (see [`PluginPolicy::require_set`]),
//! and the file's is reported at start and by `toolhost check`.

use serde::Serialize;
use serde_json::Value;

use super::{PluginPolicy, PolicyError, SecretSource};
use crate::plugins::manifest::Manifest;

/// Which side's grant is in force for a plugin.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum GrantSource {
    /// `[plugins.NAME]` in `toolhost.toml` (or nothing, if it has none).
    File,
    /// A grant set through the API (or the console), stored by the host.
    Api,
}

/// Both sides of a plugin's grant.
#[derive(Debug, Clone)]
pub struct GrantState {
    /// The file's `[plugins.NAME]`, if it has one.
    pub file: Option<PluginPolicy>,
    /// The grant the API set, if it set one: then it is the one in force.
    pub api: Option<PluginPolicy>,
}

impl GrantState {
    pub fn source(&self) -> GrantSource {
        match self.api {
            Some(_) => GrantSource::Api,
            None => GrantSource::File,
        }
    }

    /// The grant in force (an absent one grants nothing).
    pub fn in_force(&self) -> PluginPolicy {
        self.api.as_ref().or(self.file.as_ref()).cloned().unwrap_or_default()
    }

    /// Whether the API's grant is in force and the file says otherwise.
    pub fn differs(&self) -> bool {
        let empty = PluginPolicy::default();
        self.api
            .as_ref()
            .is_some_and(|api| !api.same_grant(self.file.as_ref().unwrap_or(&empty)))
    }

    /// What an operator should know about this plugin's grant: the file's
    /// grant not in force, secrets whose variable is unset, and (given the
    /// manifest) requested secrets and config the grant leaves unset.
    pub fn warnings(&self, plugin: &str, manifest: Option<&Manifest>) -> Vec<GrantWarning> {
        let mut warnings = Vec::new();
        if self.differs() {
            warnings.push(GrantWarning::FileNotInForce {
                plugin: plugin.to_string(),
                file_has_grant: self.file.is_some(),
            });
        }
        let in_force = self.in_force();
        warnings.extend(in_force.env_unset(plugin));
        if let Some(manifest) = manifest {
            warnings.extend(
                in_force
                    .unset_requested(manifest)
                    .into_iter()
                    .map(|key| GrantWarning::RequestedUnset {
                        plugin: plugin.to_string(),
                        key,
                    }),
            );
        }
        warnings
    }
}

/// Something about a grant that does not stop it but that the operator
/// should hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantWarning {
    /// The API's grant is in force and differs from the file's.
    FileNotInForce { plugin: String, file_has_grant: bool },
    /// A secret comes from an environment variable that is not set.
    EnvUnset {
        plugin: String,
        secret: String,
        variable: String,
    },
    /// The manifest requests a key the grant leaves unset.
    RequestedUnset { plugin: String, key: RequestedKey },
}

impl std::fmt::Display for GrantWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantWarning::FileNotInForce { plugin, file_has_grant } => {
                let file = if *file_has_grant {
                    format!("toolhost.toml's [plugins.{plugin}] differs and is not used")
                } else {
                    format!("toolhost.toml has no [plugins.{plugin}]")
                };
                write!(
                    f,
                    "plugin {plugin:?}: the grant set through the API is in force; {file} \
                     (DELETE /v1/plugins/{plugin}/grants returns to the file's grant)"
                )
            }
            GrantWarning::EnvUnset {
                plugin,
                secret,
                variable,
            } => write!(
                f,
                "plugin {plugin:?}: secret {secret:?} comes from environment variable {variable}, which is not set: \
                 the connector gets no value for it until {variable} is set where toolhost runs"
            ),
            GrantWarning::RequestedUnset { plugin, key } => write!(
                f,
                "plugin {plugin:?}: its manifest requests {key}, which the grant leaves unset: \
                 grant it under [plugins.{plugin}] {}",
                key.kind.field()
            ),
        }
    }
}

/// What kind of key a manifest requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Secret,
    Config,
}

impl KeyKind {
    /// The grant's field that holds it.
    pub fn field(self) -> &'static str {
        match self {
            KeyKind::Secret => "secrets",
            KeyKind::Config => "config",
        }
    }
}

/// A secret or config key a manifest requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestedKey {
    pub kind: KeyKind,
    pub name: String,
}

impl std::fmt::Display for RequestedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            KeyKind::Secret => "secret",
            KeyKind::Config => "config",
        };
        write!(f, "{kind} {:?}", self.name)
    }
}

/// The message of a grant refused for what it leaves unset: each key, how
/// to keep it and how to say it is meant.
pub(super) fn unset_message(plugin: &str, missing: &[RequestedKey]) -> String {
    let keys = missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let names = missing.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(",");
    format!(
        "the grant for plugin {plugin:?} leaves unset what its manifest requests: {keys}. \
         To keep each as it is, send it as GET /v1/plugins/{plugin}/grants shows it (or use PATCH, \
         which changes only the fields it names); to leave them unset on purpose, add \
         ?allow_unset={names} to the request"
    )
}

impl PluginPolicy {
    /// The same grant, secrets' sources included.
    pub fn same_grant(&self, other: &PluginPolicy) -> bool {
        self.stored() == other.stored()
    }

    /// The secrets and config `manifest` requests that this grant does not set.
    pub fn unset_requested(&self, manifest: &Manifest) -> Vec<RequestedKey> {
        let requested = &manifest.capabilities;
        let secrets = requested
            .secrets
            .iter()
            .filter(|name| !self.secrets.contains_key(*name))
            .map(|name| (KeyKind::Secret, name));
        let config = requested
            .config
            .iter()
            .filter(|name| !self.config.contains_key(*name))
            .map(|name| (KeyKind::Config, name));
        secrets
            .chain(config)
            .map(|(kind, name)| RequestedKey {
                kind,
                name: name.clone(),
            })
            .collect()
    }

    /// Secrets whose environment variable is not set here and now.
    pub fn env_unset(&self, plugin: &str) -> Vec<GrantWarning> {
        self.secrets
            .iter()
            .filter_map(|(secret, source)| match source {
                SecretSource::Env { env } if std::env::var_os(env).is_none() => Some(GrantWarning::EnvUnset {
                    plugin: plugin.to_string(),
                    secret: secret.clone(),
                    variable: env.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Refuse a grant that leaves a requested secret or config key unset,
    /// unless `allow_unset` names it. A name in `allow_unset` that the
    /// manifest does not request is refused too: it is likely misspelt.
    pub fn require_set(&self, plugin: &str, manifest: &Manifest, allow_unset: &[String]) -> Result<(), PolicyError> {
        let requested = &manifest.capabilities;
        if let Some(name) = allow_unset
            .iter()
            .find(|n| !requested.secrets.contains(n) && !requested.config.contains(n))
        {
            return Err(PolicyError::NotRequested {
                plugin: plugin.to_string(),
                name: name.clone(),
            });
        }
        let missing: Vec<RequestedKey> = self
            .unset_requested(manifest)
            .into_iter()
            .filter(|key| !allow_unset.contains(&key.name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::UnsetRequested {
                plugin: plugin.to_string(),
                missing,
            })
        }
    }

    /// This grant with an RFC 7396 JSON merge patch applied, over the form
    /// the grants API shows (a secret as `{"source", "env", "set"}`): fields
    /// the patch names change, `null` removes one, the rest stays.
    pub fn merge_patch(&self, plugin: &str, patch: &Value) -> Result<PluginPolicy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            plugin: plugin.to_string(),
            field: "(merge patch)".into(),
            message,
        };
        if !patch.is_object() {
            return Err(invalid(
                "a merge patch of a grant is a JSON object naming the fields to change".into(),
            ));
        }
        let mut grant = serde_json::to_value(self).map_err(|e| invalid(e.to_string()))?;
        json_patch::merge(&mut grant, patch);
        serde_json::from_value(grant).map_err(|e| invalid(format!("the patched grant is not valid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use serde_json::json;

    fn grant(text: &str) -> PluginPolicy {
        Policy::parse(&format!("[plugins.p]\n{text}"), "t").unwrap().plugins["p"].clone()
    }

    fn manifest() -> Manifest {
        Manifest::parse(
            "name = \"p\"\nversion = \"1.0.0\"\nvendor = \"v\"\nworld = \"w\"\n[capabilities]\nsecrets = [\"key\"]\nconfig = [\"url\", \"cap\"]",
            "t",
        )
        .unwrap()
    }

    #[test]
    fn a_merge_patch_changes_only_what_it_names() {
        let g = grant(
            r#"secrets = { key = { env = "A" } }
            config = { url = "https://x.example", cap = "10" }
            timeout-ms = 100"#,
        );
        let patched = g
            .merge_patch("p", &json!({ "config": { "cap": null }, "timeout-ms": 200 }))
            .unwrap();
        assert_eq!(patched.timeout_ms, Some(200));
        assert_eq!(patched.config.keys().collect::<Vec<_>>(), ["url"]);
        assert!(matches!(&patched.secrets["key"], SecretSource::Env { env } if env == "A"));
        // Changing a variable: `env` replaces it, the shown `source`/`set` are ignored.
        let patched = g
            .merge_patch("p", &json!({ "secrets": { "key": { "env": "B" } } }))
            .unwrap();
        assert!(matches!(&patched.secrets["key"], SecretSource::Env { env } if env == "B"));
        // A value where a variable was: the variable must go, or it is ambiguous.
        let both = g.merge_patch("p", &json!({ "secrets": { "key": { "value": "v" } } }));
        assert!(both.unwrap_err().to_string().contains("not both"));
        let patched = g
            .merge_patch("p", &json!({ "secrets": { "key": { "value": "v", "env": null } } }))
            .unwrap();
        assert!(matches!(&patched.secrets["key"], SecretSource::Value { .. }));
        assert!(g.merge_patch("p", &json!([1])).is_err());
    }

    #[test]
    fn unset_requested_keys_are_refused_unless_allowed() {
        let m = manifest();
        let g = grant(r#"config = { url = "https://x.example" }"#);
        let e = g.require_set("p", &m, &[]).unwrap_err().to_string();
        assert!(e.contains("secret \"key\"") && e.contains("config \"cap\""), "{e}");
        assert!(e.contains("allow_unset=key,cap"), "{e}");
        assert!(g.require_set("p", &m, &["key".into(), "cap".into()]).is_ok());
        let e = g.require_set("p", &m, &["kye".into()]).unwrap_err().to_string();
        assert!(e.contains("kye"), "{e}");
    }

    #[test]
    fn the_state_says_which_side_is_in_force_and_whether_they_differ() {
        let file = grant("timeout-ms = 100");
        let mut state = GrantState {
            file: Some(file.clone()),
            api: None,
        };
        assert_eq!(state.source(), GrantSource::File);
        assert!(!state.differs());
        state.api = Some(file.clone());
        assert_eq!(state.source(), GrantSource::Api);
        assert!(!state.differs());
        state.api = Some(grant("timeout-ms = 200"));
        assert!(state.differs());
        let warnings = state.warnings("p", Some(&manifest()));
        assert!(
            matches!(warnings[0], GrantWarning::FileNotInForce { .. }),
            "{warnings:?}"
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
    }
}
