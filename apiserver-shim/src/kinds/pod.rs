//! Pods (kube-apiserver's pkg/registry/core/pod): defaults (`SetDefaults_Pod`, the
//! service account admission's `default`), the create-time status (phase, QoS class,
//! `SchedulingGated`), `ValidatePodUpdate` (only images, `activeDeadlineSeconds`,
//! added tolerations and removed scheduling gates may change), the status strategy
//! keeping `qosClass`, graceful deletion, the extra subresources (`binding`, `exec`,
//! `attach`, `log`, `portforward`, `eviction`), printer columns, field labels and the
//! merge keys of `status`.

use serde_json::{Map, Value, json};

use super::pod_spec;
use super::{Extra, Kind, KindStrategy, Subresource};
use crate::defaults::set_default;
use crate::error::Cause;
use crate::strategic::merge_keys::{ListStrategy::ByKey, MergeSchema};
use crate::table::cells::{arr, col, none_if_empty, s};
use crate::table::{Column, age_column, name_column};
use crate::validation::{forbidden, invalid_value as invalid, semantic, semantic_eq};

/// `/api/v1/pods`.
pub const POD: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    status: true,
    scale: false,
    strategy: &Pod,
};

/// The pod strategy.
pub struct Pod;

const MERGE_SCHEMA: MergeSchema = MergeSchema {
    pod_spec: Some("spec"),
    rules: &[
        ("status.podIPs", ByKey("ip")),
        ("status.hostIPs", ByKey("ip")),
        ("status.resourceClaimStatuses", ByKey("name")),
    ],
};

impl KindStrategy for Pod {
    fn default(&self, obj: &mut Value) {
        default_pod(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        default_pod(obj);
        pod_status(obj);
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        pod_spec::validate(obj.get("spec"), "spec", out);
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        pod_update(old, new)
    }

    /// `podStatusStrategy.PrepareForUpdate`: a pod's `status.qosClass`, set at create,
    /// is backfilled when the write leaves it out.
    fn prepare_status_update(&self, old: &Value, new: &mut Value) {
        let Some(qos) = old.pointer("/status/qosClass").filter(|q| q.is_string()) else {
            return;
        };
        let missing = new
            .pointer("/status/qosClass")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if let (true, Some(status)) = (
            missing,
            new.get_mut("status").and_then(Value::as_object_mut),
        ) {
            status.insert("qosClass".into(), qos.clone());
        }
    }

    fn deletes_gracefully(&self) -> bool {
        true
    }

    /// The requested period, else the pod's `terminationGracePeriodSeconds`; a pod that
    /// no node runs (unbound, or finished) gets 0.
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Failed" | "Succeeded")
        );
        if !bound || finished {
            return 0;
        }
        requested.unwrap_or(default)
    }

    fn subresources(&self) -> &'static [Subresource] {
        POD_SUBRESOURCES
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Ready", 0, |o| {
            let total = arr(o, "/spec/containers").len();
            let ready = arr(o, "/status/containerStatuses")
                .iter()
                .filter(|cs| cs.get("ready") == Some(&json!(true)))
                .count();
            json!(format!("{ready}/{total}"))
        }));
        c.push(col("Status", 0, pod_status_cell));
        c.push(col("Restarts", 0, |o| {
            json!(
                arr(o, "/status/containerStatuses")
                    .iter()
                    .map(|cs| cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                    .sum::<i64>()
            )
        }));
        c.push(age_column());
        c.push(col("IP", 1, |o| {
            none_if_empty(s(o, "/status/podIP").into())
        }));
        c.push(col("Node", 1, |o| {
            none_if_empty(s(o, "/spec/nodeName").into())
        }));
        c.push(col("Nominated Node", 1, |o| {
            none_if_empty(s(o, "/status/nominatedNodeName").into())
        }));
        c.push(col("Readiness Gates", 1, |o| {
            let gates = arr(o, "/spec/readinessGates");
            if gates.is_empty() {
                json!("<none>")
            } else {
                json!(format!("0/{}", gates.len()))
            }
        }));
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ]
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MERGE_SCHEMA)
    }
}

const POD_SUBRESOURCES: &[Subresource] = &[
    Subresource {
        extra: Extra::Attach,
        name: "attach",
        group_version: ("", "v1"),
        kind: "PodAttachOptions",
        verbs: &["create", "get"],
    },
    Subresource {
        extra: Extra::Binding,
        name: "binding",
        group_version: ("", "v1"),
        kind: "Binding",
        verbs: &["create"],
    },
    Subresource {
        extra: Extra::Exec,
        name: "exec",
        group_version: ("", "v1"),
        kind: "PodExecOptions",
        verbs: &["create", "get"],
    },
    Subresource {
        extra: Extra::Eviction,
        name: "eviction",
        group_version: ("policy", "v1"),
        kind: "Eviction",
        verbs: &["create"],
    },
    Subresource {
        extra: Extra::Log,
        name: "log",
        group_version: ("", "v1"),
        kind: "Pod",
        verbs: &["get"],
    },
    Subresource {
        extra: Extra::PortForward,
        name: "portforward",
        group_version: ("", "v1"),
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    },
];

/// A pod's defaults: those of every pod spec, plus `SetDefaults_Pod` (service links,
/// requests defaulting to limits) and the service account admission's `default`.
fn default_pod(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    pod_spec::default(spec);
    set_default(spec, "/enableServiceLinks", json!(true));
    let unnamed = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if let (true, Some(m)) = (unnamed, spec.as_object_mut()) {
        m.insert("serviceAccountName".into(), json!("default"));
        m.insert("serviceAccount".into(), json!("default"));
    }
    for key in ["containers", "initContainers"] {
        for c in spec
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let limits = c
                .pointer("/resources/limits")
                .and_then(Value::as_object)
                .cloned();
            for (k, v) in limits.into_iter().flatten() {
                set_default(c, &format!("/resources/requests/{k}"), v);
            }
        }
    }
}

/// The create-time pod status (`PrepareForCreate`): phase `Pending`, the QoS class, and
/// `PodScheduled=False` (reason `SchedulingGated`) while scheduling gates remain.
fn pod_status(obj: &mut Value) {
    let qos = qos_class(obj);
    let gated = obj
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let mut status = json!({"phase": "Pending", "qosClass": qos});
    if gated {
        status["conditions"] = json!([{
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
            "lastProbeTime": null,
            "lastTransitionTime": crate::object::now(),
        }]);
    }
    o.insert("status".into(), status);
}

/// A resource quantity (`100m`, `1.5`, `128Mi`, `1e3`) in billionths, exactly; `None`
/// when it does not parse.
pub fn quantity_nanos(q: &str) -> Option<i128> {
    let q = q.trim();
    let (negative, body) = match q.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, q.strip_prefix('+').unwrap_or(q)),
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || int.len() + frac.len() > 30
        || !digits(int)
        || !digits(frac)
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa * 10 + i128::from(d - b'0');
    }
    let mut exp10 = 9 - frac.len() as i32;
    let mut factor: i128 = 1;
    match suffix {
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 10,
                "Mi" => 20,
                "Gi" => 30,
                "Ti" => 40,
                "Pi" => 50,
                _ => 60,
            };
            factor = 1i128 << power;
        }
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "" => {}
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        s if s.starts_with(['e', 'E']) => exp10 += s[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    if !(-40..=40).contains(&exp10) {
        return None;
    }
    let mut v = mantissa.checked_mul(factor)?;
    if exp10 >= 0 {
        v = v.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    } else {
        v /= 10i128.checked_pow(exp10.unsigned_abs())?;
    }
    Some(if negative { -v } else { v })
}

/// `ComputePodQOS`: `Guaranteed` when every container limits CPU and memory and the
/// summed requests equal the summed limits, `BestEffort` when nothing is requested or
/// limited, else `Burstable`. Only CPU and memory count.
pub fn qos_class(pod: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<String, i128> = BTreeMap::new();
    let mut limits: BTreeMap<String, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"].into_iter().flat_map(|k| {
        pod.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    for c in containers {
        let positive = |kind: &str| -> Vec<(String, i128)> {
            c.pointer(&format!("/resources/{kind}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(name, _)| matches!(name.as_str(), "cpu" | "memory"))
                .filter_map(|(name, q)| {
                    let n = match q {
                        Value::String(s) => quantity_nanos(s),
                        Value::Number(n) => n.as_i64().map(|n| i128::from(n) * 1_000_000_000),
                        _ => None,
                    }?;
                    (n > 0).then(|| (name.clone(), n))
                })
                .collect()
        };
        for (name, n) in positive("requests") {
            *requests.entry(name).or_default() += n;
        }
        let found = positive("limits");
        if !(found.iter().any(|(n, _)| n == "cpu") && found.iter().any(|(n, _)| n == "memory")) {
            guaranteed = false;
        }
        for (name, n) in found {
            *limits.entry(name).or_default() += n;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return "Guaranteed";
    }
    "Burstable"
}

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
fn pod_update(old: &Value, new: &Value) -> Vec<Cause> {
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

fn pod_status_cell(o: &Value) -> Value {
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return json!("Terminating");
    }
    if !s(o, "/status/reason").is_empty() {
        return json!(s(o, "/status/reason"));
    }
    for cs in arr(o, "/status/containerStatuses") {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
            return json!(r);
        }
        if let Some(r) = cs
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            return json!(r);
        }
    }
    none_if_empty(s(o, "/status/phase").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Pod.validate_update(&old, &pod(spec)).is_empty());
    }

    #[test]
    fn pod_spec_refuses_other_changes() {
        let old = pod(base());
        let mut spec = base();
        spec["nodeName"] = json!("node-x");
        let causes = Pod.validate_update(&old, &pod(spec));
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
        let causes = Pod.validate_update(&old, &pod(spec));
        assert_eq!(fields(&causes), ["spec.containers"]);

        let mut spec = base();
        spec["tolerations"] = json!([]);
        spec["schedulingGates"] = json!([{"name": "g1"}, {"name": "new"}]);
        let causes = Pod.validate_update(&old, &pod(spec));
        assert_eq!(
            fields(&causes),
            ["spec.tolerations", "spec.schedulingGates[1].name"]
        );

        let mut with_deadline = base();
        with_deadline["activeDeadlineSeconds"] = json!(30);
        let mut longer = base();
        longer["activeDeadlineSeconds"] = json!(40);
        let causes = Pod.validate_update(&pod(with_deadline.clone()), &pod(longer));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
        let causes = Pod.validate_update(&pod(with_deadline), &pod(base()));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
    }

    #[test]
    fn pod_status_writes_keep_the_qos_class() {
        let old = json!({"status": {"phase": "Pending", "qosClass": "Burstable"}});
        let mut new = json!({"status": {"phase": "Running"}});
        Pod.prepare_status_update(&old, &mut new);
        assert_eq!(new["status"]["qosClass"], json!("Burstable"));
        let mut given = json!({"status": {"phase": "Running", "qosClass": "BestEffort"}});
        Pod.prepare_status_update(&old, &mut given);
        assert_eq!(given["status"]["qosClass"], json!("BestEffort"));
    }

    #[test]
    fn pods_are_deleted_gracefully() {
        assert!(Pod.deletes_gracefully());
        assert!(
            !super::super::config::CONFIG_MAP
                .strategy
                .deletes_gracefully()
        );
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}});
        assert_eq!(Pod.grace_period(&bound, None), 30);
        assert_eq!(Pod.grace_period(&bound, Some(5)), 5);
        let unbound = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(Pod.grace_period(&unbound, Some(5)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(Pod.grace_period(&done, Some(5)), 0);
    }

    #[test]
    fn quantities_are_exact() {
        assert_eq!(quantity_nanos("100m"), Some(100_000_000));
        assert_eq!(quantity_nanos("0.1"), Some(100_000_000));
        assert_eq!(quantity_nanos("1"), Some(1_000_000_000));
        assert_eq!(
            quantity_nanos("128Mi"),
            Some(128 * (1 << 20) * 1_000_000_000)
        );
        assert_eq!(quantity_nanos("1e3"), quantity_nanos("1k"));
        assert_eq!(quantity_nanos("1E"), Some(10i128.pow(27)));
        assert_eq!(quantity_nanos("-2"), Some(-2_000_000_000));
        assert_eq!(quantity_nanos("abc"), None);
        assert_eq!(quantity_nanos(""), None);
        assert_eq!(quantity_nanos("1Xi"), None);
        assert_eq!(quantity_nanos("1.2.3"), None);
        assert_eq!(quantity_nanos("."), None);
        assert_eq!(quantity_nanos("1e99"), None);
    }

    #[test]
    fn qos_classes() {
        let pod = |containers: Value| json!({"spec": {"containers": containers}});
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        let guaranteed = json!([{"resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]);
        assert_eq!(qos_class(&pod(guaranteed)), "Guaranteed");
        let cpu_only = json!([{"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]);
        assert_eq!(qos_class(&pod(cpu_only)), "Burstable");
        let lower = json!([{"resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "500m", "memory": "1Gi"}}}]);
        assert_eq!(qos_class(&pod(lower)), "Burstable");
        let zero = json!([{"resources": {"requests": {"cpu": "0"}, "limits": {"ephemeral-storage": "1Gi"}}}]);
        assert_eq!(qos_class(&pod(zero)), "BestEffort");
    }
}
