//! `ValidatePodUpdate`: what an update may change in a pod's spec (container and init
//! container images, `activeDeadlineSeconds` set or lowered, added tolerations and
//! `tolerationSeconds`, removed scheduling gates, `terminationGracePeriodSeconds` from
//! negative to 1), with kube-apiserver's causes and its diff of the refused change.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::validation::{forbidden, invalid_value as invalid, semantic, semantic_eq};

/// The fields kube-apiserver's message lists as updatable (`updatablePodSpecFields`).
const UPDATABLE_POD_SPEC_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

fn list<'a>(spec: &'a Value, key: &str) -> &'a [Value] {
    spec.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `ValidateContainerUpdates`: same number of containers, each with an image. `true`
/// when validation stops here.
fn container_updates(new: &[Value], old: &[Value], path: &str, out: &mut Vec<Cause>) -> bool {
    if new.len() != old.len() {
        out.push(forbidden(
            path,
            "pod updates may not add or remove containers".into(),
        ));
        return true;
    }
    for (i, c) in new.iter().enumerate() {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let field = format!("{path}[{i}].image");
        if image.is_empty() {
            out.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field: field.clone(),
            });
        }
        if image.trim() != image {
            out.push(invalid(
                &field,
                format!("{image:?}: must not have leading or trailing whitespace"),
            ));
        }
    }
    false
}

/// A toleration without `tolerationSeconds`, which may change.
fn toleration_shape(t: &Value) -> Option<Value> {
    let mut t = t.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("tolerationSeconds");
    }
    semantic(&t)
}

/// `ValidatePodUpdate`: only images, `activeDeadlineSeconds` (set, or lowered), added
/// tolerations and removed scheduling gates may change in a pod's spec.
pub(super) fn pod_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let empty = Value::Object(Map::new());
    let old_spec = old.get("spec").unwrap_or(&empty);
    let new_spec = new.get("spec").unwrap_or(&empty);
    for key in ["containers", "initContainers"] {
        let path = format!("spec.{key}");
        if container_updates(list(new_spec, key), list(old_spec, key), &path, &mut out) {
            return out;
        }
    }
    let deadline = |s: &Value| {
        s.get("activeDeadlineSeconds")
            .filter(|v| !v.is_null())
            .cloned()
    };
    match (deadline(old_spec), deadline(new_spec)) {
        (_, Some(n))
            if n.as_i64()
                .is_none_or(|n| !(0..=i64::from(i32::MAX)).contains(&n)) =>
        {
            out.push(invalid(
                "spec.activeDeadlineSeconds",
                format!("{n}: must be between 0 and {}, inclusive", i32::MAX),
            ));
            return out;
        }
        (Some(o), Some(n)) if o.as_i64() < n.as_i64() => {
            out.push(invalid(
                "spec.activeDeadlineSeconds",
                format!("{n}: must be less than or equal to previous value"),
            ));
            return out;
        }
        (Some(_), None) => out.push(invalid(
            "spec.activeDeadlineSeconds",
            "\"null\": must not update from a positive integer to nil value".into(),
        )),
        _ => {}
    }
    let new_tolerations: Vec<Option<Value>> = list(new_spec, "tolerations")
        .iter()
        .map(toleration_shape)
        .collect();
    if list(old_spec, "tolerations")
        .iter()
        .any(|t| !new_tolerations.contains(&toleration_shape(t)))
    {
        out.push(forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds".into(),
        ));
    }
    let gate_name = |g: &Value| g.get("name").and_then(Value::as_str).map(str::to_string);
    let old_gates: Vec<Option<String>> = list(old_spec, "schedulingGates")
        .iter()
        .map(gate_name)
        .collect();
    for (i, g) in list(new_spec, "schedulingGates").iter().enumerate() {
        let name = gate_name(g);
        if !old_gates.contains(&name) {
            out.push(forbidden(
                &format!("spec.schedulingGates[{i}].name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    name.unwrap_or_default()
                ),
            ));
        }
    }
    // What is left once the updatable fields are taken from the old spec must be equal.
    let mut munged = new_spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(key).and_then(Value::as_array_mut) {
                for (c, o) in cs.iter_mut().zip(list(old_spec, key)) {
                    if let Some(c) = c.as_object_mut() {
                        match o.get("image") {
                            Some(img) => c.insert("image".into(), img.clone()),
                            None => c.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = old_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0)
            && m.get("terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace.unwrap_or(0)),
            );
        }
    }
    if !semantic_eq(Some(old_spec), Some(&munged)) {
        out.push(forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {}\n{}",
                UPDATABLE_POD_SPEC_FIELDS.join(","),
                spec_diff(old_spec, &munged)
            ),
        ));
    }
    out
}

/// A short diff of two pod specs, one `-`/`+` line pair per changed top-level field (in
/// place of the Go struct diff kube-apiserver appends).
fn spec_diff(old: &Value, new: &Value) -> String {
    let mut keys: Vec<&String> = old
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(new.as_object().into_iter().flat_map(|m| m.keys()))
        .collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| {
        v.and_then(semantic)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "null".into())
    };
    let mut lines = vec!["  v1.PodSpec{".to_string()];
    for k in keys {
        let (o, n) = (old.get(k.as_str()), new.get(k.as_str()));
        if !semantic_eq(o, n) {
            lines.push(format!("- \t{k}: {},", show(o)));
            lines.push(format!("+ \t{k}: {},", show(n)));
        }
    }
    lines.push("  }".into());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    fn base() -> Value {
        json!({
            "containers": [{"name": "app", "image": "registry.local/app:1", "terminationMessagePath": "/dev/termination-log"}],
            "dnsPolicy": "ClusterFirst",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}],
            "schedulingGates": [{"name": "g1"}, {"name": "g2"}],
        })
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn pod_spec_allows_images_deadline_tolerations_and_gate_removal() {
        let old = pod(base());
        let mut spec = base();
        spec["containers"][0]["image"] = json!("registry.local/app:2");
        spec["activeDeadlineSeconds"] = json!(60);
        spec["tolerations"][0]["tolerationSeconds"] = json!(5);
        spec["tolerations"]
            .as_array_mut()
            .expect("list")
            .push(json!({"key": "other", "operator": "Exists"}));
        spec["schedulingGates"] = json!([{"name": "g2"}]);
        spec["nodeSelector"] = json!({});
        assert!(pod_update(&old, &pod(spec)).is_empty());
    }

    #[test]
    fn pod_spec_refuses_other_changes() {
        let old = pod(base());
        let mut spec = base();
        spec["nodeName"] = json!("node-x");
        let causes = pod_update(&old, &pod(spec));
        assert_eq!(fields(&causes), ["spec"]);
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        assert!(
            causes[0].message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds`"),
            "{}",
            causes[0].message
        );
        assert!(
            causes[0].message.contains("+ \tnodeName: \"node-x\","),
            "{}",
            causes[0].message
        );

        let mut spec = base();
        spec["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "b", "image": "b:1"}));
        let causes = pod_update(&old, &pod(spec));
        assert_eq!(fields(&causes), ["spec.containers"]);

        let mut spec = base();
        spec["tolerations"] = json!([]);
        spec["schedulingGates"] = json!([{"name": "g1"}, {"name": "new"}]);
        let causes = pod_update(&old, &pod(spec));
        assert_eq!(
            fields(&causes),
            ["spec.tolerations", "spec.schedulingGates[1].name"]
        );

        let mut with_deadline = base();
        with_deadline["activeDeadlineSeconds"] = json!(30);
        let mut longer = base();
        longer["activeDeadlineSeconds"] = json!(40);
        let causes = pod_update(&pod(with_deadline.clone()), &pod(longer));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
        let causes = pod_update(&pod(with_deadline), &pod(base()));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
    }
}
