//! Which pods a ReplicaSet deletes first when it has too many, in kube-controller-manager's
//! order (`ActivePodsWithRanks`, with `PodDeletionCost` and `LogarithmicScaleDown` on, as
//! they are by default):
//! 1. unscheduled before scheduled;
//! 2. `Pending` before `Unknown` before `Running`;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
//! 5. more related pods on the same node first (doubled-up pods);
//! 6. ready for less time first (compared on a log2 scale of the age);
//! 7. more container restarts first;
//! 8. newer first (log2 scale); then by uid.
//!
//! Pure: it orders the pods it is given and touches nothing.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::status::{is_ready, ready_since};

/// The annotation that lowers or raises a pod's deletion preference.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `floor(log2(age in ns))`, -1 for no age (upstream's logarithmic rank).
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let ns = now.duration_since(t).as_nanos();
    if ns <= 0 {
        -1
    } else {
        i64::from(127 - (ns as u128).leading_zeros() as i32)
    }
}

/// Orders two optional times: a missing time first, then the later one first (younger),
/// comparing on a log2 scale of their age when `now` is known.
fn younger_first(a: Option<Timestamp>, b: Option<Timestamp>, now: Timestamp) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) if a == b => Ordering::Equal,
        (Some(a), Some(b)) => log_rank(a, now).cmp(&log_rank(b, now)),
    }
}

fn creation(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Compares two pods for deletion: `Less` is deleted first. `rank` is how many related
/// active pods share the pod's node.
fn compare(a: (&Pod, usize), b: (&Pod, usize), now: Timestamp) -> Ordering {
    let (pa, ra) = a;
    let (pb, rb) = b;
    let (na, nb) = (node(pa), node(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    phase_rank(pa)
        .cmp(&phase_rank(pb))
        .then_with(|| is_ready(pa).cmp(&is_ready(pb)))
        .then_with(|| deletion_cost(pa).cmp(&deletion_cost(pb)))
        .then_with(|| rb.cmp(&ra))
        .then_with(|| {
            if is_ready(pa) && is_ready(pb) {
                let ta = ready_since(pa).flatten();
                let tb = ready_since(pb).flatten();
                younger_first(ta, tb, now)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(pb).cmp(&max_restarts(pa)))
        .then_with(|| younger_first(creation(pa), creation(pb), now))
        .then_with(|| pa.metadata.uid.cmp(&pb.metadata.uid))
}

/// The `count` pods of `pods` to delete first; `related` are the active pods of every
/// ReplicaSet with the same controller (this one's included), counted per node.
pub fn to_delete<'a>(
    pods: &[&'a Pod],
    related: &[&Pod],
    count: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| (*p, on_node.get(node(p)).copied().unwrap_or(0)))
        .collect();
    if count < ranked.len() {
        ranked.sort_by(|a, b| compare(*a, *b, now));
    }
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pod(name: &str, v: Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running"},
        });
        for (key, extra) in v.as_object().cloned().unwrap_or_default() {
            if let (Some(base), Some(extra)) = (p[&key].as_object_mut(), extra.as_object()) {
                base.extend(extra.clone());
            }
        }
        serde_json::from_value(p).expect("pod")
    }

    fn ready(at: &str) -> Value {
        json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}]})
    }

    fn names(pods: Vec<&Pod>) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn deletes_in_upstream_order() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("now");
        let old_ready = pod(
            "old-ready",
            json!({"status": ready("2026-01-01T00:00:00Z")}),
        );
        let new_ready = pod(
            "new-ready",
            json!({"status": ready("2026-01-01T23:59:00Z")}),
        );
        let not_ready = pod("not-ready", json!({}));
        let pending = pod("pending", json!({"status": {"phase": "Pending"}}));
        let unscheduled = pod(
            "unscheduled",
            json!({"spec": {"nodeName": null}, "status": {"phase": "Pending"}}),
        );
        let cheap = pod(
            "cheap",
            json!({"metadata": {"annotations": {DELETION_COST: "-10"}},
                "status": ready("2026-01-01T00:00:00Z")}),
        );
        let all = [
            &old_ready,
            &new_ready,
            &not_ready,
            &pending,
            &unscheduled,
            &cheap,
        ];
        let order = names(to_delete(&all, &all, 5, now));
        assert_eq!(
            order,
            ["unscheduled", "pending", "not-ready", "cheap", "new-ready"],
        );
        assert_eq!(names(to_delete(&all, &all, 6, now)).len(), 6);
    }

    #[test]
    fn restarts_then_age_break_ties() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("now");
        let restarted = pod(
            "restarted",
            json!({"status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                "ready": false, "restartCount": 3}]}}),
        );
        let younger = pod(
            "younger",
            json!({"metadata": {"creationTimestamp": "2026-01-01T23:00:00Z"}}),
        );
        let older = pod("older", json!({}));
        let all = [&older, &younger, &restarted];
        assert_eq!(
            names(to_delete(&all, &all, 2, now)),
            ["restarted", "younger"]
        );
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("now");
        let a = pod("a", json!({"spec": {"nodeName": "busy"}}));
        let b = pod("b", json!({"spec": {"nodeName": "quiet"}}));
        let sibling = pod("sibling", json!({"spec": {"nodeName": "busy"}}));
        assert_eq!(
            names(to_delete(&[&b, &a], &[&a, &b, &sibling], 1, now)),
            ["a"]
        );
    }
}
