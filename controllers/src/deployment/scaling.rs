//! Scaling a Deployment that is not rolling out (a `kubectl scale`, or any change while
//! paused), as upstream's `scale`: with one active ReplicaSet (or none) that one (or the
//! newest) takes `spec.replicas`; with several in the middle of a rolling update the
//! difference is shared proportionally to each set's size (its share of `max-replicas`),
//! rounded, the leftover going to the largest; a saturated new set sends the old ones to
//! zero.
//!
//! Pure: it returns target sizes; the writes are [`super::sync`]'s.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::history;
use super::rollout::{max_surge, replicas, rs_replicas};

/// Whether the Deployment's size changed since its active sets were last scaled (their
/// `desired-replicas` differs): a scaling event, not a rollout.
pub fn is_scaling_event(d: &Deployment, sets: &[&ReplicaSet]) -> bool {
    let want = replicas(d);
    sets.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .any(|rs| history::desired_replicas(rs).is_some_and(|v| v != want))
}

fn created(rs: &ReplicaSet) -> Option<k8s_openapi::jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, ties by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The one set to give every replica to: the only active one; with none active the new
/// one, else the newest old one; `None` with several active (index into `sets`, whose
/// `new` is the new set's index).
pub fn active_or_latest(sets: &[&ReplicaSet], new: Option<usize>) -> Option<usize> {
    let active: Vec<usize> = (0..sets.len())
        .filter(|i| rs_replicas(sets[*i]) > 0)
        .collect();
    match active.len() {
        0 => new.or_else(|| (0..sets.len()).max_by(|a, b| by_creation(sets[*a], sets[*b]))),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Target sizes for the active sets when `spec.replicas + maxSurge` changed during a
/// rolling update (upstream's proportional scaling). `status_replicas` is the
/// Deployment's `status.replicas` (used for a set without `max-replicas`). Returns one
/// size per set in `sets`.
pub fn proportional(d: &Deployment, sets: &[&ReplicaSet], status_replicas: i32) -> Vec<i32> {
    let want = replicas(d);
    let current: Vec<i32> = sets.iter().map(|rs| rs_replicas(rs)).collect();
    let active: Vec<usize> = (0..sets.len()).filter(|i| current[*i] > 0).collect();
    let total: i32 = active.iter().map(|i| current[*i]).sum();
    let allowed = if want > 0 { want + max_surge(d) } else { 0 };
    let to_add = allowed - total;
    let mut sizes = current.clone();
    if to_add == 0 || active.is_empty() {
        return sizes;
    }
    let mut order = active.clone();
    // Scaling up: the largest first, newer on ties; down: the largest first, older on ties.
    order.sort_by(|a, b| {
        current[*b].cmp(&current[*a]).then_with(|| {
            let by_age = by_creation(sets[*a], sets[*b]);
            if to_add > 0 {
                by_age.reverse()
            } else {
                by_age
            }
        })
    });
    let mut added = 0;
    for i in &order {
        let rs = sets[*i];
        let share = if current[*i] == 0 || to_add == added {
            0
        } else {
            let fraction = if want == 0 {
                -current[*i]
            } else {
                let annotated = history::max_replicas(rs).unwrap_or(status_replicas);
                if annotated <= 0 {
                    0
                } else {
                    let scaled = f64::from(current[*i]) * f64::from(want + max_surge(d))
                        / f64::from(annotated);
                    scaled.round() as i32 - current[*i]
                }
            };
            let remaining = to_add - added;
            if to_add > 0 {
                fraction.min(remaining)
            } else {
                fraction.max(remaining)
            }
        };
        sizes[*i] = current[*i] + share;
        added += share;
    }
    if let Some(first) = order.first() {
        sizes[*first] = (sizes[*first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}},
        }))
        .expect("deployment")
    }

    fn rs(name: &str, created: &str, replicas: i32, max: Option<i32>, desired: i32) -> ReplicaSet {
        let mut annotations = json!({history::DESIRED_REPLICAS: desired.to_string()});
        if let Some(m) = max {
            annotations[history::MAX_REPLICAS] = json!(m.to_string());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .expect("rs")
    }

    #[test]
    fn a_scale_in_the_middle_of_a_rollout_is_shared_proportionally() {
        // 10 replicas + 3 surge = 13 across old 8 and new 5; scaled to 20 (+3 = 23).
        let old = rs("old", "2026-01-01T00:00:00Z", 8, Some(13), 10);
        let new = rs("new", "2026-01-01T01:00:00Z", 5, Some(13), 10);
        let d = deployment(20);
        let sets = [&old, &new];
        assert!(is_scaling_event(&d, &sets));
        let sizes = proportional(&d, &sets, 13);
        assert_eq!(sizes.iter().sum::<i32>(), 23);
        assert_eq!(sizes, vec![14, 9]);
        // And back down to 5 (+3 = 8).
        let d = deployment(5);
        let sizes = proportional(&d, &sets, 13);
        assert_eq!(sizes.iter().sum::<i32>(), 8);
        assert_eq!(sizes, vec![5, 3]);
    }

    #[test]
    fn to_zero_every_set_goes() {
        let old = rs("old", "2026-01-01T00:00:00Z", 8, Some(13), 10);
        let new = rs("new", "2026-01-01T01:00:00Z", 5, Some(13), 10);
        assert_eq!(proportional(&deployment(0), &[&old, &new], 13), vec![0, 0]);
    }

    #[test]
    fn one_active_set_takes_everything() {
        let old = rs("old", "2026-01-01T00:00:00Z", 0, None, 1);
        let newer_old = rs("newer", "2026-01-01T00:30:00Z", 0, None, 1);
        let new = rs("new", "2026-01-01T01:00:00Z", 3, None, 1);
        assert_eq!(
            active_or_latest(&[&old, &newer_old, &new], Some(2)),
            Some(2)
        );
        let idle = rs("new", "2026-01-01T01:00:00Z", 0, None, 1);
        assert_eq!(
            active_or_latest(&[&old, &newer_old, &idle], Some(2)),
            Some(2)
        );
        assert_eq!(
            active_or_latest(&[&old, &newer_old], None),
            Some(1),
            "the newest old"
        );
        let busy = rs("old", "2026-01-01T00:00:00Z", 2, None, 1);
        assert_eq!(active_or_latest(&[&busy, &new], Some(1)), None);
    }
}
