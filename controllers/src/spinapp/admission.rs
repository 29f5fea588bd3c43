//! SpinApp and SpinAppExecutor admission as spin-operator's webhooks decide it, as plain
//! functions over the object's JSON for the API server's in-process hooks to call:
//! the SpinApp defaulter ([`default_spinapp`]), the SpinApp validator
//! ([`validate_spinapp`], plus "image must be set") and the executor validator
//! ([`validate_executor`]). The executor defaulter is a no-op, as upstream.
//!
//! Reads SpinAppExecutors (through the client it is given); writes nothing. Messages are
//! spin-operator's word for word; field paths as its `field.Path` prints them.

use kube::api::{Api, ListParams};
use serde_json::{json, Value};
pub use spinlet_types::FieldViolation;
use spinlet_types::SpinAppExecutor;

fn violation(field: &str, value: Value, message: &str) -> FieldViolation {
    FieldViolation {
        field: field.to_string(),
        value,
        message: message.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// spin-operator's SpinApp defaulter: only when `spec.executor` is empty, the
/// alphabetically first SpinAppExecutor name in the whole cluster; left empty when there
/// is none.
pub async fn default_spinapp(client: &kube::Client, app: &mut Value) -> Result<(), kube::Error> {
    if !str_at(app, "/spec/executor").is_empty() {
        return Ok(());
    }
    let executors: Api<SpinAppExecutor> = Api::all(client.clone());
    let list = executors.list_metadata(&ListParams::default()).await?;
    let first = list
        .items
        .iter()
        .filter_map(|e| e.metadata.name.as_deref())
        .min()
        .map(str::to_string);
    if let (Some(name), Some(spec)) = (first, app.get_mut("spec").and_then(Value::as_object_mut)) {
        tracing::info!(executor = %name, "defaulting to executor");
        spec.insert("executor".into(), Value::String(name));
    }
    Ok(())
}

/// spin-operator's SpinApp validator (create and update), plus a required `image`. The
/// executor is looked up in the app's namespace; errors other than "not found" are
/// returned as errors, not as violations.
pub async fn validate_spinapp(
    client: &kube::Client,
    app: &Value,
) -> Result<Vec<FieldViolation>, kube::Error> {
    let mut out = Vec::new();
    if str_at(app, "/spec/image").is_empty() {
        out.push(violation(
            "spec.image",
            app.pointer("/spec/image").cloned().unwrap_or(json!("")),
            "image must be set",
        ));
    }
    let name = str_at(app, "/spec/executor");
    let executor = if name.is_empty() {
        out.push(violation(
            "spec.executor",
            json!(""),
            "executor must be set, likely no default executor was set because you have no executors installed",
        ));
        None
    } else {
        let ns = match str_at(app, "/metadata/namespace") {
            "" => "default",
            ns => ns,
        };
        let api: Api<SpinAppExecutor> = Api::namespaced(client.clone(), ns);
        let found = api.get_opt(name).await?;
        if found.is_none() {
            out.push(violation(
                "spec.executor",
                json!(name),
                "executor does not exist in namespace",
            ));
        }
        found
    };
    out.extend(validate_spec(app, executor.as_ref()));
    Ok(out)
}

/// The rules that need no API: replicas, annotations for an executor without
/// Deployments, invocation limits.
pub fn validate_spec(app: &Value, executor: Option<&SpinAppExecutor>) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let autoscaling = app
        .pointer("/spec/enableAutoscaling")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let replicas = app
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if autoscaling && replicas != 0 {
        out.push(violation(
            "spec.replicas",
            json!(replicas),
            "replicas cannot be set when autoscaling is enabled",
        ));
    } else if !autoscaling && replicas < 1 {
        out.push(violation(
            "spec.replicas",
            json!(replicas),
            "replicas must be > 0",
        ));
    }
    if executor.is_some_and(|e| !e.spec.create_deployment) {
        let non_empty = |ptr: &str| {
            app.pointer(ptr)
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| Value::Object(m.clone()))
        };
        if let Some(v) = non_empty("/spec/deploymentAnnotations") {
            out.push(violation(
                "spec.deploymentAnnotations",
                v,
                "deploymentAnnotations can't be set when the executor does not use operator deployments",
            ));
        } else if let Some(v) = non_empty("/spec/podAnnotations") {
            out.push(violation(
                "spec.podAnnotations",
                v,
                "podAnnotations can't be set when the executor does not use operator deployments",
            ));
        }
    }
    if let Some(limit) = app.pointer("/spec/invocationLimits/memory") {
        let text = limit.as_str().unwrap_or("");
        match crate::scheduler::resources::milli(text) {
            None => out.push(violation(
                "spec.invocationLimits[memory]",
                limit.clone(),
                "memory limit must be a valid memory quantity (e.g. 128Mi, 1Gi)",
            )),
            Some(asked) => {
                let request = app.pointer("/spec/resources/requests/memory");
                let bound = app.pointer("/spec/resources/limits/memory");
                let constraint = match (request, bound) {
                    (_, Some(l)) => Some((l, "limit")),
                    (Some(r), None) => Some((r, "request")),
                    (None, None) => None,
                };
                if let Some((q, kind)) = constraint {
                    let q_text = match q {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if crate::scheduler::resources::milli(&q_text).is_some_and(|c| asked > c) {
                        out.push(violation(
                            "spec.invocationLimits[memory]",
                            json!(text),
                            &format!(
                                "invocation limit quantity cannot be greater than the memory {kind} ({q_text})"
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// spin-operator's SpinAppExecutor validator: with a `deploymentConfig`, exactly one of
/// `runtimeClassName` and `spinImage`.
pub fn validate_executor(executor: &Value) -> Vec<FieldViolation> {
    let Some(config) = executor
        .pointer("/spec/deploymentConfig")
        .filter(|c| !c.is_null())
    else {
        return Vec::new();
    };
    let runtime_class = config.get("runtimeClassName").filter(|v| !v.is_null());
    let spin_image = config.get("spinImage").filter(|v| !v.is_null());
    let field = "spec.deploymentConfig.runtimeClassName";
    match (runtime_class, spin_image) {
        (Some(rc), Some(_)) => vec![violation(
            field,
            rc.clone(),
            "runtimeClassName and spinImage are mutually exclusive",
        )],
        (None, None) => vec![violation(
            field,
            Value::Null,
            "either runtimeClassName or spinImage must be set",
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor(create: bool) -> SpinAppExecutor {
        serde_json::from_value(json!({
            "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinAppExecutor",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {"createDeployment": create},
        }))
        .expect("executor")
    }

    fn messages(v: &[FieldViolation]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|v| (v.field.as_str(), v.message.as_str()))
            .collect()
    }

    #[test]
    fn replicas_rules() {
        let ok = json!({"spec": {"image": "x", "replicas": 1}});
        assert!(validate_spec(&ok, None).is_empty());
        let none = json!({"spec": {"image": "x"}});
        assert_eq!(
            messages(&validate_spec(&none, None)),
            [("spec.replicas", "replicas must be > 0")]
        );
        let both = json!({"spec": {"image": "x", "replicas": 2, "enableAutoscaling": true}});
        let v = validate_spec(&both, None);
        assert_eq!(
            messages(&v),
            [(
                "spec.replicas",
                "replicas cannot be set when autoscaling is enabled"
            )]
        );
        assert_eq!(v[0].value, json!(2));
        let auto = json!({"spec": {"image": "x", "enableAutoscaling": true}});
        assert!(validate_spec(&auto, None).is_empty());
    }

    #[test]
    fn annotations_need_operator_deployments() {
        let app = json!({"spec": {"image": "x", "replicas": 1,
            "deploymentAnnotations": {"a": "b"}, "podAnnotations": {"c": "d"}}});
        assert!(validate_spec(&app, Some(&executor(true))).is_empty());
        assert_eq!(
            messages(&validate_spec(&app, Some(&executor(false)))),
            [("spec.deploymentAnnotations", "deploymentAnnotations can't be set when the executor does not use operator deployments")]
        );
        let pods = json!({"spec": {"image": "x", "replicas": 1, "podAnnotations": {"c": "d"}}});
        assert_eq!(
            messages(&validate_spec(&pods, Some(&executor(false)))),
            [(
                "spec.podAnnotations",
                "podAnnotations can't be set when the executor does not use operator deployments"
            )]
        );
    }

    #[test]
    fn invocation_memory_limit() {
        let bad =
            json!({"spec": {"image": "x", "replicas": 1, "invocationLimits": {"memory": "lots"}}});
        assert_eq!(
            messages(&validate_spec(&bad, None)),
            [(
                "spec.invocationLimits[memory]",
                "memory limit must be a valid memory quantity (e.g. 128Mi, 1Gi)"
            )]
        );
        let over = json!({"spec": {"image": "x", "replicas": 1, "invocationLimits": {"memory": "600Mi"},
            "resources": {"limits": {"memory": "500Mi"}, "requests": {"memory": "100Mi"}}}});
        assert_eq!(
            messages(&validate_spec(&over, None)),
            [(
                "spec.invocationLimits[memory]",
                "invocation limit quantity cannot be greater than the memory limit (500Mi)"
            )]
        );
        let over_request = json!({"spec": {"image": "x", "replicas": 1, "invocationLimits": {"memory": "200Mi"},
            "resources": {"requests": {"memory": "100Mi"}}}});
        assert_eq!(
            messages(&validate_spec(&over_request, None)),
            [(
                "spec.invocationLimits[memory]",
                "invocation limit quantity cannot be greater than the memory request (100Mi)"
            )]
        );
        let fits = json!({"spec": {"image": "x", "replicas": 1, "invocationLimits": {"memory": "40M"},
            "resources": {"limits": {"memory": "500Mi"}}}});
        assert!(validate_spec(&fits, None).is_empty());
    }

    #[test]
    fn executor_rules() {
        assert!(validate_executor(&json!({"spec": {"createDeployment": false}})).is_empty());
        assert!(validate_executor(&json!({"spec": {"createDeployment": true,
            "deploymentConfig": {"runtimeClassName": "wasmtime-spin-v2"}}}))
        .is_empty());
        let both = validate_executor(&json!({"spec": {"createDeployment": true,
            "deploymentConfig": {"runtimeClassName": "r", "spinImage": "i"}}}));
        assert_eq!(
            messages(&both),
            [(
                "spec.deploymentConfig.runtimeClassName",
                "runtimeClassName and spinImage are mutually exclusive"
            )]
        );
        assert_eq!(both[0].value, json!("r"));
        let neither =
            validate_executor(&json!({"spec": {"createDeployment": true, "deploymentConfig": {}}}));
        assert_eq!(
            messages(&neither),
            [(
                "spec.deploymentConfig.runtimeClassName",
                "either runtimeClassName or spinImage must be set"
            )]
        );
    }
}
