//! A ReplicaSet's status as kube-controller-manager computes it from the pods it owns:
//! `replicas` (active pods), `fullyLabeledReplicas` (pods carrying every template label),
//! `readyReplicas`, `availableReplicas` (ready for at least `minReadySeconds`), the
//! `ReplicaFailure` condition while creating or deleting pods fails, and
//! `observedGeneration`. Also the pod predicates those counts rest on (active, ready,
//! available), which the deletion order uses too. Pure: no API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Whether a pod counts: not finished (`Succeeded`/`Failed`) and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's `Ready` condition when it is `True`: since when it is ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod is ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been ready for `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now,
    }
}

/// When a ready but not yet available pod becomes available (`None` for any other pod).
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let since = ready_since(pod)??;
    Some(since + SignedDuration::from_secs(i64::from(min_ready_seconds)))
}

fn labels_contain(
    labels: Option<&BTreeMap<String, String>>,
    wanted: Option<&BTreeMap<String, String>>,
) -> bool {
    wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The status of `rs` given its active pods and the error of the last attempt to create
/// or delete pods, if it failed (`FailedCreate` when short of pods, `FailedDelete` when
/// over).
pub fn compute(
    rs: &ReplicaSet,
    pods: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let mut status = rs.status.clone().unwrap_or_default();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        if labels_contain(pod.metadata.labels.as_ref(), template_labels) {
            fully_labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    let failing = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(message) if !failing => {
            let want = spec.and_then(|s| s.replicas).unwrap_or(1);
            let reason = if (pods.len() as i64) < i64::from(want) {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if failing => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Whether `new` differs from what `rs` shows, counting an unobserved generation (the
/// steady state writes nothing, as upstream's `updateReplicaSetStatus`).
pub fn needs_write(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    old.replicas != new.replicas
        || n(old.fully_labeled_replicas) != n(new.fully_labeled_replicas)
        || n(old.ready_replicas) != n(new.ready_replicas)
        || n(old.available_replicas) != n(new.available_replicas)
        || old.observed_generation != rs.metadata.generation
        || old.conditions != new.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, ready_at: Option<&str>, extra: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "labels": labels},
            "status": {"phase": "Running", "conditions": []},
        });
        if let Some(at) = ready_at {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                "lastTransitionTime": at}]);
        }
        if let (Some(base), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(p).expect("pod")
    }

    fn rs(min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rs", "generation": 3},
            "spec": {"replicas": 3, "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a", "tier": "web"}}}},
        }))
        .expect("rs")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn counts_labeled_ready_and_available_pods() {
        let full = json!({"app": "a", "tier": "web", "extra": "x"});
        let partial = json!({"app": "a"});
        let a = pod(full.clone(), Some("2026-01-01T00:00:00Z"), json!({}));
        let b = pod(full, Some("2026-01-01T00:00:50Z"), json!({}));
        let c = pod(partial, None, json!({}));
        let now = at("2026-01-01T00:01:00Z");
        let status = compute(&rs(30), &[&a, &b, &c], None, now);
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(
            status.available_replicas,
            Some(1),
            "b is ready for only 10 s"
        );
        assert_eq!(available_at(&b, 30), Some(at("2026-01-01T00:01:20Z")));
        let status = compute(&rs(0), &[&a, &b, &c], None, now);
        assert_eq!(status.available_replicas, Some(2));
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        let labels = json!({"app": "a"});
        assert!(is_active(&pod(labels.clone(), None, json!({}))));
        let done = pod(
            labels.clone(),
            None,
            json!({"status": {"phase": "Succeeded"}}),
        );
        assert!(!is_active(&done));
        let failed = pod(labels.clone(), None, json!({"status": {"phase": "Failed"}}));
        assert!(!is_active(&failed));
        let deleting = pod(
            labels,
            None,
            json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        assert!(!is_active(&deleting));
    }

    #[test]
    fn replica_failure_is_set_once_and_cleared() {
        let now = at("2026-01-01T00:01:00Z");
        let set = rs(0);
        let status = compute(&set, &[], Some("quota exceeded"), now);
        let conditions = status.conditions.clone().unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("FailedCreate"));
        let mut failing = set.clone();
        failing.status = Some(status);
        let again = compute(&failing, &[], Some("other"), now);
        assert_eq!(again.conditions.as_ref().map(Vec::len), Some(1));
        let cleared = compute(&failing, &[], None, now);
        assert_eq!(cleared.conditions, None);
        assert!(
            needs_write(&set, &cleared),
            "generation 3 was never observed"
        );
    }
}
