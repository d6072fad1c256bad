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
use crate::model::problem::{kinds, Problem};
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
    /// The output schema, compiled, if the document gives one.
    output: Option<Arc<jsonschema::Validator>>,
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
        let output = definition
            .output_schema
            .as_ref()
            .map(|schema| {
                jsonschema::validator_for(schema).map_err(|e| format!("output.schema is not a valid JSON Schema: {e}"))
            })
            .transpose()?;
        let workflow = Workflow {
            definition,
            digest,
            signer,
            granted: BTreeSet::new(),
            input: Arc::new(input),
            output: output.map(Arc::new),
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
            output: self.output.clone(),
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

    /// Whether a run's `output` fits the output schema: a run whose output
    /// does not is the workflow's fault, not its caller's, so it fails with
    /// a validation problem of status 500 and the first misfit.
    pub fn check_output(&self, output: &serde_json::Value) -> Result<(), Problem> {
        let Some(misfit) = self.output.as_ref().and_then(|v| v.iter_errors(output).next()) else {
            return Ok(());
        };
        let at = match misfit.instance_path().as_str() {
            "" => "(output)".to_string(),
            path => path.to_string(),
        };
        Err(Problem::new(
            kinds::VALIDATION,
            500,
            "the output does not fit the workflow's output.schema",
        )
        .detail(crate::model::text::truncated(format!("{at}: {misfit}"), 1024)))
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
