//! Bundles in OCI registries: `toolhost plugin push` stores a bundle folder
//! as an OCI artifact, `toolhost plugin pull` fetches one into a folder, and
//! the operator's `[sources]` are pulled into the plugins folder at start.
//!
//! An artifact is one layer per bundle file (media type [`FILE_MEDIA_TYPE`],
//! the file name in `org.opencontainers.image.title`), in the order
//! [`Bundle::files`] lists them, plus a small config blob naming the plugin.
//! The registry is a transport and nothing more: what it returns is checked
//! against the manifest digest when the reference names one, and the bundle
//! it makes then loads through the normal path (signature, the operator's
//! digest pin, compile). A signature travels as the `.sig` layer it is.
//!
//! A source pulled into the plugins folder keeps a small [`DIGEST_FILE`]
//! beside its files: the manifest digest it was pulled at, the reference it
//! was pulled by, and each file's sha256, so that a start that finds the
//! folder already holding the digest wanted, or cannot reach the registry,
//! knows exactly what the folder holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::{Bundle, MAX_COMPONENT_BYTES};
use super::error::LoadError;
use super::kind::Kind;

mod manifest;
mod reference;
mod sources;
pub use manifest::MAX_MANIFEST_BYTES;
pub use reference::BundleRef;
pub use sources::{pull_sources, SourceOutcome, SourceState};

/// The artifact type of a toolhost bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.toolhost.bundle.v1";
/// The media type of each layer: one bundle file, as it is on disk.
pub const FILE_MEDIA_TYPE: &str = "application/vnd.toolhost.bundle.file.v1";
/// The media type of the config blob ([`BundleConfig`]).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.toolhost.bundle.config.v1+json";
/// The layer annotation that holds the file's name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Beside a pulled source's files: what was pulled, from where. Hidden, so
/// neither the folder watcher nor a bundle reader take it for a bundle file.
pub const DIGEST_FILE: &str = ".oci-digest";
/// Registry credentials come from the environment only (never from a file,
/// never logged); both or neither.
pub const USER_ENV: &str = "TOOLHOST_REGISTRY_USER";
pub const PASSWORD_ENV: &str = "TOOLHOST_REGISTRY_PASSWORD";

/// A bundle has a manifest, a payload and maybe a signature; a few more
/// layers than that is not a bundle.
const MAX_LAYERS: usize = 8;
/// The config blob is a handful of fields.
const MAX_CONFIG_BYTES: i64 = 64 * 1024;
/// A registry that does not answer is reported, not waited on: the host's
/// start waits on each source in turn.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The default bound on one pull, start to end: a registry sending a byte
/// a second is abandoned, not waited on.
const PULL_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "{text:?} is not a bundle reference: {reason}. Write it as registry[:port]/repository:tag or \
         registry[:port]/repository@sha256:<64 hex digits>, optionally with oci:// in front"
    )]
    BadReference { text: String, reason: String },
    #[error("{0}: push to a tag (registry/repository:tag); the push prints the digest to pin")]
    PushNeedsTag(BundleRef),
    #[error("{path} is not a bundle folder: {source}")]
    Bundle { path: String, source: LoadError },
    #[error("{what} is set but {missing} is not: set both for a registry that needs credentials, or neither")]
    Credentials { what: &'static str, missing: &'static str },
    #[error(
        "registry {} ({reference}): {message}. Check that the registry runs and is reachable from here, \
         that the reference names an artifact pushed with `toolhost plugin push`, and, if it needs credentials, \
         {USER_ENV} and {PASSWORD_ENV}",
        .reference.registry()
    )]
    Registry { reference: BundleRef, message: String },
    #[error("{reference} resolved to manifest {actual}, not the {expected} the reference pins: refused")]
    DigestMismatch {
        reference: BundleRef,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference}: its manifest is {size}, over the bound of {MAX_MANIFEST_BYTES} bytes on a bundle's \
         manifest: refused"
    )]
    ManifestTooLarge { reference: BundleRef, size: String },
    #[error("{reference} is not a toolhost bundle ({reason}); push bundles with `toolhost plugin push`")]
    NotABundle { reference: BundleRef, reason: String },
    #[error("{reference} holds plugin {found:?}, not {expected:?}: name the source after the plugin it holds")]
    WrongPlugin {
        reference: BundleRef,
        expected: String,
        found: String,
    },
    #[error("{0} exists and is not empty: pull into a new folder, or remove it first")]
    TargetExists(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(
        "the configuration pins {expected}, {folder} holds {held} from an earlier pull, and the registry could \
         not give the pinned one ({source}); the plugin stays unloaded until the registry can be reached"
    )]
    PinnedUnavailable {
        expected: String,
        folder: String,
        held: String,
        source: Box<OciError>,
    },
}

/// `[registries]` in toolhost.toml: how registries are reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RegistriesConfig {
    /// Registries (`host[:port]`, as references write them) reached over
    /// plain HTTP. Loopback registries always are: their traffic does not
    /// leave the machine. Every other registry is HTTPS only.
    pub insecure: Vec<String>,
    /// Seconds one pull may take, start to end; past it the pull is
    /// abandoned as if the registry were unreachable (at start, the copy
    /// an earlier pull left serves, if any).
    pub pull_timeout_secs: u64,
}

impl Default for RegistriesConfig {
    fn default() -> Self {
        RegistriesConfig {
            insecure: Vec::new(),
            pull_timeout_secs: PULL_TIMEOUT_SECS,
        }
    }
}

impl RegistriesConfig {
    fn plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    fn protocol_for(&self, registry: &str) -> ClientProtocol {
        if self.plain_http(registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        }
    }

    /// The HTTP client for what the host asks a registry itself (the
    /// manifest, bounded), with the registry client's timeouts.
    fn http(&self) -> Result<registry_http::Client, registry_http::Error> {
        registry_http::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("toolhost/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn client(&self, reference: &BundleRef) -> Client {
        // reqwest's rustls is built without a crypto provider of its own:
        // it takes the process default, the ring provider the host's other
        // TLS uses (installing it again is a harmless error).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig {
            protocol: self.protocol_for(reference.registry()),
            // A bundle is one manifest; an index would be a choice of
            // platforms, which bundles do not have.
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("toolhost/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
    }
}

/// `localhost[:port]`, `127.x.x.x[:port]` or `[::1][:port]`.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(host, _)| host),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Credentials from [`USER_ENV`] and [`PASSWORD_ENV`], or anonymous.
fn auth_from_env() -> Result<RegistryAuth, OciError> {
    let get = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (get(USER_ENV), get(PASSWORD_ENV)) {
        (Some(user), Some(password)) => Ok(RegistryAuth::Basic(user, password)),
        (None, None) => Ok(RegistryAuth::Anonymous),
        (Some(_), None) => Err(OciError::Credentials {
            what: USER_ENV,
            missing: PASSWORD_ENV,
        }),
        (None, Some(_)) => Err(OciError::Credentials {
            what: PASSWORD_ENV,
            missing: USER_ENV,
        }),
    }
}

/// The config blob: what the artifact says it holds, checked against what
/// its files turn out to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BundleConfig {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    /// sha256 (hex) of the component (of the document, for a workflow): the
    /// digest an operator pins in `[plugins.NAME] digest`.
    pub digest: String,
}

impl BundleConfig {
    fn of(bundle: &Bundle) -> BundleConfig {
        BundleConfig {
            name: bundle.name.clone(),
            version: bundle.version.to_string(),
            kind: bundle.contents.kind(),
            digest: bundle.digest.clone(),
        }
    }
}

/// What a push made.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest, `sha256:<hex>`.
    pub digest: String,
    /// The reference pushed to (a tag).
    pub reference: BundleRef,
    /// The same artifact, pinned by its digest: what to write in `[sources]`.
    pub pinned: BundleRef,
    pub config: BundleConfig,
}

/// What a pull fetched.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The manifest's digest, `sha256:<hex>`.
    pub digest: String,
    pub config: BundleConfig,
    /// The bundle's files, in the artifact's order.
    pub files: Vec<(String, Vec<u8>)>,
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An error from the registry client, its causes included (a refused
/// connection is said as such, not only "error sending request").
fn registry_error(reference: &BundleRef, error: oci_client::errors::OciDistributionError) -> OciError {
    OciError::Registry {
        reference: reference.clone(),
        message: error_chain(&error),
    }
}

/// An error and its causes, in one line (a refused connection is said as
/// such, not only "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Store the bundle in `dir` at `reference` (a tag). The manifest carries
/// no time stamp, so the same bundle pushed again has the same digest.
pub async fn push(dir: &Path, reference: &BundleRef, registries: &RegistriesConfig) -> Result<Pushed, OciError> {
    if reference.tag().is_none() || reference.digest().is_some() {
        return Err(OciError::PushNeedsTag(reference.clone()));
    }
    let bundle = Bundle::read(dir).map_err(|source| OciError::Bundle {
        path: dir.display().to_string(),
        source,
    })?;
    let config = BundleConfig::of(&bundle);
    let mut files = bundle.files();
    // The signature as its file holds it (the bundle keeps it trimmed), so
    // that a pull gives back the folder byte for byte.
    if let Some((_, signature)) = files.iter_mut().find(|(name, _)| name == bundle.signature_file()) {
        let path = dir.join(bundle.signature_file());
        match std::fs::read(&path) {
            Ok(raw) if raw.trim_ascii() == signature.as_slice() => *signature = raw,
            _ => {}
        }
    }
    let layers: Vec<ImageLayer> = files
        .into_iter()
        .map(|(name, bytes)| {
            ImageLayer::new(
                bytes,
                FILE_MEDIA_TYPE.to_string(),
                Some(BTreeMap::from([(TITLE_ANNOTATION.to_string(), name)])),
            )
        })
        .collect();
    let config_blob = oci_client::client::Config::new(
        serde_json::to_vec(&config).expect("a bundle config serializes"),
        CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let annotations = BTreeMap::from([
        (TITLE_ANNOTATION.to_string(), config.name.clone()),
        ("org.opencontainers.image.version".to_string(), config.version.clone()),
    ]);
    let mut manifest = OciImageManifest::build(&layers, &config_blob, Some(annotations));
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    manifest.artifact_type = Some(ARTIFACT_TYPE.to_string());
    // Pushed as these exact bytes, so their digest is the manifest's.
    let body = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let digest = sha256_digest(&body);

    let client = registries.client(reference);
    let auth = auth_from_env()?;
    let image = &reference.reference;
    let failed = |e| registry_error(reference, e);
    client.store_auth_if_needed(image.resolve_registry(), &auth).await;
    for (layer, descriptor) in layers.iter().zip(&manifest.layers) {
        client
            .push_blob(image, layer.data.clone(), &descriptor.digest)
            .await
            .map_err(failed)?;
    }
    client
        .push_blob(image, config_blob.data.clone(), &manifest.config.digest)
        .await
        .map_err(failed)?;
    client
        .push_manifest_raw(image, body, http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE))
        .await
        .map_err(failed)?;
    Ok(Pushed {
        pinned: reference.pinned(&digest),
        digest,
        reference: reference.clone(),
        config,
    })
}

/// Fetch the bundle at `reference`: the manifest (checked against the
/// reference's digest, if it has one), then the config and each file, each
/// checked against its digest and its declared size as it arrives.
pub async fn fetch(reference: &BundleRef, registries: &RegistriesConfig) -> Result<Pulled, OciError> {
    let bound = Duration::from_secs(registries.pull_timeout_secs);
    tokio::time::timeout(bound, fetch_unbounded(reference, registries))
        .await
        .unwrap_or_else(|_| {
            Err(OciError::Registry {
                reference: reference.clone(),
                message: format!(
                    "the pull took longer than {} s ([registries] pull-timeout-secs) and was abandoned",
                    bound.as_secs()
                ),
            })
        })
}

/// [`fetch`], however long the registry takes.
async fn fetch_unbounded(reference: &BundleRef, registries: &RegistriesConfig) -> Result<Pulled, OciError> {
    let client = registries.client(reference);
    let auth = auth_from_env()?;
    let http = registries.http().map_err(|e| OciError::Registry {
        reference: reference.clone(),
        message: error_chain(&e),
    })?;
    let scheme = if registries.plain_http(reference.registry()) {
        "http"
    } else {
        "https"
    };
    let (manifest, digest) = manifest::fetch(&client, &http, reference, &auth, scheme).await?;
    if let Some(expected) = reference.digest() {
        if digest != expected {
            return Err(OciError::DigestMismatch {
                reference: reference.clone(),
                expected: expected.to_string(),
                actual: digest,
            });
        }
    }
    let not_a_bundle = |reason: String| OciError::NotABundle {
        reference: reference.clone(),
        reason,
    };
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(not_a_bundle(format!("its config is {}", manifest.config.media_type)));
    }
    if manifest.artifact_type.as_deref().is_some_and(|t| t != ARTIFACT_TYPE) {
        return Err(not_a_bundle(format!(
            "its artifact type is {}",
            manifest.artifact_type.as_deref().unwrap_or_default()
        )));
    }
    if manifest.layers.is_empty() || manifest.layers.len() > MAX_LAYERS {
        return Err(not_a_bundle(format!(
            "{} layers; a bundle has 1 to {MAX_LAYERS}",
            manifest.layers.len()
        )));
    }
    let config = pull_bounded(&client, reference, &manifest.config, MAX_CONFIG_BYTES).await?;
    let config: BundleConfig =
        serde_json::from_slice(&config).map_err(|e| not_a_bundle(format!("its config does not parse: {e}")))?;
    let mut names = BTreeSet::new();
    let mut files = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        if layer.media_type != FILE_MEDIA_TYPE {
            return Err(not_a_bundle(format!("a layer is {}", layer.media_type)));
        }
        let name = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(TITLE_ANNOTATION))
            .ok_or_else(|| not_a_bundle(format!("a layer has no {TITLE_ANNOTATION}")))?;
        if !is_plain_file_name(name) {
            return Err(not_a_bundle(format!(
                "a layer's file name {name:?} is not a plain file name"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(not_a_bundle(format!("two layers are both {name:?}")));
        }
        let bytes = pull_bounded(&client, reference, layer, MAX_COMPONENT_BYTES as i64).await?;
        files.push((name.clone(), bytes));
    }
    Ok(Pulled { digest, config, files })
}

/// A name a bundle folder can hold: one visible path component, no
/// separators, not `.` or `..`, not hidden (hidden names are the host's own,
/// like [`DIGEST_FILE`]).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.chars().all(|c| !c.is_control())
}

/// One blob, refused past its declared size (at most `limit`) and checked
/// against its digest by the client.
async fn pull_bounded(
    client: &Client,
    reference: &BundleRef,
    descriptor: &OciDescriptor,
    limit: i64,
) -> Result<Vec<u8>, OciError> {
    let refuse = |reason: String| OciError::NotABundle {
        reference: reference.clone(),
        reason,
    };
    if descriptor.urls.as_ref().is_some_and(|urls| !urls.is_empty()) {
        // The files come from the registry asked, not from wherever a
        // manifest points.
        return Err(refuse(format!(
            "blob {} names other places to fetch it from",
            descriptor.digest
        )));
    }
    if !(0..=limit).contains(&descriptor.size) {
        return Err(refuse(format!(
            "blob {} is {} bytes; the limit is {limit}",
            descriptor.digest, descriptor.size
        )));
    }
    let mut sink = BoundedSink {
        bytes: Vec::with_capacity(descriptor.size as usize),
        limit: descriptor.size as usize,
    };
    client
        .pull_blob(&reference.reference, descriptor, &mut sink)
        .await
        .map_err(|e| registry_error(reference, e))?;
    if sink.bytes.len() as i64 != descriptor.size {
        return Err(refuse(format!(
            "blob {} is {} bytes, not the {} its manifest says",
            descriptor.digest,
            sink.bytes.len(),
            descriptor.size
        )));
    }
    Ok(sink.bytes)
}

/// Collects a blob; more than `limit` bytes is an error, not more memory.
struct BoundedSink {
    bytes: Vec<u8>,
    limit: usize,
}

impl tokio::io::AsyncWrite for BoundedSink {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.limit {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest declares",
                self.limit
            ))));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Write `pulled` into `staging` (a new folder) and read it back: it must
/// be a bundle, its files exactly the artifact's layers, and what its config
/// says. Returns the bundle.
fn stage(pulled: &Pulled, reference: &BundleRef, staging: &Path) -> Result<Bundle, OciError> {
    let write_failed = |source| OciError::Write {
        path: staging.display().to_string(),
        source,
    };
    let not_a_bundle = |reason: String| OciError::NotABundle {
        reference: reference.clone(),
        reason,
    };
    let _ = std::fs::remove_dir_all(staging);
    Bundle::write_files(staging, &pulled.files).map_err(write_failed)?;
    let bundle = Bundle::read(staging).map_err(|e| not_a_bundle(format!("its files are not a bundle: {e}")))?;
    // Every file is one the bundle reads, and the bundle reads no other.
    let files = bundle.files();
    let expected = file_names(&files);
    let got = file_names(&pulled.files);
    if expected != got {
        return Err(not_a_bundle(format!(
            "its files are {got:?}, but the bundle they make is {expected:?}"
        )));
    }
    let actual = BundleConfig::of(&bundle);
    if actual != pulled.config {
        return Err(not_a_bundle(format!(
            "its config says {:?} but its files hold {:?}",
            pulled.config, actual
        )));
    }
    Ok(bundle)
}

fn file_names(files: &[(String, Vec<u8>)]) -> BTreeSet<&str> {
    files.iter().map(|(name, _)| name.as_str()).collect()
}

/// `.NAME.PURPOSE-PID` beside `target`: a name no bundle folder has.
fn aside(target: &Path, purpose: &str) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.{purpose}-{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Pull the bundle at `reference` into the new folder `dir` (written aside,
/// checked, then renamed into place).
pub async fn pull(reference: &BundleRef, dir: &Path, registries: &RegistriesConfig) -> Result<Pulled, OciError> {
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || dir.is_file() {
        return Err(OciError::TargetExists(dir.display().to_string()));
    }
    let pulled = fetch(reference, registries).await?;
    let staging = aside(dir, "oci-pull");
    let placed = stage(&pulled, reference, &staging).and_then(|_| {
        let _ = std::fs::remove_dir(dir);
        std::fs::rename(&staging, dir)
            .and_then(|()| sync_dir(staging.parent().unwrap_or(Path::new("."))))
            .map_err(|source| OciError::Write {
                path: dir.display().to_string(),
                source,
            })
    });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    placed.map(|()| pulled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_registry_and_tag_or_digest() {
        let r = BundleRef::parse("oci://127.0.0.1:5000/toolhost/crm:0.1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.tag(), Some("0.1.0"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/toolhost/crm:0.1.0");
        assert_eq!(BundleRef::parse("127.0.0.1:5000/toolhost/crm:0.1.0").unwrap(), r);
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = BundleRef::parse(&format!("registry.example.com/crm@{digest}")).unwrap();
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        assert_eq!(
            r.pinned(&digest).to_string(),
            format!("oci://127.0.0.1:5000/toolhost/crm@{digest}")
        );
        for bad in [
            "crm:0.1.0",
            "toolhost/crm:0.1.0",
            "127.0.0.1:5000/toolhost/crm",
            "https://127.0.0.1:5000/toolhost/crm:1",
            "127.0.0.1:5000/crm@sha256:abc",
            &format!("127.0.0.1:5000/crm@sha256:{}", "A".repeat(64)),
            "",
        ] {
            let e = BundleRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("registry[:port]/repository:tag"), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let config = RegistriesConfig {
            insecure: vec!["registry.lan:5000".into()],
            ..RegistriesConfig::default()
        };
        for loopback in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.8.9.1",
        ] {
            assert!(is_loopback(loopback), "{loopback}");
            assert_ne!(config.protocol_for(loopback), ClientProtocol::Https, "{loopback}");
        }
        assert_ne!(config.protocol_for("registry.lan:5000"), ClientProtocol::Https);
        for remote in ["registry.lan", "10.0.0.1:5000", "ghcr.io", "localhost.example.com:5000"] {
            assert!(!is_loopback(remote), "{remote}");
            assert_eq!(config.protocol_for(remote), ClientProtocol::Https, "{remote}");
        }
    }

    #[test]
    fn layer_names_must_be_plain_visible_file_names() {
        for ok in ["connector.toml", "crm.wasm", "connector.sig", "workflow.yaml"] {
            assert!(is_plain_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            ".oci-digest",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
