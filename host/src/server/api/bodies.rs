//! The REST API's success bodies, typed: a handler answers one of these as
//! it is serialized, so the OpenAPI document says what is sent. Where a
//! body carries a view the application builds for every adapter (an
//! approval, a run), the view's `…Doc` twin here describes it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::auth::TokenView;
use crate::config::grants::PluginPolicy;
use crate::model::approval::{ApprovalState, Verdict};
use crate::model::audit::AuditRecord;
use crate::model::run::{RunState, StepState};
use crate::model::version::VersionEntry;
use crate::plugins::kind::Kind;
use crate::policy::grants::GrantSource;
use crate::server::readiness::Phase;

/// `GET /readyz`: whether to send calls here, and why not.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub state: Phase,
    /// Plugins serving (once started).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub plugins: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub storage: Option<StorageReadiness>,
}

/// Where the host keeps what it stores, and whether that answers.
#[derive(Serialize, ToSchema)]
pub struct StorageReadiness {
    /// `sled` (this node's files) or `postgres` (shared by several nodes).
    #[schema(pattern = "^(sled|postgres)$")]
    pub backend: &'static str,
    /// This node's name.
    pub node: String,
    pub database: DatabaseReadiness,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseReadiness {
    pub ok: bool,
    /// The shared database's connection pool (none for sled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pool: Option<Value>,
    /// Why it does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// A plugin as operators see it: a connector or a workflow, its version,
/// digests, signer, state, tools and the grant in effect.
#[derive(Serialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub kind: Kind,
    pub version: String,
    /// The vendor (a workflow's namespace).
    pub vendor: String,
    /// A connector's contract world.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub world: Option<String>,
    pub digest: String,
    pub manifest_digest: String,
    /// The trusted key that signed the bundle, when it was signed.
    pub signed_by: Option<String>,
    /// A connector's component: `compiled` now, or read from the `cache`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false, pattern = "^(compiled|cache)$")]
    pub compiled: Option<Value>,
    /// `enabled` or `disabled`.
    #[schema(pattern = "^(enabled|disabled)$")]
    pub state: &'static str,
    pub tools: Vec<String>,
    /// A workflow's: the tools its steps call.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub calls: Option<Vec<String>>,
    pub effective_grant: EffectiveGrant,
    /// A workflow's: the tools it calls that its grant does not allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ungranted: Option<Vec<String>>,
}

/// What a plugin may do now: a connector's reach and limits, or the tools
/// a workflow's steps may call.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EffectiveGrant {
    Connector(ConnectorGrant),
    Workflow(WorkflowGrant),
}

#[derive(Serialize, ToSchema)]
pub struct ConnectorGrant {
    pub http: Vec<HttpReach>,
    /// The secrets it is given (never their values).
    pub secrets: Vec<String>,
    /// The configuration keys it is given.
    pub config: Vec<String>,
    pub kv_quota_bytes: u64,
    pub memory_bytes: usize,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
}

/// One origin a connector may call.
#[derive(Serialize, ToSchema)]
pub struct HttpReach {
    pub origin: String,
    /// Methods allowed; all when absent.
    pub methods: Option<Vec<String>>,
    /// `false`, `true`, or the networks a granted name may resolve into.
    #[schema(value_type = Value)]
    pub allow_private: Value,
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowGrant {
    pub tools: Vec<String>,
}

/// `DELETE /v1/plugins/{name}`.
#[derive(Serialize, ToSchema)]
pub struct Unloaded {
    pub plugin: String,
    pub unloaded: bool,
    /// Whether the calls in flight finished before it was unloaded.
    pub drained: bool,
}

/// `GET /v1/plugins/{name}/versions`: what it has served, oldest first.
#[derive(Serialize, ToSchema)]
pub struct Versions {
    pub plugin: String,
    pub versions: Vec<VersionEntry>,
}

/// A plugin's grant as it stands: both sides and which is in force.
#[derive(Serialize, ToSchema)]
pub struct GrantView {
    pub plugin: String,
    pub source: GrantSource,
    /// The grant in force (secrets shown as set or not, never by value).
    pub operator: PluginPolicy,
    /// toolhost.toml's.
    pub file: Option<PluginPolicy>,
    /// The one set through the API.
    pub api: Option<PluginPolicy>,
    /// Whether the file's and the API's differ.
    pub differs: bool,
    /// What the operator should know (requested secrets left unset, ...).
    pub warnings: Vec<String>,
    /// The plugin as `GET /v1/plugins` shows it; absent when none serves.
    pub plugin_state: Option<PluginView>,
}

/// `GET /v1/tokens`, `POST /v1/tokens/reload`: the tokens in force.
#[derive(Serialize, ToSchema)]
pub struct Tokens {
    pub tokens: Vec<TokenView>,
}

/// A page of the audit trail, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// The `before` of the next page; none on the last.
    pub next: Option<String>,
}

/// A page of approvals.
#[derive(Serialize, ToSchema)]
pub struct ApprovalPage {
    #[schema(value_type = Vec<ApprovalDoc>)]
    pub approvals: Vec<Value>,
    /// The cursor of the next page (`after` for pending, `before` for all).
    pub next: Option<String>,
}

/// One approval, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct ApprovalAnswer {
    #[schema(value_type = ApprovalDoc)]
    pub approval: Value,
}

/// A page of workflow runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct RunPage {
    #[schema(value_type = Vec<RunDoc>)]
    pub runs: Vec<Value>,
    pub next: Option<String>,
}

/// One run, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct RunAnswer {
    #[schema(value_type = RunDoc)]
    pub run: Value,
}

/// A held call as reviewers and its caller see it (arguments with secret
/// fields redacted).
#[derive(Serialize, ToSchema)]
#[schema(as = Approval)]
#[allow(dead_code)]
struct ApprovalDoc {
    id: String,
    state: ApprovalState,
    tool: String,
    plugin_version: String,
    plugin_digest: String,
    #[schema(value_type = Value)]
    arguments: Value,
    arguments_digest: String,
    /// The caller's token name.
    token: String,
    session: Option<String>,
    /// The rule that held it.
    rule: String,
    /// Why it was held.
    #[schema(value_type = Value)]
    reason: Value,
    detail: Option<String>,
    /// Distinct approvals needed.
    approvers: u8,
    decisions: Vec<DecisionDoc>,
    /// RFC 3339.
    created: String,
    /// RFC 3339.
    expires: String,
    held_audit_id: String,
    call_audit_id: Option<String>,
    /// The workflow run whose step was held.
    run: Option<String>,
    step: Option<String>,
    /// Where to wait for the result.
    wait: String,
}

/// One reviewer's decision.
#[derive(Serialize, ToSchema)]
#[schema(as = Decision)]
#[allow(dead_code)]
struct DecisionDoc {
    by: String,
    verdict: Verdict,
    reason: String,
    /// RFC 3339.
    at: String,
}

/// A workflow run with its steps.
#[derive(ToSchema)]
#[schema(as = Run)]
#[allow(dead_code)]
struct RunDoc {
    id: String,
    workflow: String,
    version: String,
    digest: String,
    state: RunState,
    #[schema(value_type = Value)]
    input: Value,
    #[schema(value_type = Value)]
    output: Option<Value>,
    /// An RFC 7807 problem, when it failed.
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    token: String,
    session: Option<String>,
    /// The approval a step waits for.
    waiting_on: Option<String>,
    /// RFC 3339.
    created: String,
    updated: String,
    finished: Option<String>,
    cancelled_by: Option<String>,
    audit_id: Option<String>,
    steps: Vec<StepDoc>,
    /// Where to wait for its end.
    wait: String,
    /// Its audit records.
    audit: String,
}

/// One journaled step of a run.
#[derive(ToSchema)]
#[schema(as = Step)]
#[allow(dead_code)]
struct StepDoc {
    seq: u32,
    task: String,
    reference: String,
    key: String,
    /// `call`, `wait`, ...
    kind: String,
    state: StepState,
    tool: Option<String>,
    idempotency_key: Option<String>,
    #[schema(value_type = Value)]
    arguments: Option<Value>,
    #[schema(value_type = Value)]
    output: Option<Value>,
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    approval: Option<String>,
    audit_ids: Vec<String>,
    until: Option<String>,
    started: String,
    finished: Option<String>,
}

/// A call that ran: the tool's result.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Ran {
    /// What the tool returned (its `output_schema` says its shape).
    #[schema(value_type = Value)]
    result: Value,
    audit_id: String,
    plugin_version: Option<String>,
    /// A workflow's run.
    #[schema(nullable = false)]
    run: Option<String>,
}

/// A call held for a person's approval: where to wait for its result.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Held {
    approval: ApprovalDoc,
    /// `GET` it for the result.
    wait: String,
    message: String,
}

/// A workflow run still going: where to wait for its end.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RunGoing {
    /// The run's id.
    run: String,
    audit_id: Option<String>,
    plugin_version: String,
    state: RunState,
    waiting_on: Option<String>,
    wait: String,
    message: String,
}

/// `202` to a call: held for approval, or a workflow run under way.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Accepted {
    Held(Box<Held>),
    RunGoing(RunGoing),
}

/// `GET /v1/approvals/{id}` once the approved call ran: the call's own
/// answer, with the approval and who decided beside it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApprovedAndRan {
    #[schema(value_type = Value)]
    result: Value,
    audit_id: String,
    plugin_version: Option<String>,
    /// The approval's id.
    approval: String,
    decisions: Vec<DecisionDoc>,
}

/// `GET /v1/runs/{id}` once the run completed: its output, and the run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunFinished {
    /// The run's output.
    #[schema(value_type = Value)]
    result: Value,
    run: RunDoc,
    audit_id: Option<String>,
    plugin_version: String,
}

/// `GET /v1/runs/{id}` while the run goes on: the run so far, and where to
/// wait for its end.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunUnderWay {
    run: RunDoc,
    audit_id: Option<String>,
    plugin_version: String,
    state: RunState,
    waiting_on: Option<String>,
    wait: String,
    message: String,
}
