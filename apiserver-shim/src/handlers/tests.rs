//! Handler tests through [`Api::handle`] on a real store: graceful deletion of pods,
//! pod binding, pod update rules and defaults, workload selectors, exec/attach, and the
//! discovery entries of these subresources.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use crate::api::{Api, ApiOptions, Call, Reply};
use crate::request::Query;
use crate::store::{EventType, Store, StoreConfig};

struct Fixture {
    api: Arc<Api>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreConfig::default()).expect("store");
    let api = Api::new(store, ApiOptions::default());
    crate::bootstrap(&api).await.expect("bootstrap");
    Fixture { api, _dir: dir }
}

impl Fixture {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>, ct: &str) -> (u16, Value) {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_str(ct).expect("content type"),
        );
        let call = Call {
            method,
            path: path.to_string(),
            query: Query::parse(Some(query)),
            headers,
            body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
        };
        match self.api.handle(call).await {
            Reply::Json { code, body, .. } => (code, body),
            Reply::RawJson(b) => (200, serde_json::from_slice(&b).expect("json")),
            Reply::Text(code, t) => (code, json!(t)),
            Reply::Stream(_) | Reply::Proxied { .. } => panic!("unexpected stream"),
        }
    }

    async fn ok(&self, method: Method, uri: &str, body: Option<Value>, ct: &str) -> Value {
        let (code, v) = self.call(method.clone(), uri, body, ct).await;
        assert!(code < 300, "{method} {uri}: {code} {v}");
        v
    }

    async fn create_pod(&self, name: &str, node: Option<&str>) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]},
        });
        if let Some(n) = node {
            pod["spec"]["nodeName"] = json!(n);
        }
        self.ok(Method::POST, PODS, Some(pod), JSON).await
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";

fn causes(status: &Value) -> Vec<(String, String)> {
    status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bound_pod_survives_writes_in_its_grace_period_and_goes_at_grace_zero() {
    let f = fixture().await;
    f.create_pod("p", Some("node-1")).await;
    let mut events = f.api.store.subscribe();
    let pod = format!("{PODS}/p");

    let deleted = f.ok(Method::DELETE, &pod, None, JSON).await;
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], json!(30));
    assert!(deleted["metadata"]["deletionTimestamp"].is_string());

    for i in 0..3 {
        let mut status = f.ok(Method::GET, &pod, None, JSON).await;
        status["status"]["phase"] = json!("Running");
        status["status"]["message"] = json!(format!("write {i}"));
        f.ok(Method::PUT, &format!("{pod}/status"), Some(status), JSON)
            .await;
    }
    let patch = json!({"metadata": {"labels": {"stopping": "yes"}}});
    f.ok(Method::PATCH, &pod, Some(patch), MERGE).await;
    let patch = json!({"status": {"message": "stopped"}});
    f.ok(Method::PATCH, &format!("{pod}/status"), Some(patch), MERGE)
        .await;
    let still = f.ok(Method::GET, &pod, None, JSON).await;
    assert_eq!(still["status"]["message"], json!("stopped"));
    assert_eq!(still["metadata"]["labels"]["stopping"], json!("yes"));
    assert_eq!(still["metadata"]["deletionGracePeriodSeconds"], json!(30));

    // A longer grace period changes nothing; a shorter one is recorded.
    let longer = json!({"gracePeriodSeconds": 60});
    let same = f.ok(Method::DELETE, &pod, Some(longer), JSON).await;
    assert_eq!(same["metadata"]["deletionGracePeriodSeconds"], json!(30));
    let shorter = json!({"gracePeriodSeconds": 10});
    let short = f.ok(Method::DELETE, &pod, Some(shorter), JSON).await;
    assert_eq!(short["metadata"]["deletionGracePeriodSeconds"], json!(10));

    f.ok(
        Method::DELETE,
        &pod,
        Some(json!({"gracePeriodSeconds": 0})),
        JSON,
    )
    .await;
    let (code, _) = f.call(Method::GET, &pod, None, JSON).await;
    assert_eq!(code, 404);

    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.resource == "pods" {
            kinds.push(e.kind);
        }
    }
    assert_eq!(kinds.first(), Some(&EventType::Modified), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventType::Deleted), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == EventType::Deleted).count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn deletion_without_grace_strategy_ends_with_the_last_finalizer() {
    let f = fixture().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["example.com/hold"]}});
    f.ok(
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(cm),
        JSON,
    )
    .await;
    let uri = "/api/v1/namespaces/default/configmaps/c";
    let marked = f
        .ok(
            Method::DELETE,
            uri,
            Some(json!({"gracePeriodSeconds": 30})),
            JSON,
        )
        .await;
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], json!(0));
    let patch = json!({"metadata": {"finalizers": null}});
    f.ok(Method::PATCH, uri, Some(patch), MERGE).await;
    let (code, _) = f.call(Method::GET, uri, None, JSON).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_grace_period_recorded_on_a_kind_without_one_does_not_hold_it() {
    let f = fixture().await;
    let key = crate::store::ObjectKey {
        group: String::new(),
        resource: "configmaps".into(),
        namespace: "default".into(),
        name: "legacy".into(),
    };
    let stored = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "legacy", "namespace": "default", "uid": "u-2",
            "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["example.com/hold"],
            "deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
    f.api
        .store
        .mutate::<crate::error::ApiError>(&key, move |_| Ok(crate::store::Mutation::Put(stored)))
        .await
        .expect("store")
        .expect("write");
    let uri = "/api/v1/namespaces/default/configmaps/legacy";
    let patch = json!({"metadata": {"finalizers": null}});
    f.ok(Method::PATCH, uri, Some(patch), MERGE).await;
    let (code, _) = f.call(Method::GET, uri, None, JSON).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn unbound_pod_with_finalizer_waits_then_goes() {
    let f = fixture().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {"containers": [{"name": "app", "image": "a:1"}]}});
    f.ok(Method::POST, PODS, Some(pod), JSON).await;
    let uri = format!("{PODS}/held");
    let marked = f.ok(Method::DELETE, &uri, None, JSON).await;
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], json!(0));
    let patch = json!({"metadata": {"finalizers": []}});
    f.ok(Method::PATCH, &uri, Some(patch), MERGE).await;
    let (code, _) = f.call(Method::GET, &uri, None, JSON).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn binding_assigns_once() {
    let f = fixture().await;
    let created = f.create_pod("p", None).await;
    let binding = |pod: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod, "annotations": {"scheduler": "test"}},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    };
    let uri = format!("{PODS}/p/binding");
    let (code, status) = f
        .call(Method::POST, &uri, Some(binding("p", "node-1")), JSON)
        .await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["kind"], json!("Status"));
    assert_eq!(status["status"], json!("Success"));
    assert_eq!(status["code"], json!(201));

    let pod = f.ok(Method::GET, &format!("{PODS}/p"), None, JSON).await;
    assert_eq!(pod["spec"]["nodeName"], json!("node-1"));
    assert_eq!(pod["metadata"]["annotations"]["scheduler"], json!("test"));
    assert_eq!(pod["metadata"]["uid"], created["metadata"]["uid"]);
    let conditions = pod["status"]["conditions"].as_array().expect("conditions");
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["type"], json!("PodScheduled"));
    assert_eq!(conditions[0]["status"], json!("True"));

    let (code, status) = f
        .call(Method::POST, &uri, Some(binding("p", "node-2")), JSON)
        .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], json!("Conflict"));
    assert_eq!(
        status["message"],
        json!("Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"node-1\"")
    );

    // The legacy resource: the body names the pod.
    f.create_pod("q", None).await;
    let legacy = "/api/v1/namespaces/default/bindings";
    let (code, _) = f
        .call(Method::POST, legacy, Some(binding("q", "node-2")), JSON)
        .await;
    assert_eq!(code, 201);
    let q = f.ok(Method::GET, &format!("{PODS}/q"), None, JSON).await;
    assert_eq!(q["spec"]["nodeName"], json!("node-2"));
    let (code, _) = f
        .call(Method::POST, legacy, Some(binding("q", "node-3")), JSON)
        .await;
    assert_eq!(code, 409);
    let (code, _) = f.call(Method::GET, legacy, None, JSON).await;
    assert_eq!(code, 405);

    // Refusals: another pod's name, no target, a missing pod, a pod being deleted.
    f.create_pod("r", None).await;
    let (code, _) = f
        .call(
            Method::POST,
            &format!("{PODS}/r/binding"),
            Some(binding("p", "n")),
            JSON,
        )
        .await;
    assert_eq!(code, 400);
    let no_target = json!({"kind": "Binding", "apiVersion": "v1", "metadata": {"name": "r"}, "target": {"kind": "Pod"}});
    let (code, status) = f
        .call(
            Method::POST,
            &format!("{PODS}/r/binding"),
            Some(no_target),
            JSON,
        )
        .await;
    assert_eq!(code, 422, "{status}");
    let fields: Vec<String> = causes(&status).into_iter().map(|c| c.0).collect();
    assert_eq!(fields, ["target.kind", "target.name"]);
    let (code, _) = f
        .call(
            Method::POST,
            &format!("{PODS}/nope/binding"),
            Some(binding("nope", "n")),
            JSON,
        )
        .await;
    assert_eq!(code, 404);
    let held = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {"containers": [{"name": "app", "image": "a:1"}]}});
    f.ok(Method::POST, PODS, Some(held), JSON).await;
    f.ok(Method::DELETE, &format!("{PODS}/held"), None, JSON)
        .await;
    let (code, status) = f
        .call(
            Method::POST,
            &format!("{PODS}/held/binding"),
            Some(binding("held", "n")),
            JSON,
        )
        .await;
    assert_eq!(code, 409);
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("pod held is being deleted, cannot be assigned to a host"),
        "{status}"
    );
}

#[tokio::test]
async fn pod_spec_is_immutable_but_images() {
    let f = fixture().await;
    f.create_pod("p", None).await;
    let uri = format!("{PODS}/p");
    let (code, status) = f
        .call(
            Method::PATCH,
            &uri,
            Some(json!({"spec": {"nodeName": "x"}})),
            MERGE,
        )
        .await;
    assert_eq!(code, 422, "{status}");
    let c = causes(&status);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, "spec");
    assert!(
        c[0].1.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        ),
        "{}",
        c[0].1
    );
    assert!(
        status["message"].as_str().unwrap_or("").starts_with(
            "Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than"
        ),
        "{status}"
    );

    let image = json!({"spec": {"containers": [{"name": "app", "image": "registry.local/app:2"}]}});
    let patched = f
        .ok(
            Method::PATCH,
            &uri,
            Some(image),
            "application/strategic-merge-patch+json",
        )
        .await;
    assert_eq!(
        patched["spec"]["containers"][0]["image"],
        json!("registry.local/app:2")
    );

    // A PUT of the manifest alone (no defaulted fields) is the same spec.
    let mut manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:3"}]}});
    f.ok(Method::PUT, &uri, Some(manifest.clone()), JSON).await;
    manifest["spec"]["restartPolicy"] = json!("Never");
    let (code, status) = f.call(Method::PUT, &uri, Some(manifest), JSON).await;
    assert_eq!(code, 422, "{status}");

    // Status writes may carry any spec: only status is taken.
    let mut pod = f.ok(Method::GET, &uri, None, JSON).await;
    pod["spec"]["nodeName"] = json!("elsewhere");
    pod["status"]["phase"] = json!("Running");
    let written = f
        .ok(Method::PUT, &format!("{uri}/status"), Some(pod), JSON)
        .await;
    assert_eq!(written["status"]["phase"], json!("Running"));
    assert!(written["spec"]["nodeName"].is_null());
}

#[tokio::test]
async fn pods_stored_before_todays_defaults_stay_updatable() {
    let f = fixture().await;
    let key = crate::store::ObjectKey {
        group: String::new(),
        resource: "pods".into(),
        namespace: "default".into(),
        name: "old".into(),
    };
    let stored = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "old", "namespace": "default", "uid": "u-1",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "app", "image": "a:1"}], "restartPolicy": "Always"}});
    f.api
        .store
        .mutate::<crate::error::ApiError>(&key, move |_| Ok(crate::store::Mutation::Put(stored)))
        .await
        .expect("store")
        .expect("write");
    let patch = json!({"metadata": {"labels": {"a": "b"}}});
    let p = f
        .ok(Method::PATCH, &format!("{PODS}/old"), Some(patch), MERGE)
        .await;
    assert_eq!(p["metadata"]["labels"]["a"], json!("b"));
    assert_eq!(p["spec"]["enableServiceLinks"], json!(true));
}

#[tokio::test]
async fn workload_selector_is_immutable() {
    let f = fixture().await;
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a", "tier": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let created = f.ok(Method::POST, base, Some(deploy), JSON).await;
    // The template gets the pod spec defaults of every pod spec, not the pod-only ones.
    let template = &created["spec"]["template"]["spec"];
    assert_eq!(template["dnsPolicy"], json!("ClusterFirst"));
    assert_eq!(template["terminationGracePeriodSeconds"], json!(30));
    assert_eq!(
        template["containers"][0]["imagePullPolicy"],
        json!("IfNotPresent")
    );
    assert!(template["serviceAccountName"].is_null(), "{template}");
    assert!(template["enableServiceLinks"].is_null(), "{template}");
    let patch = json!({"spec": {"selector": {"matchLabels": {"app": "a", "tier": "b"}}}});
    let (code, status) = f
        .call(Method::PATCH, &format!("{base}/d"), Some(patch), MERGE)
        .await;
    assert_eq!(code, 422, "{status}");
    let c = causes(&status);
    assert_eq!(c[0].0, "spec.selector");
    assert!(c[0].1.ends_with("field is immutable"), "{}", c[0].1);
    let replicas = json!({"spec": {"replicas": 3}});
    f.ok(Method::PATCH, &format!("{base}/d"), Some(replicas), MERGE)
        .await;
}

#[tokio::test]
async fn pods_get_upstream_defaults() {
    let f = fixture().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d"},
    "spec": {
        "containers": [
            {"name": "a", "image": "registry.local/app", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "registry.local/app:1.0",
             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
        ],
        "initContainers": [{"name": "i", "image": "registry.local/init:latest"}],
    }});
    let p = f.ok(Method::POST, PODS, Some(pod), JSON).await;
    let spec = &p["spec"];
    assert_eq!(spec["serviceAccountName"], json!("default"));
    assert_eq!(
        spec["containers"][0]["resources"],
        json!({}),
        "no limits, no requests"
    );
    assert_eq!(spec["serviceAccount"], json!("default"));
    assert_eq!(spec["enableServiceLinks"], json!(true));
    assert_eq!(spec["terminationGracePeriodSeconds"], json!(30));
    assert_eq!(spec["dnsPolicy"], json!("ClusterFirst"));
    assert_eq!(spec["restartPolicy"], json!("Always"));
    assert_eq!(spec["schedulerName"], json!("default-scheduler"));
    assert_eq!(spec["securityContext"], json!({}));
    let a = &spec["containers"][0];
    assert_eq!(a["terminationMessagePath"], json!("/dev/termination-log"));
    assert_eq!(a["terminationMessagePolicy"], json!("File"));
    assert_eq!(a["imagePullPolicy"], json!("Always"));
    assert_eq!(a["ports"][0]["protocol"], json!("TCP"));
    let b = &spec["containers"][1];
    assert_eq!(b["imagePullPolicy"], json!("IfNotPresent"));
    assert_eq!(
        b["resources"]["requests"],
        json!({"cpu": "500m", "memory": "128Mi"})
    );
    assert_eq!(
        spec["initContainers"][0]["imagePullPolicy"],
        json!("Always")
    );
    assert_eq!(p["status"]["phase"], json!("Pending"));
    assert_eq!(p["status"]["qosClass"], json!("Burstable"));
}

#[tokio::test]
async fn exec_and_attach_say_why_not() {
    let f = fixture().await;
    f.create_pod("p", Some("node-1")).await;
    for (method, sub, why) in [
        (Method::GET, "exec", "it has no process to run a command in"),
        (
            Method::POST,
            "exec",
            "it has no process to run a command in",
        ),
        (Method::POST, "attach", "it has no process to attach to"),
    ] {
        let (code, status) = f
            .call(method, &format!("{PODS}/p/{sub}?command=sh"), None, JSON)
            .await;
        assert_eq!(code, 400, "{status}");
        assert_eq!(status["reason"], json!("BadRequest"));
        assert_eq!(
            status["message"],
            json!(format!("pod p runs a Spin app in wasmtime: {why}"))
        );
    }
    let (code, _) = f
        .call(Method::POST, &format!("{PODS}/nope/exec"), None, JSON)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn discovery_lists_binding_exec_attach_and_bindings() {
    let f = fixture().await;
    let legacy = f.ok(Method::GET, "/api/v1", None, JSON).await;
    let names: Vec<&str> = legacy["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for n in [
        "pods/binding",
        "pods/exec",
        "pods/attach",
        "pods/log",
        "pods/portforward",
        "nodes/proxy",
        "bindings",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let table = f.api.registry.snapshot();
    let agg = crate::discovery::aggregated(&table, true, "v2");
    let resources = agg
        .pointer("/items/0/versions/0/resources")
        .and_then(Value::as_array)
        .expect("core resources");
    let pods = resources
        .iter()
        .find(|r| r["resource"] == "pods")
        .expect("pods");
    let subs: Vec<&str> = pods["subresources"]
        .as_array()
        .expect("subresources")
        .iter()
        .filter_map(|s| s["subresource"].as_str())
        .collect();
    assert_eq!(
        subs,
        [
            "status",
            "attach",
            "binding",
            "exec",
            "eviction",
            "log",
            "portforward"
        ]
    );
    let eviction = &pods["subresources"][4];
    assert_eq!(eviction["responseKind"]["group"], "policy");
    let log = &pods["subresources"][5];
    assert_eq!(log["verbs"], json!(["get"]));
    assert_eq!(log["responseKind"]["kind"], "Pod");
    let pf = &pods["subresources"][6];
    assert_eq!(pf["verbs"], json!(["create", "get"]));
    assert_eq!(pf["responseKind"]["kind"], "PodPortForwardOptions");
    let bindings = resources
        .iter()
        .find(|r| r["resource"] == "bindings")
        .expect("bindings");
    assert_eq!(bindings["verbs"], json!(["create"]));
}

/// Polls `check` until it holds; panics after a generous deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never happened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn owner_and_namespace_deletion_give_bound_pods_their_grace_period() {
    let f = fixture().await;
    let owner = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}});
    let owner = f
        .ok(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some(owner),
            JSON,
        )
        .await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dep", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
            "name": "owner", "uid": owner["metadata"]["uid"]}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "a:1"}]}});
    f.ok(Method::POST, PODS, Some(pod), JSON).await;
    f.ok(
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/owner",
        None,
        JSON,
    )
    .await;
    let uri = format!("{PODS}/dep");
    eventually("the collector marks the pod", || async {
        let (_, p) = f.call(Method::GET, &uri, None, JSON).await;
        p["metadata"]["deletionGracePeriodSeconds"] == json!(30)
    })
    .await;
    let zero = json!({"gracePeriodSeconds": 0});
    f.ok(Method::DELETE, &uri, Some(zero.clone()), JSON).await;
    let (code, _) = f.call(Method::GET, &uri, None, JSON).await;
    assert_eq!(code, 404);

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}});
    f.ok(Method::POST, "/api/v1/namespaces", Some(ns), JSON)
        .await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "a:1"}]}});
    let scratch_pods = "/api/v1/namespaces/scratch/pods";
    f.ok(Method::POST, scratch_pods, Some(pod), JSON).await;
    f.ok(Method::DELETE, "/api/v1/namespaces/scratch", None, JSON)
        .await;
    let uri = format!("{scratch_pods}/p");
    eventually("namespace cleanup marks the pod", || async {
        let (_, p) = f.call(Method::GET, &uri, None, JSON).await;
        p["metadata"]["deletionGracePeriodSeconds"] == json!(30)
    })
    .await;
    let (code, ns) = f
        .call(Method::GET, "/api/v1/namespaces/scratch", None, JSON)
        .await;
    assert_eq!(code, 200, "the namespace waits for its pod");
    assert_eq!(ns["status"]["phase"], json!("Terminating"));
    f.ok(Method::DELETE, &uri, Some(zero), JSON).await;
    eventually("the namespace goes once its pod is gone", || async {
        let (code, _) = f
            .call(Method::GET, "/api/v1/namespaces/scratch", None, JSON)
            .await;
        code == 404
    })
    .await;
}
