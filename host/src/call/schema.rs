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
        Type::Record(r) => record_schema(r, doc)?,
        Type::Tuple(t) => {
            let items = t
                .types()
                .map(|t| type_schema(&t, None))
                .collect::<Result<Vec<_>, _>>()?;
            json!({ "type": "array", "prefixItems": items, "minItems": items.len(), "maxItems": items.len() })
        }
        Type::Variant(v) => variant_schema(v, doc)?,
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

/// The schema of a WIT record: an object of its fields, those not
/// `option<_>` required.
fn record_schema(r: &wasmtime::component::types::Record, doc: Option<&Doc>) -> Result<Value, &'static str> {
    let part = |name: &str| doc.and_then(|d| d.part(name));
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in r.fields() {
        if !matches!(field.ty, Type::Option(_)) {
            required.push(Value::from(field.name));
        }
        properties.insert(field.name.to_string(), type_schema(&field.ty, part(field.name))?);
    }
    Ok(json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }))
}

/// The schema of a WIT variant: one of its cases, each a name or an
/// object of the name and its payload.
fn variant_schema(v: &wasmtime::component::types::Variant, doc: Option<&Doc>) -> Result<Value, &'static str> {
    let part = |name: &str| doc.and_then(|d| d.part(name));
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
    Ok(json!({ "oneOf": cases }))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use wasmtime::component::types::{ComponentItem, Type};
    use wasmtime::component::Component;
    use wit_component::{ComponentEncoder, StringEncoding};
    use wit_parser::{ManglingAndAbi, Resolve};

    use super::type_schema;
    use crate::call::values::{from_json, to_json};

    /// The WIT type a README row names, as wasmtime sees it: compiled into a
    /// component that exports a function taking it. A row may declare a
    /// named type (`record point { ... }`); the type is then its name.
    fn compiled(engine: &wasmtime::Engine, wit_type: &str) -> Type {
        let named = ["record", "variant", "enum", "flags"]
            .iter()
            .find_map(|kw| wit_type.strip_prefix(kw).and_then(|r| r.strip_prefix(' ')));
        let (declaration, name) = match named {
            Some(rest) => (wit_type, rest.split_whitespace().next().expect("a type name")),
            None => ("", wit_type),
        };
        let wit = format!(
            "package readme:table;\ninterface row {{\n  {declaration}\n  f: func(v: {name});\n}}\nworld w {{ export row; }}\n"
        );
        let mut resolve = Resolve::default();
        let package = resolve
            .push_str("row.wit", &wit)
            .unwrap_or_else(|e| panic!("{wit}: {e:#}"));
        let world = resolve.select_world(&[package], Some("w")).expect("the world");
        let mut module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
        wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
        let bytes = ComponentEncoder::default()
            .module(&module)
            .unwrap()
            .validate(true)
            .encode()
            .unwrap();
        let component = Component::new(engine, &bytes).expect("the row's component compiles");
        let ty = component.component_type();
        let Some(ComponentItem::ComponentInstance(row)) = ty.get_export(engine, "readme:table/row").map(|e| e.ty)
        else {
            panic!("no row interface")
        };
        let Some(ComponentItem::ComponentFunc(f)) = row.get_export(engine, "f").map(|e| e.ty) else {
            panic!("no f")
        };
        let (_, param) = f.params().next().expect("one parameter");
        param
    }

    /// The code spans of a table cell, in order.
    fn spans(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("README JSON `{text}`: {e}"))
    }

    /// The rows of the README's "WIT types in JSON" table: WIT, JSON (both
    /// ways), also accepted, refused, JSON Schema.
    fn readme_rows() -> Vec<[String; 5]> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let section = readme
            .split("\n## WIT types in JSON\n")
            .nth(1)
            .expect("the README has a section \"WIT types in JSON\"");
        let section = section.split("\n## ").next().unwrap();
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|line| {
                // No cell holds a `|`, not even in code.
                let cells: Vec<String> = line
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect();
                cells
                    .try_into()
                    .unwrap_or_else(|c: Vec<String>| panic!("a row of 5 cells, not {}: {line}", c.len()))
            })
            .collect()
    }

    #[test]
    fn readme_wit_json_table() {
        let engine = wasmtime::Engine::default();
        let rows = readme_rows();
        assert!(rows.len() >= 20, "only {} rows", rows.len());
        for [wit, both_ways, accepted, refused, schema] in &rows {
            let wit = spans(wit)[0];
            let ty = compiled(&engine, wit);
            assert_eq!(
                type_schema(&ty, None).unwrap(),
                json(spans(schema)[0]),
                "the schema of `{wit}`"
            );
            let convert = |text: &str| from_json(&ty, &json(text), &mut Vec::new());
            for example in spans(both_ways) {
                let value = convert(example).unwrap_or_else(|e| panic!("`{wit}` refused `{example}`: {e}"));
                assert_eq!(
                    to_json(&value),
                    json(example),
                    "`{wit}`: `{example}` does not come back as it went"
                );
            }
            for example in spans(accepted) {
                let value = convert(example).unwrap_or_else(|e| panic!("`{wit}` refused `{example}`: {e}"));
                assert_ne!(
                    to_json(&value),
                    json(example),
                    "`{wit}`: `{example}` belongs in the JSON column"
                );
            }
            for example in spans(refused) {
                assert!(convert(example).is_err(), "`{wit}` accepted `{example}`");
            }
        }
    }

    /// What the notes under the table say.
    #[test]
    fn readme_wit_json_notes() {
        use wasmtime::component::Val;
        let engine = wasmtime::Engine::default();
        // NaN and the infinities come out as null; an f32 is widened.
        assert_eq!(to_json(&Val::Float64(f64::NAN)), Value::Null);
        assert_eq!(to_json(&Val::Float32(f32::INFINITY)), Value::Null);
        assert_eq!(to_json(&Val::Float32(0.1)), json("0.10000000149011612"));
        // option<option<T>>: some(none) and none are both null.
        assert_eq!(
            to_json(&Val::Option(Some(Box::new(Val::Option(None))))),
            to_json(&Val::Option(None))
        );
        // A record's option field comes back as null.
        let point = compiled(&engine, "record point { x: f64, label: option<string> }");
        let value = from_json(&point, &json(r#"{"x": 1.5}"#), &mut Vec::new()).unwrap();
        assert_eq!(to_json(&value), json(r#"{"x": 1.5, "label": null}"#));
    }
}
