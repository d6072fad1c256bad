//! Where a bundle is in a registry, as an operator writes it.

use std::fmt;

use oci_client::Reference;
use serde::Deserialize;

use super::OciError;

/// Where a bundle is in a registry: `registry[:port]/repository:tag` or
/// `registry[:port]/repository@sha256:<hex>` (`oci://` in front is
/// accepted). The registry and the tag or digest are always written out:
/// nothing defaults to Docker Hub or to `latest`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BundleRef {
    // Boxed: five strings inline would make every error that names a
    // reference large.
    pub(super) reference: Box<Reference>,
}

impl BundleRef {
    pub fn parse(text: &str) -> Result<BundleRef, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let bare = text.strip_prefix("oci://").unwrap_or(text);
        if bare.contains("://") {
            return Err(bad("the only scheme it takes is oci://"));
        }
        let Some((registry, rest)) = bare.split_once('/') else {
            return Err(bad("it names no registry"));
        };
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad(&format!(
                "{registry:?} is not a registry host (a name with a dot or a port, an address, or localhost)"
            )));
        }
        let last = rest.rsplit('/').next().unwrap_or(rest);
        if !last.contains(':') && !last.contains('@') {
            return Err(bad("it names neither a tag nor a digest"));
        }
        let reference = Reference::try_from(bare).map_err(|e| bad(&e.to_string()))?;
        if reference.registry() != registry {
            return Err(bad("its registry part is not a registry"));
        }
        if let Some(digest) = reference.digest() {
            if !is_sha256_digest(digest) {
                return Err(bad("the digest must be sha256:<64 lowercase hex digits>"));
            }
        }
        Ok(BundleRef {
            reference: Box::new(reference),
        })
    }

    /// `host[:port]` of the registry.
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// `sha256:<hex>` when the reference pins a manifest.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The same repository, pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> BundleRef {
        BundleRef {
            reference: Box::new(Reference::with_digest(
                self.reference.registry().to_string(),
                self.reference.repository().to_string(),
                digest.to_string(),
            )),
        }
    }
}

impl TryFrom<String> for BundleRef {
    type Error = OciError;
    fn try_from(text: String) -> Result<BundleRef, OciError> {
        BundleRef::parse(&text)
    }
}

impl std::str::FromStr for BundleRef {
    type Err = OciError;
    fn from_str(text: &str) -> Result<BundleRef, OciError> {
        BundleRef::parse(text)
    }
}

impl fmt::Display for BundleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}", self.reference.whole())
    }
}

impl fmt::Debug for BundleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub(super) fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}
