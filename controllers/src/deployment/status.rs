//! A Deployment's status as upstream computes it from its ReplicaSets: `replicas`,
//! `updatedReplicas` (the new set's), `readyReplicas`, `availableReplicas`,
//! `unavailableReplicas`, `observedGeneration`, `collisionCount`, and the conditions
//! `Available` (`MinimumReplicasAvailable` / `MinimumReplicasUnavailable`) and
//! `Progressing` (`NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated`,
//! `NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, `DeploymentPaused`,
//! `DeploymentResumed`), plus `ReplicaFailure` copied from a failing set.
//!
//! Pure: it returns statuses and when to look again; the writes are [`super::sync`]'s.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::rollout::{max_unavailable, replicas, rs_available, rs_replicas};

/// Progressing reasons, as upstream words them.
pub mod reason {
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// An existing ReplicaSet was found to be the new one.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// No progress within `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// `spec.paused` was set.
    pub const PAUSED: &str = "DeploymentPaused";
    /// `spec.paused` was cleared.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Creating the new ReplicaSet failed.
    pub const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
}

/// A condition with both times `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if any.
pub fn get<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition as upstream's `SetDeploymentCondition`: nothing when status and
/// reason are unchanged; the transition time kept when only the reason changes.
pub fn set(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove(status, &c.type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Removes the condition of `type_`.
pub fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(list) = status.conditions.as_mut() {
        list.retain(|c| c.type_ != type_);
    }
}

/// Whether a progress deadline applies (set and not "infinite").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

fn sum(sets: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    sets.iter().map(|rs| f(rs)).sum()
}

/// The status counts and the `Available` condition (upstream's `calculateStatus`).
pub fn calculate(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available = sum(all, rs_available);
    let total = sum(all, rs_replicas);
    let reported = |rs: &ReplicaSet| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(all, reported)),
        updated_replicas: Some(new.map(reported).unwrap_or(0)),
        ready_replicas: Some(sum(all, |rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set(
            &mut status,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set(
            &mut status,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Whether `status` shows the rollout complete: every replica updated and available, and
/// the current generation observed.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = replicas(d);
    n(status.updated_replicas) == want
        && n(status.replicas) == want
        && n(status.available_replicas) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over the Deployment's current status.
fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

fn deadline(d: &Deployment) -> SignedDuration {
    let secs = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    SignedDuration::from_secs(i64::from(secs))
}

fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(c) = get(status, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + deadline(d) < now),
    }
}

/// The status of a rollout pass (upstream's `syncRolloutStatus`): the counts, then the
/// Progressing condition (complete, progressing, or timed out), then `ReplicaFailure`.
pub fn rollout(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate(d, all, new, now);
    let with_deadline = has_progress_deadline(d);
    if !with_deadline {
        remove(&mut status, "Progressing");
    }
    let old = d.status.clone().unwrap_or_default();
    let current = get(&old, "Progressing").cloned();
    let done = n(status.replicas) == n(status.updated_replicas)
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(reason::NEW_RS_AVAILABLE);
    let rs_name = new.and_then(|rs| rs.metadata.name.clone());
    let name = d.metadata.name.clone().unwrap_or_default();
    let says = |rs_text: &str, d_text: &str| match &rs_name {
        Some(rs) => format!("ReplicaSet {rs:?} {rs_text}"),
        None => format!("Deployment {name:?} {d_text}"),
    };
    if with_deadline && !done {
        if is_complete(d, &status) {
            set(
                &mut status,
                condition(
                    "Progressing",
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    says(
                        "has successfully progressed.",
                        "has successfully progressed.",
                    ),
                    now,
                ),
            );
        } else if is_progressing(d, &status) {
            let mut c = condition(
                "Progressing",
                "True",
                reason::RS_UPDATED,
                says("is progressing.", "is progressing."),
                now,
            );
            if let Some(current) = &current {
                if current.status == "True" {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove(&mut status, "Progressing");
            }
            set(&mut status, c);
        } else if timed_out(d, &status, now) {
            set(
                &mut status,
                condition(
                    "Progressing",
                    "False",
                    reason::TIMED_OUT,
                    says("has timed out progressing.", "has timed out progressing."),
                    now,
                ),
            );
        }
    }
    match replica_failure(all, new) {
        Some(c) => set(&mut status, c),
        None => remove(&mut status, "ReplicaFailure"),
    }
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    status
}

/// The first `ReplicaFailure` of the sets (the new one first), as a Deployment condition.
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    new.into_iter().chain(all.iter().copied()).find_map(|rs| {
        let c = rs
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure")?;
        Some(DeploymentCondition {
            type_: "ReplicaFailure".into(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
    })
}

/// When to look at a rollout again to tell whether it timed out (upstream's
/// `requeueStuckDeployment`): `None` when no deadline applies or it is settled.
pub fn recheck_after(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let current = get(d.status.as_ref()?, "Progressing")?;
    if !has_progress_deadline(d)
        || is_complete(d, status)
        || current.reason.as_deref() == Some(reason::TIMED_OUT)
    {
        return None;
    }
    let from = current.last_update_time.as_ref()?.0;
    let left = (from + deadline(d)).duration_since(now);
    Some(if left < SignedDuration::from_secs(1) {
        Duration::from_secs(1)
    } else {
        left.unsigned_abs() + Duration::from_secs(1)
    })
}

/// The Progressing condition `spec.paused` calls for, if it must change (upstream's
/// `checkPausedConditions`): `DeploymentPaused` when paused, `DeploymentResumed` when no
/// longer; a timeout is never overwritten.
pub fn paused_condition(d: &Deployment, now: Timestamp) -> Option<DeploymentCondition> {
    if !has_progress_deadline(d) {
        return None;
    }
    let status = d.status.clone().unwrap_or_default();
    let current = get(&status, "Progressing");
    let current_reason = current.and_then(|c| c.reason.as_deref());
    if current_reason == Some(reason::TIMED_OUT) {
        return None;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let marked = current_reason == Some(reason::PAUSED);
    if paused && !marked {
        Some(condition(
            "Progressing",
            "Unknown",
            reason::PAUSED,
            "Deployment is paused".into(),
            now,
        ))
    } else if !paused && marked {
        Some(condition(
            "Progressing",
            "Unknown",
            reason::RESUMED,
            "Deployment is resumed".into(),
            now,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
            "status": status,
        }))
        .expect("deployment")
    }

    fn rs(name: &str, replicas: i32, ready: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available},
        }))
        .expect("rs")
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().expect("now")
    }

    fn reason_of(s: &DeploymentStatus, t: &str) -> Option<String> {
        get(s, t).and_then(|c| c.reason.clone())
    }

    #[test]
    fn counts_come_from_the_replica_sets() {
        let d = deployment(4, json!({}));
        let old = rs("web-old", 2, 2, 2);
        let new = rs("web-new", 3, 2, 1);
        let s = calculate(&d, &[&old, &new], Some(&new), now());
        assert_eq!(s.replicas, Some(5));
        assert_eq!(s.updated_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(4));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            reason_of(&s, "Available").as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let short = rs("web-new", 4, 1, 1);
        let s = calculate(&d, &[&short], Some(&short), now());
        assert_eq!(
            reason_of(&s, "Available").as_deref(),
            Some("MinimumReplicasUnavailable")
        );
        assert_eq!(
            get(&s, "Available").map(|c| c.status.as_str()),
            Some("False")
        );
    }

    #[test]
    fn progressing_follows_the_rollout() {
        let created = json!({"conditions": [{"type": "Progressing", "status": "True",
            "reason": reason::NEW_RS_CREATED, "message": "Created new replica set \"web-new\"",
            "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "replicas": 2, "updatedReplicas": 0, "readyReplicas": 2, "availableReplicas": 2});
        let d = deployment(2, created.clone());
        let old = rs("web-old", 1, 1, 1);
        let new = rs("web-new", 2, 1, 1);
        let s = rollout(&d, &[&old, &new], Some(&new), now());
        let c = get(&s, "Progressing").cloned().expect("progressing");
        assert_eq!(c.reason.as_deref(), Some(reason::RS_UPDATED));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-new\" is progressing.")
        );
        assert_eq!(
            c.last_transition_time.map(|t| t.0.to_string()),
            Some("2026-01-01T00:00:00Z".to_string()),
            "still True: the transition time stays"
        );

        let done = rs("web-new", 2, 2, 2);
        let s = rollout(&d, &[&done], Some(&done), now());
        assert_eq!(
            reason_of(&s, "Progressing").as_deref(),
            Some(reason::NEW_RS_AVAILABLE)
        );
        assert_eq!(
            get(&s, "Progressing")
                .and_then(|c| c.message.clone())
                .as_deref(),
            Some("ReplicaSet \"web-new\" has successfully progressed.")
        );
        assert_eq!(recheck_after(&d, &s, now()), None);

        // No progress for longer than the deadline.
        let late: Timestamp = "2026-01-01T00:10:01Z".parse().expect("late");
        let stuck_status = json!({"conditions": created["conditions"].clone(),
            "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        let stuck = deployment(2, stuck_status);
        let s = rollout(&stuck, &[&old, &new], Some(&new), late);
        assert_eq!(
            reason_of(&s, "Progressing").as_deref(),
            Some(reason::TIMED_OUT)
        );
        assert_eq!(
            get(&s, "Progressing").map(|c| c.status.as_str()),
            Some("False")
        );
        let s = rollout(&stuck, &[&old, &new], Some(&new), now());
        assert_eq!(
            reason_of(&s, "Progressing").as_deref(),
            Some(reason::NEW_RS_CREATED)
        );
        assert_eq!(
            recheck_after(&stuck, &s, now()),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn pausing_and_resuming_mark_progressing_unknown() {
        let mut d = deployment(1, json!({}));
        if let Some(s) = d.spec.as_mut() {
            s.paused = Some(true);
        }
        let c = paused_condition(&d, now()).expect("paused");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("Unknown", Some(reason::PAUSED))
        );
        d.status = Some(DeploymentStatus {
            conditions: Some(vec![c]),
            ..Default::default()
        });
        assert!(paused_condition(&d, now()).is_none());
        if let Some(s) = d.spec.as_mut() {
            s.paused = Some(false);
        }
        let c = paused_condition(&d, now()).expect("resumed");
        assert_eq!(c.reason.as_deref(), Some(reason::RESUMED));
    }

    #[test]
    fn replica_failures_are_copied_and_no_deadline_means_no_progressing() {
        let mut d = deployment(
            2,
            json!({"conditions": [{"type": "Progressing",
            "status": "True", "reason": reason::NEW_RS_CREATED}]}),
        );
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = Some(i32::MAX);
        }
        let failing: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-new"},
            "spec": {"replicas": 2, "selector": {}},
            "status": {"replicas": 0, "conditions": [{"type": "ReplicaFailure",
                "status": "True", "reason": "FailedCreate", "message": "quota"}]},
        }))
        .expect("rs");
        let s = rollout(&d, &[&failing], Some(&failing), now());
        assert!(
            get(&s, "Progressing").is_none(),
            "no deadline, no Progressing"
        );
        let c = get(&s, "ReplicaFailure").cloned().expect("copied");
        assert_eq!(
            (c.reason.as_deref(), c.message.as_deref()),
            (Some("FailedCreate"), Some("quota"))
        );
        let healthy = rs("web-new", 2, 2, 2);
        let mut with_failure = d.clone();
        with_failure.status = Some(s);
        let s = rollout(&with_failure, &[&healthy], Some(&healthy), now());
        assert!(
            get(&s, "ReplicaFailure").is_none(),
            "cleared once the set recovers"
        );
    }
}
