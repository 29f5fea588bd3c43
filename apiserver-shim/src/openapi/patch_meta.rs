//! The strategic-merge-patch metadata of the published schemas: each list property of a
//! built-in kind gets `x-kubernetes-patch-strategy` (and `x-kubernetes-patch-merge-key`)
//! as kube-apiserver's documents carry them from the Go struct tags, so kubectl computes
//! strategic merge patches from the OpenAPI v3 document (its
//! `PatchMetaFromOpenAPIV3` reads them on the referencing property).
//!
//! The merge keys come from the same table the server patches with
//! (`strategic::merge_keys`): what kubectl sends and what the server merges agree by
//! construction. Owns only the annotation walk over a document's component schemas.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::strategic::merge_keys::{self, ListStrategy, MergeSchema};

const STRATEGY: &str = "x-kubernetes-patch-strategy";
const MERGE_KEY: &str = "x-kubernetes-patch-merge-key";

/// Maps (not lists) whose Go field carries `patchStrategy:"retainKeys"`: the kind, the
/// field's path.
const RETAIN_KEYS: &[(&str, &str)] = &[("Deployment", "spec.strategy")];

/// Lists whose items also retain keys (`patchStrategy:"merge,retainKeys"`), by the last
/// field of their path: a `PodSpec`'s `volumes`.
const MERGE_RETAIN_KEYS: &[&str] = &["volumes"];

/// Annotates the properties reachable from the component `root` (the kind `kind`'s
/// object schema) with the patch metadata of `merge`.
pub(super) fn annotate(
    schemas: &mut Map<String, Value>,
    root: &str,
    kind: &str,
    merge: Option<&MergeSchema>,
) {
    let mut visited = HashSet::new();
    walk(schemas, root, "", kind, merge, &mut visited);
}

/// The component a schema refers to: `$ref`, or the single `allOf` entry that schemars
/// writes when a reference carries a description.
fn referenced(schema: &Value) -> Option<String> {
    let r = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|first| first.get("$ref"))
    })?;
    r.as_str()?
        .strip_prefix("#/components/schemas/")
        .map(str::to_string)
}

fn walk(
    schemas: &mut Map<String, Value>,
    name: &str,
    prefix: &str,
    kind: &str,
    merge: Option<&MergeSchema>,
    visited: &mut HashSet<String>,
) {
    // A component is annotated once: its lists merge the same way wherever it sits.
    if !visited.insert(name.to_string()) {
        return;
    }
    let Some(props) = schemas
        .get(name)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let mut found: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut next: Vec<(String, String)> = Vec::new();
    for (key, prop) in &props {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let is_list = prop.get("type").and_then(Value::as_str) == Some("array");
        let mut ext = Map::new();
        if is_list {
            let retain = MERGE_RETAIN_KEYS.contains(&key.as_str());
            match merge_keys::lookup(merge, &path) {
                ListStrategy::ByKey(k) => {
                    let strategy = if retain { "merge,retainKeys" } else { "merge" };
                    ext.insert(STRATEGY.into(), Value::from(strategy));
                    ext.insert(MERGE_KEY.into(), Value::from(k));
                }
                ListStrategy::Set => {
                    ext.insert(STRATEGY.into(), Value::from("merge"));
                }
                ListStrategy::Replace => {}
            }
            if let Some(item) = prop.get("items").and_then(referenced) {
                next.push((item, format!("{path}[]")));
            }
        } else {
            if RETAIN_KEYS.contains(&(kind, path.as_str())) {
                ext.insert(STRATEGY.into(), Value::from("retainKeys"));
            }
            if let Some(child) = referenced(prop) {
                next.push((child, path));
            }
        }
        if !ext.is_empty() {
            found.push((key.clone(), ext));
        }
    }
    if let Some(props) = schemas
        .get_mut(name)
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        for (key, ext) in found {
            if let Some(Value::Object(p)) = props.get_mut(&key) {
                p.extend(ext);
            }
        }
    }
    for (child, path) in next {
        walk(schemas, &child, &path, kind, merge, visited);
    }
}
