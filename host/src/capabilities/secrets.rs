//! `secrets`: only names the manifest requested and the operator granted;
//! and what becomes of a value once handed over. Every value granted to the
//! plugin is masked wherever a call's words leave the host other than in its
//! requests upstream: its log lines, stdout and stderr, its result, its
//! error, its denials, the paths it sent requests to, the audit record. All
//! granted values, not only those this call asked for: a value a connector
//! stashed in its kv during one call comes out masked from any later one.
//! Each text is masked whole, before it is cut to its bound, so a cut never
//! leaves part of a value behind. An attempt to echo one is journaled.

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::Value;

use super::wit::secrets::{Host, SecretError};
use super::{CallState, Capability, Echo, Journal, Sink};
use crate::policy::Grant;

/// Values shorter than this are not masked: a short value ("1234", "eu")
/// matches too much ordinary text to be hidden without mangling it, and is
/// no credential worth the name.
pub const MASK_MIN_BYTES: usize = 8;

impl Host for CallState {
    fn get(&mut self, name: String) -> Result<String, SecretError> {
        match self.plugin.grant.secrets.get(&name) {
            Some(Some(value)) => Ok(value.expose_secret().to_string()),
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
    /// A journal for a call of the plugin granted `grant`, whose secret
    /// values it masks.
    pub(crate) fn for_grant(grant: Arc<Grant>) -> Journal {
        Journal {
            grant: Some(grant),
            ..Journal::default()
        }
    }

    /// The plugin's secret values long enough to mask, with their names.
    fn secret_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.grant.iter().flat_map(|grant| {
            grant.secrets.iter().filter_map(|(name, value)| {
                let value = value.as_ref()?.expose_secret();
                (value.len() >= MASK_MIN_BYTES).then_some((name.as_str(), value))
            })
        })
    }

    /// The length of the longest value masked: how much more than its bound
    /// a text must be read to be masked whole before it is cut.
    pub(crate) fn longest_secret(&self) -> usize {
        self.secret_values().map(|(_, value)| value.len()).max().unwrap_or(0)
    }

    /// Replace every secret value in `text` with `[secret NAME]`; the
    /// names of those found. `Case::Any` also finds a value in other ASCII
    /// case, as the host itself writes a host name it was asked for.
    fn replace_secrets(&self, text: &mut String, case: Case) -> Vec<String> {
        let mut found = Vec::new();
        for (name, value) in self.secret_values() {
            let marker = format!("[secret {name}]");
            let replaced = match case {
                Case::Exact => text.contains(value).then(|| text.replace(value, &marker)),
                Case::Any => replace_any_case(text, value, &marker),
            };
            if let Some(replaced) = replaced {
                *text = replaced;
                found.push(name.to_string());
            }
        }
        found
    }

    /// Mask every secret value in `text`; each one found is journaled as an
    /// echo into `sink`.
    pub(crate) fn mask(&mut self, text: &mut String, sink: Sink) {
        let case = match sink {
            Sink::Denial => Case::Any,
            _ => Case::Exact,
        };
        for secret in self.replace_secrets(text, case) {
            let echo = Echo { secret, into: sink };
            if !self.echoes.contains(&echo) {
                self.echoes.push(echo);
            }
        }
    }

    /// [`Journal::mask`] without journaling an echo: for what the connector
    /// rightly sent upstream (a token in a URL's path) and the host keeps.
    pub(crate) fn redact(&self, text: &mut String) {
        self.replace_secrets(text, Case::Exact);
    }

    /// `text` is the end of a longer one: drop what it starts with that is
    /// the end of a secret value, the part of a value the cut left.
    pub(crate) fn strip_cut_value(&self, text: &mut String) {
        let longest = self
            .secret_values()
            .filter_map(|(_, value)| {
                (1..value.len())
                    .rev()
                    .find(|&n| value.is_char_boundary(value.len() - n) && text.starts_with(&value[value.len() - n..]))
            })
            .max();
        if let Some(n) = longest {
            text.drain(..n);
        }
    }

    /// [`Journal::mask`] every string (and key) of a JSON value.
    pub(crate) fn mask_json(&mut self, value: &mut Value, sink: Sink) {
        if self.secret_values().next().is_none() {
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

/// How a secret value is looked for.
#[derive(Clone, Copy)]
enum Case {
    Exact,
    Any,
}

/// `text` with every match of `value` in any ASCII case replaced by
/// `marker`, or `None` if there is none. ASCII case folding keeps byte
/// offsets, so matches found in the folded copy are cut from the original.
fn replace_any_case(text: &str, value: &str, marker: &str) -> Option<String> {
    let folded = text.to_ascii_lowercase();
    let needle = value.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(at) = folded[from..].find(&needle) {
        out.push_str(&text[from..from + at]);
        out.push_str(marker);
        from += at + needle.len();
    }
    (from > 0).then(|| {
        out.push_str(&text[from..]);
        out
    })
}
