//! End-to-end tests of what a kubelet, a scheduler and controllers need from the API
//! server, with the real `spinlet` binary, the real kube-rs client and the real kubectl:
//! graceful deletion of bound pods (status writes during the grace period keep the pod;
//! a DELETE with grace period 0 removes it), `pods/binding` and the legacy `bindings`,
//! pod spec immutability and immutable workload selectors, pod defaults, and the answer
//! to `kubectl exec`.
//!
//! The servers run without their node agent (`Server::start`): these tests are about the
//! API, and no node agent may act on their pods. Run `cargo build` first: the harness starts
//! `target/<profile>/spinlet`.

mod common;

use std::time::Duration;

use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{
    Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::core::{ObjectMeta, Status};
use kube::ResourceExt;
use serde_json::{json, Value};

/// How long any single awaited step may take before the test fails.
const STEP: Duration = Duration::from_secs(30);

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "registry.local/app:1"}],
        },
    }))
    .expect("pod")
}

fn binding(pod: &str, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.to_string()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    }
}

/// The API status of a failed call; panics on success or on a non-API error.
fn api_status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an Error::Api, got {other:?}"),
    }
}

#[tokio::test]
async fn bound_pod_survives_status_writes_until_deleted_with_grace_zero() {
    let server = Server::start();
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    let created = pods
        .create(&PostParams::default(), &pod("p", Some("node-elsewhere")))
        .await
        .expect("create");
    let rv = created.resource_version().expect("resourceVersion");
    let wp = WatchParams::default().fields("metadata.name=p");
    let mut watch = pods.watch(&wp, &rv).await.expect("watch").boxed();

    // The default grace period (30 s) marks the pod; it stays.
    let marked = pods
        .delete("p", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the pod, still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));

    // The kubelet reports status while it stops the pod.
    for i in 0..3 {
        let mut cur = pods.get("p").await.expect("get");
        let status = cur.status.get_or_insert_with(Default::default);
        status.phase = Some("Running".into());
        status.message = Some(format!("stopping {i}"));
        pods.replace_status("p", &PostParams::default(), &cur)
            .await
            .expect("replace status");
    }
    let patch = json!({"status": {"message": "stopped", "phase": "Succeeded"}});
    pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch status");
    let labels = json!({"metadata": {"labels": {"stopping": "true"}}});
    pods.patch("p", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("ordinary update");
    let still = pods.get("p").await.expect("the pod is still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(
        still.status.as_ref().and_then(|s| s.message.as_deref()),
        Some("stopped")
    );

    // The kubelet's final DELETE (grace period 0, the pod's uid as precondition) removes
    // it; a stale uid is refused first.
    let final_delete = |uid: &str| DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let stale = api_status(pods.delete("p", &final_delete("not-the-uid")).await);
    assert_eq!(stale.code, 409);
    assert!(
        pods.get("p").await.is_ok(),
        "a refused delete keeps the pod"
    );
    let uid = created.uid().expect("uid");
    pods.delete("p", &final_delete(&uid))
        .await
        .expect("delete with grace 0");
    let gone = api_status(pods.get("p").await);
    assert_eq!(gone.code, 404);

    // A watcher saw the deletion mark first, changes, then one DELETED, last.
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(STEP, watch.try_next())
            .await
            .expect("a watch event in time")
            .expect("watch event")
            .expect("watch open");
        match next {
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p)),
            WatchEvent::Deleted(p) => {
                seen.push(("DELETED", p));
                break;
            }
            WatchEvent::Added(p) => seen.push(("ADDED", p)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds.first(), Some(&"MODIFIED"), "{kinds:?}");
    assert!(
        seen[0].1.metadata.deletion_timestamp.is_some(),
        "the first event marks the deletion"
    );
    assert!(
        kinds.len() >= 6 && kinds[..kinds.len() - 1].iter().all(|k| *k == "MODIFIED"),
        "three status replaces, a status patch and a label patch, then DELETED: {kinds:?}"
    );
}

#[tokio::test]
async fn binding_assigns_a_pod_once() {
    let server = Server::start();
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    pods.create(&pp, &pod("web", None)).await.expect("create");

    let status: Status = pods
        .create_subresource("binding", "web", &pp, &binding("web", "node-a"))
        .await
        .expect("bind");
    assert!(status.is_success(), "{status:?}");
    let bound = pods.get("web").await.expect("get");
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-a")
    );
    let scheduled = bound
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .expect("PodScheduled condition");
    assert_eq!(scheduled.status, "True");

    let again = api_status(
        pods.create_subresource::<_, Status>("binding", "web", &pp, &binding("web", "node-b"))
            .await,
    );
    assert_eq!(again.code, 409);
    assert_eq!(again.reason, "Conflict");
    assert!(
        again
            .message
            .contains("pod web is already assigned to node \"node-a\""),
        "{}",
        again.message
    );

    // The legacy resource: POST …/bindings, the body names the pod.
    pods.create(&pp, &pod("api", None)).await.expect("create");
    let legacy = |node: &str| {
        http::Request::post("/api/v1/namespaces/default/bindings")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&binding("api", node)).expect("json"))
            .expect("request")
    };
    let status: Status = client.request(legacy("node-a")).await.expect("bind");
    assert!(status.is_success(), "{status:?}");
    assert_eq!(
        pods.get("api")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.node_name),
        Some("node-a".into())
    );
    let again = api_status(client.request::<Status>(legacy("node-b")).await);
    assert_eq!(again.code, 409);

    // Both are in discovery, as kubectl lists them.
    let resources = server.kubectl(&["api-resources", "--api-group=", "-o", "name"]);
    assert!(resources.lines().any(|l| l == "bindings"), "{resources}");
    let v1: Value = serde_json::from_str(&server.kubectl(&["get", "--raw", "/api/v1"]))
        .expect("APIResourceList");
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"pods/binding"), "{names:?}");
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: app, image: registry.local/app:1}]
";

#[test]
fn pod_spec_and_workload_selectors_are_immutable() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], POD);

    let err = s.kubectl_fails(
        &["patch", "pod", "p", "-p", r#"{"spec":{"nodeName":"x"}}"#],
        None,
    );
    assert!(
        err.contains("The Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{err}"
    );
    assert_eq!(s.jsonpath(&["pod", "p"], "{.spec.nodeName}"), "");

    s.kubectl(&[
        "patch",
        "pod",
        "p",
        "-p",
        r#"{"spec":{"containers":[{"name":"app","image":"registry.local/app:2"}]}}"#,
    ]);
    assert_eq!(
        s.jsonpath(&["pod", "p"], "{.spec.containers[0].image}"),
        "registry.local/app:2"
    );
    // `replace` sends the manifest without the defaulted fields: still the same spec.
    s.kubectl_stdin(&["replace", "-f", "-"], &POD.replace("app:1", "app:3"));
    assert_eq!(
        s.jsonpath(&["pod", "p"], "{.spec.containers[0].image}"),
        "registry.local/app:3"
    );
    let err = s.kubectl_fails(
        &["replace", "-f", "-"],
        Some(&format!("{POD}  restartPolicy: Never\n")),
    );
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields"),
        "{err}"
    );

    s.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
    ]);
    let err = s.kubectl_fails(
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"other\"}") && err.contains("field is immutable"),
        "{err}"
    );
}

#[test]
fn pods_get_upstream_defaults() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], POD);
    let p: Value =
        serde_json::from_str(&s.kubectl(&["get", "pod", "p", "-o", "json"])).expect("pod json");
    let spec = &p["spec"];
    for (field, want) in [
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("enableServiceLinks", json!(true)),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
    ] {
        assert_eq!(spec[field], want, "spec.{field}");
    }
    let c = &spec["containers"][0];
    assert_eq!(c["terminationMessagePath"], json!("/dev/termination-log"));
    assert_eq!(c["terminationMessagePolicy"], json!("File"));
    assert_eq!(c["imagePullPolicy"], json!("IfNotPresent"));
    assert_eq!(p["status"]["phase"], json!("Pending"));
    assert_eq!(p["status"]["qosClass"], json!("BestEffort"));

    s.kubectl(&["run", "latest", "--image=registry.local/app"]);
    assert_eq!(
        s.jsonpath(&["pod", "latest"], "{.spec.containers[0].imagePullPolicy}"),
        "Always"
    );
}

#[test]
fn kubectl_exec_says_why_it_cannot() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], POD);
    let err = s.kubectl_fails(&["exec", "p", "--", "sh", "-c", "true"], None);
    assert!(
        err.contains("pod p runs a Spin app in wasmtime: it has no process to run a command in"),
        "{err}"
    );
    let err = s.kubectl_fails(&["exec", "missing", "--", "sh"], None);
    assert!(err.contains("pods \"missing\" not found"), "{err}");
}

#[tokio::test]
async fn unbound_pods_watch_sees_the_pod_leave_once_bound() {
    // A scheduler-like flow: a watcher on unbound pods sees the pod leave the selection
    // once bound (spec.nodeName is a pod field selector).
    let server = Server::start();
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    let pp = PostParams::default();
    let created = pods.create(&pp, &pod("q", None)).await.expect("create");
    let rv = created.resource_version().expect("rv");
    let wp = WatchParams::default().fields("spec.nodeName=");
    let mut watch = pods.watch(&wp, &rv).await.expect("watch").boxed();
    let _: Status = pods
        .create_subresource("binding", "q", &pp, &binding("q", "node-a"))
        .await
        .expect("bind");
    let event = tokio::time::timeout(STEP, watch.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("event");
    match event {
        WatchEvent::Deleted(p) => assert_eq!(p.name_any(), "q"),
        other => panic!("expected the pod to leave the unbound selection, got {other:?}"),
    }
}
