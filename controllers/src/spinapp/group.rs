//! Which API group a SpinApp belongs to, for its label keys and owner references.
//!
//! Both groups share one storage, so the controller sees every app once (it watches
//! `core.spinkube.dev`) and cannot tell the group from `apiVersion`, which is whatever the
//! reader asked for. The group is decided as follows, first answer wins:
//! 1. The app's Deployment exists: the group of its selector's `<group>/app-name` key
//!    (a selector cannot change, so an app keeps its keys for life).
//! 2. The oldest `managedFields` entry of a writer other than this controller and not of
//!    a subresource: its `apiVersion`, i.e. the group the app was created (or first
//!    applied) under — `kubectl apply` of the docs' `core.spinoperator.dev` manifests
//!    gives `core.spinoperator.dev/app-name` labels, as spin-operator v0.1.0 did.
//! 3. kubectl's `last-applied-configuration` annotation's `apiVersion`.
//! 4. `core.spinkube.dev`.
//!
//! Pure: reads the objects it is given.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use spinlet_types::keys::{app_name_label, FIELD_MANAGER, GROUP, GROUPS};

fn known(api_version: &str) -> Option<&'static str> {
    let group = api_version.split_once('/').map(|(g, _)| g)?;
    GROUPS.into_iter().find(|g| *g == group)
}

/// The group of an app with metadata `meta` whose Deployment (if any) is `deployment`.
pub fn of(meta: &ObjectMeta, deployment: Option<&Deployment>) -> &'static str {
    let from_selector = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.selector.match_labels.as_ref())
        .and_then(|labels| {
            GROUPS
                .into_iter()
                .find(|g| labels.contains_key(&app_name_label(g)))
        });
    if let Some(g) = from_selector {
        return g;
    }
    let from_fields = meta.managed_fields.iter().flatten().find_map(|e| {
        let own = e.manager.as_deref() == Some(FIELD_MANAGER);
        let sub = e.subresource.as_deref().is_some_and(|s| !s.is_empty());
        if own || sub {
            return None;
        }
        known(e.api_version.as_deref().unwrap_or_default())
    });
    if let Some(g) = from_fields {
        return g;
    }
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|v| v.get("apiVersion").and_then(|a| a.as_str()).and_then(known))
        .unwrap_or(GROUP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).expect("meta")
    }

    #[test]
    fn the_creators_group_wins_over_later_writers_and_the_controller() {
        let m = meta(json!({"name": "a", "managedFields": [
            {"manager": "spin-operator", "operation": "Apply", "apiVersion": "core.spinkube.dev/v1alpha1"},
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "core.spinoperator.dev/v1alpha1"},
            {"manager": "kubectl", "operation": "Update", "apiVersion": "core.spinkube.dev/v1alpha1"},
        ]}));
        assert_eq!(of(&m, None), "core.spinoperator.dev");
        let status_only = meta(json!({"name": "a", "managedFields": [
            {"manager": "x", "operation": "Update", "apiVersion": "core.spinoperator.dev/v1alpha1", "subresource": "status"},
        ]}));
        assert_eq!(of(&status_only, None), "core.spinkube.dev");
    }

    #[test]
    fn an_existing_deployment_keeps_its_keys() {
        let m = meta(json!({"name": "a", "managedFields": [
            {"manager": "kubectl", "operation": "Update", "apiVersion": "core.spinkube.dev/v1alpha1"}]}));
        let d: Deployment = serde_json::from_value(json!({"spec": {
            "selector": {"matchLabels": {"core.spinoperator.dev/app-name": "a"}},
            "template": {}}}))
        .expect("deployment");
        assert_eq!(of(&m, Some(&d)), "core.spinoperator.dev");
        assert_eq!(of(&m, None), "core.spinkube.dev");
    }

    #[test]
    fn last_applied_then_default() {
        let m = meta(json!({"name": "a", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"core.spinoperator.dev/v1alpha1\"}"}}));
        assert_eq!(of(&m, None), "core.spinoperator.dev");
        assert_eq!(of(&meta(json!({"name": "a"})), None), "core.spinkube.dev");
    }
}
