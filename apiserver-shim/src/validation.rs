//! Semantic validation at create and update, with kube-apiserver's field paths and
//! messages (a 422 `Invalid` listing every cause): [`validate`] checks every object's
//! labels and asks the kind's strategy (`kinds/`) for the rest. Owns the field checks the
//! kinds share (label and config key syntax, port ranges, enumerations, Go's semantic
//! equality) and the spelling of their causes; knows no kind. Custom resources are
//! validated by their CRD schema in `decode.rs`.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::registry::Resource;

pub(crate) fn invalid(field: String, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message,
        field,
    }
}

pub(crate) fn required(field: String) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field,
    }
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && label_value_ok(name)
}

pub(crate) fn labels(obj: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(map) = obj.as_object() else { return };
    for (k, v) in map {
        if !label_key_ok(k) {
            out.push(invalid(
                path.to_string(),
                format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
            ));
        }
        match v.as_str() {
            Some(s) if label_value_ok(s) => {}
            _ => out.push(invalid(
                path.to_string(),
                format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
            )),
        }
    }
}

pub(crate) fn config_keys(obj: &Value, field: &str, out: &mut Vec<Cause>) {
    let Some(map) = obj.get(field).and_then(Value::as_object) else {
        return;
    };
    for k in map.keys() {
        let ok = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            out.push(invalid(
                format!("{field}[{k}]"),
                format!("Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
            ));
        }
    }
}

pub(crate) fn non_negative(obj: &Value, ptr: &str, field: &str, out: &mut Vec<Cause>) {
    if let Some(n) = obj.pointer(ptr).and_then(Value::as_i64) {
        if n < 0 {
            out.push(invalid(
                field.into(),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
    }
}

pub(crate) fn not_supported(field: String, value: &str, supported: &[&str]) -> Cause {
    let list = supported
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Cause {
        reason: "FieldValueNotSupported",
        message: format!("Unsupported value: {value:?}: supported values: {list}"),
        field,
    }
}

/// `value` at `key` of `obj`, if set, must be one of `supported`.
pub(crate) fn one_of(obj: &Value, key: &str, path: &str, supported: &[&str], out: &mut Vec<Cause>) {
    if let Some(v) = obj.get(key).and_then(Value::as_str) {
        if !supported.contains(&v) {
            out.push(not_supported(format!("{path}.{key}"), v, supported));
        }
    }
}

pub(crate) fn port_range(v: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    match v.and_then(Value::as_i64) {
        Some(n) if (1..=65535).contains(&n) => {}
        Some(n) => out.push(invalid(
            field.into(),
            format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
        )),
        None => out.push(required(field.into())),
    }
}

/// `Cause` `FieldValueForbidden` at `field`, the message prefixed as kube-apiserver does.
pub(crate) fn forbidden(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {message}"),
        field: field.into(),
    }
}

/// `Cause` `FieldValueInvalid` at `field`, the message prefixed with `Invalid value: `.
pub(crate) fn invalid_value(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {message}"),
        field: field.into(),
    }
}

/// A JSON value with what Go's semantic equality ignores removed: nulls, empty lists and
/// empty maps count as absent.
pub(crate) fn semantic(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) if m.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| semantic(x).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(m) => {
            let out: Map<String, Value> = m
                .iter()
                .filter_map(|(k, x)| semantic(x).map(|x| (k.clone(), x)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// Go's `apiequality.Semantic.DeepEqual` on two optional JSON values.
pub(crate) fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    a.and_then(semantic) == b.and_then(semantic)
}

/// Every problem with `obj`, an object of `r`'s kind: its labels, then what the kind's
/// strategy checks.
pub fn validate(r: &Resource, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(l) = obj.pointer("/metadata/labels") {
        labels(l, "metadata.labels", &mut out);
    }
    r.strategy().validate(obj, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn deployment_rules() {
        let r = Registry::new()
            .snapshot()
            .get("apps", "v1", "deployments")
            .cloned()
            .expect("r");
        let bad = json!({"spec": {"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let fields: Vec<String> = validate(&r, &bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.replicas",
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].image"
            ]
        );
    }

    #[test]
    fn pod_spec_enumerations() {
        let table = Registry::new().snapshot();
        let pods = table.get("", "v1", "pods").cloned().expect("pods");
        let pod = json!({"spec": {"restartPolicy": "Sometimes", "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "a", "image": "i", "imagePullPolicy": "Maybe"}]}});
        let causes = validate(&pods, &pod);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.restartPolicy", "spec.containers[0].imagePullPolicy"]
        );
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        let rs = table.get("apps", "v1", "replicasets").cloned().expect("rs");
        let never = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        let fields: Vec<String> = validate(&rs, &never).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.template.spec.restartPolicy"]);
    }

    #[test]
    fn label_syntax() {
        assert!(label_key_ok("app.kubernetes.io/name"));
        assert!(!label_key_ok("bad key"));
        assert!(label_value_ok(""));
        assert!(!label_value_ok("-x"));
    }
}
