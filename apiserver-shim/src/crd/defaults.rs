//! Structural-schema defaulting of custom resources, as apiextensions-apiserver does it:
//! a property's `default:` is set where the property is absent (or null and not
//! `nullable`) and its parent object exists — a default never creates the parent — then
//! the walk goes down into properties, `additionalProperties` values and array items,
//! so defaults set higher up get their own nested defaults. Before that, null values that
//! are neither `nullable` nor defaulted are removed. Default values are copied as written.
//!
//! Applied to every custom resource decoded from a request (create, update, patch and
//! server-side apply) and to custom resources read from storage, so an object stored
//! before a default was added to its CRD reads as defaulted.
//!
//! Owns only the defaulting walk over a CRD's `openAPIV3Schema`; it does not validate or
//! prune unknown fields (`decode.rs`) nor know any kind.

use serde_json::{Map, Value};

use crate::registry::Resource;

/// Defaults `object` with the schema of `version` of the custom resource `r`; built-in
/// kinds and versions without a schema are left alone.
pub fn apply(r: &Resource, version: &str, object: &mut Value) {
    if !r.custom {
        return;
    }
    if let Some(schema) = r.schemas.get(version) {
        default_object(schema, object);
    }
}

/// Whether any version's schema of `r` declares a default (objects read from storage
/// need the defaulting walk only then).
pub fn declares_defaults(r: &Resource) -> bool {
    r.custom && r.schemas.values().any(has_default)
}

/// Defaults a whole object: the nulls pass, then the defaults pass, as upstream's
/// defaulter runs them.
pub fn default_object(schema: &Value, object: &mut Value) {
    prune_nulls(object, Some(schema));
    default(object, schema);
}

fn has_default(schema: &Value) -> bool {
    let Some(m) = schema.as_object() else {
        return false;
    };
    m.contains_key("default")
        || m.get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.values().any(has_default))
        || m.get("additionalProperties").is_some_and(has_default)
        || m.get("items").is_some_and(has_default)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn default_value(schema: &Value) -> Option<&Value> {
    // `default: null` declares no default, as in Go where a nil default is none.
    schema.get("default").filter(|d| !d.is_null())
}

/// The schema of the field `key` of an object described by `schema`: its property, else
/// the schema of `additionalProperties` when that is a schema.
fn field_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

/// Removes nulls whose schema is neither nullable nor defaulted; nulls with a default are
/// left for [`default`] to fill.
fn prune_nulls(value: &mut Value, schema: Option<&Value>) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                let s = field_schema(schema, k);
                !(v.is_null() && s.is_some_and(|s| !nullable(s) && default_value(s).is_none()))
            });
            for (k, v) in map.iter_mut() {
                prune_nulls(v, field_schema(schema, k));
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            for item in items {
                prune_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

/// Whether `v` is a null the schema `s` does not allow (so its default replaces it).
fn non_nullable_null(v: &Value, s: &Value) -> bool {
    v.is_null() && !nullable(s)
}

fn default(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => default_fields(map, schema),
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for item in items {
                if non_nullable_null(item, item_schema) {
                    if let Some(d) = default_value(item_schema) {
                        *item = d.clone();
                    }
                }
                default(item, item_schema);
            }
        }
        _ => {}
    }
}

fn default_fields(map: &mut Map<String, Value>, schema: &Value) {
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, prop) in props.into_iter().flatten() {
        let Some(d) = default_value(prop) else {
            continue;
        };
        let missing = match map.get(k) {
            None => true,
            Some(v) => non_nullable_null(v, prop),
        };
        if missing {
            map.insert(k.clone(), d.clone());
        }
    }
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map.iter_mut() {
        if let Some(prop) = props.and_then(|p| p.get(k)) {
            default(v, prop);
        } else if let Some(add) = additional {
            if non_nullable_null(v, add) {
                if let Some(d) = default_value(add) {
                    *v = d.clone();
                }
            }
            default(v, add);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "mode": {"type": "string", "default": "fast"},
                        "note": {"type": "string", "nullable": true, "default": "n"},
                        "plain": {"type": "string"},
                        "probe": {
                            "type": "object",
                            "properties": {
                                "period": {"type": "integer", "default": 10},
                                "path": {"type": "string"},
                            },
                        },
                        "withDefaultObject": {
                            "type": "object",
                            "default": {},
                            "properties": {"inner": {"type": "integer", "default": 7}},
                        },
                        "ports": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "default": {"name": "http"},
                                "properties": {
                                    "name": {"type": "string"},
                                    "protocol": {"type": "string", "default": "TCP"},
                                },
                            },
                        },
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": "string", "default": "on"},
                        },
                    },
                },
            },
        })
    }

    #[test]
    fn absent_fields_get_defaults_only_under_existing_parents() {
        let mut o = json!({"spec": {}});
        default_object(&schema(), &mut o);
        assert_eq!(
            o,
            json!({"spec": {"replicas": 1, "mode": "fast", "note": "n",
                             "withDefaultObject": {"inner": 7}}}),
            "no probe, ports or labels appear: their parents do not exist"
        );
        let mut none = json!({"metadata": {"name": "x"}});
        default_object(&schema(), &mut none);
        assert_eq!(
            none,
            json!({"metadata": {"name": "x"}}),
            "no spec, no defaults"
        );
    }

    #[test]
    fn nested_objects_items_and_map_values_are_defaulted() {
        let mut o = json!({"spec": {
            "replicas": 3,
            "probe": {"path": "/"},
            "ports": [{"name": "a"}, null, {"name": "b", "protocol": "UDP"}],
            "labels": {"x": null, "y": "off"},
        }});
        default_object(&schema(), &mut o);
        let spec = &o["spec"];
        assert_eq!(spec["replicas"], 3, "a set value stays");
        assert_eq!(spec["probe"], json!({"path": "/", "period": 10}));
        assert_eq!(
            spec["ports"],
            json!([{"name": "a", "protocol": "TCP"}, {"name": "http", "protocol": "TCP"},
                   {"name": "b", "protocol": "UDP"}])
        );
        assert_eq!(spec["labels"], json!({"x": "on", "y": "off"}));
    }

    #[test]
    fn nulls_follow_nullable() {
        let mut o = json!({"spec": {"mode": null, "note": null, "plain": null}});
        default_object(&schema(), &mut o);
        let spec = o["spec"].as_object().expect("spec");
        assert_eq!(spec["mode"], "fast", "a non-nullable null is defaulted");
        assert_eq!(spec["note"], Value::Null, "a nullable null stays null");
        assert!(
            !spec.contains_key("plain"),
            "a non-nullable null without default goes"
        );
    }

    #[test]
    fn defaulting_twice_changes_nothing() {
        let mut once = json!({"spec": {"ports": [{}], "probe": {}}});
        default_object(&schema(), &mut once);
        let mut twice = once.clone();
        default_object(&schema(), &mut twice);
        assert_eq!(once, twice);
    }
}
