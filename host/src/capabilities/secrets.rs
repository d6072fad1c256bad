//! `secrets`: only names the manifest requested and the operator granted;
//! and what becomes of a value once handed over. Every value a call was
//! given is masked wherever the call's words leave the host other than in
//! its requests upstream: its log lines, its result, its error, the audit
//! record. An attempt to echo one is journaled.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wit::secrets::{Host, SecretError};
use super::{CallState, Capability, Journal};

/// Values shorter than this are not masked: a short value ("1234", "eu")
/// matches too much ordinary text to be hidden without mangling it, and is
/// no credential worth the name.
pub const MASK_MIN_BYTES: usize = 8;

/// A secret value a call was handed, kept to mask it.
#[derive(Debug, Clone)]
pub struct Handed {
    pub name: String,
    value: SecretString,
}

/// Where a connector tried to let a secret out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sink {
    /// Its log lines, stdout or stderr.
    Log,
    /// Its result.
    Result,
    /// Its error (typed or a trap's message).
    Error,
}

/// A secret found in what a connector wrote, and masked there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    pub secret: String,
    pub into: Sink,
}

impl Host for CallState {
    fn get(&mut self, name: String) -> Result<String, SecretError> {
        match self.plugin.grant.secrets.get(&name) {
            Some(Some(value)) => {
                let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
                journal.hand(&name, value);
                Ok(value.expose_secret().to_string())
            }
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

impl Journal {
    /// Remember a value handed to the call, to mask it later.
    fn hand(&mut self, name: &str, value: &SecretString) {
        let long_enough = value.expose_secret().len() >= MASK_MIN_BYTES;
        if long_enough && !self.handed.iter().any(|h| h.name == name) {
            self.handed.push(Handed {
                name: name.to_string(),
                value: value.clone(),
            });
        }
    }

    /// Replace every handed value in `text` with `[secret NAME]`; each one
    /// found is journaled as an echo into `sink`.
    pub(crate) fn mask(&mut self, text: &mut String, sink: Sink) {
        for handed in &self.handed {
            let value = handed.value.expose_secret();
            if text.contains(value) {
                *text = text.replace(value, &format!("[secret {}]", handed.name));
                let echo = Echo {
                    secret: handed.name.clone(),
                    into: sink,
                };
                if !self.echoes.contains(&echo) {
                    self.echoes.push(echo);
                }
            }
        }
    }

    /// [`Journal::mask`] every string (and key) of a JSON value.
    pub(crate) fn mask_json(&mut self, value: &mut Value, sink: Sink) {
        if self.handed.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.mask(s, sink),
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v, sink)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut v) in entries {
                    self.mask(&mut key, sink);
                    self.mask_json(&mut v, sink);
                    map.insert(key, v);
                }
            }
            _ => {}
        }
    }
}
