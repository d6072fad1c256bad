//! Workflows: multi-step tool plans an operator loads like a connector and
//! agents call as one tool. The document ([`definition`]) is a subset of
//! the CNCF Serverless Workflow DSL 1.0 with jq expressions ([`expr`]); the
//! [`engine`] runs it against a journal so a run survives a crash.
//!
//! A workflow calls only the tools its operator grant names (`tools` in
//! its `[plugins.NAME]` table), whatever the calling agent's token allows:
//! an agent allowed `late-parcel` need not be allowed `coupon.issue-voucher`.

pub mod budget;
pub mod definition;
pub mod engine;
pub mod expr;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::call::CallError;
use crate::policy::Policy;
use definition::Definition;

/// The file a workflow bundle keeps its document in.
pub const DOCUMENT_FILE: &str = "workflow.yaml";

/// A workflow as it serves: its definition, the document's digest, and the
/// tools its grant lets it call.
pub struct Workflow {
    pub definition: Arc<Definition>,
    /// sha256 of the document, hex.
    pub digest: String,
    /// The trusted key that signed it, if any.
    pub signer: Option<String>,
    /// The operator's grant: tools it may call.
    pub granted: BTreeSet<String>,
    /// The input schema, compiled.
    input: Arc<jsonschema::Validator>,
}

impl Workflow {
    /// A workflow from its parsed document (whose sha256 is `digest`,
    /// signed by `signer` if anyone), under `policy`'s grant; an input
    /// schema that does not compile is refused with why.
    pub fn new(
        definition: Arc<Definition>,
        digest: String,
        signer: Option<String>,
        policy: &Policy,
    ) -> Result<Workflow, String> {
        let input = jsonschema::validator_for(&definition.input_schema)
            .map_err(|e| format!("input.schema is not a valid JSON Schema: {e}"))?;
        let workflow = Workflow {
            definition,
            digest,
            signer,
            granted: BTreeSet::new(),
            input: Arc::new(input),
        };
        Ok(workflow.regrant(policy))
    }

    /// The same workflow under `policy`'s grant.
    pub fn regrant(&self, policy: &Policy) -> Workflow {
        let granted = policy
            .plugins
            .get(self.name())
            .map(|p| p.tools.iter().cloned().collect())
            .unwrap_or_default();
        let workflow = Workflow {
            definition: self.definition.clone(),
            digest: self.digest.clone(),
            signer: self.signer.clone(),
            granted,
            input: self.input.clone(),
        };
        let ungranted = workflow.ungranted();
        if !ungranted.is_empty() {
            tracing::warn!(workflow = %workflow.name(), ?ungranted, "steps call tools its grant does not name; they will be refused");
        }
        workflow
    }

    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// Whether the grant lets a step call `tool` (names exactly, or
    /// `plugin.*`).
    pub fn may_call(&self, tool: &str) -> bool {
        self.granted
            .iter()
            .any(|g| crate::call::names::pattern_matches(g, tool))
    }

    /// Whether `input` fits the input schema; the first misfit, with where.
    pub fn check_input(&self, input: &serde_json::Value) -> Result<(), CallError> {
        match self.input.iter_errors(input).next() {
            None => Ok(()),
            Some(e) => Err(CallError::InvalidInput {
                field: match e.instance_path().as_str() {
                    "" => "(input)".to_string(),
                    path => path.to_string(),
                },
                message: e.to_string(),
            }),
        }
    }

    /// Tools its steps call that its grant does not name.
    pub fn ungranted(&self) -> Vec<&str> {
        self.definition
            .tools
            .iter()
            .filter(|t| !self.may_call(t))
            .map(String::as_str)
            .collect()
    }
}
