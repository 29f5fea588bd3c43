//! A Deployment's revision history, kept on its ReplicaSets as upstream keeps it:
//! `deployment.kubernetes.io/revision` (the new set always has the highest; a set brought
//! back by `kubectl rollout undo` gets a new number and remembers its old ones in
//! `revision-history`), `desired-replicas` and `max-replicas` (what proportional scaling
//! reads), the Deployment's own annotations copied onto its new set (but not
//! `last-applied-configuration` or these), and which old sets `revisionHistoryLimit`
//! lets go.
//!
//! Pure: it edits annotation maps and picks sets; the writes are [`super::sync`]'s.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

/// The revision of a ReplicaSet (and the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the set was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the set was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Longest `revision-history` kept (upstream's `maxRevHistoryLengthInChars`).
const MAX_HISTORY_CHARS: usize = 2000;

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The set's `desired-replicas` annotation.
pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

/// The set's `max-replicas` annotation.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

/// The set's revision (0 when it has none or an unreadable one).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among `sets`.
pub fn max_revision<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    sets.into_iter().map(revision).max().unwrap_or(0)
}

fn skipped(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Sets `desired-replicas` and `max-replicas`; whether anything changed.
pub fn set_replica_annotations(
    annotations: &mut BTreeMap<String, String>,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// The new set's annotations for `new_revision`: the Deployment's own (but the skipped
/// ones), the revision when it rises (keeping the replaced one in `revision-history`),
/// and, for a set about to be created, the replica annotations (`replicas`,
/// `replicas + maxSurge`). Whether anything changed (upstream's
/// `SetNewReplicaSetAnnotations`).
pub fn set_new_annotations(
    d: &Deployment,
    annotations: &mut BTreeMap<String, String>,
    new_revision: i64,
    exists: bool,
    replicas: (i32, i32),
) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if !skipped(k) && annotations.get(k) != Some(v) {
            annotations.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    let old = annotations.get(REVISION).cloned();
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return changed,
    };
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut kept: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
            kept.push(&old);
            while kept.iter().map(|s| s.len() + 1).sum::<usize>() - 1 > MAX_HISTORY_CHARS
                && kept.len() > 1
            {
                kept.remove(0);
            }
            let joined = kept.join(",");
            annotations.insert(REVISION_HISTORY.into(), joined);
        }
    }
    if !exists && set_replica_annotations(annotations, replicas.0, replicas.1) {
        changed = true;
    }
    changed
}

/// The old sets `revisionHistoryLimit` lets go, lowest revision first: the surplus over
/// the limit among sets not being deleted, skipping any that still has or wants pods or
/// whose controller has not caught up with its spec.
pub fn to_clean_up<'a>(old: &[&'a ReplicaSet], limit: Option<i32>) -> Vec<&'a ReplicaSet> {
    let Some(limit) = limit.filter(|l| *l != i32::MAX) else {
        return Vec::new();
    };
    let mut alive: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let surplus = alive.len() as i64 - i64::from(limit.max(0));
    if surplus <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| {
        revision(a)
            .cmp(&revision(b))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    alive
        .into_iter()
        .take(surplus as usize)
        .filter(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            status.replicas == 0
                && super::rollout::rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(annotations: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d", "annotations": annotations}}))
            .expect("deployment")
    }

    fn rs(name: &str, revision: &str, replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 1, "annotations": {REVISION: revision}},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "observedGeneration": 1},
        }))
        .expect("rs")
    }

    #[test]
    fn a_new_set_gets_the_deployments_annotations_and_the_next_revision() {
        let d = deployment(json!({"team": "a", LAST_APPLIED: "{}", REVISION: "4",
            "kubernetes.io/change-cause": "kubectl set image"}));
        let mut a = BTreeMap::new();
        assert!(set_new_annotations(&d, &mut a, 5, false, (3, 4)));
        assert_eq!(a.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            a.get("kubernetes.io/change-cause").map(String::as_str),
            Some("kubectl set image")
        );
        assert!(!a.contains_key(LAST_APPLIED));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("5"));
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
        assert!(!a.contains_key(REVISION_HISTORY));
        assert!(
            !set_new_annotations(&d, &mut a, 5, true, (3, 4)),
            "nothing new"
        );
    }

    #[test]
    fn a_set_rolled_back_to_keeps_its_old_revisions() {
        let d = deployment(json!({}));
        let mut a = BTreeMap::from([(REVISION.to_string(), "1".to_string())]);
        assert!(set_new_annotations(&d, &mut a, 3, true, (1, 1)));
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        assert!(set_new_annotations(&d, &mut a, 5, true, (1, 1)));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
        assert!(
            !set_new_annotations(&d, &mut a, 4, true, (1, 1)),
            "never lowered"
        );
        assert!(
            !a.contains_key(DESIRED_REPLICAS),
            "an existing set is annotated when scaled"
        );
    }

    #[test]
    fn the_history_limit_removes_the_oldest_empty_sets() {
        let sets = [
            rs("a", "1", 0),
            rs("b", "2", 0),
            rs("c", "3", 1),
            rs("d", "4", 0),
        ];
        let refs: Vec<&ReplicaSet> = sets.iter().collect();
        let names = |v: Vec<&ReplicaSet>| -> Vec<String> {
            v.iter()
                .map(|r| r.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(to_clean_up(&refs, Some(2))), ["a", "b"]);
        assert_eq!(
            names(to_clean_up(&refs, Some(1))),
            ["a", "b"],
            "c still has a pod"
        );
        assert!(to_clean_up(&refs, Some(10)).is_empty());
        assert!(to_clean_up(&refs, None).is_empty());
        assert_eq!(max_revision(refs.iter().copied()), 4);
    }
}
