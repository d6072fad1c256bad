//! What the OpenAPI document says of types that are not the HTTP adapter's
//! own: records, configuration and the policy's closed sets live below
//! (model/, config/, policy/, runtime, audit/), which name no HTTP crate.
//! Their REST description is this adapter's business, so it is kept here:
//! a closed set's names come from its strum names (held equal to serde's by
//! the tests below); a struct is described by a `…Doc` twin that states
//! what the REST contract adds (bounds, patterns, `additionalProperties`),
//! and the tests below hold each twin's fields to the fields serde reads or
//! writes, so that the two cannot drift apart.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::app::auth::TokenView;
use crate::audit::AuditFilter;
use crate::config::approvals::{ApprovalConfig, Hold, RuleConfig};
use crate::config::grants::PluginPolicy;
use crate::config::Role;
use crate::model::approval::{ApprovalState, Verdict};
use crate::model::audit::Source;
use crate::model::audit::{Action, AuditRecord, Outcome, Via};
use crate::model::run::{RunState, StepState};
use crate::model::version::VersionEntry;
use crate::plugins::kind::Kind;
use crate::plugins::manifest::Risk;
use crate::policy::approvals::ApprovalSummary;
use crate::policy::grants::GrantSource;
use crate::runtime::ToolInfo;

/// The schema of a closed set of names: `T`'s strum names, as serde writes
/// them.
fn string_enum<T: strum::VariantArray + Copy + Into<&'static str>>(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(T::VARIANTS.iter().map(|v| Into::<&'static str>::into(*v))))
        .into()
}

macro_rules! string_enums {
    ($($ty:ty => $description:literal,)*) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string_enum::<$ty>($description)
            }
        }
        impl ToSchema for $ty {}
    )*};
}

string_enums! {
    Action => "A change to what the host serves or allows, as the audit trail names it.",
    Outcome => "How a call or a plugin event ended, as the audit trail and the API name it.",
    Via => "How something reached the host: a call (REST, MCP, the CLI), or a bundle (the plugins folder, an \
            upload, a rollback, another node).",
    Risk => "How risky a tool is; operators and agents use it to hold high-risk calls for a human.",
    ApprovalSummary => "How a tool's calls may wait for a person's approval: `never`, `always`, `conditional` (on \
                        their arguments or context) or `sampled` (a share drawn at random).",
    Hold => "`always` or `never`: a rule that decides alone.",
    ApprovalState => "Where an approval stands: `pending` until decided, `approved` then `executing` then `done`; \
                      or `rejected`, `expired` (nobody decided in time), `lapsed` (what was approved changed).",
    Verdict => "A reviewer's decision.",
    RunState => "Where a workflow run stands.",
    StepState => "Where a run's step stands.",
    Source => "How a bundle came in.",
    Kind => "A plugin's kind: a `connector` (a component) or a `workflow` (a document).",
    Role => "What a token may do: `agent`, `admin`, `approver` or `observer`.",
    GrantSource => "Which side's grant is in force: `file` (toolhost.toml's, or none) or `api` (set through the \
                    API or the console, stored by the host).",
}

/// A type of a floor below described by its `…Doc` twin here: the twin's
/// schema under the type's own name.
macro_rules! described_by {
    ($($ty:ty => $doc:ty,)*) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                <$doc as PartialSchema>::schema()
            }
        }
        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                <$doc as ToSchema>::name()
            }
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                <$doc as ToSchema>::schemas(schemas)
            }
        }
    )*};
}

described_by! {
    ToolInfo => ToolInfoDoc,
    ApprovalConfig => ApprovalConfigDoc,
    RuleConfig => RuleConfigDoc,
    PluginPolicy => GrantDoc,
    VersionEntry => VersionEntryDoc,
    AuditRecord => AuditRecordDoc,
    TokenView => TokenViewDoc,
}

impl IntoParams for AuditFilter {
    fn into_params(
        parameter_in: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        AuditFilterDoc::into_params(parameter_in)
    }
}

/// A tool as agents see it: the shape LLM function calling expects, plus
/// what operators and MCP need.
#[derive(ToSchema)]
#[schema(as = ToolInfo)]
#[allow(dead_code)]
struct ToolInfoDoc {
    /// `plugin.function`, also the MCP tool name.
    name: String,
    /// The same name in the form LLM function calling accepts (no dots).
    function_name: String,
    description: String,
    /// The arguments' JSON Schema.
    #[schema(value_type = Object)]
    parameters: serde_json::Value,
    /// The result's JSON Schema, where the tool declares one.
    #[schema(value_type = Option<Object>, nullable = false)]
    output_schema: Option<serde_json::Value>,
    risk: Risk,
    /// A connector's function, or a workflow (whose call starts a run).
    kind: Kind,
    plugin: String,
    plugin_version: String,
    /// Whether calls may wait for a person's approval.
    #[schema(nullable = false)]
    approval: Option<ApprovalSummary>,
}

/// `[approvals]`: the rules, and how long a held call waits. The API sets
/// the rules and the expiry; where reviewers are told (the webhook) is the
/// file's alone.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = ApprovalConfig)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct ApprovalConfigDoc {
    /// Seconds a held call waits for a decision before it expires (default 3600).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2_592_000, default = 3600)]
    expiry_secs: u64,
    /// The rules, first match first (at most 256).
    #[serde(default)]
    #[schema(max_items = 256)]
    rules: Vec<RuleConfig>,
}

/// One rule as the operator writes it: `hold`, or `when` and/or `sample`.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = RuleConfig)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct RuleConfigDoc {
    /// Shown to reviewers and in the audit trail as the reason a call
    /// waits; unique among the rules.
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    name: String,
    /// `plugin.function`, `plugin.*`, a workflow's name, or `*`.
    #[schema(min_items = 1)]
    tools: Vec<String>,
    /// Decides alone: no `when` or `sample` beside it.
    hold: Option<Hold>,
    /// A CEL condition over `args`, `tool`, `risk`, `token`, `session` and
    /// `session_calls`.
    when: Option<String>,
    /// The share of calls this rule would let pass that are held anyway.
    #[schema(minimum = 0.0, maximum = 1.0)]
    sample: Option<f64>,
    /// Distinct reviewers who must approve (1, or 2 for the two-person rule).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2, default = 1)]
    approvers: u8,
    /// Seconds before an undecided approval expires; absent: `[approvals]`'s.
    #[schema(minimum = 1, maximum = 2_592_000)]
    expiry_secs: Option<u64>,
}

/// A plugin's grant, as a `[plugins.<name>]` table of toolhost.toml in
/// JSON. Absent fields grant nothing for capabilities (HTTP, secrets,
/// config) and the host default for limits.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = Grant)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct GrantDoc {
    /// Pin the component: only this SHA-256 (hex) may load under this name.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    digest: Option<String>,
    /// The origins it may call, and how.
    #[serde(default)]
    http: Vec<HttpGrantDoc>,
    /// Each secret's source: `{"env": NAME}` or `{"value": ...}`; shown as
    /// `{"set": bool, "source": "env"|"value"}`, which may be sent back
    /// unchanged.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, Object>)]
    secrets: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    config: std::collections::BTreeMap<String, String>,
    /// Bytes it may keep in its key-value store (up to 64 GiB).
    #[schema(minimum = 0, maximum = 68_719_476_736_u64)]
    kv_quota_bytes: Option<u64>,
    #[schema(minimum = 1, maximum = 4096)]
    memory_mb: Option<u32>,
    #[schema(minimum = 1, maximum = 600_000)]
    timeout_ms: Option<u64>,
    /// Its calls at once.
    #[schema(minimum = 1, maximum = 1024)]
    max_concurrency: Option<u32>,
    /// Let one instance serve up to this many calls of the same token and
    /// session, for connectors whose manifest declares them `stateless`.
    #[schema(minimum = 1, maximum = 10_000)]
    reuse_instances: Option<u32>,
    /// For a workflow: the tools its steps may call (`plugin.function`, or
    /// `plugin.*`), whatever the calling agent's token allows.
    #[serde(default)]
    tools: Vec<String>,
}

/// One origin a plugin may call.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = HttpGrant)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct HttpGrantDoc {
    /// `https://host[:port]`, `*.host`, ...
    origin: String,
    /// HTTP methods allowed (all when empty).
    #[serde(default)]
    methods: Vec<String>,
    /// `true` for any loopback, private or link-local address a granted
    /// name resolves to, or a list of the networks it may resolve into.
    #[serde(default)]
    #[schema(value_type = Value)]
    allow_private: serde_json::Value,
}

/// One entry of a plugin's version history.
#[derive(ToSchema)]
#[schema(as = VersionEntry)]
#[allow(dead_code)]
struct VersionEntryDoc {
    version: String,
    /// SHA-256 of the component.
    digest: String,
    manifest_digest: String,
    /// RFC 3339.
    loaded_at: String,
    via: Source,
    /// The archived bundle, relative to the archive folder.
    archive: String,
    /// When an operator rolled back from this version (RFC 3339).
    #[schema(nullable = false)]
    rolled_back: Option<String>,
}

/// One audit record: a call, a plugin event or an operator's action.
#[derive(ToSchema)]
#[schema(as = AuditRecord)]
#[allow(dead_code)]
struct AuditRecordDoc {
    /// Time-ordered; also the paging cursor.
    id: String,
    /// RFC 3339, microseconds.
    time: String,
    via: Via,
    token: Option<String>,
    session: Option<String>,
    idempotency_key: Option<String>,
    tool: String,
    plugin_version: Option<String>,
    plugin_digest: Option<String>,
    /// As the agent sent them, secret fields redacted.
    #[schema(value_type = Value)]
    arguments: serde_json::Value,
    arguments_digest: Option<String>,
    outcome: Outcome,
    /// Whether the call may have changed something.
    effects: bool,
    #[schema(value_type = Value)]
    error: Option<serde_json::Value>,
    duration_us: u64,
    instantiate_us: u64,
    execute_us: u64,
    /// The requests the call made.
    #[schema(value_type = Vec<Object>)]
    outbound: Vec<serde_json::Value>,
    /// What the call was refused.
    #[schema(value_type = Vec<Object>)]
    denials: Vec<serde_json::Value>,
    denials_total: u32,
    /// A secret's value found in what the connector sent out.
    #[schema(value_type = Vec<Object>)]
    secret_echoes: Vec<serde_json::Value>,
    #[schema(nullable = false)]
    approval: Option<String>,
    #[schema(nullable = false)]
    reason: Option<String>,
    #[schema(nullable = false)]
    run: Option<String>,
    #[schema(nullable = false)]
    step: Option<String>,
    #[schema(nullable = false)]
    action: Option<Action>,
    /// An operator's action: what it changed, before and after.
    #[schema(value_type = Value, required = false)]
    before: Option<serde_json::Value>,
    #[schema(value_type = Value, required = false)]
    after: Option<serde_json::Value>,
}

/// A token as operators see it: never the token, only the first 8 hex
/// digits of each SHA-256 that passes.
#[derive(ToSchema)]
#[schema(as = TokenView)]
#[allow(dead_code)]
struct TokenViewDoc {
    name: String,
    role: Role,
    /// Where it is configured: `file`, `env` or `generated`.
    source: String,
    fingerprints: Vec<String>,
    /// The tools it may use (all when absent).
    #[schema(nullable = false)]
    tools: Option<Vec<String>>,
    rate_per_minute: u32,
}

/// Which records a query wants, newest first. A parameter not named here
/// is refused, not ignored: a misspelt filter must not export the whole
/// trail.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AuditFilterDoc {
    /// Records of one tool (`plugin.function`), or of one plugin's events
    /// (`(plugin) name`).
    tool: Option<String>,
    /// How the call or bundle came in.
    via: Option<Via>,
    /// How the call or event ended.
    outcome: Option<Outcome>,
    /// Records of one session (`X-Session-Id`, or the MCP session).
    session: Option<String>,
    /// Records of one token's calls and actions (by its name).
    token: Option<String>,
    /// Records of one approval: its hold, decisions and the call it let run.
    approval: Option<String>,
    /// Records of one workflow run: each step's call, and the run's own.
    run: Option<String>,
    /// Records of one kind of operator action.
    action: Option<Action>,
    /// Unix seconds, or RFC 3339 in UTC from 1970 on (`2026-01-31T12:00:00Z`;
    /// the `Z` may be left out, a space may stand for `T`); inclusive. (The
    /// pattern leaves out February 29th, which a leap year takes too.)
    #[param(
        pattern = r"^([0-9]{1,19}|(19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z?)$"
    )]
    since: Option<String>,
    /// Unix seconds, or RFC 3339 in UTC from 1970 on (`2026-01-31T12:00:00Z`;
    /// the `Z` may be left out, a space may stand for `T`); inclusive. (The
    /// pattern leaves out February 29th, which a leap year takes too.)
    #[param(
        pattern = r"^([0-9]{1,19}|(19[7-9][0-9]|[2-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z?)$"
    )]
    until: Option<String>,
    /// Only records older than this id (the `next` of the previous page).
    #[param(pattern = "^[0-9]{1,19}$")]
    before: Option<String>,
    /// Records on a page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use serde_json::Value;

    use super::*;

    /// Every name of `T` as the document lists it is the one serde writes.
    fn names_are_serdes<T: strum::VariantArray + Copy + Into<&'static str> + Serialize>() {
        for v in T::VARIANTS {
            let name: &'static str = (*v).into();
            assert_eq!(serde_json::to_value(v).unwrap(), Value::from(name));
        }
    }

    #[test]
    fn closed_sets_are_listed_by_serdes_names() {
        names_are_serdes::<Action>();
        names_are_serdes::<Outcome>();
        names_are_serdes::<Via>();
        names_are_serdes::<Risk>();
        names_are_serdes::<ApprovalSummary>();
        names_are_serdes::<Hold>();
        names_are_serdes::<ApprovalState>();
        names_are_serdes::<Verdict>();
        names_are_serdes::<RunState>();
        names_are_serdes::<StepState>();
        names_are_serdes::<Source>();
        names_are_serdes::<GrantSource>();
        names_are_serdes::<Kind>();
        names_are_serdes::<Role>();
    }

    /// The fields `T` reads, from serde's own refusal of an unknown one.
    fn fields_read<T: DeserializeOwned>() -> BTreeSet<String> {
        let refused = serde_json::from_value::<T>(serde_json::json!({ "\u{1}": 0 }))
            .err()
            .expect("an unknown field is refused")
            .to_string();
        refused.split('`').skip(3).step_by(2).map(str::to_string).collect()
    }

    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("not an object schema"),
        }
    }

    #[test]
    fn described_bodies_have_the_fields_serde_reads() {
        assert_eq!(
            properties::<ApprovalConfig>(),
            &fields_read::<ApprovalConfig>() - &BTreeSet::from(["webhook".to_string()])
        );
        assert_eq!(properties::<RuleConfig>(), fields_read::<RuleConfig>());
        assert_eq!(properties::<PluginPolicy>(), fields_read::<PluginPolicy>());
        let params: BTreeSet<String> = AuditFilter::into_params(|| None).into_iter().map(|p| p.name).collect();
        assert_eq!(params, fields_read::<AuditFilter>());
    }

    #[test]
    fn described_records_have_the_fields_serde_writes() {
        let written = |value: Value| -> BTreeSet<String> { value.as_object().unwrap().keys().cloned().collect() };
        let tool = ToolInfo {
            name: "p.f".into(),
            function_name: "p_f".into(),
            description: String::new(),
            parameters: Value::Null,
            output_schema: Some(Value::Null),
            risk: Risk::Read,
            kind: Kind::Connector,
            plugin: "p".into(),
            plugin_version: "1.0.0".into(),
            approval: Some(ApprovalSummary::Never),
        };
        assert_eq!(properties::<ToolInfo>(), written(serde_json::to_value(tool).unwrap()));
        let version = VersionEntry {
            version: "1.0.0".into(),
            digest: String::new(),
            manifest_digest: String::new(),
            loaded_at: String::new(),
            via: Source::Api,
            archive: String::new(),
            rolled_back: Some(String::new()),
        };
        assert_eq!(
            properties::<VersionEntry>(),
            written(serde_json::to_value(version).unwrap())
        );
        let mut record = AuditRecord::new(1, Via::Http, "p.f".into());
        record.approval = Some(String::new());
        record.reason = Some(String::new());
        record.run = Some(String::new());
        record.step = Some(String::new());
        record.action = Some(Action::Upload);
        record.before = Some(Value::Null);
        record.after = Some(Value::Null);
        assert_eq!(
            properties::<AuditRecord>(),
            written(serde_json::to_value(record).unwrap())
        );
    }
}
