//! The document's fields, each read and checked where it stands: mappings,
//! strings, keys a reader knows, schemas, expressions and templates,
//! durations, retries. Every refusal names the path of what it refuses.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{error, Backoff, DefinitionError, Flow, Retry, Scope, BASE_VARIABLES};
use crate::workflow::expr::{runtime_expression, Expr, Template};

pub(super) fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, DefinitionError> {
    v.as_object().ok_or_else(|| error(at, "must be a mapping"))
}

pub(super) fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, DefinitionError> {
    v.as_str().ok_or_else(|| error(at, "must be a string"))
}

/// Refuse keys this reader does not know, naming them (a typo must not be
/// silently ignored).
pub(super) fn known(map: &Map<String, Value>, at: &str, keys: &[&str]) -> Result<(), DefinitionError> {
    match map.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(error(
            &join(at, k),
            format!("unknown or unsupported key; expected one of: {}", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

pub(super) fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

pub(super) fn is_variable(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !BASE_VARIABLES.contains(&s)
}

pub(super) fn default_schema() -> Value {
    serde_json::json!({ "type": "object" })
}

/// A schema (`input.schema`, `output.schema`): `{format: json, document:
/// {…}}` as the DSL writes it, or the JSON Schema itself.
pub(super) fn schema(v: &Value, at: &str) -> Result<Value, DefinitionError> {
    let map = object(v, at)?;
    let document = match (map.get("document"), map.get("format")) {
        (Some(d), format) => {
            known(map, at, &["format", "document"])?;
            if let Some(f) = format {
                let f = string(f, &join(at, "format"))?;
                if !f.starts_with("json") {
                    return Err(error(
                        &join(at, "format"),
                        format!("{f:?}: only JSON Schema is supported"),
                    ));
                }
            }
            d
        }
        (None, _) if map.contains_key("resource") => {
            return Err(error(
                at,
                "a schema `resource` is not supported: write the `document` inline",
            ))
        }
        (None, _) => v,
    };
    object(document, at)?;
    Ok(document.clone())
}

/// `input.schema`: a schema, of an object (a tool's arguments are one).
pub(super) fn input_schema(v: &Value, at: &str) -> Result<Value, DefinitionError> {
    let schema = self::schema(v, at)?;
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(error(
            at,
            "the input must be an object: the schema needs `type: object`",
        ));
    }
    Ok(schema)
}

pub(super) fn expr(v: &Value, at: &str, scope: &Scope) -> Result<Expr, DefinitionError> {
    let s = string(v, at)?;
    let source = runtime_expression(s).unwrap_or(s);
    Expr::compile(source, &scope.names()).map_err(|e| error(at, e.to_string()))
}

pub(super) fn template(v: &Value, at: &str, scope: &Scope) -> Result<Template, DefinitionError> {
    Template::compile(v, &scope.names()).map_err(|e| error(at, e.to_string()))
}

/// `input.from`, `output.as`, `export.as`: a string there is a runtime
/// expression with or without its `${ }`, as the DSL allows.
pub(super) fn transform(v: &Value, at: &str, scope: &Scope) -> Result<Template, DefinitionError> {
    match v.as_str() {
        Some(s) if runtime_expression(s).is_none() => template(&Value::from(format!("${{ {s} }}")), at, scope),
        _ => template(v, at, scope),
    }
}

pub(super) fn flow(v: &Value, at: &str) -> Result<Flow, DefinitionError> {
    Ok(match string(v, at)? {
        "continue" => Flow::Continue,
        "exit" => Flow::Exit,
        "end" => Flow::End,
        other => Flow::Goto(other.to_string()),
    })
}

pub(super) fn timeout(v: &Value, at: &str) -> Result<Duration, DefinitionError> {
    let map = object(v, at)?;
    known(map, at, &["after"])?;
    duration(
        map.get("after").ok_or_else(|| error(at, "needs `after`"))?,
        &join(at, "after"),
    )
}

pub(super) fn retry(v: &Value, at: &str, scope: &Scope) -> Result<Retry, DefinitionError> {
    let map = object(v, at)?;
    known(map, at, &["when", "exceptWhen", "delay", "backoff", "limit", "jitter"])?;
    let backoff = match map.get("backoff") {
        None => Backoff::Constant,
        Some(b) => {
            let here = join(at, "backoff");
            let b = object(b, &here)?;
            known(b, &here, &["constant", "linear", "exponential"])?;
            match b.keys().next().map(String::as_str) {
                Some("linear") if b.len() == 1 => Backoff::Linear,
                Some("exponential") if b.len() == 1 => Backoff::Exponential,
                Some("constant") if b.len() == 1 => Backoff::Constant,
                _ => return Err(error(&here, "name one of constant, linear, exponential")),
            }
        }
    };
    let (mut retries, mut limit_duration) = (None, None);
    if let Some(l) = map.get("limit") {
        let here = join(at, "limit");
        let l = object(l, &here)?;
        known(l, &here, &["attempt", "duration"])?;
        if let Some(a) = l.get("attempt") {
            let there = join(&here, "attempt");
            let a = object(a, &there)?;
            known(a, &there, &["count", "duration"])?;
            if let Some(c) = a.get("count") {
                let count = c
                    .as_u64()
                    .filter(|c| (1..=100).contains(c))
                    .ok_or_else(|| error(&join(&there, "count"), "must be 1 to 100"))?;
                retries = Some(count as u32);
            }
        }
        limit_duration = l
            .get("duration")
            .map(|d| duration(d, &join(&here, "duration")))
            .transpose()?;
    }
    let jitter = match map.get("jitter") {
        None => None,
        Some(j) => {
            let here = join(at, "jitter");
            let j = object(j, &here)?;
            known(j, &here, &["from", "to"])?;
            let bound = |k: &str| match j.get(k) {
                Some(d) => duration(d, &join(&here, k)),
                None => Err(error(&here, format!("needs `{k}`"))),
            };
            let (from, to) = (bound("from")?, bound("to")?);
            if to < from {
                return Err(error(&here, "`to` is before `from`"));
            }
            Some((from, to))
        }
    };
    if retries.is_none() && limit_duration.is_none() {
        return Err(error(
            at,
            "needs a `limit` (attempt.count or duration): retrying forever is not allowed",
        ));
    }
    Ok(Retry {
        when: map.get("when").map(|w| expr(w, &join(at, "when"), scope)).transpose()?,
        except_when: map
            .get("exceptWhen")
            .map(|w| expr(w, &join(at, "exceptWhen"), scope))
            .transpose()?,
        delay: map
            .get("delay")
            .map(|d| duration(d, &join(at, "delay")))
            .transpose()?
            .unwrap_or(Duration::ZERO),
        backoff,
        retries,
        duration: limit_duration,
        jitter,
    })
}

/// A duration: `{days, hours, minutes, seconds, milliseconds}` or ISO 8601
/// (`PT5S`, `P1DT2H`, `PT0.25S`).
pub fn duration(v: &Value, at: &str) -> Result<Duration, DefinitionError> {
    const LIMIT: Duration = Duration::from_secs(366 * 86_400);
    let d = match v {
        Value::String(s) => {
            iso8601(s).ok_or_else(|| error(at, format!("{s:?} is not an ISO 8601 duration like PT5S")))?
        }
        Value::Object(map) => {
            known(map, at, &["days", "hours", "minutes", "seconds", "milliseconds"])?;
            let mut total = Duration::ZERO;
            for (k, unit_ms) in [
                ("days", 86_400_000u64),
                ("hours", 3_600_000),
                ("minutes", 60_000),
                ("seconds", 1000),
                ("milliseconds", 1),
            ] {
                if let Some(n) = map.get(k) {
                    let n = n
                        .as_u64()
                        .ok_or_else(|| error(&join(at, k), "must be a whole number"))?;
                    total += Duration::from_millis(n.saturating_mul(unit_ms).min(LIMIT.as_millis() as u64 + 1));
                }
            }
            total
        }
        _ => return Err(error(at, "must be a duration: {seconds: 5} or PT5S")),
    };
    if d > LIMIT {
        return Err(error(at, "is longer than a year"));
    }
    Ok(d)
}

pub(super) fn iso8601(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut order = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c)?;
            if pos < order || number.is_empty() {
                return None;
            }
            order = pos + 1;
            total += number.parse::<f64>().ok()? * units[pos].1;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    take(days, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && total.is_finite() && total < 1e10).then(|| Duration::from_secs_f64(total))
}
