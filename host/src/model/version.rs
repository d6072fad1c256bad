//! One version of a plugin in its history: what served, from where, and
//! where its bundle is archived for a rollback.

use serde::{Deserialize, Serialize};

use crate::model::audit::Source;

/// One entry of a plugin's version history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionEntry {
    pub version: String,
    /// sha256 of the component.
    pub digest: String,
    pub manifest_digest: String,
    /// RFC 3339.
    pub loaded_at: String,
    /// How the bundle came in. (Stored as `origin` before it had this name.)
    #[serde(alias = "origin")]
    pub via: Source,
    /// The archived bundle, relative to the archive folder.
    pub archive: String,
    /// When an operator rolled back from this version (RFC 3339); it no
    /// longer serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// The entry of the version that serves: the newest not rolled back from.
pub fn serving(history: &[VersionEntry]) -> Option<&VersionEntry> {
    history.iter().rev().find(|e| e.rolled_back.is_none())
}
