//! `[approvals]` as written (in `toolhost.toml`, or sent to the rules API
//! and stored): which calls wait for a person, and where reviewers are
//! told. What a rule decides is [`crate::policy::approvals`]'s.

use serde::{Deserialize, Serialize};

/// How long an approval waits for a decision when neither the rule nor
/// `[approvals]` says.
pub const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// `[approvals]`: the rules, the default expiry, and the reviewers' webhook.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApprovalConfig {
    /// Seconds a held call waits for a decision before it expires.
    #[serde(default = "default_expiry")]
    pub expiry_secs: u64,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Where reviewers are told of held calls (the file only: the API
    /// changes rules, not where notices go).
    #[serde(default, skip_serializing)]
    pub webhook: Option<WebhookConfig>,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            expiry_secs: DEFAULT_EXPIRY_SECS,
            rules: Vec::new(),
            webhook: None,
        }
    }
}

fn default_expiry() -> u64 {
    DEFAULT_EXPIRY_SECS
}

/// The reviewers' webhook: a POST of each held call, signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookConfig {
    pub url: String,
    /// The environment variable holding the signing secret (never the
    /// secret itself in the file).
    pub secret_env: String,
    /// Deliveries tried before one is given up (logged).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_attempts() -> u32 {
    6
}

fn default_backoff() -> u64 {
    1000
}

/// One rule as the operator writes it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleConfig {
    /// Shown to reviewers and in the audit trail as the reason a call waits.
    pub name: String,
    /// `plugin.function`, `plugin.*`, a workflow's name, or `*`.
    pub tools: Vec<String>,
    /// `always` or `never`; absent: when `when` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// A CEL condition over `args`, `tool`, `risk`, `token`, `session` and
    /// `session_calls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The share of calls this rule would let pass that are held anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    /// Distinct reviewers who must approve (1, or 2 for the two-person rule).
    #[serde(default = "one")]
    pub approvers: u8,
    /// Seconds before an undecided approval expires; absent: `[approvals]`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
}

fn one() -> u8 {
    1
}

#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Hold {
    Always,
    Never,
}
