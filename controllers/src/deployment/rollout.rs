//! The arithmetic of a rollout, as kube-controller-manager's deployment controller does it:
//! `maxSurge`/`maxUnavailable` resolved against `spec.replicas` (integers or percentages;
//! surge rounded up, unavailable rounded down; both 0 makes unavailable 1), how far the new
//! ReplicaSet may grow, how far the old ones may shrink (unhealthy replicas first, then
//! oldest first while enough stay available), saturation, and whether a Recreate rollout
//! must still wait for old pods.
//!
//! Pure: it takes numbers and ReplicaSet views and returns sizes; the writes are
//! [`super::sync`]'s.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `spec.replicas` of a Deployment (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The available replicas a rollout may count on in a ReplicaSet: `status.availableReplicas`,
/// but never more than `spec.replicas`. Right after a set is scaled down its status still
/// counts the pods its controller is about to delete; upstream sums the status as it is and,
/// in that window, can scale the old sets down a second time below `maxUnavailable`. Here
/// a pod the set no longer wants is never counted on.
pub fn rs_counted_available(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs))
}

/// Whether the Deployment uses the Recreate strategy.
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// `value` of `total`: an integer as is, `N%` scaled and rounded up or down, as
/// upstream's `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(v) => Ok(*v),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    format!("invalid value for IntOrString: {s:?} is not a percentage")
                })?;
            let scaled = percent * i64::from(total);
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas: 0 when unset; both 0 makes
/// `maxUnavailable` 1 (upstream's `ResolveFenceposts`).
pub fn fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    Ok(if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    })
}

fn resolved(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 1))
}

/// The Deployment's resolved `maxSurge` (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    resolved(d).0
}

/// The Deployment's resolved `maxUnavailable`, at most `spec.replicas` (0 for Recreate
/// or no replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let want = replicas(d);
    if is_recreate(d) || want == 0 {
        return 0;
    }
    resolved(d).1.min(want)
}

/// How many replicas the new ReplicaSet should have now, given `total` (all
/// ReplicaSets' `spec.replicas`) and its own `current` (upstream's `NewRSNewReplicas`).
pub fn new_rs_replicas(d: &Deployment, total: i32, current: i32) -> i32 {
    let want = replicas(d);
    if is_recreate(d) {
        return want;
    }
    let max_total = want + max_surge(d);
    if total >= max_total {
        return current;
    }
    current + (max_total - total).min(want - current)
}

/// An old ReplicaSet as the scale-down needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldSet {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// How far the old ReplicaSets may shrink at most in this pass: all pods minus those that
/// must stay available minus the new set's unavailable ones (0 or less: not at all).
pub fn old_scale_down_budget(
    d: &Deployment,
    all_total: i32,
    new_replicas: i32,
    new_available: i32,
) -> i32 {
    let min_available = replicas(d) - max_unavailable(d);
    all_total - min_available - (new_replicas - new_available)
}

/// New sizes for the old sets (oldest first) after removing up to `budget` of their
/// unavailable replicas (upstream's `cleanupUnhealthyReplicas`); returns the sizes and
/// how many were removed.
pub fn without_unhealthy(old: &[OldSet], budget: i32) -> (Vec<i32>, i32) {
    let mut removed = 0;
    let sizes = old
        .iter()
        .map(|s| {
            if removed >= budget || s.replicas == 0 || s.replicas <= s.available {
                return s.replicas;
            }
            let cut = (budget - removed).min(s.replicas - s.available);
            removed += cut;
            s.replicas - cut
        })
        .collect();
    (sizes, removed)
}

/// New sizes for the old sets (oldest first) scaled down while more than the minimum
/// stay available; `available` is the available replicas of every set (upstream's
/// `scaleDownOldReplicaSetsForRollingUpdate`).
pub fn scaled_down_for_rolling(d: &Deployment, old: &[OldSet], available: i32) -> Vec<i32> {
    let min_available = replicas(d) - max_unavailable(d);
    let mut left = (available - min_available).max(0);
    old.iter()
        .map(|s| {
            if left == 0 || s.replicas == 0 {
                return s.replicas;
            }
            let cut = s.replicas.min(left);
            left -= cut;
            s.replicas - cut
        })
        .collect()
}

/// Whether the new ReplicaSet is saturated: sized and annotated for the Deployment and
/// all its replicas available.
pub fn is_saturated(d: &Deployment, new: &ReplicaSet) -> bool {
    let want = replicas(d);
    let desired = super::history::desired_replicas(new);
    desired == Some(want) && rs_available(new) == want && rs_replicas(new) == want
}

/// Whether a Recreate rollout must still wait: an old set still reports pods, or a pod
/// of an old set (terminating ones too) has not finished.
pub fn old_pods_running(old: &[&ReplicaSet], pods_of_old: &[&Pod]) -> bool {
    let reported: i32 = old
        .iter()
        .map(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum();
    reported > 0
        || pods_of_old.iter().any(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
        }))
        .expect("deployment")
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let s = |v: &str| IntOrString::String(v.into());
        assert_eq!(fenceposts(Some(&s("25%")), Some(&s("25%")), 10), Ok((3, 2)));
        assert_eq!(fenceposts(Some(&s("25%")), Some(&s("25%")), 1), Ok((1, 0)));
        assert_eq!(fenceposts(Some(&s("25%")), Some(&s("25%")), 4), Ok((1, 1)));
        assert_eq!(
            fenceposts(Some(&s("0%")), Some(&s("10%")), 5),
            Ok((0, 1)),
            "both 0 → 1"
        );
        assert_eq!(
            fenceposts(Some(&IntOrString::Int(2)), Some(&IntOrString::Int(0)), 3),
            Ok((2, 0))
        );
        assert!(fenceposts(Some(&s("two")), None, 3).is_err());
        assert_eq!(scaled_value(&s("50%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&s("50%"), 3, false), Ok(1));
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_for_recreate() {
        let d = deployment(2, json!(0), json!(5));
        assert_eq!(max_unavailable(&d), 2);
        let mut r = d.clone();
        if let Some(s) = r.spec.as_mut() {
            s.strategy = serde_json::from_value(json!({"type": "Recreate"})).ok();
        }
        assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
        assert_eq!(new_rs_replicas(&r, 7, 0), 2);
        let none = deployment(0, json!("25%"), json!("25%"));
        assert_eq!(max_unavailable(&none), 0);
    }

    #[test]
    fn the_new_set_grows_within_the_surge() {
        // 10 replicas, surge 3: with 10 old pods the new set may have 3.
        let d = deployment(10, json!("25%"), json!("25%"));
        assert_eq!(new_rs_replicas(&d, 10, 0), 3);
        assert_eq!(new_rs_replicas(&d, 13, 3), 3, "at the cap");
        assert_eq!(new_rs_replicas(&d, 11, 8), 10, "never past spec.replicas");
    }

    #[test]
    fn old_sets_shrink_unhealthy_first_then_oldest_first() {
        let d = deployment(10, json!("25%"), json!("25%"));
        // 10 old (all available) + 3 new (none available): 13 - 8 - 3 = 2 may go.
        assert_eq!(old_scale_down_budget(&d, 13, 3, 0), 2);
        let old = [
            OldSet {
                replicas: 4,
                available: 2,
            },
            OldSet {
                replicas: 6,
                available: 6,
            },
        ];
        assert_eq!(without_unhealthy(&old, 1), (vec![3, 6], 1));
        assert_eq!(without_unhealthy(&old, 5), (vec![2, 6], 2));
        let healthy = [
            OldSet {
                replicas: 4,
                available: 4,
            },
            OldSet {
                replicas: 6,
                available: 6,
            },
        ];
        // 10 available, 8 must stay: 2 go, from the oldest.
        assert_eq!(scaled_down_for_rolling(&d, &healthy, 10), vec![2, 6]);
        assert_eq!(scaled_down_for_rolling(&d, &healthy, 8), vec![4, 6]);
    }

    fn set(replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rs"},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": available, "availableReplicas": available},
        }))
        .expect("replica set")
    }

    #[test]
    fn a_set_just_scaled_down_is_not_counted_twice() {
        // 12 replicas, 25 %: 9 must stay available. The old set was just cut from 12 to 9
        // and its status still says 12; the new set has 3 of 3 available.
        let d = deployment(12, json!("25%"), json!("25%"));
        let (old, new) = (set(9, 12), set(3, 3));
        assert_eq!(rs_counted_available(&old), 9);
        assert_eq!(rs_counted_available(&new), 3);
        let budget = old_scale_down_budget(&d, 12, 3, rs_counted_available(&new));
        assert_eq!(budget, 3);
        let available = rs_counted_available(&old) + rs_counted_available(&new);
        let view = [OldSet {
            replicas: 9,
            available: rs_counted_available(&old),
        }];
        let sizes = scaled_down_for_rolling(&d, &view, available);
        // 6 old + 3 new = 9 stay; the status as it was (15) would have left 3 + 3.
        assert_eq!(sizes, vec![6]);
        assert_eq!(scaled_down_for_rolling(&d, &view, 15), vec![3]);
    }

    #[test]
    fn recreate_waits_for_every_old_pod() {
        let rs: ReplicaSet =
            serde_json::from_value(json!({"status": {"replicas": 0}})).expect("rs");
        let running: Pod =
            serde_json::from_value(json!({"status": {"phase": "Running"}})).expect("pod");
        let done: Pod =
            serde_json::from_value(json!({"status": {"phase": "Succeeded"}})).expect("pod");
        assert!(!old_pods_running(&[&rs], &[&done]));
        assert!(old_pods_running(&[&rs], &[&running, &done]));
        let busy: ReplicaSet =
            serde_json::from_value(json!({"status": {"replicas": 1}})).expect("rs");
        assert!(old_pods_running(&[&busy], &[]));
    }
}
