//! Credentials the operator hands the connector by name.

use crate::backend;
pub use crate::bindings::host::toolhost::connector::secrets::SecretError;

/// The value of a secret the manifest requested and the operator granted.
pub fn get(name: &str) -> Result<String, SecretError> {
    backend::secret(name)
}
