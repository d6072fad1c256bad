//! Plain settings the operator gives the connector (base URLs, account ids).

use crate::backend;
use crate::error::Error;

/// The named setting, if the operator set it.
pub fn get(name: &str) -> Option<String> {
    backend::config(name)
}

/// The named setting, or an error that tells the operator what to set.
pub fn require(name: &str) -> Result<String, Error> {
    get(name).ok_or_else(|| Error::Internal(format!("the operator has not set config {name:?}")))
}
