//! End-to-end tests of the scheduler in `spinlet server`, with the real binary, kube-rs
//! and kubectl: pending pods are bound to a Ready node through `pods/binding`; a pod no
//! node fits stays Pending with `PodScheduled=False`/`Unschedulable` and a
//! `FailedScheduling` event in kube-scheduler's words (node selector, cordon, taint,
//! cpu), and is bound without further action once the node changes (label, uncordon,
//! untaint); a RuntimeClass's `scheduling` and required node affinity are honoured.
//!
//! The servers run without their node agent (`Server::start_with`): the tests create the
//! Node objects themselves (status Ready and allocatable through the status
//! subresource), so no pod actually runs. Run `cargo build` first: the harness starts
//! `target/<profile>/spinlet`.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// How long a pod may take to reach the state a test waits for (state, not speed).
const DEADLINE: Duration = Duration::from_secs(60);

/// Creates a Ready node with `cpu` cores, 4 GiB and 110 pods allocatable.
async fn create_node(client: &kube::Client, name: &str, cpu: &str, ready: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let resources = json!({"cpu": cpu, "memory": "4Gi", "pods": "110"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{
            "type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
            "message": "set by the test",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

/// Creates a pod in `default` from a spec fragment merged over one container.
async fn create_pod(client: &kube::Client, name: &str, spec: Value) {
    let mut full = json!({"containers": [{"name": "app", "image": "registry.local/app:1"}]});
    if let (Value::Object(base), Value::Object(extra)) = (&mut full, spec) {
        base.extend(extra);
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": full,
    }))
    .expect("pod");
    Api::<Pod>::default_namespaced(client.clone())
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

fn container_requests(cpu: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "registry.local/app:1",
        "resources": {"requests": {"cpu": cpu}}}]})
}

/// Polls `check` every 200 ms until it gives a value, or fails with `what` and the log.
async fn wait_for<T, F, Fut>(server: &Server, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > DEADLINE {
            let pods = server.kubectl_output(&["get", "pods", "-o", "wide"], None);
            let events = server.kubectl_output(&["get", "events"], None);
            panic!(
                "timed out waiting for {what}\npods:\n{}\nevents:\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&pods.stdout),
                String::from_utf8_lossy(&events.stdout),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_pod(client: &kube::Client, name: &str) -> Pod {
    Api::<Pod>::default_namespaced(client.clone())
        .get(name)
        .await
        .expect("get pod")
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// The pod's PodScheduled condition as (status, reason, message).
fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Waits until the pod is bound; returns its node.
async fn wait_bound(server: &Server, client: &kube::Client, name: &str) -> String {
    wait_for(server, &format!("pod {name} to be bound"), || async {
        node_name(&get_pod(client, name).await)
    })
    .await
}

/// Waits until the pod is marked unschedulable with a message containing `reason`;
/// returns the message.
async fn wait_unschedulable(
    server: &Server,
    client: &kube::Client,
    name: &str,
    reason: &str,
) -> String {
    wait_for(
        server,
        &format!("pod {name} to be unschedulable for {reason:?}"),
        || async {
            let pod = get_pod(client, name).await;
            assert_eq!(node_name(&pod), None, "pod {name} was bound");
            match scheduled_condition(&pod) {
                Some((s, r, m)) if s == "False" && r == "Unschedulable" && m.contains(reason) => {
                    Some(m)
                }
                _ => None,
            }
        },
    )
    .await
}

/// The events about pod `name` with `reason`.
async fn events_about(client: &kube::Client, name: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_pod_is_bound_to_the_only_ready_node() {
    let server = Server::start_with(&[]);
    let client = server.client().await;
    create_node(&client, "node-a", "2", true).await;
    // A node whose Ready condition is False takes nothing (as if tainted not-ready).
    create_node(&client, "node-down", "64", false).await;
    create_pod(&client, "bare", json!({})).await;

    assert_eq!(wait_bound(&server, &client, "bare").await, "node-a");
    let pod = get_pod(&client, "bare").await;
    let (status, _, _) = scheduled_condition(&pod).expect("PodScheduled condition");
    assert_eq!(status, "True");
    let events = wait_for(&server, "the Scheduled event", || async {
        let e = events_about(&client, "bare", "Scheduled").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    let event = &events[0];
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(
        event.message.as_deref(),
        Some("Successfully assigned default/bare to node-a")
    );
    assert_eq!(
        event.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );
    assert_eq!(
        event.reporting_component.as_deref(),
        Some("default-scheduler")
    );
    // A pod with scheduling gates waits until the last gate is removed.
    create_pod(
        &client,
        "gated",
        json!({"schedulingGates": [{"name": "example.com/wait"}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gated = get_pod(&client, "gated").await;
    assert_eq!(node_name(&gated), None);
    assert_eq!(
        scheduled_condition(&gated).map(|c| c.1),
        Some("SchedulingGated".to_string())
    );
    server.kubectl(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/schedulingGates"}]"#,
    ]);
    assert_eq!(wait_bound(&server, &client, "gated").await, "node-a");

    // kubectl shows it as kube-scheduler's: From default-scheduler.
    let described = server.kubectl(&["describe", "pod", "bare"]);
    assert!(
        described.contains("default-scheduler  Successfully assigned default/bare to node-a"),
        "{described}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_no_node_fits_wait_with_the_reason_and_bind_once_the_node_changes() {
    let server = Server::start_with(&[]);
    let client = server.client().await;
    create_node(&client, "node-a", "2", true).await;

    // A node selector nothing matches: Pending, PodScheduled=False, FailedScheduling.
    create_pod(&client, "picky", json!({"nodeSelector": {"disk": "ssd"}})).await;
    let message = wait_unschedulable(&server, &client, "picky", "node affinity").await;
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let failed = wait_for(&server, "the FailedScheduling event", || async {
        let e = events_about(&client, "picky", "FailedScheduling").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    // Retries with the same message count on one Event, as client-go's correlator does.
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    assert_eq!(failed[0].message.as_deref(), Some(message.as_str()));
    assert_eq!(
        failed[0].reporting_component.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(
        server.jsonpath(&["pod", "picky"], "{.status.phase}"),
        "Pending"
    );
    // Labelling the node is all it takes.
    server.kubectl(&["label", "node", "node-a", "disk=ssd"]);
    assert_eq!(wait_bound(&server, &client, "picky").await, "node-a");

    // More cpu than the node has.
    create_pod(&client, "big", container_requests("3")).await;
    let message = wait_unschedulable(&server, &client, "big", "Insufficient cpu").await;
    assert_eq!(
        message,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod.."
    );

    // A cordoned node gets no new pods; uncordoning lets the waiting pod on.
    server.kubectl(&["cordon", "node-a"]);
    create_pod(&client, "late", container_requests("500m")).await;
    wait_unschedulable(&server, &client, "late", "1 node(s) were unschedulable").await;
    server.kubectl(&["uncordon", "node-a"]);
    assert_eq!(wait_bound(&server, &client, "late").await, "node-a");

    // A taint keeps off pods that do not tolerate it.
    server.kubectl(&["taint", "node", "node-a", "dedicated=wasm:NoSchedule"]);
    create_pod(&client, "plain", json!({})).await;
    create_pod(
        &client,
        "tolerant",
        json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "wasm", "effect": "NoSchedule"}]}),
    )
    .await;
    assert_eq!(wait_bound(&server, &client, "tolerant").await, "node-a");
    let message = wait_unschedulable(&server, &client, "plain", "untolerated taint").await;
    assert!(
        message.starts_with(
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: wasm}."
        ),
        "{message}"
    );
    server.kubectl(&["taint", "node", "node-a", "dedicated-"]);
    assert_eq!(wait_bound(&server, &client, "plain").await, "node-a");

    // Through all of it the big pod never fit (0.5 of 2 cpus are requested now).
    let big = get_pod(&client, "big").await;
    assert_eq!(node_name(&big), None);
    wait_unschedulable(&server, &client, "big", "Insufficient cpu").await;
    // A pod that fits in what is left still goes; then 100m is left.
    create_pod(&client, "small", container_requests("1400m")).await;
    assert_eq!(wait_bound(&server, &client, "small").await, "node-a");
    create_pod(&client, "one-too-many", container_requests("200m")).await;
    wait_unschedulable(&server, &client, "one-too-many", "Insufficient cpu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_scheduler_leaves_pods_pending() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    create_node(&client, "node-a", "2", true).await;
    create_pod(&client, "waiting", json!({})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = get_pod(&client, "waiting").await;
    assert_eq!(node_name(&pod), None);
    assert_eq!(scheduled_condition(&pod), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_class_scheduling_and_required_node_affinity_are_honoured() {
    let server = Server::start_with(&[]);
    let client = server.client().await;
    create_node(&client, "node-a", "2", true).await;
    create_node(&client, "node-b", "2", true).await;
    server.kubectl(&["taint", "node", "node-a", "wasm-only=true:NoSchedule"]);
    server.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasm-nodes
handler: spin
scheduling:
  nodeSelector:
    spinlet.dev/wasm: "yes"
  tolerations:
  - key: wasm-only
    operator: Exists
    effect: NoSchedule
"#,
    );

    // The class's node selector matches no node yet.
    create_pod(&client, "classy", json!({"runtimeClassName": "wasm-nodes"})).await;
    let message = wait_unschedulable(&server, &client, "classy", "affinity").await;
    assert!(
        message.starts_with(
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
        ),
        "{message}"
    );
    // Labelling the tainted node admits it: the class's toleration covers the taint.
    server.kubectl(&["label", "node", "node-a", "spinlet.dev/wasm=yes"]);
    assert_eq!(wait_bound(&server, &client, "classy").await, "node-a");

    // A pod without the class stays off the tainted node.
    create_pod(&client, "bare", json!({})).await;
    assert_eq!(wait_bound(&server, &client, "bare").await, "node-b");

    // Required node affinity: matchFields on the node's name, matchExpressions on labels.
    let by_name = json!({"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]},
    ]}}}});
    create_pod(&client, "by-name", by_name).await;
    assert_eq!(wait_bound(&server, &client, "by-name").await, "node-b");
    let nowhere = json!({"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["moon"]}]},
    ]}}}});
    create_pod(&client, "nowhere", nowhere).await;
    let message = wait_unschedulable(&server, &client, "nowhere", "affinity").await;
    assert!(
        message.starts_with(
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {wasm-only: true}."
        ),
        "{message}"
    );
    server.kubectl(&["label", "node", "node-b", "zone=moon"]);
    assert_eq!(wait_bound(&server, &client, "nowhere").await, "node-b");
}
