//! Which calls wait for a person: the operator's approval rules
//! (`[approvals]` in `toolhost.toml`, or `PUT /v1/approvals/rules`).
//!
//! Rules are tried in order; the first whose `tools` match the call
//! decides. A rule holds a call `always`, `never`, or when its `when`
//! condition (CEL) is true; a call it would let pass is still held with
//! probability `sample`. A tool whose manifest says `risk = "high"` and that
//! no rule names is held: the vendor's warning stands unless the operator
//! decides otherwise. A condition that cannot be evaluated for a call holds
//! it (an approval is the safe side of a mistake in a rule).
//!
//! Why CEL: it is the condition language of Kubernetes admission policies,
//! Envoy and Google IAM, so operators may already know it; it cannot loop,
//! allocate without bound or reach outside the values it is given, so a
//! condition is safe to evaluate on every call; and the `cel` crate
//! evaluates it in-process in microseconds.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::approvals::{ApprovalConfig, Hold, RuleConfig};
use crate::model::approval::HoldReason;
use crate::model::digest::arguments_digest;
use crate::plugins::manifest::Risk;
use crate::policy::condition::{self, ConditionError};

/// The longest an approval may wait.
pub const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
/// The name under which calls of a high-risk tool that no rule names are held.
pub const HIGH_RISK_RULE: &str = "(risk = high)";
/// Rules one policy may have.
pub const MAX_RULES: usize = 256;
/// Most of a failed evaluation's message kept for the reviewer (a value
/// the condition gave may be as long as the arguments).
const DETAIL_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("approval rule {rule:?}: {message}")]
    Invalid { rule: String, message: String },
}

/// The verdict on one call that must wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub rule: String,
    pub reason: HoldReason,
    /// The error of a condition that failed, for the reviewer.
    pub detail: Option<String>,
    pub approvers: u8,
    pub expiry_secs: u64,
}

/// What the policy looks at for one call.
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub risk: Risk,
    pub args: &'a Value,
    pub token: &'a str,
    pub session: Option<&'a str>,
    /// Calls this session made before this one.
    pub session_calls: u64,
}

/// How a tool's calls may wait, as the tools list shows it.
#[derive(strum::IntoStaticStr, strum::VariantArray, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ApprovalSummary {
    Never,
    Always,
    /// Some calls, depending on their arguments or context.
    Conditional,
    /// A share of calls, drawn at random.
    Sampled,
}

struct Rule {
    config: RuleConfig,
    /// The compiled `when`, or why it is not used.
    condition: Option<Result<cel::Program, ConditionError>>,
}

/// The rules, checked and compiled.
pub struct ApprovalPolicy {
    config: ApprovalConfig,
    rules: Vec<Rule>,
    env: Arc<cel::Env>,
}

impl std::fmt::Debug for ApprovalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalPolicy").field("config", &self.config).finish()
    }
}

impl ApprovalPolicy {
    /// The rules in force: those just checked with [`ApprovalPolicy::accept`],
    /// or those found in the store at start or set by another node. A
    /// stored condition this version refuses (over a bound an older
    /// version did not have, say) does not stop the host: it is logged,
    /// not evaluated, and the calls it would judge are held, as for a
    /// condition that cannot be evaluated.
    pub fn new(config: ApprovalConfig) -> Result<ApprovalPolicy, RuleError> {
        let policy = ApprovalPolicy::build(config)?;
        for (rule, e) in policy.refused() {
            tracing::error!(
                rule = %rule,
                "approval rule {rule:?} is not used: {e}; the calls it would judge are held for review until the rules are replaced"
            );
        }
        Ok(policy)
    }

    /// Rules given now (the file, `PUT /v1/approvals/rules`, `toolhost
    /// check`): every rule checked and its condition compiled, a condition
    /// over its size or depth bound refused with the bound named.
    pub fn accept(config: ApprovalConfig) -> Result<ApprovalPolicy, RuleError> {
        let policy = ApprovalPolicy::build(config)?;
        if let Some((rule, e)) = policy.refused().next() {
            return Err(RuleError::Invalid {
                rule: rule.to_string(),
                message: e.to_string(),
            });
        }
        Ok(policy)
    }

    /// The rules whose condition is not used, and why.
    fn refused(&self) -> impl Iterator<Item = (&str, &ConditionError)> + '_ {
        self.rules.iter().filter_map(|r| match &r.condition {
            Some(Err(e)) => Some((r.config.name.as_str(), e)),
            _ => None,
        })
    }

    fn build(config: ApprovalConfig) -> Result<ApprovalPolicy, RuleError> {
        let env = Arc::new(cel::Env::stdlib());
        check_general(&config)?;
        for (i, rule) in config.rules.iter().enumerate() {
            check_rule(i, rule, &config.rules[..i])?;
        }
        let sources: Vec<&str> = config.rules.iter().filter_map(|r| r.when.as_deref()).collect();
        let mut compiled = condition::compile_all(&env, &sources).into_iter();
        let rules = config
            .rules
            .iter()
            .map(|rule| Rule {
                config: rule.clone(),
                condition: rule.when.as_ref().and_then(|_| compiled.next()),
            })
            .collect();
        Ok(ApprovalPolicy { config, rules, env })
    }

    pub fn config(&self) -> &ApprovalConfig {
        &self.config
    }

    fn rules_for<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.config.tools.iter().any(|p| pattern_matches(p, tool)))
    }

    /// Whether this call must wait for a person, and under which rule.
    /// Conditions are evaluated on a thread with a known, large stack
    /// ([`condition::EVALUATION_STACK_BYTES`]), never on the caller's.
    pub fn check(&self, call: &CallFacts<'_>) -> Option<Held> {
        let conditional = self.rules_for(call.tool).find(|r| matches!(r.condition, Some(Ok(_))));
        let Some(first) = conditional else {
            return self.judge(call);
        };
        let judged =
            crate::stack::on_own_stack("cel-evaluation", condition::EVALUATION_STACK_BYTES, || self.judge(call));
        judged.unwrap_or_else(|| {
            Some(Held {
                rule: first.config.name.clone(),
                reason: HoldReason::ConditionFailed,
                detail: Some("no thread to evaluate the condition on".into()),
                approvers: first.config.approvers,
                expiry_secs: first.config.expiry_secs.unwrap_or(self.config.expiry_secs),
            })
        })
    }

    /// [`ApprovalPolicy::check`], on the thread it is called on.
    fn judge(&self, call: &CallFacts<'_>) -> Option<Held> {
        let mut named = false;
        let mut context = None;
        for rule in self.rules_for(call.tool) {
            named = true;
            let held = |reason, detail| {
                Some(Held {
                    rule: rule.config.name.clone(),
                    reason,
                    detail,
                    approvers: rule.config.approvers,
                    expiry_secs: rule.config.expiry_secs.unwrap_or(self.config.expiry_secs),
                })
            };
            match rule.config.hold {
                Some(Hold::Always) => return held(HoldReason::Always, None),
                Some(Hold::Never) => return None,
                None => {}
            }
            if let Some(condition) = &rule.condition {
                let verdict = match (condition, context.get_or_insert_with(|| self.context(call))) {
                    (Ok(condition), Ok(context)) => Self::evaluate(condition, context),
                    (Err(refused), _) => Err(refused.to_string()),
                    (_, Err(e)) => Err(e.clone()),
                };
                match verdict {
                    Ok(true) => return held(HoldReason::Condition, None),
                    Ok(false) => {}
                    Err(e) => return held(HoldReason::ConditionFailed, Some(e)),
                }
            }
            if let Some(rate) = rule.config.sample {
                if draw(&rule.config.name, call) < rate {
                    return held(HoldReason::Sampled, None);
                }
            }
        }
        (!named && call.risk == Risk::High).then(|| Held {
            rule: HIGH_RISK_RULE.into(),
            reason: HoldReason::HighRisk,
            detail: None,
            approvers: 1,
            expiry_secs: self.config.expiry_secs,
        })
    }

    /// The values a condition sees, made once per call (converting the
    /// arguments is most of a condition's cost).
    fn context(&self, call: &CallFacts<'_>) -> Result<cel::Context<'static, 'static>, String> {
        let mut context = cel::Context::with_env(self.env.clone());
        let risk = match call.risk {
            Risk::Read => "read",
            Risk::Write => "write",
            Risk::High => "high",
        };
        context.add_variable("args", call.args).map_err(|e| e.to_string())?;
        context.add_variable_from_value("tool", call.tool.to_string());
        context.add_variable_from_value("risk", risk.to_string());
        context.add_variable_from_value("token", call.token.to_string());
        context.add_variable_from_value("session", call.session.unwrap_or("").to_string());
        context.add_variable_from_value("session_calls", call.session_calls as i64);
        Ok(context)
    }

    /// The condition's verdict, or why there is none (cut: a value the
    /// condition gave, or a key it missed, may be as long as the arguments).
    fn evaluate(condition: &cel::Program, context: &cel::Context<'_, '_>) -> Result<bool, String> {
        let failed = |message: String| Err(crate::model::text::truncated(message, DETAIL_BYTES));
        match condition.execute(context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => failed(format!("the condition gave {other:?}, not true or false")),
            Err(e) => failed(e.to_string()),
        }
    }

    /// How `tool`'s calls may wait, for the tools list.
    pub fn summary(&self, tool: &str, risk: Risk) -> ApprovalSummary {
        // What the rules in order can do: the first `always` or `never`
        // ends it; conditions and samples before it make it depend.
        let mut may = ApprovalSummary::Never;
        let mut named = false;
        for rule in self.rules_for(tool) {
            named = true;
            match rule.config.hold {
                Some(Hold::Always) => return ApprovalSummary::Always,
                Some(Hold::Never) => return may,
                None => {}
            }
            let rate = rule.config.sample.unwrap_or(0.0);
            if rule.condition.is_none() && rate >= 1.0 {
                return ApprovalSummary::Always;
            }
            if rule.condition.is_some() {
                may = ApprovalSummary::Conditional;
            } else if rate > 0.0 && may == ApprovalSummary::Never {
                may = ApprovalSummary::Sampled;
            }
        }
        if !named && risk == Risk::High {
            return ApprovalSummary::Always;
        }
        may
    }
}

/// `[approvals]`'s own settings.
fn check_general(config: &ApprovalConfig) -> Result<(), RuleError> {
    let general = |message: String| RuleError::Invalid {
        rule: "[approvals]".into(),
        message,
    };
    if config.expiry_secs == 0 || config.expiry_secs > MAX_EXPIRY_SECS {
        return Err(general(format!("expiry-secs must be 1 to {MAX_EXPIRY_SECS}")));
    }
    if config.rules.len() > MAX_RULES {
        return Err(general(format!("at most {MAX_RULES} rules")));
    }
    if let Some(hook) = &config.webhook {
        if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
            return Err(general("webhook url must be http:// or https://".into()));
        }
        if hook.attempts == 0 {
            return Err(general("webhook attempts must be at least 1".into()));
        }
    }
    Ok(())
}

/// One rule, the `i`th, with the rules before it (its condition is
/// compiled apart).
fn check_rule(i: usize, rule: &RuleConfig, before: &[RuleConfig]) -> Result<(), RuleError> {
    let bad = |message: String| RuleError::Invalid {
        rule: rule.name.clone(),
        message,
    };
    if rule.name.trim().is_empty() || rule.name.len() > 128 {
        return Err(RuleError::Invalid {
            rule: format!("#{}", i + 1),
            message: "every rule needs a name of 1 to 128 characters".into(),
        });
    }
    if before.iter().any(|r| r.name == rule.name) {
        return Err(bad("another rule has the same name".into()));
    }
    if rule.tools.is_empty() {
        return Err(bad("`tools` names no tool (use \"*\" for all)".into()));
    }
    for pattern in &rule.tools {
        check_pattern(pattern).map_err(&bad)?;
    }
    if rule.hold.is_some() && (rule.when.is_some() || rule.sample.is_some()) {
        return Err(bad(
            "`hold` decides alone: give either `hold`, or `when` and/or `sample`".into(),
        ));
    }
    if rule.hold.is_none() && rule.when.is_none() && rule.sample.is_none() {
        return Err(bad("give `hold`, `when` or `sample`".into()));
    }
    if let Some(rate) = rule.sample {
        if !(0.0..=1.0).contains(&rate) {
            return Err(bad(format!("sample must be between 0 and 1, not {rate}")));
        }
    }
    if !(1..=2).contains(&rule.approvers) {
        return Err(bad("approvers must be 1 or 2".into()));
    }
    if let Some(secs) = rule.expiry_secs {
        if secs == 0 || secs > MAX_EXPIRY_SECS {
            return Err(bad(format!("expiry-secs must be 1 to {MAX_EXPIRY_SECS}")));
        }
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    let ok = pattern == "*"
        || match pattern.split_once('.') {
            Some((plugin, function)) => {
                !plugin.is_empty()
                    && !function.is_empty()
                    && !plugin.contains('*')
                    && (function == "*" || !function.contains('*'))
            }
            // A workflow's tool is named after the workflow alone.
            None => !pattern.is_empty() && !pattern.contains('*'),
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tool pattern {pattern:?} is not `plugin.function`, `plugin.*`, a workflow's name or `*`"
        ))
    }
}

fn pattern_matches(pattern: &str, tool: &str) -> bool {
    pattern == "*" || crate::call::names::pattern_matches(pattern, tool)
}

/// A number in [0, 1) fixed by the call: its rule, caller, session, tool
/// and arguments. The same call draws the same number, so a retry is never
/// resampled and a test knows its draws; different calls spread evenly.
fn draw(rule: &str, call: &CallFacts<'_>) -> f64 {
    // Only here: a call no sampling rule reaches never pays for it.
    let args_digest = arguments_digest(call.args);
    let mut hash = Sha256::new();
    for part in [rule, call.token, call.session.unwrap_or(""), call.tool, &args_digest] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let bytes: [u8; 8] = hash.finalize()[..8].try_into().unwrap_or_default();
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(toml_text: &str) -> Result<ApprovalPolicy, RuleError> {
        let config: ApprovalConfig = toml::from_str(toml_text).expect("toml");
        ApprovalPolicy::accept(config)
    }

    fn facts<'a>(tool: &'a str, risk: Risk, args: &'a Value) -> CallFacts<'a> {
        CallFacts {
            tool,
            risk,
            args,
            token: "agent",
            session: Some("s1"),
            session_calls: 3,
        }
    }

    #[test]
    fn rules_are_tried_in_order_until_one_decides() {
        let p = policy(
            r#"
            [[rules]]
            name = "big vouchers"
            tools = ["coupon.issue-voucher"]
            when = "args.amount > 5000 && args.currency == 'EUR'"
            approvers = 2
            [[rules]]
            name = "coupon reads"
            tools = ["coupon.*"]
            hold = "never"
            "#,
        )
        .unwrap();
        let big = json!({"amount": 8000, "currency": "EUR"});
        let held = p.check(&facts("coupon.issue-voucher", Risk::High, &big)).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.reason, held.approvers),
            ("big vouchers", HoldReason::Condition, 2)
        );
        let small = json!({"amount": 800, "currency": "EUR"});
        assert_eq!(p.check(&facts("coupon.issue-voucher", Risk::High, &small)), None);
        assert_eq!(p.check(&facts("coupon.list", Risk::High, &small)), None);
        // A high-risk tool that no rule names waits.
        let held = p.check(&facts("erp.refund", Risk::High, &small)).unwrap();
        assert_eq!(held.reason, HoldReason::HighRisk);
        assert_eq!(p.check(&facts("erp.refund", Risk::Write, &small)), None);
        assert_eq!(
            p.summary("coupon.issue-voucher", Risk::High),
            ApprovalSummary::Conditional
        );
        assert_eq!(p.summary("erp.refund", Risk::High), ApprovalSummary::Always);
    }

    #[test]
    fn a_condition_that_is_false_leaves_the_call_to_the_next_rule() {
        let p = policy(
            r#"
            [[rules]]
            name = "very big"
            tools = ["coupon.issue-voucher"]
            when = "args.amount > 10000"
            approvers = 2
            [[rules]]
            name = "big"
            tools = ["coupon.*"]
            when = "args.amount > 5000"
            [[rules]]
            name = "the rest"
            tools = ["coupon.*"]
            sample = 1.0
            "#,
        )
        .unwrap();
        let call = |amount: i64| json!({ "amount": amount });
        let (a, b, c) = (call(20000), call(8000), call(1));
        let check = |args: &Value| p.check(&facts("coupon.issue-voucher", Risk::High, args)).unwrap();
        assert_eq!(check(&a).approvers, 2);
        assert_eq!(check(&b).rule, "big");
        assert_eq!(check(&c).reason, HoldReason::Sampled);
        assert_eq!(p.summary("coupon.issue-voucher", Risk::High), ApprovalSummary::Always);
        // A high-risk tool that a rule names is the rule's to decide.
        let p = policy("[[rules]]\nname = \"r\"\ntools = [\"erp.*\"]\nwhen = \"args.amount > 5\"").unwrap();
        assert_eq!(p.check(&facts("erp.refund", Risk::High, &c)), None);
        assert_eq!(p.summary("erp.refund", Risk::High), ApprovalSummary::Conditional);
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_holds() {
        let p = policy("[[rules]]\nname = \"r\"\ntools = [\"*\"]\nwhen = \"args.amount > 10\"").unwrap();
        let held = p.check(&facts("a.b", Risk::Read, &json!({}))).unwrap();
        assert_eq!(held.reason, HoldReason::ConditionFailed);
        assert!(held.detail.is_some());
        let p =
            policy("[[rules]]\nname = \"r\"\ntools = [\"*\"]\nwhen = \"session_calls > 2 && risk == 'read'\"").unwrap();
        assert!(p.check(&facts("a.b", Risk::Read, &json!({}))).is_some());
    }

    #[test]
    fn a_condition_over_a_bound_is_refused_when_given_and_holds_when_stored() {
        let long = format!("{} > 0", vec!["args.n"; 3000].join(" + "));
        let config = ApprovalConfig {
            rules: vec![RuleConfig {
                name: "generated".into(),
                tools: vec!["*".into()],
                hold: None,
                when: Some(long),
                sample: None,
                approvers: 1,
                expiry_secs: None,
            }],
            ..ApprovalConfig::default()
        };
        let e = ApprovalPolicy::accept(config.clone()).unwrap_err().to_string();
        assert!(e.contains("\"generated\"") && e.contains("bound of 4096 bytes"), "{e}");
        // Found in the store (an older version took it): not evaluated,
        // and what it would judge waits for a person.
        let stored = ApprovalPolicy::new(config).unwrap();
        let held = stored.check(&facts("a.b", Risk::Read, &json!({ "n": 1 }))).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.reason),
            ("generated", HoldReason::ConditionFailed)
        );
        assert!(held.detail.unwrap().contains("4096"));
        assert_eq!(stored.summary("a.b", Risk::Read), ApprovalSummary::Conditional);
    }

    #[test]
    fn sampling_is_deterministic_and_near_its_rate() {
        let p = policy("[[rules]]\nname = \"r\"\ntools = [\"*\"]\nsample = 0.2").unwrap();
        let draws = || {
            (0..10_000)
                .filter(|i| p.check(&facts("a.b", Risk::Read, &json!({ "i": i }))).is_some())
                .count()
        };
        let (held, again) = (draws(), draws());
        assert!((1850..=2150).contains(&held), "{held}");
        assert_eq!(held, again);
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        for (text, want) in [
            (
                "[[rules]]\nname = \"r\"\ntools = [\"*\"]\nwhen = \"args.amount >\"",
                "does not parse",
            ),
            (
                "[[rules]]\nname = \"r\"\ntools = [\"*\"]\nsample = 1.5",
                "between 0 and 1",
            ),
            (
                "[[rules]]\nname = \"r\"\ntools = [\"co*\"]\nhold = \"always\"",
                "tool pattern",
            ),
            ("[[rules]]\nname = \"r\"\ntools = [\"*\"]", "give `hold`"),
            (
                "[[rules]]\nname = \"r\"\ntools = [\"*\"]\nhold = \"always\"\napprovers = 3",
                "1 or 2",
            ),
            (
                "[[rules]]\nname = \"r\"\ntools = [\"*\"]\nhold = \"always\"\nwhen = \"true\"",
                "decides alone",
            ),
        ] {
            let e = policy(text).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("\"r\""), "{text}: {e}");
        }
    }
}
