//! End-to-end: a CRD's structural-schema `default:` values, with the real kubectl and
//! kube-rs. A create without the fields gets the defaults (nested objects, array items,
//! only where the parent exists); a client-side apply, a PUT and a server-side apply that
//! leave them out keep them and do not bump `generation`; a default added to the CRD later
//! shows when an object stored before is read.
//!
//! Run `cargo build -p spinlet` first: the harness starts `target/<profile>/spinlet`.

mod common;

use common::Server;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn crd(extra_default: bool) -> String {
    let mut spec_props = json!({
        "replicas": {"type": "integer", "default": 1},
        "mode": {"type": "string", "default": "fast"},
        "image": {"type": "string"},
        "probe": {"type": "object", "properties": {
            "path": {"type": "string"},
            "periodSeconds": {"type": "integer", "default": 10},
        }},
        "ports": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "protocol": {"type": "string", "default": "TCP"},
        }}},
    });
    if extra_default {
        spec_props["tier"] = json!({"type": "string", "default": "web"});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": spec_props},
                }}}}],
        },
    })
    .to_string()
}

fn widget(name: &str, spec: Value) -> String {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": {"name": name}, "spec": spec})
    .to_string()
}

fn get(server: &Server, name: &str) -> Value {
    let out = server.kubectl(&["get", "widget", name, "-o", "json"]);
    serde_json::from_str(&out).expect("widget JSON")
}

/// Waits until kubectl can use the widgets resource (discovery after the CRD).
fn wait_served(server: &Server) {
    for _ in 0..60 {
        if server
            .kubectl_output(&["get", "widgets"], None)
            .status
            .success()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("widgets never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_defaults_apply_on_create_update_apply_and_read() {
    let server = Server::start();
    server.kubectl_stdin(&["apply", "-f", "-"], &crd(false));
    wait_served(&server);

    // Create: defaults where the parents exist; probe and its default do not appear.
    let spec =
        json!({"image": "a:1", "ports": [{"name": "http"}, {"name": "dns", "protocol": "UDP"}]});
    server.kubectl_stdin(&["apply", "-f", "-"], &widget("w", spec.clone()));
    let w = get(&server, "w");
    assert_eq!(
        w["spec"],
        json!({"image": "a:1", "replicas": 1, "mode": "fast",
               "ports": [{"name": "http", "protocol": "TCP"}, {"name": "dns", "protocol": "UDP"}]}),
        "{w}"
    );
    assert_eq!(w["metadata"]["generation"], 1);

    // The same manifest again: kubectl's merge patch replaces the list (as against any
    // API server), the defaults come back, nothing changes: same resourceVersion and
    // generation.
    server.kubectl_stdin(&["apply", "-f", "-"], &widget("w", spec.clone()));
    let after = get(&server, "w");
    assert_eq!(after["spec"], w["spec"]);
    assert_eq!(after["metadata"]["generation"], 1);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        w["metadata"]["resourceVersion"]
    );
    // A PUT leaving the defaulted fields out.
    let mut put: Value = serde_json::from_str(&widget("w", spec.clone())).expect("json");
    put["metadata"]["resourceVersion"] = w["metadata"]["resourceVersion"].clone();
    server.kubectl_stdin(&["replace", "-f", "-"], &put.to_string());
    assert_eq!(get(&server, "w")["metadata"]["generation"], 1);

    // Server-side apply (kube-rs) leaving them out, then a nested default appearing with
    // its parent.
    let client = server.client().await;
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk));
    let applied: Value = serde_json::from_str(&widget("s", json!({"image": "b:1"}))).expect("json");
    let ssa = PatchParams::apply("defaults-test");
    let first = widgets
        .patch("s", &ssa, &Patch::Apply(&applied))
        .await
        .expect("server-side apply");
    assert_eq!(first.data["spec"]["replicas"], 1);
    let again = widgets
        .patch("s", &ssa, &Patch::Apply(&applied))
        .await
        .expect("server-side apply again");
    assert_eq!(again.metadata.generation, Some(1));
    assert_eq!(again.data["spec"]["mode"], "fast");
    let with_probe: Value = serde_json::from_str(&widget(
        "s",
        json!({"image": "b:1", "probe": {"path": "/"}}),
    ))
    .expect("json");
    let probed = widgets
        .patch("s", &ssa, &Patch::Apply(&with_probe))
        .await
        .expect("apply with a probe");
    assert_eq!(
        probed.data["spec"]["probe"],
        json!({"path": "/", "periodSeconds": 10})
    );
    assert_eq!(probed.metadata.generation, Some(2));

    // A default added to the CRD shows on read for objects stored before it.
    server.kubectl_stdin(&["apply", "-f", "-"], &crd(true));
    let mut seen = Value::Null;
    for _ in 0..60 {
        seen = get(&server, "w");
        if seen["spec"]["tier"] == "web" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(seen["spec"]["tier"], "web", "{seen}");
    let listed = widgets
        .list(&Default::default())
        .await
        .expect("list widgets");
    assert!(listed.items.iter().all(|w| w.data["spec"]["tier"] == "web"));
    let fetched = widgets.get("w").await.expect("get w");
    assert_eq!(fetched.data["spec"]["tier"], "web");
    assert_eq!(fetched.metadata.generation, Some(1));

    // A create under the PostParams path (kube-rs POST) is defaulted too.
    let posted: DynamicObject =
        serde_json::from_str(&widget("p", json!({"replicas": 3}))).expect("object");
    let created = widgets
        .create(&PostParams::default(), &posted)
        .await
        .expect("create p");
    assert_eq!(created.data["spec"]["replicas"], 3);
    assert_eq!(created.data["spec"]["mode"], "fast");
    assert_eq!(created.data["spec"]["tier"], "web");
}
