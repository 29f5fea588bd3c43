//! Pods (kube-apiserver's pkg/registry/core/pod): defaults (`SetDefaults_Pod`, the
//! service account admission's `default`), the create-time status (phase, QoS class,
//! `SchedulingGated`), `ValidatePodUpdate` (only images, `activeDeadlineSeconds`,
//! added tolerations and removed scheduling gates may change), the status strategy
//! keeping `qosClass`, graceful deletion, the extra subresources (`binding`, `exec`,
//! `attach`, `log`, `portforward`, `eviction`), printer columns, field labels and the
//! merge keys of `status`. What an update may change is `update.rs`; the QoS class
//! `qos.rs`.

use serde_json::{json, Value};

mod qos;
mod update;

use super::pod_spec;
use super::{Extra, Kind, KindStrategy, Subresource};
use crate::defaults::set_default;
use crate::error::Cause;
use crate::strategic::merge_keys::{ListStrategy::ByKey, MergeSchema};
use crate::table::cells::{arr, col, none_if_empty, s};
use crate::table::{age_column, name_column, Column};

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
        update::pod_update(old, new)
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
            json!(arr(o, "/status/containerStatuses")
                .iter()
                .map(|cs| cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                .sum::<i64>())
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
    let qos = qos::qos_class(obj);
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
        assert!(!super::super::config::CONFIG_MAP
            .strategy
            .deletes_gracefully());
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}});
        assert_eq!(Pod.grace_period(&bound, None), 30);
        assert_eq!(Pod.grace_period(&bound, Some(5)), 5);
        let unbound = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(Pod.grace_period(&unbound, Some(5)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(Pod.grace_period(&done, Some(5)), 0);
    }
}
