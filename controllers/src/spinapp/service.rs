//! The Service spin-operator builds for a SpinApp (`constructService`): ClusterIP, port
//! 80 to the pods' named port `http-app`, selecting the app's ready pods by their status
//! label alone, with the app's `serviceAnnotations`.
//!
//! Pure: builds the object; the reconciler applies it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use spinlet_types::keys::{app_name_label, status_label, HTTP_PORT, HTTP_PORT_NAME, STATUS_READY};
use spinlet_types::SpinApp;

/// The app's Service, labels under `group`, controlled by `owner`.
pub fn build(app: &SpinApp, group: &str, owner: OwnerReference) -> Service {
    let name = app.metadata.name.clone().unwrap_or_default();
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: app.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(app_name_label(group), name.clone())])),
            annotations: app
                .spec
                .service_annotations
                .clone()
                .filter(|a| !a.is_empty()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            ports: Some(vec![ServicePort {
                protocol: Some("TCP".to_string()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String(HTTP_PORT_NAME.to_string())),
                ..ServicePort::default()
            }]),
            selector: Some(BTreeMap::from([(
                status_label(group, &name),
                STATUS_READY.to_string(),
            )])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_as_spin_operator_builds_it() {
        let app: SpinApp = serde_json::from_value(json!({
            "apiVersion": "core.spinoperator.dev/v1alpha1", "kind": "SpinApp",
            "metadata": {"name": "simple-spinapp", "namespace": "default"},
            "spec": {"image": "x", "serviceAnnotations": {"key": "value"}},
        }))
        .expect("app");
        let owner = OwnerReference {
            api_version: "core.spinoperator.dev/v1alpha1".into(),
            kind: "SpinApp".into(),
            name: "simple-spinapp".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let svc = serde_json::to_value(build(&app, "core.spinoperator.dev", owner)).expect("json");
        assert_eq!(
            svc,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {
                    "annotations": {"key": "value"},
                    "labels": {"core.spinoperator.dev/app-name": "simple-spinapp"},
                    "name": "simple-spinapp", "namespace": "default",
                    "ownerReferences": [{"apiVersion": "core.spinoperator.dev/v1alpha1",
                        "blockOwnerDeletion": true, "controller": true, "kind": "SpinApp",
                        "name": "simple-spinapp", "uid": "u1"}],
                },
                "spec": {
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http-app"}],
                    "selector": {"core.spinoperator.dev/app.simple-spinapp.status": "ready"},
                    "type": "ClusterIP",
                },
            })
        );
    }
}
