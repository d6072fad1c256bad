//! `secrets`: only names the manifest requested and the operator granted.

use super::wit::secrets::{Host, SecretError};
use super::{CallState, Capability};

impl Host for CallState {
    fn get(&mut self, name: String) -> Result<String, SecretError> {
        match self.plugin.grant.secrets.get(&name) {
            Some(Some(value)) => Ok(value.clone()),
            Some(None) => {
                self.deny(
                    Capability::Secret,
                    format!("secret {name:?} is granted but the operator has not set its value"),
                );
                Err(SecretError::NotSet(name))
            }
            None => {
                let who = if self.plugin.requested_secrets.contains(&name) {
                    "the operator did not grant it"
                } else {
                    "the connector's manifest does not request it"
                };
                self.deny(Capability::Secret, format!("secret {name:?} refused: {who}"));
                Err(SecretError::NotGranted(name))
            }
        }
    }
}
