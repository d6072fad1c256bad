//! A bundle: a connector as a vendor ships it (`connector.toml`, the
//! component it names, and `connector.sig` if signed), read from a folder or
//! an upload, checked against the operator's supply-chain rules, and written
//! durably into a folder.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestError};
use super::plugin::LoadError;
use super::signing::{self, SigningError, SIGNATURE_FILE};
use crate::policy::Policy;

/// Largest component file the host reads.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// A bundle before compilation: the manifest (parsed, and as the exact
/// bytes the signature covers), the component, and its signature if any.
#[derive(Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub manifest_text: String,
    pub wasm: Vec<u8>,
    pub signature: Option<String>,
    /// sha256 of the component, hex.
    pub digest: String,
}

impl Bundle {
    /// Read `dir/connector.toml`, the component it names and `connector.sig`.
    pub fn read(dir: &Path) -> Result<Bundle, LoadError> {
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
        let digest = hex::encode(Sha256::digest(&wasm));
        Bundle {
            manifest,
            manifest_text,
            wasm,
            signature: signature.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            digest,
        }
    }

    /// sha256 of the manifest, hex: with `digest`, what identifies a version.
    pub fn manifest_digest(&self) -> String {
        hex::encode(Sha256::digest(self.manifest_text.as_bytes()))
    }

    /// Write the bundle into `dir` (which must not hold another).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        /// Written and on disk before the next one starts.
        fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(path)?;
            file.write_all(bytes)?;
            file.sync_all()
        }
        std::fs::create_dir_all(dir)?;
        write_synced(&dir.join(self.manifest.component_file()), &self.wasm)?;
        if let Some(sig) = &self.signature {
            write_synced(&dir.join(SIGNATURE_FILE), sig.as_bytes())?;
        }
        // The manifest last: a reader that finds it finds the rest.
        write_synced(&dir.join("connector.toml"), self.manifest_text.as_bytes())?;
        std::fs::File::open(dir)?.sync_all()?;
        match dir.parent() {
            Some(parent) => std::fs::File::open(parent)?.sync_all(),
            None => Ok(()),
        }
    }

    /// The operator's supply-chain rules, before anything is compiled: the
    /// digest pin, and the signature (required, or present and checked).
    /// Returns the trusted key that signed it, if any.
    pub fn verify(&self, policy: &Policy) -> Result<Option<String>, LoadError> {
        let plugin = &self.manifest.name;
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
            Some(sig) => signing::verify(&signing.trusted_keys, sig, &self.wasm, self.manifest_text.as_bytes())
                .map(Some)
                .map_err(signature_error),
        }
    }
}
