//! The pod spec, wherever it sits (a pod's `spec`, a workload's `spec.template.spec`):
//! its defaults (`SetDefaults_PodSpec`, `SetDefaults_Container`) and its validation
//! (containers; restart, DNS, image pull and termination message policies), with
//! kube-apiserver's field paths. Shared by `pod.rs` and `apps.rs`; knows no kind.

use serde_json::{json, Map, Value};

use crate::defaults::set_default;
use crate::error::Cause;
use crate::validation::{one_of, port_range, required};

/// `SetDefaults_PodSpec` and `SetDefaults_Container`, which every pod spec gets, in a
/// pod or in a workload's template; `serviceAccount` (deprecated) mirrors
/// `serviceAccountName`, as the v1 conversion keeps them.
pub fn default(spec: &mut Value) {
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
pub fn default_template(obj: &mut Value) {
    if let Some(spec) = obj
        .pointer_mut("/spec/template/spec")
        .filter(|s| s.is_object())
    {
        default(spec);
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

/// A pod spec (in a pod or a template) at `path`: its containers and the enumerations
/// kube-apiserver checks (restart, DNS, image pull and termination message policies).
pub fn validate(spec: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
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
}
