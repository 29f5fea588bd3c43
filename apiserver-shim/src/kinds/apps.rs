//! The apps group's workloads (kube-apiserver's pkg/registry/apps/deployment and
//! replicaset): defaults (replicas, Deployment strategy, the template's pod spec),
//! validation (replicas, selector matching the template, the template's pod spec,
//! `restartPolicy: Always`), the immutable selector on update, generation tracking,
//! printer columns, field labels and the template's merge keys. Both serve `scale`.

use serde_json::{json, Map, Value};

use super::pod_spec;
use super::{Kind, KindStrategy};
use crate::defaults::set_default;
use crate::error::Cause;
use crate::strategic::merge_keys::MergeSchema;
use crate::table::cells::{col, containers, i, selector_string};
use crate::table::{age_column, name_column, Column};
use crate::validation::{
    invalid, invalid_value, labels, non_negative, not_supported, required, semantic_eq,
};

/// `/apis/apps/v1/deployments`.
pub const DEPLOYMENT: Kind = Kind {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    namespaced: true,
    short_names: &["deploy"],
    categories: &["all"],
    status: true,
    scale: true,
    strategy: &Deployment,
};

/// `/apis/apps/v1/replicasets`.
pub const REPLICA_SET: Kind = Kind {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    namespaced: true,
    short_names: &["rs"],
    categories: &["all"],
    status: true,
    scale: true,
    strategy: &ReplicaSet,
};

/// Where a workload's pod spec sits.
const MERGE_SCHEMA: MergeSchema = MergeSchema {
    pod_spec: Some("spec.template.spec"),
    rules: &[],
};

/// The Deployment strategy.
pub struct Deployment;

impl KindStrategy for Deployment {
    fn default(&self, obj: &mut Value) {
        set_default(obj, "/spec/replicas", json!(1));
        set_default(obj, "/spec/revisionHistoryLimit", json!(10));
        set_default(obj, "/spec/progressDeadlineSeconds", json!(600));
        set_default(obj, "/spec/strategy/type", json!("RollingUpdate"));
        if obj.pointer("/spec/strategy/type") == Some(&json!("RollingUpdate")) {
            set_default(obj, "/spec/strategy/rollingUpdate/maxSurge", json!("25%"));
            set_default(
                obj,
                "/spec/strategy/rollingUpdate/maxUnavailable",
                json!("25%"),
            );
        }
        pod_spec::default_template(obj);
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        workload(obj, out);
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        immutable_selector(old, new)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Ready", 0, |o| {
            json!(format!(
                "{}/{}",
                i(o, "/status/readyReplicas"),
                i(o, "/spec/replicas")
            ))
        }));
        c.push(col("Up-to-date", 0, |o| {
            json!(i(o, "/status/updatedReplicas"))
        }));
        c.push(col("Available", 0, |o| {
            json!(i(o, "/status/availableReplicas"))
        }));
        c.push(age_column());
        workload_wide_columns(&mut c);
        c
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MERGE_SCHEMA)
    }
}

/// The ReplicaSet strategy.
pub struct ReplicaSet;

impl KindStrategy for ReplicaSet {
    fn default(&self, obj: &mut Value) {
        set_default(obj, "/spec/replicas", json!(1));
        pod_spec::default_template(obj);
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        workload(obj, out);
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        immutable_selector(old, new)
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Desired", 0, |o| json!(i(o, "/spec/replicas"))));
        c.push(col("Current", 0, |o| json!(i(o, "/status/replicas"))));
        c.push(col("Ready", 0, |o| json!(i(o, "/status/readyReplicas"))));
        c.push(age_column());
        workload_wide_columns(&mut c);
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MERGE_SCHEMA)
    }
}

/// The `-o wide` columns Deployments and ReplicaSets share.
fn workload_wide_columns(c: &mut Vec<Column>) {
    c.push(col("Containers", 1, |o| {
        containers(o, "/spec/template/spec/containers", "name")
    }));
    c.push(col("Images", 1, |o| {
        containers(o, "/spec/template/spec/containers", "image")
    }));
    c.push(col("Selector", 1, |o| {
        selector_string(o, "/spec/selector/matchLabels")
    }));
}

/// `ValidateDeployment` / `ValidateReplicaSet`: replicas, selector, template.
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
    pod_spec::validate(template, "spec.template.spec", out);
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

/// Go's `%#v` of a `metav1.LabelSelector`, as kube-apiserver prints an immutable selector.
fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "(*v1.LabelSelector)(nil)".into();
    };
    let quote = |s: &str| Value::String(s.to_string()).to_string();
    let labels = match sel.get("matchLabels").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let body = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or(""))))
                .collect::<Vec<_>>()
                .join(", ");
            format!("map[string]string{{{body}}}")
        }
        _ => "map[string]string(nil)".into(),
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => {
            let items = a
                .iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                    let values = match e.get("values").and_then(Value::as_array) {
                        Some(v) if !v.is_empty() => format!(
                            "[]string{{{}}}",
                            v.iter()
                                .map(|x| quote(x.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => "[]string(nil)".into(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        quote(s("key")),
                        quote(s("operator"))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("[]v1.LabelSelectorRequirement{{{items}}}")
        }
        _ => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// apps/v1 `ValidateDeploymentUpdate` / `ValidateReplicaSetUpdate`: `spec.selector` is
/// immutable.
fn immutable_selector(old: &Value, new: &Value) -> Vec<Cause> {
    let (o, n) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
    if semantic_eq(o, n) {
        return Vec::new();
    }
    vec![invalid_value(
        "spec.selector",
        format!("{}: field is immutable", go_label_selector(n)),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn workload_selectors_are_immutable() {
        for plural in ["Deployment", "ReplicaSet"] {
            let s = super::super::builtin("apps", plural)
                .map(|k| k.strategy)
                .expect("built in");
            let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
            let same = json!({"spec": {"selector": {"matchLabels": {"app": "a"}, "matchExpressions": []}, "replicas": 3}});
            assert!(s.validate_update(&old, &same).is_empty());
            let changed = json!({"spec": {"selector": {"matchLabels": {"tier": "x", "app": "b"}}}});
            let causes = s.validate_update(&old, &changed);
            assert_eq!(fields(&causes), ["spec.selector"]);
            assert_eq!(
                causes[0].message,
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            );
        }
    }
}
