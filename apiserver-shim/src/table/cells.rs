//! Building blocks of the built-in kinds' printer columns (the kinds' `columns` in
//! `kinds/`): a column from a function of the object, and the cell spellings
//! kube-apiserver's printers share (`<none>`, `k=v` selectors, comma-joined container
//! fields). Knows no kind.

use serde_json::{json, Value};

use super::{Cell, Column};

/// A column computed by `f`; its type is `integer` for kube-apiserver's counting
/// columns, else `string`.
pub fn col(name: &str, priority: u8, f: fn(&Value) -> Value) -> Column {
    Column {
        name: name.into(),
        ty: if matches!(
            name,
            "Restarts"
                | "Desired"
                | "Current"
                | "Data"
                | "Up-to-date"
                | "Available"
                | "MinPods"
                | "MaxPods"
                | "Replicas"
                | "Secrets"
        ) {
            "integer"
        } else {
            "string"
        },
        format: "",
        priority,
        description: String::new(),
        cell: Cell::Fn(f),
    }
}

/// The string at `p`, or "".
pub fn s<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `p`, or 0.
pub fn i(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// `<none>` for an empty string.
pub fn none_if_empty(v: String) -> Value {
    if v.is_empty() {
        json!("<none>")
    } else {
        json!(v)
    }
}

/// The list at `p`, or none.
pub fn arr<'a>(o: &'a Value, p: &str) -> &'a [Value] {
    o.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A label map as `k=v,…` sorted, or `<none>`.
pub fn selector_string(o: &Value, p: &str) -> Value {
    let Some(m) = o.pointer(p).and_then(Value::as_object) else {
        return json!("<none>");
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    none_if_empty(pairs.join(","))
}

/// One field of each container of the list at `p`, comma-joined, or `<none>`.
pub fn containers(o: &Value, p: &str, field: &str) -> Value {
    none_if_empty(
        arr(o, p)
            .iter()
            .map(|c| c.get(field).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(","),
    )
}
