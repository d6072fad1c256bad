//! `toolhost check`: what is wrong with a configuration and the bundles in
//! its plugins folder, found without serving. The configuration is read as
//! `serve` reads it (its syntax, unknown keys, grants, approval rules,
//! tokens, storage); the bundles are loaded as `serve` loads them (manifest,
//! signature, component, world), in a scratch data folder; then grants are
//! held against the plugins: a grant for a plugin that is not there, a
//! secret whose variable is unset, a requested capability left ungranted,
//! and a grant set through the API that differs from the file's.
//!
//! Each finding is one line, `error:`, `warning:` or `note:`, where (a
//! `file:line:column`, a file or a bundle folder) and what to do. Errors
//! are what `serve` refuses or what cannot be meant; warnings, what serves
//! but likely not as intended.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;
use toml::Spanned;

use crate::config::grants::Signing;
use crate::config::Config;
use crate::plugins::bundle::Bundle;
use crate::plugins::error::LoadError;
use crate::plugins::manifest::line_column;
use crate::policy::approvals::ApprovalPolicy;
use crate::policy::grants::{GrantState, GrantWarning};
use crate::policy::{Grant, Policy};
use crate::runtime::RuntimeError;
use crate::storage::Storage;
use crate::{Runtime, RuntimeOptions};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `serve` would refuse it, or it cannot be what was meant: exit 1.
    Error,
    /// It serves, but likely not as intended.
    Warning,
    /// What the check could not look at, and why.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A position in a file (line and column from 1).
    At { file: String, line: usize, column: usize },
    /// A file or folder as a whole (a bundle folder, the plugins folder).
    Path(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::At { file, line, column } => write!(f, "{file}:{line}:{column}"),
            Place::Path(path) => f.write_str(path),
        }
    }
}

/// One thing found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub place: Place,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.place, self.message)
    }
}

/// Everything found, in the order it was found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }
}

/// What the check itself could not do (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot make a scratch folder to load the bundles in: {0}")]
    Scratch(std::io::Error),
    #[error("cannot set up a runtime to load the bundles: {0}")]
    Runtime(#[from] RuntimeError),
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The configuration file; `None`: no file, the defaults.
    pub config: Option<PathBuf>,
    /// The plugins folder, over the file's `[server] plugins-dir`.
    pub plugins_dir: Option<PathBuf>,
    /// The data folder, over the file's `[server] data-dir` (where the
    /// grants set through the API are read from).
    pub data_dir: Option<PathBuf>,
}

/// Check a configuration and its plugins folder.
pub async fn check(options: &CheckOptions) -> Result<Report, CheckError> {
    let file = options
        .config
        .as_ref()
        .map_or_else(|| "toolhost.toml".to_string(), |p| p.display().to_string());
    let mut checker = Checker {
        report: Report::default(),
        file: file.clone(),
        text: String::new(),
        located: Located::default(),
    };
    match &options.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => checker.text = text,
            Err(e) => {
                checker.push(Severity::Error, Place::Path(file), format!("cannot read it: {e}"));
                return Ok(checker.report);
            }
        },
        None => checker.push(
            Severity::Note,
            Place::Path(file),
            "no configuration file: checking the defaults (give one with --config)".into(),
        ),
    }
    let mut config: Config = match toml::from_str(&checker.text) {
        Ok(config) => config,
        Err(e) => {
            let place = checker.at_offset(e.span().map_or(0, |s| s.start));
            let message = format!(
                "{}; fix it and check again (the bundles are not checked until the file parses)",
                e.message().trim().replace('\n', "; ")
            );
            checker.push(Severity::Error, place, message);
            return Ok(checker.report);
        }
    };
    // It parsed as a whole, so it parses with only the places kept.
    checker.located = toml::from_str(&checker.text).unwrap_or_default();
    if let Some(dir) = &options.plugins_dir {
        config.server.plugins_dir = dir.clone();
    }
    if let Some(dir) = &options.data_dir {
        config.server.data_dir = dir.clone();
    }
    let policy = checker.configuration(&config);
    checker.bundles(&config, policy).await?;
    checker.api_grants(&config).await;
    Ok(checker.report)
}

/// Where the keys of interest are in the file.
#[derive(Debug, Default, Deserialize)]
struct Located {
    #[serde(default)]
    plugins: BTreeMap<Spanned<String>, LocatedGrant>,
    #[serde(default)]
    tokens: Vec<LocatedToken>,
}

#[derive(Debug, Default, Deserialize)]
struct LocatedGrant {
    #[serde(default)]
    secrets: BTreeMap<Spanned<String>, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct LocatedToken {
    name: Spanned<String>,
}

struct Checker {
    report: Report,
    /// The configuration file's name, as findings name it.
    file: String,
    text: String,
    located: Located,
}

impl Checker {
    fn push(&mut self, severity: Severity, place: Place, message: String) {
        self.report.findings.push(Finding {
            severity,
            place,
            message,
        });
    }

    fn at_offset(&self, offset: usize) -> Place {
        let (line, column) = line_column(&self.text, offset);
        Place::At {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// Where `[plugins.NAME]` is (the file as a whole when it has none).
    fn plugin_place(&self, name: &str) -> Place {
        match self.located.plugins.keys().find(|k| k.get_ref() == name) {
            Some(key) => self.at_offset(key.span().start),
            None => Place::Path(self.file.clone()),
        }
    }

    /// Where `[plugins.NAME] secrets.SECRET` is.
    fn secret_place(&self, plugin: &str, secret: &str) -> Place {
        let grant = self.located.plugins.iter().find(|(k, _)| k.get_ref() == plugin);
        match grant.and_then(|(_, g)| g.secrets.keys().find(|k| k.get_ref() == secret)) {
            Some(key) => self.at_offset(key.span().start),
            None => self.plugin_place(plugin),
        }
    }

    /// The first line that starts with `prefix` (a table's header).
    fn header_place(&self, prefix: &str) -> Place {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            if line.trim_start().starts_with(prefix) {
                return self.at_offset(offset + line.len() - line.trim_start().len());
            }
            offset += line.len();
        }
        Place::Path(self.file.clone())
    }

    /// What `serve` would refuse in the file's contents, each on its own;
    /// the policy of what passed, to load the bundles under.
    fn configuration(&mut self, config: &Config) -> Policy {
        let signing = match Policy::from_parts(config.limits.clone(), config.signing.clone(), BTreeMap::new()) {
            Ok(_) => config.signing.clone(),
            Err(e) => {
                let place = self.header_place("[signing");
                self.push(Severity::Error, place, e.to_string());
                Signing::default()
            }
        };
        let mut plugins = BTreeMap::new();
        for (name, grant) in &config.plugins {
            match grant.validate(name) {
                Ok(()) => {
                    plugins.insert(name.clone(), grant.clone());
                }
                Err(e) => {
                    let place = self.plugin_place(name);
                    self.push(Severity::Error, place, e.to_string());
                }
            }
            for warning in grant.env_unset(name) {
                if let GrantWarning::EnvUnset { secret, .. } = &warning {
                    let place = self.secret_place(name, secret);
                    self.push(Severity::Warning, place, warning.to_string());
                }
            }
        }
        if let Err(e) = ApprovalPolicy::accept(config.approvals.clone()) {
            let place = self.header_place("[approvals");
            self.push(
                Severity::Error,
                place,
                format!("{e}; serve refuses rules that do not compile or exceed a bound"),
            );
        }
        for name in config.sources.keys() {
            if let Err(message) = crate::call::names::check_plugin_name(name) {
                let place = self.header_place("[sources");
                self.push(Severity::Error, place, format!("[sources] {message}"));
            }
        }
        if let Err(e) = config.storage.url() {
            let place = self.header_place("[storage");
            self.push(Severity::Error, place, e.to_string());
        }
        self.tokens(config);
        Policy::from_parts(config.limits.clone(), signing, plugins).unwrap_or_default()
    }

    /// The tokens, read as `serve` reads them (a token's variable or file
    /// included); tokens generated for want of any go to a scratch file.
    fn tokens(&mut self, config: &Config) {
        let scratch = std::env::temp_dir().join(format!("toolhost-check-tokens-{}", std::process::id()));
        let built = crate::app::auth::Auth::new(&config.tokens, config.server.rate_per_minute, &scratch);
        let _ = std::fs::remove_file(&scratch);
        if let Err(e) = built {
            let place = match &e {
                crate::app::auth::AuthError::Token { name, .. } => {
                    match self.located.tokens.iter().find(|t| t.name.get_ref() == name) {
                        Some(t) => self.at_offset(t.name.span().start),
                        None => self.header_place("[[tokens"),
                    }
                }
                _ => self.header_place("[[tokens"),
            };
            self.push(Severity::Error, place, e.to_string());
        }
    }

    /// Load every bundle as `serve` would (in a scratch data folder), then
    /// hold the file's grants against what loaded.
    async fn bundles(&mut self, config: &Config, policy: Policy) -> Result<(), CheckError> {
        let plugins_dir = config.server.plugins_dir.clone();
        if !plugins_dir.is_dir() {
            self.push(
                Severity::Error,
                Place::Path(plugins_dir.display().to_string()),
                "the plugins folder does not exist: create it, or set [server] plugins-dir (or --plugins-dir)".into(),
            );
            return Ok(());
        }
        let scratch = Scratch::new()?;
        // Compiled code is cached by digest, apart from any state: the
        // server's cache (from_config's) spares compiling what it has
        // compiled.
        let mut options = RuntimeOptions::from_config(config)
            .unwrap_or_else(|_| RuntimeOptions::new(plugins_dir.clone(), scratch.0.clone(), Policy::default()));
        options.plugins_dir = plugins_dir;
        options.data_dir = scratch.0.clone();
        options.policy = policy.clone();
        let runtime = Runtime::new(options)?;
        let loaded = runtime
            .plugins()
            .load_all()
            .await
            .map_err(|e| CheckError::Runtime(e.into()))?;
        // Plugins present, whether or not they loaded: a grant for one that
        // failed is not a misspelling.
        let mut present: BTreeSet<String> = config.sources.keys().cloned().collect();
        for (dir, result) in &loaded {
            match result {
                Ok(name) => {
                    present.insert(name.clone());
                }
                Err(e) => {
                    present.extend(Bundle::name_in(dir));
                    let message = format!("{e}{}", load_hint(dir, e));
                    self.push(Severity::Error, Place::Path(dir.display().to_string()), message);
                }
            }
        }
        for name in policy.plugins.keys() {
            if !present.contains(name) {
                self.unknown_plugin(name, &present);
            }
        }
        let registry = runtime.plugins().registry();
        for plugin in registry.snapshot().values() {
            self.requested(&plugin.manifest.name, &plugin.manifest, &policy);
        }
        for (name, workflow) in registry.workflows().iter() {
            let ungranted = workflow.ungranted();
            if !ungranted.is_empty() {
                let place = self.plugin_place(name);
                self.push(
                    Severity::Warning,
                    place,
                    format!(
                        "workflow {name:?} calls {} without a grant: add them to [plugins.{name}] tools, or its runs \
                         fail at those steps",
                        ungranted.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    /// A grant for a plugin the folder does not hold.
    fn unknown_plugin(&mut self, name: &str, present: &BTreeSet<String>) {
        let place = self.plugin_place(name);
        let closest = present
            .iter()
            .map(|p| (strsim::levenshtein(name, p), p))
            .filter(|(distance, p)| *distance <= 2.max(p.len() / 4))
            .min();
        match closest {
            Some((_, like)) => self.push(
                Severity::Error,
                place,
                format!(
                    "[plugins.{name}] grants a plugin that is not in the plugins folder: did you mean \
                     [plugins.{like}]? As it is, {like} gets nothing from this grant"
                ),
            ),
            None => self.push(
                Severity::Warning,
                place,
                format!(
                    "[plugins.{name}] grants a plugin that is not in the plugins folder: it applies once one named \
                     {name:?} is loaded (uploaded or pulled); if that is not meant, remove it"
                ),
            ),
        }
    }

    /// What a connector requests that the file's grant leaves out.
    fn requested(&mut self, name: &str, manifest: &crate::plugins::manifest::Manifest, policy: &Policy) {
        let grant = policy.plugins.get(name).cloned().unwrap_or_default();
        let place = self.plugin_place(name);
        for key in grant.unset_requested(manifest) {
            let warning = GrantWarning::RequestedUnset {
                plugin: name.to_string(),
                key,
            };
            self.push(Severity::Warning, place.clone(), warning.to_string());
        }
        let effective = Grant::new(manifest, &grant, &policy.limits);
        let asked = &manifest.capabilities.http;
        if !asked.is_empty() && effective.http.is_empty() {
            let origins: Vec<&str> = asked.iter().map(|h| h.origin.as_str()).collect();
            self.push(
                Severity::Warning,
                place,
                format!(
                    "plugin {name:?}: its manifest requests outbound HTTP ({}), which [plugins.{name}] does not \
                     grant: add http = [{{ origin = \"https://...\" }}] naming the upstream, or its calls out \
                     are refused",
                    origins.join(", ")
                ),
            );
        }
    }

    /// Grants set through the API that differ from the file's: those are in
    /// force, not the file's. Read from the embedded database when no
    /// server holds it.
    async fn api_grants(&mut self, config: &Config) {
        if config.storage.url.is_some() || config.storage.url_env.is_some() {
            self.push(
                Severity::Note,
                Place::Path(self.file.clone()),
                "grants set through the API are kept in PostgreSQL and are not compared here: \
                 GET /v1/plugins/NAME/grants on a node shows both sides"
                    .into(),
            );
            return;
        }
        let db = config.server.data_dir.join("db");
        if !db.is_dir() {
            return;
        }
        let stored = tokio::task::spawn_blocking(move || Storage::open(&db).and_then(|s| s.operator().grants()))
            .await
            .unwrap_or_else(|e| Err(crate::storage::StorageError::Backend(e.to_string())));
        match stored {
            Ok(stored) => {
                for (name, api) in stored {
                    let state = GrantState {
                        file: config.plugins.get(&name).cloned(),
                        api: Some(api),
                    };
                    if state.differs() {
                        let place = self.plugin_place(&name);
                        let warning = GrantWarning::FileNotInForce {
                            plugin: name,
                            file_has_grant: state.file.is_some(),
                        };
                        self.push(Severity::Warning, place, warning.to_string());
                    }
                }
            }
            Err(e) => self.push(
                Severity::Note,
                Place::Path(config.server.data_dir.display().to_string()),
                format!(
                    "grants set through the API are not compared with the file's: {e} (a running server holds \
                     the database; GET /v1/plugins/NAME/grants shows both sides)"
                ),
            ),
        }
    }
}

/// What to do about a bundle that did not load, where the error alone
/// does not say: a component under another name than the manifest's.
fn load_hint(dir: &Path, e: &LoadError) -> String {
    let LoadError::Component { path, .. } = e else {
        return String::new();
    };
    let expected = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned());
    let others: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm") && Some(n) != expected.as_ref())
        .collect();
    match (others.as_slice(), expected) {
        ([other], Some(expected)) => format!(
            " (the folder holds {other}: rename it to {expected}, or set component = \"{other}\" in connector.toml)"
        ),
        _ => String::new(),
    }
}

/// A scratch data folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, CheckError> {
        let dir = std::env::temp_dir().join(format!("toolhost-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(CheckError::Scratch)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_lines_and_columns() {
        let checker = Checker {
            report: Report::default(),
            file: "t.toml".into(),
            text: "a = 1\n\n  [approvals]\n".into(),
            located: Located::default(),
        };
        assert_eq!(checker.header_place("[approvals").to_string(), "t.toml:3:3");
        assert_eq!(checker.at_offset(0).to_string(), "t.toml:1:1");
    }
}
