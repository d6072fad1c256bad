//! Runtime expressions: jq, as the Serverless Workflow DSL writes them
//! (`${ … }`), compiled once at load by `jaq` and run many times.
//!
//! Values cross between serde_json and jaq as JSON text: simple, exact for
//! every value JSON has, and it refuses what JSON does not (NaN, infinity).
//! A float with no fraction comes back as an integer, since tools' WIT
//! parameters are integers and jq's `/` always yields floats.

use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::{Map, Value};

/// Largest JSON one expression may produce.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled jq filter, shareable between threads.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    filter: Arc<Filter>,
    vars: usize,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${{ {} }}", self.source)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExprError {
    #[error("cannot compile jq `{expr}`: {message}")]
    Parse { expr: String, message: String },
    #[error("jq `{expr}` failed: {message}")]
    Eval { expr: String, message: String },
    #[error("jq `{expr}` gave no JSON: {message}")]
    Output { expr: String, message: String },
}

impl Expr {
    /// Compile jq `source`, which may use the global variables `vars`
    /// (names without `$`).
    pub fn compile(source: &str, vars: &[&str]) -> Result<Expr, ExprError> {
        let parse = |message: String| ExprError::Parse {
            expr: source.to_string(),
            message,
        };
        let names: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code: source, path: () })
            .map_err(|errors| parse(describe(&errors)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(names.iter().map(String::as_str))
            .compile(modules)
            .map_err(|errors| parse(describe(&errors)))?;
        Ok(Expr {
            source: source.into(),
            filter: Arc::new(filter),
            vars: vars.len(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first output on `input`, with the variables' values in the
    /// order they were declared; `null` when it yields nothing.
    pub fn eval(&self, input: &Value, vars: &[Value]) -> Result<Value, ExprError> {
        let eval = |message: String| ExprError::Eval {
            expr: self.source.to_string(),
            message,
        };
        if vars.len() != self.vars {
            return Err(eval(format!("{} variables given, {} declared", vars.len(), self.vars)));
        }
        let values = vars.iter().map(to_val).collect::<Result<Vec<_>, _>>().map_err(eval)?;
        let input = to_val(input).map_err(eval)?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new(values));
        let first = self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr).next();
        match first {
            None => Ok(Value::Null),
            Some(Err(e)) => Err(eval(e.to_string())),
            Some(Ok(v)) => from_val(&v).map_err(|message| ExprError::Output {
                expr: self.source.to_string(),
                message,
            }),
        }
    }

    /// Whether the first output is true in jq's sense (neither false nor null).
    pub fn test(&self, input: &Value, vars: &[Value]) -> Result<bool, ExprError> {
        Ok(!matches!(self.eval(input, vars)?, Value::Null | Value::Bool(false)))
    }
}

fn describe(errors: &impl std::fmt::Debug) -> String {
    let text = format!("{errors:?}");
    text.chars().take(400).collect()
}

fn to_val(v: &Value) -> Result<Val, String> {
    let text = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))
}

fn from_val(v: &Val) -> Result<Value, String> {
    let text = v.to_string();
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "{} bytes is over the {MAX_OUTPUT_BYTES}-byte limit",
            text.len()
        ));
    }
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        let shown: String = text.chars().take(80).collect();
        format!("{shown} is not JSON")
    })?;
    Ok(integral(value))
}

/// Floats without a fraction, within i64, as integers.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

/// The jq inside a DSL runtime expression `${ … }`; `None` for any other
/// string (only a whole string is an expression).
pub fn runtime_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.trim())
}

/// A JSON value some of whose strings are runtime expressions, compiled once.
#[derive(Clone, Debug)]
pub enum Template {
    Literal(Value),
    Expr(Expr),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

impl Template {
    /// Compile every `${…}` string in `value`; an error names its path.
    pub fn compile(value: &Value, vars: &[&str]) -> Result<Template, ExprError> {
        Template::at(value, vars, "")
    }

    fn at(value: &Value, vars: &[&str], path: &str) -> Result<Template, ExprError> {
        let t = match value {
            Value::String(s) => match runtime_expression(s) {
                Some(jq) => Template::Expr(Expr::compile(jq, vars).map_err(|e| match e {
                    ExprError::Parse { expr, message } if !path.is_empty() => ExprError::Parse {
                        expr,
                        message: format!("at {path}: {message}"),
                    },
                    other => other,
                })?),
                None => Template::Literal(value.clone()),
            },
            Value::Object(map) => {
                let fields = map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Template::at(v, vars, &format!("{path}.{k}"))?)))
                    .collect::<Result<Vec<_>, ExprError>>()?;
                if fields.iter().all(|(_, t)| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(items) => {
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Template::at(v, vars, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, ExprError>>()?;
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(items)
                }
            }
            other => Template::Literal(other.clone()),
        };
        Ok(t)
    }

    /// The value with every expression replaced by its result.
    pub fn eval(&self, input: &Value, vars: &[Value]) -> Result<Value, ExprError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => e.eval(input, vars)?,
            Template::Object(fields) => {
                let mut map = Map::new();
                for (k, t) in fields {
                    map.insert(k.clone(), t.eval(input, vars)?);
                }
                Value::Object(map)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(input, vars))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        })
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(jq: &str, input: Value) -> Result<Value, ExprError> {
        Expr::compile(jq, &["input"])?.eval(&input, &[json!({ "x": 1 })])
    }

    #[test]
    fn arithmetic_comes_back_as_integers() {
        let input = json!({ "grace": 6, "per": 500, "max": 3000, "hours": 52 });
        let bps = run("([((.hours - .grace) / 24 | ceil) * .per, .max] | min)", input).unwrap();
        assert_eq!(bps, json!(1000));
        assert_eq!(run("5000 * 1000 / 10000", Value::Null).unwrap(), json!(500));
        assert_eq!(run("1.5", Value::Null).unwrap(), json!(1.5));
        assert_eq!(run(". ", json!(u64::MAX)).unwrap(), json!(u64::MAX));
    }

    #[test]
    fn variables_errors_and_truth() {
        assert_eq!(run("$input.x + 1", Value::Null).unwrap(), json!(2));
        assert!(matches!(run("$nope", Value::Null), Err(ExprError::Parse { .. })));
        assert!(matches!(run("1 +", Value::Null), Err(ExprError::Parse { .. })));
        let e = run("error(\"boom\")", Value::Null).unwrap_err().to_string();
        assert!(e.contains("boom"), "{e}");
        assert!(matches!(run("1 + \"a\"", Value::Null), Err(ExprError::Eval { .. })));
        assert_eq!(run("empty", Value::Null).unwrap(), Value::Null);
        assert_eq!(run("repeat(1)", Value::Null).unwrap(), json!(1));
        let t = |jq: &str| Expr::compile(jq, &[]).unwrap().test(&Value::Null, &[]).unwrap();
        assert!(!t("null") && !t("false") && t("0") && t("\"\""));
        assert!(matches!(run("nan", Value::Null), Err(ExprError::Output { .. })));
    }

    #[test]
    fn an_output_over_the_limit_is_refused() {
        // About 2 MB of strings: over MAX_OUTPUT_BYTES.
        let e = run("[range(300000)] | map(\"xxxx\")", Value::Null).unwrap_err();
        assert!(matches!(e, ExprError::Output { .. }), "{e}");
        assert!(e.to_string().contains("-byte limit"), "{e}");
        assert!(run("[range(1000)] | map(\"xxxx\") | length", Value::Null).is_ok());
    }

    #[test]
    fn templates_and_threads() {
        let t = Template::compile(
            &json!({ "id": "${ .a }", "text": "a ${ .a } b", "n": [1, "${ .a + 1 }"] }),
            &[],
        )
        .unwrap();
        let out = std::thread::spawn(move || t.eval(&json!({ "a": 2 }), &[]).unwrap())
            .join()
            .unwrap();
        assert_eq!(out, json!({ "id": 2, "text": "a ${ .a } b", "n": [1, 3] }));
        let e = Template::compile(&json!({ "a": { "b": "${ $x }" } }), &[]).unwrap_err();
        assert!(e.to_string().contains(".a.b"), "{e}");
        assert!(Template::compile(&json!({ "a": 1 }), &[]).unwrap().is_literal());
    }
}
