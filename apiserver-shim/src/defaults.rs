//! Per-kind defaults, as kube-apiserver's defaulting functions and create-time strategy
//! set them: namespace phase and finalizer, service type and ports, pod spec and container
//! defaults in pods and workload templates (`SetDefaults_PodSpec`, `SetDefaults_Container`;
//! for pods also `SetDefaults_Pod` and the service account admission's `default`), pod
//! phase and QoS class, deployment strategy.
//!
//! [`apply`] runs at create; [`apply_spec`] (the part that does not depend on the object
//! being new) also runs on every update, as kube-apiserver defaults every decoded body, so
//! an update that leaves out a defaulted field does not change it. Only fields a client
//! reads back are defaulted here; allocation of cluster IPs, which needs the store, is the
//! service handler's job.

use serde_json::{json, Map, Value};

use crate::registry::Resource;

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    let mut cur = obj;
    while let Some(p) = parts.next() {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            let slot = map.entry(p).or_insert(Value::Null);
            if slot.is_null() {
                *slot = value;
            }
            return;
        }
        let slot = map.entry(p).or_insert(Value::Null);
        if slot.is_null() {
            *slot = json!({});
        }
        cur = slot;
    }
}

fn builtin(r: &Resource) -> bool {
    !r.custom && (r.group.is_empty() || r.group == "apps")
}

/// Applies the kind's create-time defaults: [`apply_spec`] plus what only a new object
/// gets (namespace and pod status).
pub fn apply(r: &Resource, obj: &mut Value) {
    if !builtin(r) {
        return;
    }
    match r.kind.as_str() {
        "Namespace" => {
            set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
            if let Some(o) = obj.as_object_mut() {
                o.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        "Pod" => {
            pod_spec(obj);
            pod_status(obj);
        }
        _ => apply_spec(r, obj),
    }
}

/// Applies the defaults every write gets (create and update).
pub fn apply_spec(r: &Resource, obj: &mut Value) {
    if !builtin(r) {
        return;
    }
    match r.kind.as_str() {
        "Service" => service(obj),
        "Pod" => pod_spec(obj),
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
            template(obj);
        }
        "ReplicaSet" => {
            set_default(obj, "/spec/replicas", json!(1));
            template(obj);
        }
        "Secret" => set_default(obj, "/type", json!("Opaque")),
        _ => {}
    }
}

/// A pod's defaults: those of every pod spec, plus `SetDefaults_Pod` (service links,
/// requests defaulting to limits) and the service account admission's `default`.
fn pod_spec(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    any_pod_spec(spec);
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

/// `SetDefaults_PodSpec` and `SetDefaults_Container`, which every pod spec gets, in a
/// pod or in a workload's template; `serviceAccount` (deprecated) mirrors
/// `serviceAccountName`, as the v1 conversion keeps them.
fn any_pod_spec(spec: &mut Value) {
    set_default(spec, "/restartPolicy", json!("Always"));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/securityContext", json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let name_of = |spec: &Map<String, Value>, k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(account) =
        name_of(spec, "serviceAccountName").or_else(|| name_of(spec, "serviceAccount"))
    {
        spec.insert("serviceAccountName".into(), json!(account));
        spec.insert("serviceAccount".into(), json!(account));
    }
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            list.iter_mut().for_each(container);
        }
    }
}

/// The pod template defaults of a workload (`spec.template.spec`).
fn template(obj: &mut Value) {
    if let Some(spec) = obj
        .pointer_mut("/spec/template/spec")
        .filter(|s| s.is_object())
    {
        any_pod_spec(spec);
    }
}

/// `SetDefaults_Container`.
fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "/terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if pulls_always(image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "/imagePullPolicy", json!(policy));
    set_default(c, "/resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "/protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "/timeoutSeconds", json!(1));
            set_default(p, "/periodSeconds", json!(10));
            set_default(p, "/successThreshold", json!(1));
            set_default(p, "/failureThreshold", json!(3));
            if p.get("httpGet").is_some_and(Value::is_object) {
                set_default(p, "/httpGet/path", json!("/"));
                set_default(p, "/httpGet/scheme", json!("HTTP"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if e.pointer("/valueFrom/fieldRef")
                .is_some_and(Value::is_object)
            {
                set_default(e, "/valueFrom/fieldRef/apiVersion", json!("v1"));
            }
        }
    }
}

/// `imagePullPolicy`'s default: `Always` when the tag is `latest`, or when there is
/// neither a tag nor a digest (the tag is then `latest`), else `IfNotPresent`.
pub fn pulls_always(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert!(pulls_always("nginx"));
        assert!(pulls_always("nginx:latest"));
        assert!(pulls_always("localhost:5000/app"));
        assert!(pulls_always("ghcr.io/a/b:latest@sha256:abc"));
        assert!(!pulls_always("localhost:5000/app:1"));
        assert!(!pulls_always("ghcr.io/a/b@sha256:abc"));
        assert!(!pulls_always("ghcr.io/a/b:v0.14.1"));
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
