//! A workflow as its author writes it: a subset of the CNCF Serverless
//! Workflow DSL 1.0 (YAML or JSON), read into closed types with every
//! runtime expression compiled, so that a bad document is refused at load
//! with the path of what is wrong (`do[4].issueVoucher.with.request`), never
//! half-run.
//!
//! Why our own types rather than the `serverless_workflow_core` crate: it
//! is an alpha whose task enum is untagged (a typo anywhere becomes "data
//! did not match any variant" with no path), it reads `for.each` from a key
//! named `emit`, and it pulls in the unmaintained `serde_yaml`. The
//! document format is the standard's; only the reader is ours.
//!
//! The subset: `document`, `input` (`schema`, `from`), `output` (`as`, `schema`),
//! `timeout`, and the tasks `call` (a toolhost tool), `set`, `switch`,
//! `try`/`catch` (with `retry`), `raise`, `for`, `wait` and `do`, each with
//! `if`, `input.from`, `output.as`, `export.as`, `timeout` and `then`.
//! Anything else (`fork`, `listen`, `emit`, `run`, `call: http`, …) is
//! refused by name.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};

mod fields;

use super::expr::{runtime_expression, Expr, Template};
use crate::call::names;
pub use fields::duration;
use fields::{
    default_schema, expr, flow, input_schema, is_variable, join, known, object, retry, schema, string, template,
    timeout, transform,
};

/// The variables every expression sees: `$context` (what tasks exported),
/// `$input` (the workflow's input), `$task` (the running task: name,
/// reference, input, idempotencyKey) and `$workflow` (id, definition,
/// input, startedAt).
pub const BASE_VARIABLES: [&str; 4] = ["context", "input", "task", "workflow"];

/// The DSL versions this reader takes.
const DSL_VERSIONS: [&str; 2] = ["1.0.0", "1.0"];

/// Longest document the host reads.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most tasks in one workflow, nested ones included.
pub const MAX_TASKS: usize = 1000;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{at}: {message}")]
pub struct DefinitionError {
    /// Where in the document: `document.version`, `do[3].check.switch[0]`.
    pub at: String,
    pub message: String,
}

fn error(at: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        at: if at.is_empty() {
            "(document)".into()
        } else {
            at.to_string()
        },
        message: message.into(),
    }
}

/// A parsed, checked workflow.
#[derive(Clone)]
pub struct Definition {
    pub namespace: String,
    /// Also its tool's name.
    pub name: String,
    pub version: semver::Version,
    pub title: Option<String>,
    pub summary: Option<String>,
    /// The JSON Schema of the input (the tool's parameters).
    pub input_schema: Value,
    pub input_from: Option<Template>,
    pub output_as: Option<Template>,
    /// The JSON Schema of the output, if the document gives one (the
    /// tool's output schema; a run whose output does not fit it fails).
    pub output_schema: Option<Value>,
    pub timeout: Option<Duration>,
    pub tasks: Vec<Task>,
    /// Every tool a `call` task names: what the workflow's grant must name.
    pub tools: BTreeSet<String>,
}

/// The workflow's `output`: its `as` (compiled) and its `schema`.
fn output(output: Option<&Value>, scope: &Scope) -> Result<(Option<Template>, Option<Value>), DefinitionError> {
    let Some(output) = output else {
        return Ok((None, None));
    };
    let output = object(output, "output")?;
    known(output, "output", &["as", "schema"])?;
    let schema = output.get("schema").map(|s| schema(s, "output.schema")).transpose()?;
    let output_as = output.get("as").map(|a| transform(a, "output.as", scope)).transpose()?;
    Ok((output_as, schema))
}

/// One task, with what all tasks share.
#[derive(Clone)]
pub struct Task {
    pub name: String,
    /// JSON Pointer of the task in the document: `/do/4/issueVoucher`.
    pub reference: String,
    pub when: Option<Expr>,
    pub input_from: Option<Template>,
    pub output_as: Option<Template>,
    pub export_as: Option<Template>,
    pub timeout: Option<Duration>,
    pub then: Flow,
    pub kind: Kind,
}

/// What comes after a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The next task in the list.
    Continue,
    /// Leave the list the task is in (its parent goes on).
    Exit,
    /// End the workflow with the current data.
    End,
    /// Go to the task of that name in the same list.
    Goto(String),
}

#[derive(Clone)]
pub enum Kind {
    /// Call a toolhost tool with `with` as its arguments.
    Call {
        tool: String,
        with: Template,
    },
    /// The task's output is this object.
    Set(Template),
    Switch(Vec<Case>),
    Try {
        body: Vec<Task>,
        catch: Box<Catch>,
    },
    Raise(ProblemTemplate),
    For(Box<ForLoop>),
    Wait(Duration),
    Do(Vec<Task>),
}

#[derive(Clone)]
pub struct Case {
    pub name: String,
    /// No condition: the default case.
    pub when: Option<Expr>,
    pub then: Flow,
}

#[derive(Clone)]
pub struct Catch {
    /// Properties the error must have (`type`, `status`, …), compared exactly.
    pub with: Map<String, Value>,
    /// The variable the error is bound to in `when`, `exceptWhen` and `do`.
    pub variable: String,
    pub when: Option<Expr>,
    pub except_when: Option<Expr>,
    pub retry: Option<Retry>,
    pub body: Vec<Task>,
}

#[derive(Clone, Debug)]
pub struct Retry {
    pub when: Option<Expr>,
    pub except_when: Option<Expr>,
    pub delay: Duration,
    pub backoff: Backoff,
    /// Retries after the first attempt (`limit.attempt.count`: "the maximum
    /// amount of retry attempts" in the DSL's words).
    pub retries: Option<u32>,
    /// How long retrying may go on, from the first attempt.
    pub duration: Option<Duration>,
    pub jitter: Option<(Duration, Duration)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

#[derive(Clone)]
pub struct ForLoop {
    pub each: String,
    pub at: String,
    pub collection: Expr,
    pub while_: Option<Expr>,
    pub body: Vec<Task>,
}

/// The error a `raise` task raises; its strings may be expressions.
#[derive(Clone)]
pub struct ProblemTemplate(pub Template);

impl Definition {
    /// Read a document (YAML, or JSON, which YAML includes).
    pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(error(
                "",
                format!("{} bytes is over the {MAX_DOCUMENT_BYTES}-byte limit", text.len()),
            ));
        }
        let doc: Value = serde_norway::from_str(text).map_err(|e| error("", format!("not YAML or JSON: {e}")))?;
        // jaq's parser recurses once per nesting level: on a thread whose
        // stack is known to be deep enough for what the shape bounds let in.
        super::budget::on_large_stack(|| Reader::default().definition(&doc)).map_err(|e| error("", e))?
    }

    /// The description agents see.
    pub fn description(&self) -> String {
        match (&self.title, &self.summary) {
            (Some(t), Some(s)) => format!("{t}. {s}"),
            (Some(t), None) => t.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => format!("Workflow {}", self.name),
        }
    }
}

/// Walks the document, keeping the path and the variables in scope.
#[derive(Default)]
struct Reader {
    tasks: usize,
    tools: BTreeSet<String>,
}

/// Variables in scope where an expression is compiled.
#[derive(Clone)]
struct Scope(Vec<String>);

impl Scope {
    fn base() -> Scope {
        Scope(BASE_VARIABLES.iter().map(|s| s.to_string()).collect())
    }

    fn with(&self, name: &str) -> Scope {
        let mut vars = self.0.clone();
        if !vars.iter().any(|v| v == name) {
            vars.push(name.to_string());
        }
        Scope(vars)
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

impl Reader {
    fn definition(mut self, doc: &Value) -> Result<Definition, DefinitionError> {
        let top = object(doc, "")?;
        known(top, "", &["document", "input", "output", "timeout", "do", "use"])?;
        if top
            .get("use")
            .is_some_and(|u| u.as_object().is_none_or(|m| !m.is_empty()))
        {
            return Err(error(
                "use",
                "not supported: tasks call toolhost tools by name (`call: crm.get-customer`)",
            ));
        }
        let document = object(
            top.get("document").ok_or_else(|| error("document", "missing"))?,
            "document",
        )?;
        known(
            document,
            "document",
            &[
                "dsl",
                "namespace",
                "name",
                "version",
                "title",
                "summary",
                "tags",
                "metadata",
            ],
        )?;
        let field = |key: &str| -> Result<&str, DefinitionError> {
            let at = join("document", key);
            string(document.get(key).ok_or_else(|| error(&at, "missing"))?, &at)
        };
        let dsl = field("dsl")?;
        if !DSL_VERSIONS.contains(&dsl) {
            return Err(error(
                "document.dsl",
                format!("DSL {dsl:?} is not supported; use 1.0.0"),
            ));
        }
        let name = field("name")?.to_string();
        names::check_plugin_name(&name).map_err(|e| error("document.name", e))?;
        let version = semver::Version::parse(field("version")?)
            .map_err(|e| error("document.version", format!("not a semantic version: {e}")))?;
        let optional = |key: &str| -> Result<Option<String>, DefinitionError> {
            document
                .get(key)
                .map(|v| string(v, &join("document", key)).map(str::to_string))
                .transpose()
        };
        let scope = Scope::base();
        let (input_schema, input_from) = match top.get("input") {
            None => (default_schema(), None),
            Some(input) => {
                let input = object(input, "input")?;
                known(input, "input", &["schema", "from"])?;
                let schema = match input.get("schema") {
                    None => default_schema(),
                    Some(s) => input_schema(s, "input.schema")?,
                };
                let from = input
                    .get("from")
                    .map(|f| transform(f, "input.from", &scope))
                    .transpose()?;
                (schema, from)
            }
        };
        let (output_as, output_schema) = output(top.get("output"), &scope)?;
        let timeout = top.get("timeout").map(|t| timeout(t, "timeout")).transpose()?;
        let tasks = self.tasks(
            top.get("do").ok_or_else(|| error("do", "missing"))?,
            "do",
            "/do",
            &scope,
        )?;
        Ok(Definition {
            namespace: field("namespace")?.to_string(),
            name,
            version,
            title: optional("title")?,
            summary: optional("summary")?,
            input_schema,
            input_from,
            output_as,
            output_schema,
            timeout,
            tasks,
            tools: self.tools,
        })
    }

    /// A task list: `[{name: task}, …]`, names unique within it.
    fn tasks(&mut self, v: &Value, at: &str, pointer: &str, scope: &Scope) -> Result<Vec<Task>, DefinitionError> {
        let list = v
            .as_array()
            .ok_or_else(|| error(at, "must be a list of tasks (`- name: {…}`)"))?;
        if list.is_empty() {
            return Err(error(at, "has no tasks"));
        }
        let mut tasks: Vec<Task> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let entry = object(item, &here)?;
            let (name, body) = match (entry.len(), entry.iter().next()) {
                (1, Some(pair)) => pair,
                _ => return Err(error(&here, "must have exactly one key, the task's name")),
            };
            if tasks.iter().any(|t| &t.name == name) {
                return Err(error(&here, format!("a second task named {name:?} in this list")));
            }
            let task = self.task(name, body, &join(&here, name), &format!("{pointer}/{i}/{name}"), scope)?;
            tasks.push(task);
        }
        // Every `then` names a task of this list.
        for task in &tasks {
            let targets = std::iter::once(&task.then).chain(match &task.kind {
                Kind::Switch(cases) => cases.iter().map(|c| &c.then).collect::<Vec<_>>(),
                _ => Vec::new(),
            });
            for flow in targets {
                if let Flow::Goto(target) = flow {
                    if !tasks.iter().any(|t| &t.name == target) {
                        return Err(error(
                            &format!("{at}.{}", task.name),
                            format!("`then: {target}` names no task in this list"),
                        ));
                    }
                }
            }
        }
        Ok(tasks)
    }

    fn task(&mut self, name: &str, v: &Value, at: &str, pointer: &str, scope: &Scope) -> Result<Task, DefinitionError> {
        self.tasks += 1;
        if self.tasks > MAX_TASKS {
            return Err(error(at, format!("more than {MAX_TASKS} tasks")));
        }
        let map = object(v, at)?;
        let kind_key = kind_of(map, at)?;

        let when = map.get("if").map(|e| expr(e, &join(at, "if"), scope)).transpose()?;
        let input_from = match map.get("input") {
            None => None,
            Some(i) => {
                let i = object(i, &join(at, "input"))?;
                known(i, &join(at, "input"), &["from"])?;
                i.get("from")
                    .map(|f| transform(f, &join(at, "input.from"), scope))
                    .transpose()?
            }
        };
        let transform = |key: &str| -> Result<Option<Template>, DefinitionError> {
            match map.get(key) {
                None => Ok(None),
                Some(o) => {
                    let here = join(at, key);
                    let o = object(o, &here)?;
                    known(o, &here, &["as"])?;
                    o.get("as").map(|a| transform(a, &join(&here, "as"), scope)).transpose()
                }
            }
        };
        let output_as = transform("output")?;
        let export_as = transform("export")?;
        let timeout = map
            .get("timeout")
            .map(|t| timeout(t, &join(at, "timeout")))
            .transpose()?;
        let then = map.get("then").map(|t| flow(t, &join(at, "then"))).transpose()?;

        let kind = match kind_key {
            "call" => self.call_kind(map, at, scope)?,
            "set" => {
                let s = &map["set"];
                if !s.is_object() && runtime_expression(s.as_str().unwrap_or("")).is_none() {
                    return Err(error(&join(at, "set"), "must be a mapping or an expression"));
                }
                Kind::Set(template(s, &join(at, "set"), scope)?)
            }
            "switch" => Kind::Switch(self.cases(&map["switch"], &join(at, "switch"), scope)?),
            "try" => {
                let body = self.tasks(&map["try"], &join(at, "try"), &format!("{pointer}/try"), scope)?;
                let catch = map.get("catch").ok_or_else(|| error(at, "a `try` needs a `catch`"))?;
                let catch = self.catch(catch, &join(at, "catch"), &format!("{pointer}/catch"), scope)?;
                Kind::Try {
                    body,
                    catch: Box::new(catch),
                }
            }
            "raise" => raise_kind(map, at, scope)?,
            "for" => Kind::For(Box::new(self.for_loop(map, at, pointer, scope)?)),
            "wait" => Kind::Wait(duration(&map["wait"], &join(at, "wait"))?),
            _ => Kind::Do(self.tasks(&map["do"], &join(at, "do"), &format!("{pointer}/do"), scope)?),
        };
        Ok(Task {
            name: name.to_string(),
            reference: pointer.to_string(),
            when,
            input_from,
            output_as,
            export_as,
            timeout,
            then: then.unwrap_or(Flow::Continue),
            kind,
        })
    }

    /// A `call` task: the tool (by its canonical name, remembered for the
    /// workflow's grant) and its arguments.
    fn call_kind(&mut self, map: &Map<String, Value>, at: &str, scope: &Scope) -> Result<Kind, DefinitionError> {
        let tool = string(&map["call"], &join(at, "call"))?;
        let Some(canonical) = names::canonical(tool).map(std::borrow::Cow::into_owned) else {
            return Err(error(
                &join(at, "call"),
                format!("{tool:?} is not a toolhost tool name (`plugin.function`, e.g. `crm.get-customer`)"),
            ));
        };
        self.tools.insert(canonical.clone());
        let with = match map.get("with") {
            None => Template::compile(&Value::Object(Map::new()), &scope.names())
                .map_err(|e| error(&join(at, "with"), e.to_string()))?,
            Some(w) => {
                object(w, &join(at, "with"))?;
                template(w, &join(at, "with"), scope)?
            }
        };
        Ok(Kind::Call { tool: canonical, with })
    }

    fn cases(&mut self, v: &Value, at: &str, scope: &Scope) -> Result<Vec<Case>, DefinitionError> {
        let list = v.as_array().ok_or_else(|| error(at, "must be a list of cases"))?;
        let mut cases = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let entry = object(item, &here)?;
            let (name, body) = match (entry.len(), entry.iter().next()) {
                (1, Some(pair)) => pair,
                _ => return Err(error(&here, "must have exactly one key, the case's name")),
            };
            let here = join(&here, name);
            let body = object(body, &here)?;
            known(body, &here, &["when", "then"])?;
            let when = body
                .get("when")
                .map(|w| expr(w, &join(&here, "when"), scope))
                .transpose()?;
            let then = match body.get("then") {
                Some(t) => flow(t, &join(&here, "then"))?,
                None => return Err(error(&here, "needs `then`")),
            };
            cases.push(Case {
                name: name.clone(),
                when,
                then,
            });
        }
        if cases.is_empty() {
            return Err(error(at, "has no cases"));
        }
        Ok(cases)
    }

    fn catch(&mut self, v: &Value, at: &str, pointer: &str, scope: &Scope) -> Result<Catch, DefinitionError> {
        let map = object(v, at)?;
        known(map, at, &["errors", "as", "when", "exceptWhen", "retry", "do"])?;
        let with = match map.get("errors") {
            None => Map::new(),
            Some(e) => {
                let here = join(at, "errors");
                let e = object(e, &here)?;
                known(e, &here, &["with"])?;
                match e.get("with") {
                    None => Map::new(),
                    Some(w) => {
                        let w = object(w, &join(&here, "with"))?;
                        known(
                            w,
                            &join(&here, "with"),
                            &["type", "status", "title", "detail", "instance"],
                        )?;
                        w.clone()
                    }
                }
            }
        };
        let variable = match map.get("as") {
            None => "error".to_string(),
            Some(a) => {
                let name = string(a, &join(at, "as"))?;
                if !is_variable(name) {
                    return Err(error(&join(at, "as"), format!("{name:?} is not a variable name")));
                }
                name.to_string()
            }
        };
        let inner = scope.with(&variable);
        let when = map
            .get("when")
            .map(|w| expr(w, &join(at, "when"), &inner))
            .transpose()?;
        let except_when = map
            .get("exceptWhen")
            .map(|w| expr(w, &join(at, "exceptWhen"), &inner))
            .transpose()?;
        let retry = map
            .get("retry")
            .map(|r| retry(r, &join(at, "retry"), &inner))
            .transpose()?;
        let body = match map.get("do") {
            None => Vec::new(),
            Some(d) => self.tasks(d, &join(at, "do"), &format!("{pointer}/do"), &inner)?,
        };
        Ok(Catch {
            with,
            variable,
            when,
            except_when,
            retry,
            body,
        })
    }

    fn for_loop(
        &mut self,
        map: &Map<String, Value>,
        at: &str,
        pointer: &str,
        scope: &Scope,
    ) -> Result<ForLoop, DefinitionError> {
        let here = join(at, "for");
        let f = object(&map["for"], &here)?;
        known(f, &here, &["each", "in", "at"])?;
        let name = |key: &str, default: &str| -> Result<String, DefinitionError> {
            match f.get(key) {
                None => Ok(default.to_string()),
                Some(v) => {
                    let s = string(v, &join(&here, key))?;
                    if is_variable(s) {
                        Ok(s.to_string())
                    } else {
                        Err(error(&join(&here, key), format!("{s:?} is not a variable name")))
                    }
                }
            }
        };
        let each = name("each", "item")?;
        let index = name("at", "index")?;
        let collection = expr(
            f.get("in").ok_or_else(|| error(&here, "needs `in`"))?,
            &join(&here, "in"),
            scope,
        )?;
        let inner = scope.with(&each).with(&index);
        let while_ = map
            .get("while")
            .map(|w| expr(w, &join(at, "while"), &inner))
            .transpose()?;
        let body = self.tasks(
            map.get("do").ok_or_else(|| error(at, "a `for` needs `do`"))?,
            &join(at, "do"),
            &format!("{pointer}/do"),
            &inner,
        )?;
        Ok(ForLoop {
            each,
            at: index,
            collection,
            while_,
            body,
        })
    }
}

/// A `raise` task: the problem it raises (`type` and `status` at least).
fn raise_kind(map: &Map<String, Value>, at: &str, scope: &Scope) -> Result<Kind, DefinitionError> {
    let here = join(at, "raise");
    let r = object(&map["raise"], &here)?;
    known(r, &here, &["error"])?;
    let e = object(r.get("error").ok_or_else(|| error(&here, "needs an `error`"))?, &here)?;
    known(
        e,
        &join(&here, "error"),
        &["type", "status", "title", "detail", "instance"],
    )?;
    for required in ["type", "status"] {
        if !e.contains_key(required) {
            return Err(error(&join(&here, "error"), format!("needs `{required}`")));
        }
    }
    Ok(Kind::Raise(ProblemTemplate(template(
        &map["raise"]["error"],
        &join(&here, "error"),
        scope,
    )?)))
}

/// Which type of task `map` is (its one key of `call`, `set`, ...), once
/// it holds no key that type does not take.
fn kind_of(map: &Map<String, Value>, at: &str) -> Result<&'static str, DefinitionError> {
    const COMMON: [&str; 7] = ["if", "input", "output", "export", "timeout", "then", "metadata"];
    let kinds = ["call", "set", "switch", "try", "raise", "for", "wait", "do"];
    let present: Vec<&str> = kinds.iter().copied().filter(|k| map.contains_key(*k)).collect();
    let unsupported = ["fork", "listen", "emit", "run"];
    if let Some(k) = unsupported.iter().find(|k| map.contains_key(**k)) {
        return Err(error(at, format!("`{k}` tasks are not supported by toolhost")));
    }
    let kind_key = match present.as_slice() {
        [one] => *one,
        // `for` and `try` carry a `do`/`catch` of their own.
        ["for", "do"] => "for",
        [] => {
            return Err(error(
                at,
                format!("no task type; expected one of: {}", kinds.join(", ")),
            ))
        }
        many => return Err(error(at, format!("more than one task type: {}", many.join(", ")))),
    };
    let own: &[&str] = match kind_key {
        "call" => &["call", "with"],
        "set" => &["set"],
        "switch" => &["switch"],
        "try" => &["try", "catch"],
        "raise" => &["raise"],
        "for" => &["for", "while", "do"],
        "wait" => &["wait"],
        _ => &["do"],
    };
    let allowed: Vec<&str> = COMMON.iter().chain(own.iter()).copied().collect();
    known(map, at, &allowed)?;
    Ok(kind_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
document: { dsl: '1.0.0', namespace: test, name: hello, version: '1.0.0' }
do:
  - greet:
      set:
        message: ${ "hello " + $input.name }
"#;

    #[test]
    fn a_minimal_document_reads() {
        let d = Definition::parse(MINIMAL).unwrap();
        assert_eq!(d.name, "hello");
        assert_eq!(d.tasks.len(), 1);
        assert_eq!(d.tasks[0].reference, "/do/0/greet");
        assert!(matches!(d.tasks[0].kind, Kind::Set(_)));
    }

    fn refused(doc: &str) -> DefinitionError {
        match Definition::parse(doc) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e,
        }
    }

    #[test]
    fn mistakes_are_refused_with_their_path() {
        let e = refused(&MINIMAL.replace("set:", "sett:"));
        assert!(e.message.contains("no task type"), "{e}");
        assert_eq!(e.at, "do[0].greet");
        let e = refused(&MINIMAL.replace("\"hello \"", "\"hello\" +"));
        assert_eq!(e.at, "do[0].greet.set");
        let e = refused(&MINIMAL.replace("version: '1.0.0'", "version: 'one'"));
        assert_eq!(e.at, "document.version");
        let e = refused(&MINIMAL.replace("$input.name", "$nope"));
        assert_eq!(e.at, "do[0].greet.set");
        let e = refused(&MINIMAL.replace("set:", "fork:"));
        assert!(e.message.contains("not supported"), "{e}");
        let e = refused(&format!("{MINIMAL}      then: nowhere\n"));
        assert!(e.message.contains("nowhere"), "{e}");
    }

    #[test]
    fn calls_name_tools_and_are_collected() {
        let doc = r#"
document: { dsl: '1.0.0', namespace: test, name: calls, version: '0.1.0' }
do:
  - one:
      call: crm.get-customer
      with: { customer-id: '${ $input.id }' }
  - two:
      try:
        - inner:
            call: coupon_issue-voucher
      catch:
        errors: { with: { type: 'toolhost:errors/upstream' } }
        retry:
          delay: { milliseconds: 10 }
          backoff: { exponential: {} }
          limit: { attempt: { count: 3 } }
          jitter: { from: PT0S, to: PT0.05S }
"#;
        let d = Definition::parse(doc).unwrap();
        assert_eq!(
            d.tools.iter().cloned().collect::<Vec<_>>(),
            ["coupon.issue-voucher", "crm.get-customer"]
        );
        let Kind::Try { catch, .. } = &d.tasks[1].kind else {
            panic!()
        };
        let retry = catch.retry.as_ref().unwrap();
        assert_eq!(
            (retry.retries, retry.backoff, retry.jitter.unwrap().1),
            (Some(3), Backoff::Exponential, Duration::from_millis(50))
        );
        let e = refused(&doc.replace("crm.get-customer", "http"));
        assert_eq!(e.at, "do[0].one.call");
    }

    #[test]
    fn the_reference_workflow_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/late-parcel/workflow.yaml");
        let d = Definition::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(d.name, "late-parcel");
        assert!(d.tools.contains("coupon.issue-voucher"));
    }

    #[test]
    fn durations() {
        let d = |s: &str| duration(&Value::from(s), "t");
        assert_eq!(d("PT5S").unwrap(), Duration::from_secs(5));
        assert_eq!(d("P1DT2H").unwrap(), Duration::from_secs(93_600));
        assert_eq!(d("PT0.25S").unwrap(), Duration::from_millis(250));
        assert!(d("5s").is_err() && d("PT").is_err() && d("PS5").is_err() && d("P").is_err());
        let o = serde_json::json!({ "minutes": 1, "milliseconds": 500 });
        assert_eq!(duration(&o, "t").unwrap(), Duration::from_millis(60_500));
        assert!(duration(&serde_json::json!({ "days": 400 }), "t").is_err());
    }
}
