//! Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that ask for them
//! (`Accept: …;as=Table;…`, as `kubectl get` does), with kube-apiserver's columns for
//! built-in kinds (each kind's strategy in `kinds/` lists them, built from `cells.rs`)
//! and a CRD's `additionalPrinterColumns` for custom resources. Rows carry the object as `includeObject` asks (`None`, `Metadata` — the
//! default, as `PartialObjectMetadata` — or `Object`). Watch events become one-row
//! Tables with the same columns, so `kubectl get -w` prints one header.

pub mod cells;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

/// One column: definition plus how to compute its cell.
pub struct Column {
    /// Header, e.g. `Name`.
    pub name: String,
    /// `string`, `integer`, `date`, …
    pub ty: &'static str,
    /// `name` for the Name column, else "".
    pub format: &'static str,
    /// 0, or 1 for `-o wide` only.
    pub priority: u8,
    /// Column description.
    pub description: String,
    /// The cell.
    pub cell: Cell,
}

/// How a column's cell is computed.
pub enum Cell {
    /// A function of the object.
    Fn(fn(&Value) -> Value),
    /// A simple JSONPath (`.status.readyReplicas`, `.spec.items[0].name`).
    Path(String),
}

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        first.replace(' ', "").contains("as=Table") && first.contains("g=meta.k8s.io")
    })
}

/// What a row carries (`includeObject`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// `PartialObjectMetadata`.
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parses `includeObject`.
    pub fn parse(v: Option<&str>) -> ApiResult<Include> {
        match v {
            None | Some("") | Some("Metadata") => Ok(Include::Metadata),
            Some("Object") => Ok(Include::Object),
            Some("None") => Ok(Include::None),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// The columns for a resource at a version.
pub fn columns(r: &Resource, version: &str) -> Vec<Column> {
    if r.custom {
        return custom_columns(r, version);
    }
    r.strategy().columns()
}

fn custom_columns(r: &Resource, version: &str) -> Vec<Column> {
    let mut cols = vec![name_column()];
    let printer = r.printer_columns.get(version).cloned().unwrap_or_default();
    if printer.is_empty() {
        cols.push(age_column());
        return cols;
    }
    for c in printer {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        cols.push(Column {
            name: s("name"),
            ty: match s("type").as_str() {
                "integer" => "integer",
                "number" => "number",
                "boolean" => "boolean",
                "date" => "date",
                _ => "string",
            },
            format: "",
            priority: c
                .get("priority")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(255) as u8,
            description: s("description"),
            cell: Cell::Path(s("jsonPath")),
        });
    }
    cols
}

/// The `Name` column.
pub fn name_column() -> Column {
    Column {
        name: "Name".into(),
        ty: "string",
        format: "name",
        priority: 0,
        description: "Name must be unique within a namespace.".into(),
        cell: Cell::Fn(|o| {
            json!(o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(""))
        }),
    }
}

/// The `Age` column.
pub fn age_column() -> Column {
    Column {
        name: "Age".into(),
        ty: "string",
        format: "",
        priority: 0,
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
        cell: Cell::Fn(|o| json!(age(o.pointer("/metadata/creationTimestamp")))),
    }
}

/// kube-apiserver's `HumanDuration` of the time since an RFC 3339 timestamp.
pub fn age(ts: Option<&Value>) -> String {
    let Some(t) = ts
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - t.as_second())
}

/// Formats seconds as kubectl does (`45s`, `3m20s`, `5h`, `2d3h`, `1y`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Evaluates a simple JSONPath: dotted fields with optional `[n]` indexes.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        let (field, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?;
        }
    }
    Some(cur)
}

fn cell(col: &Column, obj: &Value) -> Value {
    match &col.cell {
        Cell::Fn(f) => f(obj),
        Cell::Path(p) => match json_path(obj, p) {
            None => Value::Null,
            Some(v) if col.ty == "date" => json!(age(Some(v))),
            Some(v @ (Value::Object(_) | Value::Array(_))) => json!(v.to_string()),
            Some(v) => v.clone(),
        },
    }
}

fn row_object(obj: &Value, include: Include) -> Value {
    match include {
        Include::None => Value::Null,
        Include::Object => obj.clone(),
        Include::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// Builds a Table of `objects` at revision `rev`.
pub fn build(cols: &[Column], objects: &[Value], rev: Option<u64>, include: Include) -> Value {
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format,
                   "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o)).collect();
            let mut row = json!({"cells": cells});
            if include != Include::None {
                row["object"] = row_object(o, include);
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rev) = rev {
        meta["resourceVersion"] = json!(rev.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_kubectl_prints_them() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (400 * 86400, "400d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn json_paths() {
        let o = json!({"a": {"b": [{"c": 1}]}});
        assert_eq!(json_path(&o, ".a.b[0].c"), Some(&json!(1)));
        assert_eq!(json_path(&o, ".a.x"), None);
    }

    #[test]
    fn table_accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
