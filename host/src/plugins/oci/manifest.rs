//! A bundle's manifest, read with a bound. oci-client reads a manifest
//! whole before looking at it (a 400 MB one took 924 MB of memory before it
//! was refused), so the host asks for it itself, through the client's own
//! authentication: refused when its `Content-Length` says it is too large,
//! and read no further than the bound when it does not say.

use oci_client::manifest::{
    OciImageManifest, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::{error_chain, sha256_digest, BundleRef, OciError};

/// A bundle's manifest is a few hundred bytes a layer, eight layers at
/// most; a generous bound on that.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// What the host asks a registry for (an index is refused once read: a
/// bundle has no platforms to choose among).
const ACCEPT: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The manifest at `reference` and its digest (`sha256:<hex>` of the bytes
/// read), over `scheme` (`http` or `https`).
pub(super) async fn fetch(
    client: &Client,
    http: &registry_http::Client,
    reference: &BundleRef,
    auth: &RegistryAuth,
    scheme: &str,
) -> Result<(OciImageManifest, String), OciError> {
    let image = &reference.reference;
    let failed = |message: String| OciError::Registry {
        reference: reference.clone(),
        message,
    };
    // The client's own token dance (anonymous or with credentials); the
    // token it returns is kept for the blobs it pulls next.
    let token = client
        .auth(image, auth, RegistryOperation::Pull)
        .await
        .map_err(|e| super::registry_error(reference, e))?;
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{}",
        image.resolve_registry(),
        image.repository(),
        image.digest().or(image.tag()).unwrap_or("latest")
    );
    let mut request = http.get(&url).header(http::header::ACCEPT, ACCEPT.join(", "));
    request = match (token, auth) {
        (Some(token), _) => request.bearer_auth(token),
        (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
        (None, _) => request,
    };
    let mut response = request.send().await.map_err(|e| failed(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("GET {url}: HTTP {}", response.status())));
    }
    let too_large = |size: String| OciError::ManifestTooLarge {
        reference: reference.clone(),
        size,
    };
    if let Some(length) = response.content_length().filter(|&l| l > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large(format!("{length} bytes by its Content-Length")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(error_chain(&e)))? {
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large(format!("more than {MAX_MANIFEST_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let digest = sha256_digest(&body);
    let said = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok());
    if let Some(said) = said.filter(|d| d.starts_with("sha256:") && *d != digest) {
        return Err(failed(format!(
            "the registry says the manifest is {said}, but what it sent is {digest}"
        )));
    }
    let manifest: OciImageManifest = serde_json::from_slice(&body).map_err(|e| OciError::NotABundle {
        reference: reference.clone(),
        reason: format!("its manifest is not an image manifest: {e}"),
    })?;
    Ok((manifest, digest))
}
