//! A pod's status as the kubelet writes it: phase, conditions (PodScheduled kept as the
//! scheduler left it; PodReadyToStartContainers, Initialized, ContainersReady, Ready with
//! their transition times kept while unchanged), `containerStatuses` (state, lastState,
//! ready, started, restartCount, image, imageID), `hostIP(s)`, `podIP(s)`, `startTime`
//! and `qosClass`.
//!
//! Pure functions from what [`crate::pod`] knows to JSON; nothing here talks to the API.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::sandbox::Exit;

/// One container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running: `ContainerCreating`, `ErrImagePull`, `CrashLoopBackOff`, ...
    Waiting {
        /// The kubelet's reason.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since `started_at`.
    Running {
        /// When it started.
        started_at: String,
    },
    /// Ended.
    Terminated {
        /// How.
        exit: Exit,
        /// When it had started.
        started_at: String,
    },
}

/// The kubelet's reason for a terminated container.
pub fn terminated_reason(exit: &Exit) -> &'static str {
    if exit.oom_killed {
        "OOMKilled"
    } else if exit.code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// A terminated state as the API holds it, back into the agent's form (for a pod whose
/// sandbox an earlier agent ran).
pub fn from_terminated(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> State {
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    State::Terminated {
        exit: Exit {
            code: t.exit_code,
            signal: t.signal,
            message: t.message.clone(),
            oom_killed: t.reason.as_deref() == Some("OOMKilled"),
            finished_at: time(&t.finished_at),
        },
        started_at: time(&t.started_at),
    }
}

/// The id of run `restart` of a container: unique per pod, container and run, and the
/// same when a restarted agent re-adopts the sandbox (as a container runtime's id is).
fn container_id(uid: &str, name: &str, restart: i32) -> String {
    format!("spinlet://{uid}-{name}-{restart}")
}

/// A state with the run's container id in it (running and terminated states carry one,
/// as the kubelet writes them).
fn state_with_id(state: &State, id: &str) -> Value {
    let mut v = state_json(state);
    if let Some(t) = v.get_mut("terminated").and_then(Value::as_object_mut) {
        t.insert("containerID".into(), json!(id));
    }
    v
}

fn state_json(state: &State) -> Value {
    match state {
        State::Waiting { reason, message } => {
            let mut w = json!({ "reason": reason });
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({ "waiting": w })
        }
        State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        State::Terminated { exit, started_at } => {
            let mut t = json!({
                "exitCode": exit.code,
                "reason": terminated_reason(exit),
                "startedAt": started_at,
                "finishedAt": exit.finished_at,
            });
            if let Some(s) = exit.signal {
                t["signal"] = json!(s);
            }
            if let Some(m) = &exit.message {
                t["message"] = json!(m);
            }
            json!({ "terminated": t })
        }
    }
}

/// One container as the agent sees it.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its name.
    pub name: String,
    /// The image as the pod names it.
    pub image: String,
    /// The pulled image's pinned reference, once pulled.
    pub image_id: Option<String>,
    /// Its state now.
    pub state: State,
    /// How its previous run ended.
    pub last: Option<State>,
    /// Runs restarted so far.
    pub restart_count: i32,
    /// Whether it is ready (running and listening).
    pub ready: bool,
}

/// What the agent knows of a pod.
#[derive(Debug, Clone)]
pub struct View {
    /// Pending, Running, Succeeded or Failed.
    pub phase: &'static str,
    /// The node's address.
    pub host_ip: String,
    /// The pod's address, once it has one.
    pub pod_ip: Option<String>,
    /// When the agent took the pod on.
    pub start_time: String,
    /// Its containers.
    pub containers: Vec<Container>,
    /// A reason for the whole pod (e.g. a Failed pod's).
    pub reason: Option<String>,
    /// A message for the whole pod.
    pub message: Option<String>,
}

/// The pod's QoS class, as the API server computes it from requests and limits.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        any |= requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty());
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|q| q.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, old: &[Value], now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let transition = old
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c = json!({
        "type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// The full status to write for `pod`.
pub fn build(pod: &Pod, view: &View) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let now = crate::node::now();
    let old: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let all_ready = !view.containers.is_empty() && view.containers.iter().all(|c| c.ready);
    let not_ready = (!all_ready).then_some("ContainersNotReady");
    let scheduled = old
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, &old, &now));
    let sandbox_up = view.pod_ip.is_some() && view.phase != "Succeeded" && view.phase != "Failed";
    let conditions = json!([
        condition("PodReadyToStartContainers", sandbox_up, None, &old, &now),
        condition("Initialized", true, None, &old, &now),
        condition("Ready", all_ready, not_ready, &old, &now),
        condition("ContainersReady", all_ready, not_ready, &old, &now),
        scheduled,
    ]);
    let containers: Vec<Value> = view
        .containers
        .iter()
        .map(|c| {
            let running = matches!(c.state, State::Running { .. });
            let this_run = container_id(uid, &c.name, c.restart_count);
            let last_run = container_id(uid, &c.name, c.restart_count - 1);
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": c.image_id.clone().unwrap_or_default(),
                "state": state_with_id(&c.state, &this_run),
                "lastState": c.last.as_ref().map(|l| state_with_id(l, &last_run)).unwrap_or_else(|| json!({})),
                "ready": c.ready,
                "started": running,
                "restartCount": c.restart_count,
            });
            if matches!(c.state, State::Running { .. } | State::Terminated { .. }) {
                s["containerID"] = json!(this_run);
            }
            s
        })
        .collect();
    let mut status = json!({
        "phase": view.phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time,
        "containerStatuses": containers,
        "qosClass": qos_class(pod),
    });
    if let Some(ip) = &view.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(r) = &view.reason {
        status["reason"] = json!(r);
    }
    if let Some(m) = &view.message {
        status["message"] = json!(m);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True",
                                       "lastTransitionTime": "2020-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
    }

    #[test]
    fn a_running_ready_container_makes_the_pod_ready_and_scheduling_is_kept() {
        let p = pod(json!({}));
        let view = View {
            phase: "Running",
            host_ip: "192.0.2.1".into(),
            pod_ip: Some("10.42.0.2".into()),
            start_time: "2021-01-01T00:00:00Z".into(),
            containers: vec![Container {
                name: "c".into(),
                image: "i".into(),
                image_id: Some("r/i@sha256:x".into()),
                state: State::Running {
                    started_at: "2021-01-01T00:00:01Z".into(),
                },
                last: None,
                restart_count: 0,
                ready: true,
            }],
            reason: None,
            message: None,
        };
        let s = build(&p, &view);
        let cond = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(cond("Ready")["status"], "True");
        assert_eq!(
            cond("PodScheduled")["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(s["podIPs"][0]["ip"], "10.42.0.2");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2021-01-01T00:00:01Z"
        );
        assert_eq!(s["containerStatuses"][0]["started"], true);

        let mut crashed = view.clone();
        crashed.containers[0].ready = false;
        crashed.containers[0].state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 10s restarting failed container=c".into()),
        };
        crashed.containers[0].last = Some(State::Terminated {
            exit: Exit {
                code: 137,
                signal: Some(9),
                message: None,
                oom_killed: false,
                finished_at: "2021-01-01T00:00:05Z".into(),
            },
            started_at: "2021-01-01T00:00:01Z".into(),
        });
        crashed.containers[0].restart_count = 1;
        let s = build(&p, &crashed);
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            137
        );
        // The previous run keeps its id; a waiting container has none.
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["containerID"],
            "spinlet://u1-c-0"
        );
        assert!(s["containerStatuses"][0].get("containerID").is_none());
        let mut rerun = crashed.clone();
        rerun.containers[0].state = State::Running {
            started_at: "2021-01-01T00:00:15Z".into(),
        };
        let running = build(&p, &rerun);
        assert_eq!(
            running["containerStatuses"][0]["containerID"],
            "spinlet://u1-c-1"
        );
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
            "Error"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        assert_eq!(
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["reason"],
            "ContainersNotReady"
        );
    }
}
