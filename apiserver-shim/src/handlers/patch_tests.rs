//! JSON patch as kube-apiserver's json-patch library applies it.

use http::Method;
use serde_json::{json, Value};

use super::test_fixture::{Fixture, JSON};
use crate::api::ApiOptions;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON_PATCH: &str = "application/json-patch+json";

#[tokio::test]
async fn testing_a_missing_path_for_null_succeeds_as_upstream() {
    let f = Fixture::new(ApiOptions::default()).await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(f.call(Method::POST, CMS, cm, JSON).await.0, 201);
    // kube-runtime's finalizer helper, adding the first finalizer.
    let patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/f"]},
    ]);
    let (code, v) = f
        .call(Method::PATCH, &format!("{CMS}/c"), patch, JSON_PATCH)
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["metadata"]["finalizers"], json!(["example.dev/f"]));

    // A test that fails names its operation's index.
    let patch = json!([
        {"op": "add", "path": "/data", "value": {"k": "v"}},
        {"op": "test", "path": "/data/k", "value": "other"},
    ]);
    let (code, v) = f
        .call(Method::PATCH, &format!("{CMS}/c"), patch, JSON_PATCH)
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("operation '/1'"),
        "{v}"
    );
    let (_, stored) = f
        .call(Method::GET, &format!("{CMS}/c"), Value::Null, "")
        .await;
    assert!(
        stored.get("data").is_none(),
        "a failed patch changes nothing: {stored}"
    );
}
