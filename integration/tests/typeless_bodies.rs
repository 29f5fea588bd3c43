//! End-to-end: bodies without `apiVersion`/`kind`, as generated SDK clients send them.
//! For a built-in kind the endpoint's kind is taken (create and update, through kube-rs's
//! raw requests and `kubectl create --raw`); a custom resource still needs both, with
//! apimachinery's `Object 'Kind' is missing in '<body>'` and the create handler's API
//! version message.
//!
//! Run `cargo build -p spinlet` first: the harness starts `target/<profile>/spinlet`.

mod common;

use common::Server;
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

async fn send(client: &kube::Client, method: &str, uri: &str, body: &str) -> kube::Result<Value> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .expect("request");
    client.request::<Value>(req).await
}

fn bad_request(result: kube::Result<Value>) -> String {
    match result {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 400, "{e:?}");
            assert_eq!(e.reason, "BadRequest", "{e:?}");
            e.message
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_bodies_take_the_endpoints_kind_custom_resources_need_theirs() {
    let server = Server::start();
    let client = server.client().await;

    // Create and update a ConfigMap with neither apiVersion nor kind.
    let created = send(
        &client,
        "POST",
        CMS,
        r#"{"metadata":{"name":"bare"},"data":{"a":"1"}}"#,
    )
    .await
    .expect("create without apiVersion/kind");
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["apiVersion"], "v1");
    let rv = created["metadata"]["resourceVersion"].clone();
    let put = json!({"metadata": {"name": "bare", "resourceVersion": rv}, "data": {"a": "2"}});
    let updated = send(&client, "PUT", &format!("{CMS}/bare"), &put.to_string())
        .await
        .expect("update without apiVersion/kind");
    assert_eq!(updated["data"]["a"], "2");
    let stored: Value =
        serde_json::from_str(&server.kubectl(&["get", "configmap", "bare", "-o", "json"]))
            .expect("configmap JSON");
    assert_eq!(stored["kind"], "ConfigMap");
    assert_eq!(stored["data"]["a"], "2");

    // A Deployment whose body has its apiVersion but no kind.
    let deploy = json!({"apiVersion": "apps/v1", "metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}}});
    let d = send(&client, "POST", DEPLOYS, &deploy.to_string())
        .await
        .expect("deployment without kind");
    assert_eq!(d["kind"], "Deployment");
    // A wrong group is still refused.
    let wrong = json!({"apiVersion": "v1", "metadata": {"name": "web2"}});
    let msg = bad_request(send(&client, "POST", DEPLOYS, &wrong.to_string()).await);
    assert_eq!(
        msg,
        "the API version in the data (v1) does not match the expected API version (apps/v1)"
    );

    // A server-side apply configuration still names its type, created or not.
    let config = r#"{"metadata":{"name":"applied"},"data":{"a":"1"}}"#;
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("{CMS}/applied?fieldManager=test"))
        .header("content-type", "application/apply-patch+yaml")
        .body(config.as_bytes().to_vec())
        .expect("request");
    assert_eq!(
        bad_request(client.request::<Value>(req).await),
        format!("Object 'Kind' is missing in '{config}'")
    );

    // kubectl create --raw sends the file as it is.
    let file = server.dir.path().join("bare-secret.json");
    std::fs::write(
        &file,
        r#"{"metadata":{"name":"raw"},"stringData":{"k":"v"}}"#,
    )
    .expect("write body");
    let out = server.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/secrets",
        "-f",
        file.to_str().expect("utf-8 path"),
    ]);
    let secret: Value = serde_json::from_str(&out).expect("secret JSON");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "Opaque");

    // Custom resources: both stay required.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    server.kubectl_stdin(&["apply", "-f", "-"], &crd.to_string());
    let no_kind = r#"{"apiVersion":"example.com/v1","metadata":{"name":"w"},"spec":{"size":1}}"#;
    let mut msg = String::new();
    for _ in 0..60 {
        match send(&client, "POST", WIDGETS, no_kind).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                // The CRD is not served yet.
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            other => {
                msg = bad_request(other);
                break;
            }
        }
    }
    assert_eq!(msg, format!("Object 'Kind' is missing in '{no_kind}'"));
    let no_version = r#"{"kind":"Widget","metadata":{"name":"w"}}"#;
    assert_eq!(
        bad_request(send(&client, "POST", WIDGETS, no_version).await),
        "the API version in the data () does not match the expected API version (example.com/v1)"
    );
    let neither = r#"{"metadata":{"name":"w"}}"#;
    assert_eq!(
        bad_request(send(&client, "POST", WIDGETS, neither).await),
        format!("Object 'Kind' is missing in '{neither}'")
    );
    // Nothing was stored.
    let list = send(&client, "GET", WIDGETS, "")
        .await
        .expect("list widgets");
    assert_eq!(list["items"], json!([]));
}
