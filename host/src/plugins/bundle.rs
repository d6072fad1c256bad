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
use super::kind::Kind;
use super::manifest::{Manifest, ManifestError};
use super::signing::{self, SigningError, SIGNATURE_FILE};
use crate::policy::Policy;
use crate::workflow::definition::{Definition, MAX_DOCUMENT_BYTES};
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

impl Contents {
    pub fn kind(&self) -> Kind {
        match self {
            Contents::Connector { .. } => Kind::Connector,
            Contents::Workflow(_) => Kind::Workflow,
        }
    }
}

/// Largest component file the host reads.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Largest manifest or signature file the host reads (the largest shipped
/// manifest is under 4 KiB).
pub const MAX_MANIFEST_FILE_BYTES: u64 = 1024 * 1024;

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
        let manifest_path = dir.join("connector.toml");
        let manifest = read_text(&manifest_path, MAX_MANIFEST_FILE_BYTES)
            .and_then(|text| Manifest::parse(&text, &manifest_path.display().to_string()));
        match manifest {
            Ok(m) => Some(m.name),
            Err(_) => Bundle::read_workflow(dir).ok().map(|b| b.name),
        }
    }

    fn read_workflow(dir: &Path) -> Result<Bundle, LoadError> {
        let path = dir.join(DOCUMENT_FILE);
        let text = read_text(&path, MAX_DOCUMENT_BYTES as u64)?;
        let signature = read_signature(&dir.join(WORKFLOW_SIGNATURE_FILE))?;
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
        let manifest_text = read_text(&manifest_path, MAX_MANIFEST_FILE_BYTES)?;
        let manifest = Manifest::parse(&manifest_text, &manifest_path.display().to_string())?;
        let path = dir.join(manifest.component_file());
        let wasm = read_file(&path, MAX_COMPONENT_BYTES).map_err(|e| LoadError::Component {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let signature = read_signature(&dir.join(SIGNATURE_FILE))?;
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
                expected: Kind::Workflow,
                actual: Kind::Connector,
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

/// The regular file at `path` (a symlink is followed), at most `limit`
/// bytes. Anything else is refused before it is opened for reading, and
/// again once open (it may have been swapped meanwhile): a FIFO's open or
/// read waits for a writer that may never come, a device's never ends.
pub(crate) fn read_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    regular(&std::fs::metadata(path)?)?;
    // Non-blocking, so that the open of what turned into a FIFO since the
    // look returns at once (the check below then refuses it); reads of a
    // regular file ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    regular(&metadata)?;
    let too_large = |size: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{size} bytes is over the {limit}-byte limit"),
        )
    };
    if metadata.len() > limit {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        // It grew while read.
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Whether `metadata` is a regular file's; an error naming what it is if not.
fn regular(metadata: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = match () {
        () if kind.is_file() => return Ok(()),
        () if kind.is_dir() => "a folder",
        () if kind.is_fifo() => "a FIFO",
        () if kind.is_socket() => "a socket",
        () if kind.is_char_device() || kind.is_block_device() => "a device",
        () => "not a file",
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("is {what}, not a regular file"),
    ))
}

/// [`read_file`] as UTF-8 text, its error a manifest read error.
fn read_text(path: &Path, limit: u64) -> Result<String, ManifestError> {
    let failed = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    let bytes = read_file(path, limit).map_err(failed)?;
    String::from_utf8(bytes).map_err(|_| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")))
}

/// A bundle's signature file: `None` if there is none. One that is there but
/// cannot be read is refused, not taken for no signature.
fn read_signature(path: &Path) -> Result<Option<String>, ManifestError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_text(path, MAX_MANIFEST_FILE_BYTES).map(Some),
    }
}

/// Write `bytes` to `path` and have them on disk before returning.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{read_file, Bundle, MAX_COMPONENT_BYTES, MAX_MANIFEST_FILE_BYTES};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("toolhost-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let dir = scratch("fifo");
        mkfifo(&dir.join("pipe"));
        // Through a symlink too: what it names is what counts.
        std::os::unix::fs::symlink(dir.join("pipe"), dir.join("link")).unwrap();
        for name in ["pipe", "link"] {
            let e = read_file(&dir.join(name), 10).unwrap_err();
            assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        }
        assert!(read_file(&dir, 10).unwrap_err().to_string().contains("a folder"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_over_their_bound_are_refused_unread() {
        let dir = scratch("bound");
        std::fs::write(dir.join("small"), b"0123456789").unwrap();
        assert_eq!(read_file(&dir.join("small"), 10).unwrap(), b"0123456789");
        assert_eq!(
            read_file(&dir.join("small"), 9).unwrap_err().to_string(),
            "10 bytes is over the 9-byte limit"
        );
        // Sparse: no bytes are written, and none are read.
        let manifest = std::fs::File::create(dir.join("connector.toml")).unwrap();
        manifest.set_len(MAX_MANIFEST_FILE_BYTES + 1).unwrap();
        let e = Bundle::read(&dir).err().expect("refused");
        assert!(e.to_string().contains("over the 1048576-byte limit"), "{e}");
        std::fs::write(
            dir.join("connector.toml"),
            "name = \"big\"\nversion = \"1.0.0\"\nvendor = \"v\"\nworld = \"toolhost:connector/connector\"\n",
        )
        .unwrap();
        std::fs::File::create(dir.join("big.wasm"))
            .unwrap()
            .set_len(MAX_COMPONENT_BYTES + 1)
            .unwrap();
        let e = Bundle::read(&dir).err().expect("refused");
        assert!(
            e.to_string().contains("67108865 bytes is over the 67108864-byte limit"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
