//! A SpinApp's status as spin-operator's `updateStatus` writes it: the executor as
//! `activeScheduler`, the Deployment's and Service's names, `readyReplicas`, and the
//! Deployment's `Available` and `Progressing` conditions copied (both `Unknown`,
//! `DeploymentNotFound`, while it does not exist); `Available=False`, `MissingExecutor`
//! while the executor is missing.
//!
//! Pure: computes the status; the reconciler writes it (only when it changed).
//! Conditions keep their `lastTransitionTime` while their status stays, as
//! `meta.SetStatusCondition` does.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use spinlet_types::keys::{
    CONDITION_AVAILABLE, CONDITION_PROGRESSING, REASON_DEPLOYMENT_NOT_FOUND,
    REASON_MISSING_EXECUTOR,
};
use spinlet_types::{SpinApp, SpinAppStatus};

/// Sets condition `type_` in `conditions`, keeping its transition time when its status
/// is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let reason = if reason.is_empty() { "Unknown" } else { reason };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = now.clone();
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now.clone(),
            observed_generation: None,
        }),
    }
}

/// The status of `app` given its Deployment and Service (as read now).
pub fn observed(
    app: &SpinApp,
    deployment: Option<&Deployment>,
    service: Option<&Service>,
    now: &Time,
) -> SpinAppStatus {
    let mut status = app.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    // The executor is there now.
    conditions.retain(|c| c.reason != REASON_MISSING_EXECUTOR);
    status.active_scheduler = Some(app.spec.executor.clone());
    if let Some(d) = deployment {
        status.deployment_name = d.metadata.name.clone();
    }
    match deployment {
        None => {
            for t in [CONDITION_AVAILABLE, CONDITION_PROGRESSING] {
                set_condition(
                    &mut conditions,
                    t,
                    "Unknown",
                    REASON_DEPLOYMENT_NOT_FOUND,
                    "Deployment not found",
                    now,
                );
            }
            status.ready_replicas = 0;
        }
        Some(d) => {
            let ds = d.status.clone().unwrap_or_default();
            for dc in ds.conditions.iter().flatten() {
                if dc.type_ == CONDITION_AVAILABLE || dc.type_ == CONDITION_PROGRESSING {
                    set_condition(
                        &mut conditions,
                        &dc.type_,
                        &dc.status,
                        dc.reason.as_deref().unwrap_or_default(),
                        dc.message.as_deref().unwrap_or_default(),
                        now,
                    );
                }
            }
            status.ready_replicas = ds.ready_replicas.unwrap_or(0);
        }
    }
    if let Some(s) = service {
        status.service_name = s.metadata.name.clone();
    }
    status.conditions = Some(conditions);
    status
}

/// The status of `app` while its executor `namespace/executor` is missing.
pub fn missing_executor(app: &SpinApp, message: &str, now: &Time) -> SpinAppStatus {
    let mut status = app.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        CONDITION_AVAILABLE,
        "False",
        REASON_MISSING_EXECUTOR,
        message,
        now,
    );
    status.conditions = Some(conditions);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> SpinApp {
        serde_json::from_value(json!({
            "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp",
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"image": "x", "executor": "containerd-shim-spin", "replicas": 2},
        }))
        .expect("app")
    }

    fn time(s: &str) -> Time {
        serde_json::from_value(json!(s)).expect("time")
    }

    #[test]
    fn no_deployment_is_unknown() {
        let s = observed(&app(), None, None, &time("2026-01-01T00:00:00Z"));
        assert_eq!(s.ready_replicas, 0);
        assert_eq!(s.active_scheduler.as_deref(), Some("containerd-shim-spin"));
        let c = s.conditions.expect("conditions");
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.status == "Unknown"
            && c.reason == "DeploymentNotFound"
            && c.message == "Deployment not found"));
    }

    #[test]
    fn conditions_and_ready_replicas_come_from_the_deployment() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "status": {"readyReplicas": 2, "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done"},
                {"type": "ReplicaFailure", "status": "True", "reason": "x", "message": "y"}]},
        }))
        .expect("deployment");
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "a"}})).expect("svc");
        let t0 = time("2026-01-01T00:00:00Z");
        let mut a = app();
        a.status = Some(observed(&a, None, None, &t0));
        let t1 = time("2026-01-01T00:01:00Z");
        let s = observed(&a, Some(&d), Some(&svc), &t1);
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(s.deployment_name.as_deref(), Some("a"));
        assert_eq!(s.service_name.as_deref(), Some("a"));
        let c = s.conditions.clone().expect("conditions");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].reason, "MinimumReplicasAvailable");
        assert_eq!(c[0].last_transition_time, t1);
        // Unchanged status keeps the transition time.
        a.status = Some(s);
        let again = observed(&a, Some(&d), Some(&svc), &time("2026-01-01T00:02:00Z"));
        assert_eq!(again.conditions.expect("c")[0].last_transition_time, t1);
    }

    #[test]
    fn missing_executor_sets_available_false() {
        let s = missing_executor(
            &app(),
            "Could not find SpinAppExecutor default/x",
            &time("2026-01-01T00:00:00Z"),
        );
        let c = &s.conditions.clone().expect("conditions")[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Available", "False", "MissingExecutor")
        );
        // Once the executor is back, the Deployment's view replaces it.
        let mut a = app();
        a.status = Some(s);
        let back = observed(&a, None, None, &time("2026-01-01T00:01:00Z"));
        let c = back.conditions.expect("conditions");
        assert!(c.iter().all(|c| c.reason == "DeploymentNotFound"), "{c:?}");
    }
}
