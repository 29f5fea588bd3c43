//! Per-kind write strategies, as kube-apiserver's registry strategies define them, in one
//! place: what an update may change (`ValidateUpdate`: the pod spec's few mutable fields,
//! the immutable selector of Deployments and ReplicaSets), whether and how long a DELETE
//! waits (`CheckGracefulDelete`: bound pods get their grace period), what a status write
//! keeps (a pod's QoS class), and the extra subresources and create-only resources a
//! kind brings (pods' `binding`, `exec`, `attach`; the legacy `bindings`).
//!
//! Pure functions over JSON values. Handlers ask this module; no other module matches on
//! kind names for these rules.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::registry::Resource;

fn is(r: &Resource, group: &str, kind: &str) -> bool {
    !r.custom && r.group == group && r.kind == kind
}

fn forbidden(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {message}"),
        field: field.into(),
    }
}

fn invalid(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {message}"),
        field: field.into(),
    }
}

/// Every reason an update from `old` to `new` (both defaulted, as stored) is refused.
/// Empty when the kind has no update rules or the update keeps them.
pub fn validate_update(r: &Resource, old: &Value, new: &Value) -> Vec<Cause> {
    if is(r, "", "Pod") {
        return pod_update(old, new);
    }
    if is(r, "apps", "Deployment") || is(r, "apps", "ReplicaSet") {
        return immutable_selector(old, new);
    }
    Vec::new()
}

/// A JSON value with what Go's semantic equality ignores removed: nulls, empty lists and
/// empty maps count as absent.
fn semantic(v: &Value) -> Option<Value> {
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

fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    a.and_then(semantic) == b.and_then(semantic)
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
    vec![invalid(
        "spec.selector",
        format!("{}: field is immutable", go_label_selector(n)),
    )]
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

/// What a status write keeps from the stored object beyond its spec (kube-apiserver's
/// `podStatusStrategy.PrepareForUpdate`): a pod's `status.qosClass`, set at create, is
/// backfilled when the write leaves it out.
pub fn prepare_status_update(r: &Resource, old: &Value, new: &mut Value) {
    if !is(r, "", "Pod") {
        return;
    }
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

/// Whether the kind is deleted gracefully (kube-apiserver's `RESTGracefulDeleteStrategy`):
/// a DELETE first records `deletionTimestamp` and `deletionGracePeriodSeconds`, and the
/// object goes once the grace period is shortened to 0.
pub fn deletes_gracefully(r: &Resource) -> bool {
    is(r, "", "Pod")
}

/// `CheckGracefulDelete`: the grace period a first DELETE gives `obj` (`requested` is the
/// request's `gracePeriodSeconds`, negative values already raised to 1). A pod gets the
/// requested period, else its `terminationGracePeriodSeconds`; a pod that no node runs
/// (unbound, or finished) gets 0.
pub fn grace_period(obj: &Value, requested: Option<i64>) -> i64 {
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

/// An extra subresource a kind serves, beyond `status` and `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// `pods/binding`: assign the pod to a node (POST a `Binding`).
    Binding,
    /// `pods/exec`: run a command in a container.
    Exec,
    /// `pods/attach`: attach to a container's process.
    Attach,
    /// `pods/log`: the container's log, from its node's kubelet.
    Log,
    /// `nodes/proxy`: a request relayed to the node's kubelet.
    NodeProxy,
    /// `pods/portforward`: an upgraded connection relayed to the pod's kubelet.
    PortForward,
    /// `pods/eviction`: delete the pod as `kubectl drain` asks (POST an `Eviction`).
    Eviction,
}

/// A subresource as discovery lists it.
pub struct Subresource {
    /// What it does.
    pub extra: Extra,
    /// Its name in paths, e.g. `binding`.
    pub name: &'static str,
    /// The group and version of the kind a request to it carries ("" and "v1" for core).
    pub group_version: (&'static str, &'static str),
    /// The kind a request to it carries (discovery's `responseKind`).
    pub kind: &'static str,
    /// Its verbs.
    pub verbs: &'static [&'static str],
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

const NODE_SUBRESOURCES: &[Subresource] = &[Subresource {
    extra: Extra::NodeProxy,
    name: "proxy",
    group_version: ("", "v1"),
    kind: "NodeProxyOptions",
    verbs: &["create", "delete", "get", "patch", "update"],
}];

/// The extra subresources of a kind.
pub fn subresources(r: &Resource) -> &'static [Subresource] {
    if is(r, "", "Pod") {
        POD_SUBRESOURCES
    } else if is(r, "", "Node") {
        NODE_SUBRESOURCES
    } else {
        &[]
    }
}

/// The extra subresource `name` of a kind, if served.
pub fn subresource(r: &Resource, name: &str) -> Option<Extra> {
    subresources(r)
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.extra)
}

/// A resource that only accepts POST and stores nothing of its own.
pub struct CreateOnly {
    /// What it does.
    pub extra: Extra,
    /// Group ("" for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural name in paths.
    pub plural: &'static str,
    /// The kind of its request bodies.
    pub kind: &'static str,
    /// Whether it is namespaced.
    pub namespaced: bool,
}

/// Every create-only resource: the legacy `bindings`, which binds the pod its
/// `metadata.name` names.
pub const CREATE_ONLY: &[CreateOnly] = &[CreateOnly {
    extra: Extra::Binding,
    group: "",
    version: "v1",
    plural: "bindings",
    kind: "Binding",
    namespaced: true,
}];

/// The create-only resource at group/version/plural, if any.
pub fn create_only(group: &str, version: &str, plural: &str) -> Option<&'static CreateOnly> {
    CREATE_ONLY
        .iter()
        .find(|c| c.group == group && c.version == version && c.plural == plural)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn resource(group: &str, plural: &str) -> std::sync::Arc<Resource> {
        Registry::new()
            .snapshot()
            .get_any(group, plural)
            .cloned()
            .unwrap_or_else(|| panic!("{plural} is built in"))
    }

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
        let r = resource("", "pods");
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
        assert!(validate_update(&r, &old, &pod(spec)).is_empty());
    }

    #[test]
    fn pod_spec_refuses_other_changes() {
        let r = resource("", "pods");
        let old = pod(base());
        let mut spec = base();
        spec["nodeName"] = json!("node-x");
        let causes = validate_update(&r, &old, &pod(spec));
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
        let causes = validate_update(&r, &old, &pod(spec));
        assert_eq!(fields(&causes), ["spec.containers"]);

        let mut spec = base();
        spec["tolerations"] = json!([]);
        spec["schedulingGates"] = json!([{"name": "g1"}, {"name": "new"}]);
        let causes = validate_update(&r, &old, &pod(spec));
        assert_eq!(
            fields(&causes),
            ["spec.tolerations", "spec.schedulingGates[1].name"]
        );

        let mut with_deadline = base();
        with_deadline["activeDeadlineSeconds"] = json!(30);
        let mut longer = base();
        longer["activeDeadlineSeconds"] = json!(40);
        let causes = validate_update(&r, &pod(with_deadline.clone()), &pod(longer));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
        let causes = validate_update(&r, &pod(with_deadline), &pod(base()));
        assert_eq!(fields(&causes), ["spec.activeDeadlineSeconds"]);
    }

    #[test]
    fn workload_selectors_are_immutable() {
        for plural in ["deployments", "replicasets"] {
            let r = resource("apps", plural);
            let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
            let same = json!({"spec": {"selector": {"matchLabels": {"app": "a"}, "matchExpressions": []}, "replicas": 3}});
            assert!(validate_update(&r, &old, &same).is_empty());
            let changed = json!({"spec": {"selector": {"matchLabels": {"tier": "x", "app": "b"}}}});
            let causes = validate_update(&r, &old, &changed);
            assert_eq!(fields(&causes), ["spec.selector"]);
            assert_eq!(
                causes[0].message,
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            );
        }
    }

    #[test]
    fn pod_status_writes_keep_the_qos_class() {
        let r = resource("", "pods");
        let old = json!({"status": {"phase": "Pending", "qosClass": "Burstable"}});
        let mut new = json!({"status": {"phase": "Running"}});
        prepare_status_update(&r, &old, &mut new);
        assert_eq!(new["status"]["qosClass"], json!("Burstable"));
        let mut given = json!({"status": {"phase": "Running", "qosClass": "BestEffort"}});
        prepare_status_update(&r, &old, &mut given);
        assert_eq!(given["status"]["qosClass"], json!("BestEffort"));
    }

    #[test]
    fn pods_alone_are_deleted_gracefully() {
        assert!(deletes_gracefully(&resource("", "pods")));
        assert!(!deletes_gracefully(&resource("", "configmaps")));
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 30}});
        assert_eq!(grace_period(&bound, None), 30);
        assert_eq!(grace_period(&bound, Some(5)), 5);
        let unbound = json!({"spec": {"terminationGracePeriodSeconds": 30}});
        assert_eq!(grace_period(&unbound, Some(5)), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(grace_period(&done, Some(5)), 0);
    }

    #[test]
    fn pods_serve_binding_exec_and_attach() {
        let pods = resource("", "pods");
        assert_eq!(subresource(&pods, "binding"), Some(Extra::Binding));
        assert_eq!(subresource(&pods, "exec"), Some(Extra::Exec));
        assert_eq!(subresource(&resource("", "services"), "binding"), None);
        assert!(create_only("", "v1", "bindings").is_some());
        assert!(create_only("apps", "v1", "bindings").is_none());
    }
}
