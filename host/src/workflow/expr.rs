//! Runtime expressions: jq, as the Serverless Workflow DSL writes them
//! (`${ … }`), compiled once at load by `jaq` and run many times.
//!
//! Values cross between serde_json and jaq as JSON text: simple, exact for
//! every value JSON has, and it refuses what JSON does not (NaN, infinity).
//! A float with no fraction comes back as an integer, since tools' WIT
//! parameters are integers and jq's `/` always yields floats.

use std::sync::Arc;

use jaq_core::load::{parse, Arena, File, Loader};
use jaq_core::native::{bome, v, Fun};
use jaq_core::{data, Compiler, Ctx, Cv, Error, ValT as _};
use jaq_json::Val;
use serde_json::{Map, Value};

use super::budget::{self, Budget};

/// Largest JSON one expression may produce.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Longest expression, in bytes. The longest in the reference workflow is
/// under 1 KiB; this bound and [`MAX_EXPRESSION_DEPTH`] keep jaq's parser
/// and evaluator (which recurse once per level) far from the bottom of a
/// thread's stack.
pub const MAX_EXPRESSION_BYTES: usize = 8 * 1024;
/// Deepest nesting of brackets and `if … end` in one expression.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

type D = data::JustLut<Val>;
type Filter = jaq_core::Filter<D>;

/// Loops of jq's standard library, each turn metered (see [`budget`]);
/// defined after the core's, they replace them for everything defined
/// later. `toolhost_range` is the core's native `range/3` under another name.
const METERED: &str = r#"
def range($from; $upto; $by): toolhost_range($from; $upto; $by) | toolhost_tick;
def range(from; to): range(from; to; 1);
def range(to): range(0; to);
def repeat(f): def rec: f, (toolhost_tick | rec); rec;
def recurse(f): def rec: ., (toolhost_tick | f | rec); rec;
def while(cond; update): def rec: if cond then ., (update | toolhost_tick | rec) else empty end; rec;
def until(cond; update): def rec: if cond then . else update | toolhost_tick | rec end; rec;
"#;

/// `toolhost_tick`: `.` as it is, one step of the run's budget taken.
fn tick_native() -> Fun<D> {
    jaq_core::native::run(("toolhost_tick", v(0), |cv: Cv<D>| {
        let len = match &cv.1 {
            Val::TStr(b) | Val::BStr(b) => b.len(),
            Val::Arr(a) => a.len(),
            Val::Obj(o) => o.len(),
            _ => 0,
        };
        bome(budget::tick(len).map(|()| cv.1).map_err(Error::str))
    }))
}

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
    /// The run's expressions spent their budget (see [`budget`]).
    #[error("jq `{expr}` was stopped: {message}")]
    Budget { expr: String, message: String },
}

impl From<budget::Stopped> for ExprError {
    fn from(stopped: budget::Stopped) -> ExprError {
        ExprError::Budget {
            expr: stopped.expr,
            message: stopped.message,
        }
    }
}

/// The variables' values an expression is evaluated with, in the order they
/// were declared, and the budget it spends.
#[derive(Clone)]
pub struct Vars {
    values: Vec<Val>,
    budget: Arc<Budget>,
}

impl Vars {
    pub fn new(values: Vec<Val>, budget: Arc<Budget>) -> Vars {
        Vars { values, budget }
    }

    /// JSON values, each read into jq's own once here.
    pub fn of(values: &[Value], budget: Arc<Budget>) -> Result<Vars, String> {
        let values = values.iter().map(to_val).collect::<Result<_, _>>()?;
        Ok(Vars { values, budget })
    }

    pub fn push(&mut self, value: Val) {
        self.values.push(value);
    }

    /// `input` as jq's value; the time it takes is the run's (a task's
    /// input may be the whole of a large workflow input).
    fn read(&self, expr: &str, input: &Value) -> Result<Val, ExprError> {
        self.budget
            .meter(expr, || to_val(input))?
            .map_err(|message| ExprError::Eval {
                expr: expr.to_string(),
                message,
            })
    }

    /// An output as JSON, on the run's time.
    fn write(&self, expr: &str, output: &Val) -> Result<Value, ExprError> {
        self.budget
            .meter(expr, || from_val(output))?
            .map_err(|message| ExprError::Output {
                expr: expr.to_string(),
                message,
            })
    }
}

impl Expr {
    /// Compile jq `source`, which may use the global variables `vars`
    /// (names without `$`).
    pub fn compile(source: &str, vars: &[&str]) -> Result<Expr, ExprError> {
        let parse_error = |message: String| ExprError::Parse {
            expr: source.chars().take(200).collect(),
            message,
        };
        check_shape(source).map_err(parse_error)?;
        let names: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
        let metered =
            parse(METERED, |p| p.defs()).ok_or_else(|| parse_error("the metered library does not read".into()))?;
        let defs = jaq_core::defs()
            .chain(metered)
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let range = jaq_core::funs()
            .filter(|(name, _, _)| *name == "range")
            .map(|(_, arity, native): Fun<D>| ("toolhost_range", arity, native));
        let funs = jaq_core::funs()
            .chain(range)
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .chain([tick_native()]);
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code: source, path: () })
            .map_err(|errors| parse_error(describe(&errors)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(names.iter().map(String::as_str))
            .compile(modules)
            .map_err(|errors| parse_error(describe(&errors)))?;
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
    pub fn eval(&self, input: &Value, vars: &Vars) -> Result<Value, ExprError> {
        let input = vars.read(&self.source, input)?;
        let output = self.eval_val(input, vars)?;
        vars.write(&self.source, &output)
    }

    /// As [`Expr::eval`], on and to jq's values.
    pub fn eval_val(&self, input: Val, vars: &Vars) -> Result<Val, ExprError> {
        if vars.values.len() != self.vars {
            return Err(self.eval_error(format!("{} variables given, {} declared", vars.values.len(), self.vars)));
        }
        let first = vars.budget.meter(&self.source, || {
            let ctx = Ctx::<D>::new(&self.filter.lut, jaq_core::Vars::new(vars.values.iter().cloned()));
            let first = self.filter.id.run((ctx, input)).next();
            // `halt` would end the process; here it is an error.
            first.map(|r| {
                r.map_err(|e| {
                    e.get_err()
                        .map_or_else(|_| "`halt` is not allowed".to_string(), |e| e.to_string())
                })
            })
        })?;
        match first {
            None => Ok(Val::Null),
            Some(Err(message)) => Err(self.eval_error(message)),
            Some(Ok(v)) => Ok(v),
        }
    }

    fn eval_error(&self, message: String) -> ExprError {
        ExprError::Eval {
            expr: self.source.to_string(),
            message,
        }
    }

    /// Whether the first output is true in jq's sense (neither false nor null).
    pub fn test(&self, input: &Value, vars: &Vars) -> Result<bool, ExprError> {
        let input = vars.read(&self.source, input)?;
        Ok(self.eval_val(input, vars)?.as_bool())
    }
}

/// Refuse an expression over [`MAX_EXPRESSION_BYTES`] or nested deeper than
/// [`MAX_EXPRESSION_DEPTH`], before jaq's parser sees it, and one that
/// defines functions (a `def` could recurse without passing the budget's
/// ticks; the library's functions are there to use).
fn check_shape(source: &str) -> Result<(), String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "{} bytes is over the {MAX_EXPRESSION_BYTES}-byte limit of an expression",
            source.len()
        ));
    }
    let mut depth = 0usize;
    for token in Tokens::new(source) {
        match token {
            "(" | "[" | "{" | "if" | "\\(" => depth += 1,
            ")" | "]" | "}" | "end" => depth = depth.saturating_sub(1),
            "def" => return Err("`def` is not allowed in a workflow expression".to_string()),
            _ => {}
        }
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "it nests deeper than the limit of {MAX_EXPRESSION_DEPTH} brackets and `if`s"
            ));
        }
    }
    Ok(())
}

/// jq's brackets and words, outside string literals (whose `\(…)`
/// interpolations are brackets too).
struct Tokens<'s> {
    rest: &'s str,
    /// For each open bracket: whether it is an interpolation (whose `)`
    /// goes back into a string).
    open: Vec<bool>,
    in_string: bool,
}

impl<'s> Tokens<'s> {
    fn new(source: &'s str) -> Tokens<'s> {
        Tokens {
            rest: source,
            open: Vec::new(),
            in_string: false,
        }
    }
}

impl<'s> Iterator for Tokens<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        loop {
            let c = self.rest.chars().next()?;
            if self.in_string {
                if self.rest.starts_with("\\(") {
                    let token = &self.rest[..2];
                    self.rest = &self.rest[2..];
                    self.in_string = false;
                    self.open.push(true);
                    return Some(token);
                }
                let skip = match c {
                    '\\' => self.rest.chars().nth(1).map_or(1, |e| 1 + e.len_utf8()),
                    '"' => {
                        self.in_string = false;
                        1
                    }
                    other => other.len_utf8(),
                };
                self.rest = &self.rest[skip.min(self.rest.len())..];
                continue;
            }
            if c == '"' {
                self.in_string = true;
                self.rest = &self.rest[1..];
                continue;
            }
            if c == '#' {
                // A comment, to the end of the line.
                let end = self.rest.find('\n').unwrap_or(self.rest.len());
                self.rest = &self.rest[end..];
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' {
                let end = self
                    .rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.rest.len());
                let word = &self.rest[..end];
                self.rest = &self.rest[end..];
                return Some(word);
            }
            let token = &self.rest[..c.len_utf8()];
            self.rest = &self.rest[c.len_utf8()..];
            match c {
                '(' | '[' | '{' => self.open.push(false),
                ')' | ']' | '}' if self.open.pop() == Some(true) => self.in_string = true,
                _ => {}
            }
            return Some(token);
        }
    }
}

fn describe(errors: &impl std::fmt::Debug) -> String {
    let text = format!("{errors:?}");
    text.chars().take(400).collect()
}

/// A JSON value as jq's.
pub fn to_val(v: &Value) -> Result<Val, String> {
    let text = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))
}

pub fn from_val(v: &Val) -> Result<Value, String> {
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

    /// The value with every expression replaced by its result (`input`
    /// read into jq's values once, whatever the number of expressions).
    pub fn eval(&self, input: &Value, vars: &Vars) -> Result<Value, ExprError> {
        if let Template::Literal(v) = self {
            return Ok(v.clone());
        }
        let jq = vars.read("(the task's input)", input)?;
        self.eval_on(&jq, vars)
    }

    fn eval_on(&self, input: &Val, vars: &Vars) -> Result<Value, ExprError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Expr(e) => {
                let output = e.eval_val(input.clone(), vars)?;
                vars.write(&e.source, &output)?
            }
            Template::Object(fields) => {
                let mut map = Map::new();
                for (k, t) in fields {
                    map.insert(k.clone(), t.eval_on(input, vars)?);
                }
                Value::Object(map)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval_on(input, vars))
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

    fn none() -> Vars {
        Vars::new(Vec::new(), Budget::unmetered())
    }

    fn run(jq: &str, input: Value) -> Result<Value, ExprError> {
        let vars = Vars::of(&[json!({ "x": 1 })], Budget::unmetered()).unwrap();
        Expr::compile(jq, &["input"])?.eval(&input, &vars)
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
        let t = |jq: &str| Expr::compile(jq, &[]).unwrap().test(&Value::Null, &none()).unwrap();
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
        let out = std::thread::spawn(move || t.eval(&json!({ "a": 2 }), &none()).unwrap())
            .join()
            .unwrap();
        assert_eq!(out, json!({ "id": 2, "text": "a ${ .a } b", "n": [1, 3] }));
        let e = Template::compile(&json!({ "a": { "b": "${ $x }" } }), &[]).unwrap_err();
        assert!(e.to_string().contains(".a.b"), "{e}");
        assert!(Template::compile(&json!({ "a": 1 }), &[]).unwrap().is_literal());
    }

    fn metered(steps: u64, halt: tokio_util::sync::CancellationToken) -> Vars {
        Vars::new(
            Vec::new(),
            Budget::with_limits(steps, std::time::Duration::from_secs(60), halt),
        )
    }

    #[test]
    fn deep_or_long_expressions_are_refused_before_parsing() {
        let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        let e = Expr::compile(&deep, &[]).unwrap_err().to_string();
        assert!(e.contains("deeper than the limit of 64"), "{e}");
        let ifs = format!("{}1{}", "if . then ".repeat(500), " end".repeat(500));
        assert!(Expr::compile(&ifs, &[]).unwrap_err().to_string().contains("deeper"));
        let long = "1 + ".repeat(3000) + "1";
        assert!(Expr::compile(&long, &[])
            .unwrap_err()
            .to_string()
            .contains("8192-byte limit"));
        let e = Expr::compile("def f: f; f", &[]).unwrap_err().to_string();
        assert!(e.contains("`def` is not allowed"), "{e}");
        // Within the bounds: brackets inside strings and interpolations count right.
        let nested = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        assert!(Expr::compile(&nested, &[]).is_ok());
        assert!(Expr::compile(r#""((((( \(1 + (2)) [[[" | length"#, &[]).is_ok());
        assert!(Expr::compile("\"def\" + \"end\"", &[]).is_ok());
    }

    #[test]
    fn what_passes_the_bounds_compiles_and_runs_on_the_runs_threads() {
        // The longest flat chains the byte bound lets through, on a thread
        // with the stack the runs' threads have.
        let chains = [
            "1 + ".repeat(2000) + "1",
            "try ".repeat(2000) + "1",
            "1 as $x | ".repeat(800) + "1",
        ];
        let out = std::thread::Builder::new()
            .stack_size(crate::workflow::budget::STACK_BYTES)
            .spawn(move || {
                chains
                    .iter()
                    .map(|c| Expr::compile(c, &[]).map(|e| e.eval(&Value::Null, &none())))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(matches!(&out[0], Ok(Ok(v)) if *v == json!(2001)), "{:?}", out[0]);
        for o in &out[1..] {
            assert!(matches!(o, Ok(Ok(_))), "{o:?}");
        }
    }

    #[test]
    fn a_budget_stops_loops_and_large_values() {
        let halt = tokio_util::sync::CancellationToken::new();
        for jq in [
            "reduce range(1e8) as $i (0; . + $i)",
            "[range(1e7)] | length",
            "[limit(1e8; repeat(1))] | length",
            "last(range(1e9))",
        ] {
            let e = Expr::compile(jq, &[])
                .unwrap()
                .eval(&Value::Null, &metered(100_000, halt.clone()))
                .unwrap_err();
            assert!(matches!(e, ExprError::Budget { .. }), "{jq}: {e}");
            assert!(e.to_string().contains("100000 steps"), "{e}");
        }
        // A `try` does not get past it.
        let e = Expr::compile("try (reduce range(1e8) as $i (0; . + $i)) catch 0", &[])
            .unwrap()
            .eval(&Value::Null, &metered(1000, halt.clone()))
            .unwrap_err();
        assert!(matches!(e, ExprError::Budget { .. }), "{e}");
        // The budget is the run's: what one expression spent, the next has not.
        let vars = metered(1500, halt.clone());
        let e = Expr::compile("[range(1000)] | length", &[]).unwrap();
        assert_eq!(e.eval(&Value::Null, &vars).unwrap(), json!(1000));
        assert!(matches!(e.eval(&Value::Null, &vars), Err(ExprError::Budget { .. })));
        // A value over the bound, at a step.
        let e = Expr::compile("\"x\" * 2000000 | until(length < 1; .)", &[]).unwrap();
        let err = e.eval(&Value::Null, &metered(1000, halt.clone())).unwrap_err();
        assert!(err.to_string().contains("over the 1048576 limit"), "{err}");
        // A halted run's expression stops at its next check.
        halt.cancel();
        let e = Expr::compile("reduce range(1e12) as $i (0; . + $i)", &[]).unwrap();
        let err = e.eval(&Value::Null, &metered(u64::MAX, halt)).unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
    }

    #[test]
    fn halt_is_an_error_not_an_exit() {
        let e = run("halt", Value::Null).unwrap_err();
        assert!(e.to_string().contains("`halt` is not allowed"), "{e}");
        let e = run("\"bye\" | halt_error(1)", Value::Null).unwrap_err();
        assert!(e.to_string().contains("`halt` is not allowed"), "{e}");
    }
}
