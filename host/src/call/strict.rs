//! A tool's input schema in the subset of JSON Schema that strict function
//! calling accepts (OpenAI's `strict: true`, "structured outputs"), so that
//! a model's arguments are held to the schema by the model's own decoder:
//!
//! - every object lists all its properties in `required` and says
//!   `additionalProperties: false`: a property that may be left out becomes
//!   required and nullable, and the host reads `null` as left out (a WIT
//!   `option` takes it as `none`; a workflow's input drops it, see
//!   [`drop_absent_nulls`]);
//! - `oneOf` (a WIT variant) becomes `anyOf`, which strict mode takes: the
//!   cases never overlap, so the two mean the same;
//! - a keyword outside the subset (`minLength`, `maxLength`, `uniqueItems`,
//!   a `format` it does not know, ...) moves into the description, where
//!   the model still reads it; the host checks it on the call either way.
//!
//! A schema that cannot be said in the subset at all (an object of free
//! keys, `allOf`, `not`, a boolean schema) is [`NotStrict`]: the tool is
//! then offered without `strict`, its schema as it is.

use serde_json::{Map, Value};

/// Keywords the subset keeps as they are.
const KEPT: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "description",
    "$ref",
    "$defs",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
];

/// The string formats the subset knows.
const FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

/// Keywords that cannot be moved into words without changing what the
/// schema accepts.
const IMPOSSIBLE: &[&str] = &[
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependentSchemas",
];

/// Why a schema has no strict form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {why}")]
pub struct NotStrict {
    /// JSON Pointer of the part in the schema.
    pub at: String,
    pub why: String,
}

/// `schema` (an object's: a tool's parameters) in the strict subset.
pub fn strict(schema: &Value) -> Result<Value, NotStrict> {
    convert(schema, "")
}

fn not_strict(at: &str, why: impl Into<String>) -> NotStrict {
    NotStrict {
        at: if at.is_empty() { "/".into() } else { at.to_string() },
        why: why.into(),
    }
}

fn convert(schema: &Value, at: &str) -> Result<Value, NotStrict> {
    let Value::Object(schema) = schema else {
        return Err(not_strict(at, "a boolean schema"));
    };
    if let Some(keyword) = IMPOSSIBLE.iter().find(|k| schema.contains_key(**k)) {
        return Err(not_strict(at, format!("`{keyword}` has no strict form")));
    }
    let mut out = Map::new();
    let mut notes = Vec::new();
    for (key, value) in schema {
        match key.as_str() {
            "properties" | "required" | "additionalProperties" | "description" => {}
            "items" => {
                out.insert(key.clone(), convert(value, &format!("{at}/items"))?);
            }
            "anyOf" | "oneOf" => {
                let cases = value
                    .as_array()
                    .ok_or_else(|| not_strict(at, format!("`{key}` is not a list")))?;
                let cases = cases
                    .iter()
                    .enumerate()
                    .map(|(i, case)| convert(case, &format!("{at}/{key}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("anyOf".into(), Value::Array(cases));
            }
            "$defs" | "definitions" => {
                let defs = value
                    .as_object()
                    .ok_or_else(|| not_strict(at, format!("`{key}` is not an object")))?;
                let defs = defs
                    .iter()
                    .map(|(name, def)| Ok((name.clone(), convert(def, &format!("{at}/$defs/{name}"))?)))
                    .collect::<Result<Map<_, _>, NotStrict>>()?;
                out.insert("$defs".into(), Value::Object(defs));
            }
            "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert(key.clone(), value.clone());
            }
            // Words for the model; nothing a validator reads.
            "title" | "examples" | "$schema" | "$comment" => {}
            key if KEPT.contains(&key) => {
                out.insert(key.to_string(), value.clone());
            }
            _ => notes.push(format!("{key}: {value}")),
        }
    }
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object") || schema.contains_key("properties");
    if is_object {
        object(schema, &mut out, at)?;
    }
    let description = schema.get("description").and_then(Value::as_str).unwrap_or_default();
    let description = match (description.is_empty(), notes.is_empty()) {
        (_, true) => description.to_string(),
        (true, false) => format!("({})", notes.join("; ")),
        (false, false) => format!("{description} ({})", notes.join("; ")),
    };
    if !description.is_empty() {
        out.insert("description".into(), Value::from(description));
    }
    Ok(Value::Object(out))
}

/// An object's properties, every one required (the optional ones
/// nullable), and no others.
fn object(schema: &Map<String, Value>, out: &mut Map<String, Value>, at: &str) -> Result<(), NotStrict> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Err(not_strict(at, "an object whose keys are not listed"));
    };
    if schema
        .get("additionalProperties")
        .is_some_and(|extra| extra != &Value::Bool(false))
    {
        return Err(not_strict(at, "an object that takes keys it does not list"));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut converted = Map::new();
    for (name, property) in properties {
        let property = convert(property, &format!("{at}/properties/{name}"))?;
        let property = if required.contains(&name.as_str()) {
            property
        } else {
            nullable(property)
        };
        converted.insert(name.clone(), property);
    }
    out.insert(
        "required".into(),
        Value::Array(properties.keys().cloned().map(Value::from).collect()),
    );
    out.insert("properties".into(), Value::Object(converted));
    out.insert("additionalProperties".into(), Value::Bool(false));
    Ok(())
}

/// `schema`, also accepting `null` (a property that may be left out).
fn nullable(mut schema: Value) -> Value {
    let accepts_null = |types: &Value| match types {
        Value::String(t) => t == "null",
        Value::Array(ts) => ts.iter().any(|t| t == "null"),
        _ => false,
    };
    if schema["type"].is_string() || schema["type"].is_array() {
        if !accepts_null(&schema["type"]) {
            let mut types = match schema["type"].take() {
                Value::Array(ts) => ts,
                t => vec![t],
            };
            types.push(Value::from("null"));
            schema["type"] = Value::Array(types);
        }
        if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
            if !values.contains(&Value::Null) {
                values.push(Value::Null);
            }
        }
        return schema;
    }
    // `anyOf`, `$ref`, `const`: null as one more case, the words kept outside.
    let description = schema.as_object_mut().and_then(|s| s.remove("description"));
    let mut wrapped = Map::new();
    wrapped.insert(
        "anyOf".into(),
        Value::Array(vec![schema, serde_json::json!({ "type": "null" })]),
    );
    if let Some(description) = description {
        wrapped.insert("description".into(), description);
    }
    Value::Object(wrapped)
}

/// `args` with every `null` removed where `schema` lets a property be left
/// out but does not take `null`: what a strict client sends for "left out",
/// read back as left out, in objects at any depth the schema describes.
pub fn drop_absent_nulls(schema: &Value, args: &mut Value) {
    let (Some(properties), Value::Object(args)) = (schema["properties"].as_object(), args) else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    args.retain(|name, value| {
        !(value.is_null() && !required.contains(&name.as_str()) && properties.get(name).is_some_and(|p| !takes_null(p)))
    });
    for (name, value) in args.iter_mut() {
        if let Some(property) = properties.get(name) {
            drop_absent_nulls(property, value);
        }
    }
}

/// Whether a schema accepts `null` as it is.
fn takes_null(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "null",
        Value::Array(ts) => ts.iter().any(|t| t == "null"),
        // No `type`: `anyOf` and the like may take it; leave it be.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn options_become_required_and_nullable_and_variants_any_of() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": { "type": "string", "minLength": 1, "maxLength": 64, "description": "The order." },
                "limit": { "type": "integer", "minimum": 1 },
                "by": { "oneOf": [
                    { "type": "object", "properties": { "email": { "type": "string", "format": "email" } },
                      "required": ["email"], "additionalProperties": false },
                    { "type": "string", "enum": ["everyone"] },
                ] },
            },
            "required": ["id"],
        });
        let strict = strict(&schema).unwrap();
        assert_eq!(strict["required"], json!(["by", "id", "limit"]));
        assert_eq!(strict["additionalProperties"], false);
        assert_eq!(strict["properties"]["id"]["type"], "string");
        assert_eq!(
            strict["properties"]["id"]["description"],
            "The order. (maxLength: 64; minLength: 1)"
        );
        assert_eq!(strict["properties"]["limit"]["type"], json!(["integer", "null"]));
        assert_eq!(strict["properties"]["limit"]["minimum"], 1);
        let by = &strict["properties"]["by"]["anyOf"];
        assert_eq!(by[1], json!({ "type": "null" }));
        assert_eq!(by[0]["anyOf"][0]["properties"]["email"]["format"], "email");
        assert_eq!(by[0]["anyOf"][1]["enum"], json!(["everyone"]));
    }

    #[test]
    fn what_the_subset_cannot_say_is_not_strict() {
        let free = json!({ "type": "object", "properties": { "x": { "type": "object" } } });
        assert_eq!(strict(&free).unwrap_err().at, "/properties/x");
        let extra = json!({ "type": "object", "properties": {}, "additionalProperties": { "type": "string" } });
        assert!(strict(&extra).is_err());
        let all = json!({ "type": "object", "properties": { "x": { "allOf": [] } } });
        assert!(strict(&all).unwrap_err().why.contains("allOf"));
    }

    #[test]
    fn a_null_for_a_property_left_out_is_dropped_unless_the_schema_takes_it() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": { "type": "string" },
                "b": { "type": ["string", "null"] },
                "c": { "type": "string" },
                "inner": { "type": "object", "properties": { "d": { "type": "integer" } } },
            },
            "required": ["c"],
        });
        let mut args = json!({ "a": null, "b": null, "c": null, "inner": { "d": null } });
        drop_absent_nulls(&schema, &mut args);
        assert_eq!(args, json!({ "b": null, "c": null, "inner": {} }));
    }
}
