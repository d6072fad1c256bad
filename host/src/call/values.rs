//! JSON arguments → component values, and component values → JSON, guided by
//! the function's WIT types (the JSON shapes are listed in `schema`).
//!
//! Conversion *is* validation: it checks every value against the type it must
//! become, so the schema an agent sees and the check a call gets cannot drift
//! apart. Errors name the offending field by path (`request.value.currency`).

use serde_json::{Map, Value};
use wasmtime::component::types::{ComponentFunc, Type};
use wasmtime::component::Val;

use crate::model::text::truncated;

/// An argument that does not fit the tool's schema.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct ArgError {
    /// Path to the field, e.g. `request.lines[2].quantity`; empty for the
    /// arguments object itself.
    pub field: String,
    pub message: String,
}

/// Most of a field's path an error names, and most of its message: both
/// may quote the input (an unknown key, a string not among an enum's
/// names), and an error goes back to the caller and into the audit trail.
/// A 900 KiB key name was echoed whole, twice, in each refusal.
pub const MAX_FIELD_BYTES: usize = 256;
pub const MAX_MESSAGE_BYTES: usize = 512;

impl ArgError {
    fn new(field: String, message: String) -> ArgError {
        ArgError {
            field: truncated(field, MAX_FIELD_BYTES),
            message: truncated(message, MAX_MESSAGE_BYTES),
        }
    }
}

/// Convert the arguments object of a call into the function's parameters.
pub fn args_from_json(func: &ComponentFunc, args: &Value) -> Result<Vec<Val>, ArgError> {
    let empty = Map::new();
    let object = match args {
        Value::Object(map) => map,
        Value::Null => &empty,
        other => {
            return Err(ArgError::new(
                "(arguments)".into(),
                format!("expected an object of named arguments, got {}", kind(other)),
            ))
        }
    };
    let params: Vec<(&str, Type)> = func.params().collect();
    if let Some(unknown) = object.keys().find(|k| !params.iter().any(|(name, _)| name == k)) {
        let known: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        return Err(ArgError::new(
            unknown.clone(),
            format!("unknown argument; the tool takes {}", list_or_none(&known)),
        ));
    }
    let mut path = Vec::new();
    params
        .iter()
        .map(|(name, ty)| {
            path.clear();
            path.push(name.to_string());
            match object.get(*name) {
                Some(v) => from_json(ty, v, &mut path),
                None if matches!(ty, Type::Option(_)) => Ok(Val::Option(None)),
                None => Err(ArgError::new(name.to_string(), "required argument is missing".into())),
            }
        })
        .collect()
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "no arguments".into()
    } else {
        names.join(", ")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error(path: &[String], message: impl Into<String>) -> ArgError {
    let mut field = String::new();
    for seg in path {
        if !seg.starts_with('[') && !field.is_empty() {
            field.push('.');
        }
        field.push_str(seg);
    }
    ArgError::new(field, message.into())
}

fn expected(path: &[String], what: &str, got: &Value) -> ArgError {
    error(path, format!("expected {what}, got {}", kind(got)))
}

fn int<T: TryFrom<i128>>(path: &[String], v: &Value, name: &str, min: i128, max: i128) -> Result<T, ArgError> {
    let n = v
        .as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .ok_or_else(|| expected(path, &format!("an integer ({name})"), v))?;
    T::try_from(n).map_err(|_| error(path, format!("{n} is out of range for {name} ({min} to {max})")))
}

/// Convert one JSON value into a component value of type `ty`.
pub fn from_json(ty: &Type, v: &Value, path: &mut Vec<String>) -> Result<Val, ArgError> {
    macro_rules! int {
        ($variant:ident, $t:ty, $name:literal) => {
            Val::$variant(int::<$t>(path, v, $name, <$t>::MIN as i128, <$t>::MAX as i128)?)
        };
    }
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| expected(path, "a boolean", v))?),
        Type::S8 => int!(S8, i8, "s8"),
        Type::U8 => int!(U8, u8, "u8"),
        Type::S16 => int!(S16, i16, "s16"),
        Type::U16 => int!(U16, u16, "u16"),
        Type::S32 => int!(S32, i32, "s32"),
        Type::U32 => int!(U32, u32, "u32"),
        Type::S64 => int!(S64, i64, "s64"),
        Type::U64 => int!(U64, u64, "u64"),
        Type::Float32 => Val::Float32(v.as_f64().ok_or_else(|| expected(path, "a number", v))? as f32),
        Type::Float64 => Val::Float64(v.as_f64().ok_or_else(|| expected(path, "a number", v))?),
        Type::Char => {
            let s = v.as_str().ok_or_else(|| expected(path, "a one-character string", v))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => {
                    return Err(error(
                        path,
                        format!("expected exactly one character, got {} characters", s.chars().count()),
                    ))
                }
            }
        }
        Type::String => Val::String(v.as_str().ok_or_else(|| expected(path, "a string", v))?.to_string()),
        Type::List(l) => Val::List(items(&l.ty(), v, path)?),
        Type::FixedLengthList(l) => {
            let items = items(&l.ty(), v, path)?;
            if items.len() != l.len() as usize {
                return Err(error(
                    path,
                    format!("expected exactly {} items, got {}", l.len(), items.len()),
                ));
            }
            Val::FixedLengthList(items)
        }
        Type::Map(m) => map_from_json(m, v, path)?,
        Type::Record(r) => record_from_json(r, v, path)?,
        Type::Tuple(t) => tuple_from_json(t, v, path)?,
        Type::Variant(variant) => variant_from_json(variant, v, path)?,
        Type::Enum(e) => {
            let s = v.as_str().ok_or_else(|| expected(path, "a string", v))?;
            if !e.names().any(|n| n == s) {
                let names: Vec<&str> = e.names().collect();
                return Err(error(path, format!("{s:?} is not one of {}", names.join(", "))));
            }
            Val::Enum(s.to_string())
        }
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            some => Val::Option(Some(Box::new(from_json(&o.ty(), some, path)?))),
        },
        Type::Result(r) => result_from_json(r, v, path)?,
        Type::Flags(f) => flags_from_json(f, v, path)?,
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(error(path, "this type cannot be passed as JSON"))
        }
    })
}

/// A WIT map from an array of `[key, value]` pairs.
fn map_from_json(m: &wasmtime::component::types::Map, v: &Value, path: &mut Vec<String>) -> Result<Val, ArgError> {
    let pairs = v
        .as_array()
        .ok_or_else(|| expected(path, "an array of [key, value] pairs", v))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        path.push(format!("[{i}]"));
        let kv = pair
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or_else(|| expected(path, "a [key, value] pair", pair))?;
        let key = from_json(&m.key(), &kv[0], path)?;
        let value = from_json(&m.value(), &kv[1], path)?;
        path.pop();
        out.push((key, value));
    }
    Ok(Val::Map(out))
}

/// A WIT record from an object of its fields (unknown ones refused, missing
/// `option<_>` ones none).
fn record_from_json(
    r: &wasmtime::component::types::Record,
    v: &Value,
    path: &mut Vec<String>,
) -> Result<Val, ArgError> {
    let object = v.as_object().ok_or_else(|| expected(path, "an object", v))?;
    let fields: Vec<_> = r.fields().collect();
    if let Some(unknown) = object.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
        let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
        path.push(unknown.clone());
        return Err(error(path, format!("unknown field; expected {}", list_or_none(&known))));
    }
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        path.push(field.name.to_string());
        let value = match object.get(field.name) {
            Some(fv) => from_json(&field.ty, fv, path)?,
            None if matches!(field.ty, Type::Option(_)) => Val::Option(None),
            None => return Err(error(path, "required field is missing")),
        };
        path.pop();
        out.push((field.name.to_string(), value));
    }
    Ok(Val::Record(out))
}

/// A WIT tuple from an array of its items.
fn tuple_from_json(t: &wasmtime::component::types::Tuple, v: &Value, path: &mut Vec<String>) -> Result<Val, ArgError> {
    let array = v.as_array().ok_or_else(|| expected(path, "an array", v))?;
    let types: Vec<Type> = t.types().collect();
    if array.len() != types.len() {
        return Err(error(
            path,
            format!("expected {} items, got {}", types.len(), array.len()),
        ));
    }
    let mut out = Vec::with_capacity(types.len());
    for (i, (ty, item)) in types.iter().zip(array).enumerate() {
        path.push(format!("[{i}]"));
        out.push(from_json(ty, item, path)?);
        path.pop();
    }
    Ok(Val::Tuple(out))
}

/// A WIT variant from a case's name (no payload) or `{"case": payload}`.
fn variant_from_json(
    variant: &wasmtime::component::types::Variant,
    v: &Value,
    path: &mut Vec<String>,
) -> Result<Val, ArgError> {
    let (name, payload) = tagged(v, path)?;
    let case = variant.cases().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = variant.cases().map(|c| c.name).collect();
        error(
            path,
            format!("unknown case {name:?}; expected one of {}", names.join(", ")),
        )
    })?;
    Ok(match (&case.ty, payload) {
        (None, None) => Val::Variant(name.to_string(), None),
        (None, Some(_)) => {
            return Err(error(
                path,
                format!("case {name:?} takes no value; write it as the string \"{name}\""),
            ))
        }
        (Some(_), None) => return Err(error(path, format!("case {name:?} needs a value: {{\"{name}\": ...}}"))),
        (Some(ty), Some(p)) => {
            path.push(name.to_string());
            let val = from_json(ty, p, path)?;
            path.pop();
            Val::Variant(name.to_string(), Some(Box::new(val)))
        }
    })
}

/// A WIT result from `{"ok": ...}` or `{"err": ...}`.
fn result_from_json(
    r: &wasmtime::component::types::ResultType,
    v: &Value,
    path: &mut Vec<String>,
) -> Result<Val, ArgError> {
    let (side, payload) = tagged(v, path)?;
    let ty = match side {
        "ok" => r.ok(),
        "err" => r.err(),
        other => {
            return Err(error(
                path,
                format!("expected {{\"ok\": ...}} or {{\"err\": ...}}, got {other:?}"),
            ))
        }
    };
    path.push(side.to_string());
    let inner = match (ty, payload) {
        (None, None | Some(Value::Null)) => None,
        (Some(ty), Some(p)) => Some(Box::new(from_json(&ty, p, path)?)),
        (None, Some(_)) => return Err(error(path, "takes no value")),
        (Some(_), None) => return Err(error(path, "needs a value")),
    };
    path.pop();
    Ok(Val::Result(if side == "ok" { Ok(inner) } else { Err(inner) }))
}

/// WIT flags from an array of flag names (repeats count once).
fn flags_from_json(f: &wasmtime::component::types::Flags, v: &Value, path: &[String]) -> Result<Val, ArgError> {
    let array = v
        .as_array()
        .ok_or_else(|| expected(path, "an array of flag names", v))?;
    let mut out = Vec::with_capacity(array.len());
    for item in array {
        let name = item.as_str().ok_or_else(|| expected(path, "a flag name", item))?;
        if !f.names().any(|n| n == name) {
            return Err(error(path, format!("{name:?} is not a flag of this type")));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(Val::Flags(out))
}

fn items(ty: &Type, v: &Value, path: &mut Vec<String>) -> Result<Vec<Val>, ArgError> {
    let array = v.as_array().ok_or_else(|| expected(path, "an array", v))?;
    let mut out = Vec::with_capacity(array.len());
    for (i, item) in array.iter().enumerate() {
        path.push(format!("[{i}]"));
        out.push(from_json(ty, item, path)?);
        path.pop();
    }
    Ok(out)
}

/// `"case"` or `{"case": payload}`.
fn tagged<'a>(v: &'a Value, path: &[String]) -> Result<(&'a str, Option<&'a Value>), ArgError> {
    match v {
        Value::String(s) => Ok((s, None)),
        Value::Object(map) if map.len() == 1 => {
            let (k, p) = map.iter().next().expect("one entry");
            Ok((k, Some(p)))
        }
        other => Err(expected(path, "a case name or an object with exactly one case", other)),
    }
}

/// A lower bound on the length of `to_json(v)` written compactly, counted
/// without building it and given up as soon as it passes `limit` (then the
/// result is just some number over `limit`). This is how a result over the
/// output limit is refused before its JSON exists: a `list<u8>` of a
/// million bytes would otherwise become a million JSON values first.
pub fn json_len_at_least(v: &Val, limit: usize) -> usize {
    let mut counter = LenCounter { total: 0, limit };
    counter.add(v);
    counter.total
}

struct LenCounter {
    total: usize,
    limit: usize,
}

impl LenCounter {
    fn over(&self) -> bool {
        self.total > self.limit
    }

    /// `[a,b,c]`-shaped: brackets, commas, then each item until over.
    fn add_seq<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a Val>) {
        self.total += 2 + items.len().saturating_sub(1);
        for item in items {
            if self.over() {
                return;
            }
            self.add(item);
        }
    }

    fn add(&mut self, v: &Val) {
        let digits = |n: u128| n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let signed = |n: i64| digits(u128::from(n.unsigned_abs())) + usize::from(n < 0);
        match v {
            Val::Bool(b) => self.total += if *b { 4 } else { 5 },
            Val::S8(n) => self.total += signed(i64::from(*n)),
            Val::S16(n) => self.total += signed(i64::from(*n)),
            Val::S32(n) => self.total += signed(i64::from(*n)),
            Val::S64(n) => self.total += signed(*n),
            Val::U8(n) => self.total += digits(u128::from(*n)),
            Val::U16(n) => self.total += digits(u128::from(*n)),
            Val::U32(n) => self.total += digits(u128::from(*n)),
            Val::U64(n) => self.total += digits(u128::from(*n)),
            Val::Float32(_) | Val::Float64(_) => self.total += 1,
            Val::Char(c) => self.total += c.len_utf8() + 2,
            Val::String(s) | Val::Enum(s) | Val::Variant(s, None) => self.total += s.len() + 2,
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => self.add_seq(items.iter()),
            Val::Map(pairs) => {
                // [[k,v],...]
                self.total += 2 + pairs.len().saturating_sub(1);
                for (k, v) in pairs {
                    if self.over() {
                        return;
                    }
                    self.total += 3;
                    self.add(k);
                    self.add(v);
                }
            }
            Val::Record(fields) => {
                self.total += 2 + fields.len().saturating_sub(1);
                for (name, v) in fields {
                    if self.over() {
                        return;
                    }
                    self.total += name.len() + 3;
                    self.add(v);
                }
            }
            Val::Variant(name, Some(payload)) => {
                self.total += name.len() + 5;
                self.add(payload);
            }
            Val::Option(None) => self.total += 4,
            Val::Option(Some(v)) => self.add(v),
            Val::Result(r) => {
                let (side, inner) = match r {
                    Ok(v) => (2, v),
                    Err(v) => (3, v),
                };
                self.total += side + 5;
                match inner {
                    Some(v) => self.add(v),
                    None => self.total += 4,
                }
            }
            Val::Flags(names) => {
                self.total += 2 + names.len().saturating_sub(1) + names.iter().map(|n| n.len() + 2).sum::<usize>()
            }
            Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => self.total += 4,
        }
    }
}

/// Convert a component value to JSON.
pub fn to_json(v: &Val) -> Value {
    match v {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(n) => Value::from(*n as f64),
        Val::Float64(n) => Value::from(*n),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        Val::Map(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| Value::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Val::Variant(name, None) | Val::Enum(name) => Value::String(name.clone()),
        Val::Variant(name, Some(p)) => Value::Object(Map::from_iter([(name.clone(), to_json(p))])),
        Val::Option(None) => Value::Null,
        Val::Option(Some(v)) => to_json(v),
        Val::Result(r) => {
            let (side, inner) = match r {
                Ok(v) => ("ok", v),
                Err(v) => ("err", v),
            };
            Value::Object(Map::from_iter([(
                side.to_string(),
                inner.as_deref().map_or(Value::Null, to_json),
            )]))
        }
        Val::Flags(names) => Value::Array(names.iter().cloned().map(Value::String).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: &Val) -> usize {
        serde_json::to_vec(&to_json(v)).unwrap().len()
    }

    #[test]
    fn the_json_length_bound_never_overshoots_and_is_exact_where_it_can_be() {
        let record = Val::Record(vec![
            ("name".into(), Val::String("caf\u{e9} \"x\"".into())),
            ("count".into(), Val::U64(u64::MAX)),
            ("delta".into(), Val::S32(-42)),
            ("ratio".into(), Val::Float64(0.125)),
            (
                "tags".into(),
                Val::List(vec![Val::String("a".into()), Val::String("bc".into())]),
            ),
            ("color".into(), Val::Enum("red".into())),
            (
                "shape".into(),
                Val::Variant("circle".into(), Some(Box::new(Val::Float32(1.5)))),
            ),
            ("maybe".into(), Val::Option(None)),
            (
                "outcome".into(),
                Val::Result(Err(Some(Box::new(Val::String("no".into()))))),
            ),
            ("perms".into(), Val::Flags(vec!["read".into(), "write".into()])),
            ("flag".into(), Val::Bool(false)),
            ("initial".into(), Val::Char('\u{e9}')),
        ]);
        assert!(json_len_at_least(&record, usize::MAX) <= exact(&record));

        let bytes = Val::List((0..=255u8).map(Val::U8).collect());
        assert_eq!(json_len_at_least(&bytes, usize::MAX), exact(&bytes));
        let empty = Val::List(Vec::new());
        assert_eq!(json_len_at_least(&empty, usize::MAX), exact(&empty));
        let plain = Val::Tuple(vec![Val::String("abc".into()), Val::S64(-7), Val::Result(Ok(None))]);
        assert_eq!(json_len_at_least(&plain, usize::MAX), exact(&plain));
    }

    #[test]
    fn the_json_length_bound_stops_once_over_the_limit() {
        let huge = Val::List(vec![Val::String("x".repeat(100)); 600]);
        let counted = json_len_at_least(&huge, 1000);
        assert!(counted > 1000);
        // It gave up long before counting every element.
        assert!(counted < 2000, "{counted}");
    }
}
