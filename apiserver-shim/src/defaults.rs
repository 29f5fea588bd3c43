//! Per-kind defaults set at create, as kube-apiserver's defaulting functions set them
//! (namespace phase and finalizer, service type and ports, pod phase, deployment strategy).
//!
//! Only fields a client reads back are defaulted here; allocation of cluster IPs, which
//! needs the store, is the service handler's job.

use serde_json::{json, Value};

use crate::registry::Resource;

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    let mut cur = obj;
    while let Some(p) = parts.next() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            map.entry(p).or_insert(value);
            return;
        }
        cur = map.entry(p).or_insert_with(|| json!({}));
    }
}

/// Applies the kind's create-time defaults.
pub fn apply(r: &Resource, obj: &mut Value) {
    if !r.group.is_empty() && r.group != "apps" {
        return;
    }
    match r.kind.as_str() {
        "Namespace" => {
            set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
            if let Some(o) = obj.as_object_mut() {
                o.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        "Service" => service(obj),
        "Pod" => {
            set_default(obj, "/spec/restartPolicy", json!("Always"));
            set_default(obj, "/spec/dnsPolicy", json!("ClusterFirst"));
            set_default(obj, "/spec/schedulerName", json!("default-scheduler"));
            set_default(obj, "/spec/terminationGracePeriodSeconds", json!(30));
            set_default(obj, "/status/phase", json!("Pending"));
        }
        "Deployment" => {
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
        }
        "ReplicaSet" => set_default(obj, "/spec/replicas", json!(1)),
        "Secret" => set_default(obj, "/type", json!("Opaque")),
        _ => {}
    }
}

fn service(obj: &mut Value) {
    set_default(obj, "/spec/type", json!("ClusterIP"));
    set_default(obj, "/spec/sessionAffinity", json!("None"));
    set_default(obj, "/spec/internalTrafficPolicy", json!("Cluster"));
    set_default(obj, "/spec/ipFamilies", json!(["IPv4"]));
    set_default(obj, "/spec/ipFamilyPolicy", json!("SingleStack"));
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            let port = p.get("port").cloned();
            if let Some(m) = p.as_object_mut() {
                m.entry("protocol").or_insert(json!("TCP"));
                if let Some(port) = port {
                    m.entry("targetPort").or_insert(port);
                }
            }
        }
    }
}

/// Normalisations applied on every write (create and update): a Secret's `stringData` is
/// folded into `data`, base64-encoded, as the apiserver does.
pub fn normalize(r: &Resource, obj: &mut Value) {
    if r.group.is_empty() && r.kind == "Secret" {
        use base64::Engine;
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        let Some(Value::Object(string_data)) = map.remove("stringData") else {
            return;
        };
        let data = map.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text.as_bytes())),
                );
            }
        }
    }
}
