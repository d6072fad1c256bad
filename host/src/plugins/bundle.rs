//! A bundle: a connector as a vendor ships it (`connector.toml`, the
//! component it names, and `connector.sig` if signed) or a workflow
//! (`workflow.yaml`, and `workflow.sig` if signed), read from a folder or
//! an upload, checked against the operator's supply-chain rules, and written
//! durably into a folder. Both kinds are versioned, pinned, signed and
//! rolled back the same way.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::error::LoadError;
use super::manifest::{Manifest, ManifestError};
use super::signing::{self, SigningError, SIGNATURE_FILE};
use crate::policy::Policy;
use crate::workflow::definition::Definition;
use crate::workflow::{Workflow, DOCUMENT_FILE};

/// The signature file of a workflow bundle.
pub const WORKFLOW_SIGNATURE_FILE: &str = "workflow.sig";

/// What a bundle holds.
#[derive(Clone)]
pub enum Contents {
    /// A Wasm component and its manifest.
    Connector { manifest: Box<Manifest>, wasm: Vec<u8> },
    /// A workflow document (`manifest_text` is the document).
    Workflow(Arc<Definition>),
}

/// Largest component file the host reads.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// A bundle before compilation: what it holds, the manifest (or workflow
/// document) as the exact bytes the signature covers, and its signature if
/// any.
#[derive(Clone)]
pub struct Bundle {
    /// The plugin's name (the connector's or the workflow's).
    pub name: String,
    pub version: semver::Version,
    pub contents: Contents,
    pub manifest_text: String,
    pub signature: Option<String>,
    /// sha256 of the component (of the document, for a workflow), hex.
    pub digest: String,
}

impl Bundle {
    /// Read the bundle in `dir`: a connector if it has a `connector.toml`,
    /// else a workflow if it has a `workflow.yaml`.
    pub fn read(dir: &Path) -> Result<Bundle, LoadError> {
        if !dir.join("connector.toml").is_file() && dir.join(DOCUMENT_FILE).is_file() {
            return Bundle::read_workflow(dir);
        }
        Bundle::read_connector(dir)
    }

    /// Whether `dir` holds a bundle of either kind.
    pub fn is_bundle(dir: &Path) -> bool {
        dir.join("connector.toml").is_file() || dir.join(DOCUMENT_FILE).is_file()
    }

    /// The name of the plugin in `dir`, if it holds a readable bundle.
    pub fn name_in(dir: &Path) -> Option<String> {
        match Manifest::load(&dir.join("connector.toml")) {
            Ok(m) => Some(m.name),
            Err(_) => Bundle::read_workflow(dir).ok().map(|b| b.name),
        }
    }

    fn read_workflow(dir: &Path) -> Result<Bundle, LoadError> {
        let path = dir.join(DOCUMENT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let signature = std::fs::read_to_string(dir.join(WORKFLOW_SIGNATURE_FILE)).ok();
        Bundle::workflow(text, signature, &path.display().to_string())
    }

    /// A workflow bundle from its document.
    pub fn workflow(text: String, signature: Option<String>, path: &str) -> Result<Bundle, LoadError> {
        let definition = Definition::parse(&text).map_err(|e| LoadError::Workflow {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Ok(Bundle {
            name: definition.name.clone(),
            version: definition.version.clone(),
            contents: Contents::Workflow(Arc::new(definition)),
            digest: hex::encode(Sha256::digest(text.as_bytes())),
            manifest_text: text,
            signature: clean(signature),
        })
    }

    fn read_connector(dir: &Path) -> Result<Bundle, LoadError> {
        let manifest_path = dir.join("connector.toml");
        let manifest_text = std::fs::read_to_string(&manifest_path).map_err(|source| ManifestError::Read {
            path: manifest_path.display().to_string(),
            source,
        })?;
        let manifest = Manifest::parse(&manifest_text, &manifest_path.display().to_string())?;
        let path = dir.join(manifest.component_file());
        let component_error = |message: String| LoadError::Component {
            path: path.display().to_string(),
            message,
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| component_error(e.to_string()))?
            .len();
        if size > MAX_COMPONENT_BYTES {
            return Err(component_error(format!(
                "{size} bytes is over the {MAX_COMPONENT_BYTES}-byte limit"
            )));
        }
        let wasm = std::fs::read(&path).map_err(|e| component_error(e.to_string()))?;
        let signature = std::fs::read_to_string(dir.join(SIGNATURE_FILE)).ok();
        Ok(Bundle::new(manifest, manifest_text, wasm, signature))
    }

    /// A bundle from its parts (an upload).
    pub fn from_parts(manifest_text: String, wasm: Vec<u8>, signature: Option<String>) -> Result<Bundle, LoadError> {
        let manifest = Manifest::parse(&manifest_text, "connector.toml")?;
        Ok(Bundle::new(manifest, manifest_text, wasm, signature))
    }

    fn new(manifest: Manifest, manifest_text: String, wasm: Vec<u8>, signature: Option<String>) -> Bundle {
        Bundle {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            digest: hex::encode(Sha256::digest(&wasm)),
            contents: Contents::Connector {
                manifest: Box::new(manifest),
                wasm,
            },
            manifest_text,
            signature: clean(signature),
        }
    }

    /// What the digest and the signature cover besides the manifest: the
    /// component, or the workflow document.
    pub fn payload(&self) -> &[u8] {
        match &self.contents {
            Contents::Connector { wasm, .. } => wasm,
            Contents::Workflow(_) => self.manifest_text.as_bytes(),
        }
    }

    /// The file its signature is kept in.
    pub fn signature_file(&self) -> &'static str {
        match self.contents {
            Contents::Connector { .. } => SIGNATURE_FILE,
            Contents::Workflow(_) => WORKFLOW_SIGNATURE_FILE,
        }
    }

    /// sha256 of the manifest, hex: with `digest`, what identifies a version.
    pub fn manifest_digest(&self) -> String {
        hex::encode(Sha256::digest(self.manifest_text.as_bytes()))
    }

    /// The bundle's files as its folder holds them, the manifest last: what
    /// is archived, shared between nodes and pushed to a registry.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::with_capacity(3);
        let manifest_file = match &self.contents {
            Contents::Connector { manifest, wasm } => {
                files.push((manifest.component_file().to_string(), wasm.clone()));
                "connector.toml"
            }
            Contents::Workflow(_) => DOCUMENT_FILE,
        };
        if let Some(sig) = &self.signature {
            files.push((self.signature_file().to_string(), sig.as_bytes().to_vec()));
        }
        files.push((manifest_file.to_string(), self.manifest_text.as_bytes().to_vec()));
        files
    }

    /// Write the bundle into `dir` (which must not hold another).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        Bundle::write_files(dir, &self.files())
    }

    /// Write `files` (as [`Bundle::files`] lists them: the manifest last, so
    /// a reader that finds it finds the rest) into `dir`, each on disk
    /// before the next. A name that is not a plain file name is refused.
    pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
        let plain = |name: &str| {
            let mut parts = Path::new(name).components();
            matches!(
                (parts.next(), parts.next()),
                (Some(std::path::Component::Normal(_)), None)
            )
        };
        if let Some((name, _)) = files.iter().find(|(name, _)| !plain(name)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a bundle file name"),
            ));
        }
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in files {
            write_synced(&dir.join(name), bytes)?;
        }
        std::fs::File::open(dir)?.sync_all()?;
        match dir.parent() {
            Some(parent) => std::fs::File::open(parent)?.sync_all(),
            None => Ok(()),
        }
    }

    /// The workflow this bundle holds, under the operator's policy: its
    /// digest pin and signature checked as a connector's are, its grant
    /// taken.
    pub fn load_workflow(&self, policy: &Policy) -> Result<Workflow, LoadError> {
        let signer = self.verify(policy)?;
        let Contents::Workflow(definition) = &self.contents else {
            return Err(LoadError::Kind {
                plugin: self.name.clone(),
                expected: "workflow",
                actual: "connector",
            });
        };
        Workflow::new(definition.clone(), self.digest.clone(), signer, policy).map_err(|message| LoadError::Workflow {
            path: format!("{} ({DOCUMENT_FILE})", self.name),
            message,
        })
    }

    /// The operator's supply-chain rules, before anything is compiled: the
    /// digest pin, and the signature (required, or present and checked).
    /// Returns the trusted key that signed it, if any.
    pub fn verify(&self, policy: &Policy) -> Result<Option<String>, LoadError> {
        let plugin = &self.name;
        if let Some(pin) = policy.plugins.get(plugin).and_then(|p| p.digest.as_ref()) {
            if !pin.eq_ignore_ascii_case(&self.digest) {
                return Err(LoadError::Pinned {
                    plugin: plugin.clone(),
                    expected: pin.clone(),
                    actual: self.digest.clone(),
                });
            }
        }
        let signing = &policy.signing;
        let signature_error = |source| LoadError::Signature {
            plugin: plugin.clone(),
            source,
        };
        match &self.signature {
            None if signing.require => Err(signature_error(SigningError::Unsigned)),
            None => Ok(None),
            Some(_) if signing.trusted_keys.is_empty() && !signing.require => Ok(None),
            Some(sig) => signing::verify(
                &signing.trusted_keys,
                sig,
                self.payload(),
                self.manifest_text.as_bytes(),
            )
            .map(Some)
            .map_err(signature_error),
        }
    }
}

fn clean(signature: Option<String>) -> Option<String> {
    signature.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Write `bytes` to `path` and have them on disk before returning.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
