//! `pods/eviction` through the handlers: discovery, the graceful delete it does, and
//! its refusals.

use http::Method;
use serde_json::{json, Value};

use super::test_fixture::{Fixture, JSON};
use crate::api::ApiOptions;

const PODS: &str = "/api/v1/namespaces/default/pods";

fn eviction(name: &str, options: Value) -> Value {
    let mut e = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": name, "namespace": "default"}});
    if !options.is_null() {
        e["deleteOptions"] = options;
    }
    e
}

async fn with_pod(node: Option<&str>) -> Fixture {
    let f = Fixture::new(ApiOptions::default()).await;
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}});
    if let Some(n) = node {
        pod["spec"]["nodeName"] = json!(n);
    }
    let (code, v) = f.call(Method::POST, PODS, pod, JSON).await;
    assert_eq!(code, 201, "{v}");
    f
}

#[tokio::test]
async fn discovery_lists_eviction_as_kubectl_drain_looks_for_it() {
    let f = Fixture::new(ApiOptions::default()).await;
    let (_, v1) = f.call(Method::GET, "/api/v1", Value::Null, "").await;
    let entry = v1["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&entry["group"], &entry["version"], &entry["kind"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction")),
        "{entry}"
    );
    assert_eq!(entry["verbs"], json!(["create"]));
}

#[tokio::test]
async fn an_eviction_deletes_the_pod_gracefully() {
    let f = with_pod(Some("n1")).await;
    let (code, v) = f
        .call(
            Method::POST,
            &format!("{PODS}/p/eviction"),
            eviction("p", Value::Null),
            JSON,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"], "Success");
    let (code, pod) = f
        .call(Method::GET, &format!("{PODS}/p"), Value::Null, "")
        .await;
    assert_eq!(code, 200, "a bound pod stays through its grace period");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);

    // The eviction's own delete options: grace 0 removes it at once.
    let (code, v) = f
        .call(
            Method::POST,
            &format!("{PODS}/p/eviction"),
            eviction("p", json!({"gracePeriodSeconds": 0})),
            JSON,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let (code, _) = f
        .call(Method::GET, &format!("{PODS}/p"), Value::Null, "")
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn bad_evictions_are_refused() {
    let f = with_pod(None).await;
    let (code, v) = f
        .call(
            Method::POST,
            &format!("{PODS}/p/eviction"),
            eviction("q", Value::Null),
            JSON,
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "name in URL does not match name in Eviction object"
    );
    let (code, _) = f
        .call(
            Method::POST,
            &format!("{PODS}/none/eviction"),
            eviction("none", Value::Null),
            JSON,
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = f
        .call(Method::GET, &format!("{PODS}/p/eviction"), Value::Null, "")
        .await;
    assert_eq!(code, 405);
    let (code, v) = f
        .call(
            Method::POST,
            &format!("{PODS}/p/eviction"),
            eviction("p", json!({"dryRun": ["All"]})),
            JSON,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let (code, pod) = f
        .call(Method::GET, &format!("{PODS}/p"), Value::Null, "")
        .await;
    assert_eq!(code, 200);
    assert!(
        pod["metadata"].get("deletionTimestamp").is_none(),
        "a dry run deletes nothing"
    );
}
