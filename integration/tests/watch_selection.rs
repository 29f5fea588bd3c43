//! End-to-end: a selected watch resumed from an old resourceVersion sees objects leave
//! and enter its selection, as a kubelet's or scheduler's informer relies on. The watch on
//! unbound pods (`spec.nodeName=`) sees the bind as DELETED (the pod as it was, at the
//! bind's resourceVersion); the watch on the node's pods sees it as ADDED. Both are
//! replayed from the server's history, through kube-rs's `Api::watch`.
//!
//! The server runs without its node agent and scheduler, so only the test binds. Run
//! `cargo build -p spinlet` first: the harness starts `target/<profile>/spinlet`.

mod common;

use std::time::Duration;

use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

/// How long to wait for the events a test expects (state, not speed).
const DEADLINE: Duration = Duration::from_secs(60);

async fn create_pod(pods: &Api<Pod>, name: &str) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

async fn bind(pods: &Api<Pod>, name: &str, node: &str) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let _: Value = pods
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await
        .expect("bind");
}

/// Watches from `version` with `fields` and returns (type, name, nodeName, resourceVersion)
/// of each event until `last` (type, name) arrives.
async fn watch_until(
    pods: &Api<Pod>,
    fields: &str,
    version: &str,
    last: (&str, &str),
) -> Vec<(&'static str, String, Option<String>, String)> {
    let params = WatchParams::default().fields(fields).timeout(120);
    let mut stream = pods.watch(&params, version).await.expect("watch").boxed();
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(DEADLINE, stream.try_next()).await;
        let ev = match next {
            Ok(Ok(Some(ev))) => ev,
            other => panic!("watch {fields} from {version}: {other:?}; saw {seen:?}"),
        };
        let (kind, pod) = match ev {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch {fields} from {version}: {e:?}"),
        };
        let name = pod.name_any();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let rv = pod.resource_version().unwrap_or_default();
        let done = (kind, name.as_str()) == last;
        seen.push((kind, name, node, rv));
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_unbound_pods_watch_sees_the_bind_as_deleted() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let web = create_pod(&pods, "web").await;
    let old = web.resource_version().expect("resourceVersion");
    create_pod(&pods, "other").await;
    bind(&pods, "web", "node-1").await;
    let bound = pods.get("web").await.expect("get web");
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-1")
    );
    let bound_rv = bound.resource_version().expect("resourceVersion");
    // A later change, so the replay has to go past the bind.
    let label = json!({"metadata": {"labels": {"seen": "yes"}}});
    pods.patch("other", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label other");

    // The scheduler's view: pods without a node, resumed from before the bind.
    let unbound = watch_until(&pods, "spec.nodeName=", &old, ("MODIFIED", "other")).await;
    let unbound_kinds: Vec<(&str, &str)> = unbound
        .iter()
        .map(|(k, n, _, _)| (*k, n.as_str()))
        .collect();
    assert_eq!(
        unbound_kinds,
        [
            ("ADDED", "other"),
            ("DELETED", "web"),
            ("MODIFIED", "other")
        ],
        "{unbound:?}"
    );
    let (_, _, node, rv) = &unbound[1];
    assert_eq!(
        node, &None,
        "DELETED carries the pod as it was before the bind"
    );
    assert_eq!(rv, &bound_rv, "at the bind's resourceVersion");

    // The node's view: the bind brings the pod in.
    let on_node = watch_until(&pods, "spec.nodeName=node-1", &old, ("ADDED", "web")).await;
    let (kind, _, node, rv) = on_node.last().expect("an event").clone();
    assert_eq!(on_node.len(), 1, "{on_node:?}");
    assert_eq!(kind, "ADDED");
    assert_eq!(node.as_deref(), Some("node-1"));
    assert_eq!(rv, bound_rv);
}
