//! Reading an upstream's JSON into the contract's types, field by field.
//!
//! Upstream APIs rarely answer in the contract's exact shape, so a connector
//! maps their JSON by hand; these helpers keep that mapping short and make a
//! missing or mistyped field an [`Error::Upstream`] that names the field,
//! instead of a panic or a silent default.
//!
//! ```
//! use serde_json::json;
//! use toolhost_sdk::json::Fields;
//!
//! let v = json!({ "id": "C-1", "tier": null, "orders": [{ "qty": 2 }] });
//! assert_eq!(v.text("id").unwrap(), "C-1");
//! assert_eq!(v.opt_text("tier"), None);
//! let quantities = v.list("orders", |o| o.uint("qty")).unwrap();
//! assert_eq!(quantities, vec![2]);
//! assert!(v.text("name").unwrap_err().to_string().contains("`name`"));
//! ```

use serde_json::Value;

use crate::{Error, Result};

/// Typed access to the fields of a JSON object.
pub trait Fields {
    /// The field itself; an error when it is missing or `null`.
    fn field(&self, name: &str) -> Result<&Value>;
    /// A string field.
    fn text(&self, name: &str) -> Result<String>;
    /// A string field that may be missing or `null`.
    fn opt_text(&self, name: &str) -> Option<String>;
    /// A whole number that fits a `u32`.
    fn uint(&self, name: &str) -> Result<u32>;
    /// A whole number that fits an `i64`.
    fn int(&self, name: &str) -> Result<i64>;
    /// `true` or `false`.
    fn flag(&self, name: &str) -> Result<bool>;
    /// An array field, each element mapped by `item`.
    fn list<T>(&self, name: &str, item: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>>;
    /// A field that may be missing or `null`, mapped by `f` when present.
    fn opt<T>(&self, name: &str, f: impl FnOnce(&Value) -> Result<T>) -> Result<Option<T>>;
    /// A string field that names one of `table`'s values (an enum's cases).
    fn one_of<T: Clone>(&self, name: &str, table: &[(&str, T)]) -> Result<T>;
}

fn malformed(name: &str, what: &str) -> Error {
    Error::malformed(format!("`{name}` {what}"))
}

impl Fields for Value {
    fn field(&self, name: &str) -> Result<&Value> {
        match self.get(name) {
            None | Some(Value::Null) => Err(malformed(name, "is missing")),
            Some(v) => Ok(v),
        }
    }

    fn text(&self, name: &str) -> Result<String> {
        self.field(name)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| malformed(name, "is not a string"))
    }

    fn opt_text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(Value::as_str).map(str::to_string)
    }

    fn uint(&self, name: &str) -> Result<u32> {
        self.field(name)?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| malformed(name, "is not a whole number from 0 to 4294967295"))
    }

    fn int(&self, name: &str) -> Result<i64> {
        self.field(name)?
            .as_i64()
            .ok_or_else(|| malformed(name, "is not a whole number"))
    }

    fn flag(&self, name: &str) -> Result<bool> {
        self.field(name)?
            .as_bool()
            .ok_or_else(|| malformed(name, "is not true or false"))
    }

    fn list<T>(&self, name: &str, item: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
        self.field(name)?
            .as_array()
            .ok_or_else(|| malformed(name, "is not a list"))?
            .iter()
            .map(item)
            .collect()
    }

    fn opt<T>(&self, name: &str, f: impl FnOnce(&Value) -> Result<T>) -> Result<Option<T>> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => f(v).map(Some),
        }
    }

    fn one_of<T: Clone>(&self, name: &str, table: &[(&str, T)]) -> Result<T> {
        let text = self.text(name)?;
        table
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| malformed(name, &format!("is {text:?}, not one of the known values")))
    }
}

/// The name `table` gives `value`: an enum's case as the upstream spells it.
pub fn name_of<T: PartialEq>(table: &[(&'static str, T)], value: &T) -> &'static str {
    table.iter().find(|(_, v)| v == value).map_or("unknown", |(n, _)| n)
}
