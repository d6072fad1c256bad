//! Vendor signatures over bundles (ed25519). A signature covers the component
//! and the manifest together: the signed message is a fixed label followed by
//! the SHA-256 of each, so neither can be swapped without breaking it.
//!
//! Keys and signatures are hex text: a private key file holds the 32-byte
//! seed, a public key is 32 bytes, `connector.sig` holds 64 bytes.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The file beside `connector.toml` that holds the signature.
pub const SIGNATURE_FILE: &str = "connector.sig";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("not a valid {what}: expected {bytes} bytes of hex")]
    BadEncoding { what: &'static str, bytes: usize },
    #[error("the signature does not match this component and manifest for any trusted key")]
    Mismatch,
    #[error("the bundle is unsigned, and the operator requires a signature from a trusted key")]
    Unsigned,
}

fn message(component: &[u8], manifest: &[u8]) -> Vec<u8> {
    let mut m = b"toolhost-bundle-v1\n".to_vec();
    m.extend_from_slice(&Sha256::digest(component));
    m.extend_from_slice(&Sha256::digest(manifest));
    m
}

fn decode<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], SigningError> {
    let bad = SigningError::BadEncoding { what, bytes: N };
    let bytes = hex::decode(text.trim()).map_err(|_| bad.clone())?;
    bytes.try_into().map_err(|_| bad)
}

/// A new private key (hex seed) and its public key (hex).
pub fn keygen() -> (String, String) {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    (hex::encode(seed), hex::encode(key.verifying_key().to_bytes()))
}

/// The public key (hex) of a private key (hex seed).
pub fn public_key(private_hex: &str) -> Result<String, SigningError> {
    let key = SigningKey::from_bytes(&decode::<32>(private_hex, "private key")?);
    Ok(hex::encode(key.verifying_key().to_bytes()))
}

/// Sign a bundle's component and manifest; the signature as hex.
pub fn sign(private_hex: &str, component: &[u8], manifest: &[u8]) -> Result<String, SigningError> {
    let key = SigningKey::from_bytes(&decode::<32>(private_hex, "private key")?);
    Ok(hex::encode(key.sign(&message(component, manifest)).to_bytes()))
}

/// Check a signature against the trusted keys; the key (hex) that made it.
pub fn verify(
    trusted: &[String],
    signature_hex: &str,
    component: &[u8],
    manifest: &[u8],
) -> Result<String, SigningError> {
    let signature = Signature::from_bytes(&decode::<64>(signature_hex, "signature")?);
    let msg = message(component, manifest);
    for key_hex in trusted {
        let key =
            VerifyingKey::from_bytes(&decode::<32>(key_hex, "public key")?).map_err(|_| SigningError::BadEncoding {
                what: "public key",
                bytes: 32,
            })?;
        if key.verify(&msg, &signature).is_ok() {
            return Ok(key_hex.clone());
        }
    }
    Err(SigningError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_the_pair_together() {
        let (private, public) = keygen();
        assert_eq!(public_key(&private).unwrap(), public);
        let sig = sign(&private, b"wasm", b"name = \"x\"").unwrap();
        assert_eq!(
            verify(std::slice::from_ref(&public), &sig, b"wasm", b"name = \"x\"").unwrap(),
            public
        );
        assert_eq!(
            verify(std::slice::from_ref(&public), &sig, b"wasm!", b"name = \"x\""),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            verify(std::slice::from_ref(&public), &sig, b"wasm", b"name = \"y\""),
            Err(SigningError::Mismatch)
        );
        let (_, other) = keygen();
        assert_eq!(
            verify(&[other], &sig, b"wasm", b"name = \"x\""),
            Err(SigningError::Mismatch)
        );
        assert!(matches!(
            verify(&[public], "zz", b"", b""),
            Err(SigningError::BadEncoding { .. })
        ));
    }
}
