//! JSON Schema for a tool's arguments and result, derived from the WIT types
//! of the exported function, so vendors never write schema by hand.
//!
//! The JSON shape of each WIT type (shared with `values`, which converts):
//! - record → object with kebab-case keys; `option` fields may be omitted
//! - variant → `"case"` without payload, `{"case": payload}` with one
//! - enum → `"case"`; flags → array of names
//! - option<T> → T or null; list → array; tuple → fixed-length array
//! - result<T, E> → `{"ok": T}` or `{"err": E}`

use serde_json::{json, Map, Value};
use wasmtime::component::types::{ComponentFunc, Type};

use crate::plugins::contract::{Doc, FunctionDoc};

/// Why a function cannot be a tool.
#[derive(Debug, thiserror::Error)]
#[error("parameter `{param}` has a type JSON cannot carry ({kind})")]
pub struct Unsupported {
    pub param: String,
    pub kind: &'static str,
}

/// The schema of a function's arguments, as one JSON object.
pub fn input_schema(func: &ComponentFunc, docs: Option<&FunctionDoc>) -> Result<Value, Unsupported> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, ty) in func.params() {
        let doc = docs.and_then(|d| d.params.get(name));
        let schema = type_schema(&ty, doc).map_err(|kind| Unsupported {
            param: name.to_string(),
            kind,
        })?;
        if !matches!(ty, Type::Option(_)) {
            required.push(Value::from(name));
        }
        properties.insert(name.to_string(), schema);
    }
    Ok(json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }))
}

/// The schema of what a successful call returns (the `ok` side when the
/// function returns a `result`), or `None` when it returns nothing.
pub fn output_schema(func: &ComponentFunc, docs: Option<&FunctionDoc>) -> Result<Option<Value>, Unsupported> {
    let Some(ty) = func.results().next() else {
        return Ok(None);
    };
    let doc = docs.map(|d| &d.result);
    let unsupported = |kind| Unsupported {
        param: "(result)".into(),
        kind,
    };
    match &ty {
        Type::Result(r) => match r.ok() {
            Some(ok) => type_schema(&ok, doc.and_then(|d| d.part("ok")))
                .map(Some)
                .map_err(unsupported),
            None => Ok(None),
        },
        other => type_schema(other, doc).map(Some).map_err(unsupported),
    }
}

fn describe(mut schema: Value, doc: Option<&Doc>) -> Value {
    if let (Some(text), Value::Object(map)) = (doc.and_then(|d| d.text.as_ref()), &mut schema) {
        map.insert("description".into(), Value::from(text.trim()));
    }
    schema
}

fn integer(min: i128, max: i128) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max })
}

/// The schema of one WIT type; `Err` names a type JSON cannot carry.
pub fn type_schema(ty: &Type, doc: Option<&Doc>) -> Result<Value, &'static str> {
    let part = |name: &str| doc.and_then(|d| d.part(name));
    let schema = match ty {
        Type::Bool => json!({ "type": "boolean" }),
        Type::S8 => integer(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => integer(0, u8::MAX.into()),
        Type::S16 => integer(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => integer(0, u16::MAX.into()),
        Type::S32 => integer(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => integer(0, u32::MAX.into()),
        Type::S64 => integer(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => integer(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 => json!({ "type": "number" }),
        Type::Char => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
        Type::String => json!({ "type": "string" }),
        Type::List(l) => json!({ "type": "array", "items": type_schema(&l.ty(), part("*"))? }),
        Type::FixedLengthList(l) => json!({
            "type": "array",
            "items": type_schema(&l.ty(), part("*"))?,
            "minItems": l.len(),
            "maxItems": l.len(),
        }),
        Type::Map(m) => json!({
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [type_schema(&m.key(), None)?, type_schema(&m.value(), None)?],
                "minItems": 2,
                "maxItems": 2,
            },
        }),
        Type::Record(r) => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in r.fields() {
                if !matches!(field.ty, Type::Option(_)) {
                    required.push(Value::from(field.name));
                }
                properties.insert(field.name.to_string(), type_schema(&field.ty, part(field.name))?);
            }
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Type::Tuple(t) => {
            let items = t
                .types()
                .map(|t| type_schema(&t, None))
                .collect::<Result<Vec<_>, _>>()?;
            json!({ "type": "array", "prefixItems": items, "minItems": items.len(), "maxItems": items.len() })
        }
        Type::Variant(v) => {
            let mut cases = Vec::new();
            for case in v.cases() {
                let case_doc = part(case.name);
                cases.push(match &case.ty {
                    None => describe(json!({ "const": case.name }), case_doc),
                    Some(payload) => describe(
                        json!({
                            "type": "object",
                            "properties": { case.name: type_schema(payload, case_doc.map(|d| Doc { text: None, ..d.clone() }).as_ref())? },
                            "required": [case.name],
                            "additionalProperties": false,
                        }),
                        case_doc,
                    ),
                });
            }
            json!({ "oneOf": cases })
        }
        Type::Enum(e) => json!({ "type": "string", "enum": e.names().collect::<Vec<_>>() }),
        Type::Option(o) => {
            json!({ "anyOf": [type_schema(&o.ty(), part("*"))?, { "type": "null" }] })
        }
        Type::Result(r) => {
            let side = |name: &str, ty: Option<Type>| -> Result<Value, &'static str> {
                let inner = match ty {
                    Some(t) => type_schema(&t, part(name))?,
                    None => json!({ "type": "null" }),
                };
                Ok(json!({
                    "type": "object",
                    "properties": { name: inner },
                    "required": [name],
                    "additionalProperties": false,
                }))
            };
            json!({ "oneOf": [side("ok", r.ok())?, side("err", r.err())?] })
        }
        Type::Flags(f) => json!({
            "type": "array",
            "items": { "type": "string", "enum": f.names().collect::<Vec<_>>() },
            "uniqueItems": true,
        }),
        Type::Own(_) | Type::Borrow(_) => return Err("resource"),
        Type::Future(_) => return Err("future"),
        Type::Stream(_) => return Err("stream"),
        Type::ErrorContext => return Err("error-context"),
    };
    Ok(describe(schema, doc))
}
