//! Semantic validation of built-in kinds at create and update, with kube-apiserver's
//! field paths and messages (a 422 `Invalid` listing every cause): label syntax, config
//! keys, Deployment/ReplicaSet replicas, selectors and pod templates, Service ports and
//! type, pod specs (containers; restart, DNS, pull and termination message policies). Custom resources are validated by their CRD schema in `decode.rs`.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::registry::Resource;

fn invalid(field: String, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message,
        field,
    }
}

fn required(field: String) -> Cause {
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

fn labels(obj: &Value, path: &str, out: &mut Vec<Cause>) {
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

fn config_keys(obj: &Value, field: &str, out: &mut Vec<Cause>) {
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

fn non_negative(obj: &Value, ptr: &str, field: &str, out: &mut Vec<Cause>) {
    if let Some(n) = obj.pointer(ptr).and_then(Value::as_i64) {
        if n < 0 {
            out.push(invalid(
                field.into(),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
    }
}

fn containers(spec: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let list = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        out.push(required(format!("{path}.containers")));
        return;
    };
    let mut names = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => out.push(required(format!("{p}.name"))),
            Some(n) => {
                if names.contains(&n) {
                    out.push(Cause {
                        reason: "FieldValueDuplicate",
                        message: format!("Duplicate value: {n:?}"),
                        field: format!("{p}.name"),
                    });
                }
                names.push(n);
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            out.push(required(format!("{p}.image")));
        }
        for (j, port) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            port_range(
                port.get("containerPort"),
                &format!("{p}.ports[{j}].containerPort"),
                out,
            );
        }
    }
}

fn not_supported(field: String, value: &str, supported: &[&str]) -> Cause {
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
fn one_of(obj: &Value, key: &str, path: &str, supported: &[&str], out: &mut Vec<Cause>) {
    if let Some(v) = obj.get(key).and_then(Value::as_str) {
        if !supported.contains(&v) {
            out.push(not_supported(format!("{path}.{key}"), v, supported));
        }
    }
}

/// A pod spec (in a pod or a template): its containers and the enumerations kube-apiserver
/// checks (restart, DNS, image pull and termination message policies).
fn pod_spec(spec: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    containers(spec, path, out);
    let Some(spec) = spec else { return };
    one_of(
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
        out,
    );
    one_of(
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        out,
    );
    for key in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = format!("{path}.{key}[{i}]");
            one_of(
                c,
                "imagePullPolicy",
                &p,
                &["Always", "IfNotPresent", "Never"],
                out,
            );
            one_of(
                c,
                "terminationMessagePolicy",
                &p,
                &["File", "FallbackToLogsOnError"],
                out,
            );
        }
    }
}

fn port_range(v: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    match v.and_then(Value::as_i64) {
        Some(n) if (1..=65535).contains(&n) => {}
        Some(n) => out.push(invalid(
            field.into(),
            format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
        )),
        None => out.push(required(field.into())),
    }
}

fn workload(obj: &Value, out: &mut Vec<Cause>) {
    non_negative(obj, "/spec/replicas", "spec.replicas", out);
    let selector = obj.pointer("/spec/selector");
    let match_labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let has_exprs = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if match_labels.is_none_or(Map::is_empty) && !has_exprs {
        out.push(required("spec.selector".into()));
    }
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    if let Some(ml) = match_labels {
        let matches = ml
            .iter()
            .all(|(k, v)| template_labels.and_then(|t| t.get(k)) == Some(v));
        if !matches {
            out.push(invalid(
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    template_labels
                        .map(Value::to_string)
                        .unwrap_or_else(|| "null".into())
                ),
            ));
        }
    }
    if let Some(t) = template_labels {
        labels(t, "spec.template.metadata.labels", out);
    }
    let template = obj.pointer("/spec/template/spec");
    pod_spec(template, "spec.template.spec", out);
    // ValidatePodTemplateSpecForReplicaSet: the pods are restarted, never finished.
    if let Some(policy) = template
        .and_then(|t| t.get("restartPolicy"))
        .and_then(Value::as_str)
    {
        if policy != "Always" {
            out.push(not_supported(
                "spec.template.spec.restartPolicy".into(),
                policy,
                &["Always"],
            ));
        }
    }
}

fn service(obj: &Value, out: &mut Vec<Cause>) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort"
    ) {
        out.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            field: "spec.type".into(),
        });
    }
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    if ports.is_none_or(Vec::is_empty) && ty != "ExternalName" && !headless {
        out.push(required("spec.ports".into()));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        port_range(p.get("port"), &format!("spec.ports[{i}].port"), out);
        if let Some(t) = p.get("targetPort").and_then(Value::as_i64) {
            if !(1..=65535).contains(&t) {
                out.push(invalid(
                    format!("spec.ports[{i}].targetPort"),
                    format!("Invalid value: {t}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
    if let Some(sel) = obj.pointer("/spec/selector") {
        labels(sel, "spec.selector", out);
    }
}

/// Every problem with `obj`, a built-in object of `r`'s kind.
pub fn validate(r: &Resource, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(l) = obj.pointer("/metadata/labels") {
        labels(l, "metadata.labels", &mut out);
    }
    if r.custom {
        return out;
    }
    match (r.group.as_str(), r.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet") => workload(obj, &mut out),
        ("", "Service") => service(obj, &mut out),
        ("", "Pod") => pod_spec(obj.get("spec"), "spec", &mut out),
        ("", "ConfigMap") => {
            config_keys(obj, "data", &mut out);
            config_keys(obj, "binaryData", &mut out);
        }
        ("", "Secret") => config_keys(obj, "data", &mut out),
        ("autoscaling", "HorizontalPodAutoscaler")
            if obj
                .pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                < 1 =>
        {
            out.push(invalid(
                "spec.maxReplicas".into(),
                "Invalid value: must be greater than or equal to 1".into(),
            ));
        }
        _ => {}
    }
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
