//! Services' allocated values through the handlers: node ports from the range, their
//! errors, what updates keep, what deletes release.

use http::Method;
use serde_json::{json, Value};

use super::test_fixture::{Fixture, APPLY, JSON, MERGE};
use crate::api::ApiOptions;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn svc(name: &str, ty: &str, node_port: Option<i64>) -> Value {
    let mut port = json!({"name": "http", "port": 80, "targetPort": 8080});
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"type": ty, "selector": {"app": name}, "ports": [port]}})
}

async fn small_range() -> Fixture {
    Fixture::new(ApiOptions {
        node_port_range: (30000, 30002),
        ..ApiOptions::default()
    })
    .await
}

fn node_port(v: &Value) -> i64 {
    v.pointer("/spec/ports/0/nodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn node_ports_come_from_the_range_until_it_is_full() {
    let f = small_range().await;
    let mut seen = Vec::new();
    for name in ["a", "b", "c"] {
        let (code, v) = f
            .call(Method::POST, SVCS, svc(name, "NodePort", None), JSON)
            .await;
        assert_eq!(code, 201, "{v}");
        seen.push(node_port(&v));
    }
    seen.sort();
    assert_eq!(seen, [30000, 30001, 30002]);
    let (code, v) = f
        .call(Method::POST, SVCS, svc("d", "NodePort", None), JSON)
        .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["details"]["causes"][0]["field"], "spec.ports[0].nodePort");

    // A delete releases its port.
    let (code, _) = f
        .call(Method::DELETE, &format!("{SVCS}/b"), Value::Null, "")
        .await;
    assert_eq!(code, 200);
    let (code, v) = f
        .call(Method::POST, SVCS, svc("d", "NodePort", None), JSON)
        .await;
    assert_eq!(code, 201, "{v}");
    assert!(seen.contains(&node_port(&v)));
}

#[tokio::test]
async fn requested_node_ports_are_checked() {
    let f = Fixture::new(ApiOptions::default()).await;
    let (code, v) = f
        .call(Method::POST, SVCS, svc("low", "NodePort", Some(80)), JSON)
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let (code, v) = f
        .call(Method::POST, SVCS, svc("a", "NodePort", Some(30080)), JSON)
        .await;
    assert_eq!((code, node_port(&v)), (201, 30080), "{v}");
    let (code, v) = f
        .call(Method::POST, SVCS, svc("b", "NodePort", Some(30080)), JSON)
        .await;
    assert_eq!(code, 422);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .ends_with("provided port is already allocated"),
        "{v}"
    );
    let (code, v) = f
        .call(Method::POST, SVCS, svc("c", "ClusterIP", Some(30081)), JSON)
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["details"]["causes"][0]["message"],
        "Forbidden: may not be used when `type` is 'ClusterIP'"
    );
}

#[tokio::test]
async fn updates_keep_allocated_values_and_type_changes_follow() {
    let f = Fixture::new(ApiOptions::default()).await;
    let (_, created) = f
        .call(Method::POST, SVCS, svc("web", "NodePort", None), JSON)
        .await;
    let (ip, port) = (created["spec"]["clusterIP"].clone(), node_port(&created));
    assert!(port >= 30000, "{created}");

    // A PUT of the manifest as written (no clusterIP, no nodePort) keeps both.
    let mut put = svc("web", "NodePort", None);
    put["spec"]["selector"] = json!({"app": "web2"});
    let (code, v) = f.call(Method::PUT, &format!("{SVCS}/web"), put, JSON).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["spec"]["clusterIP"].clone(), node_port(&v)),
        (ip.clone(), port)
    );

    // So does server-side apply of it.
    let (code, v) = f
        .call(
            Method::PATCH,
            &format!("{SVCS}/web?fieldManager=kubectl&force=true"),
            svc("web", "NodePort", None),
            APPLY,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["spec"]["clusterIP"].clone(), node_port(&v)),
        (ip.clone(), port)
    );

    // The cluster IP cannot change.
    let (code, v) = f
        .call(
            Method::PATCH,
            &format!("{SVCS}/web"),
            json!({"spec": {"clusterIP": "10.43.9.9", "clusterIPs": ["10.43.9.9"]}}),
            MERGE,
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["details"]["causes"][0]["field"], "spec.clusterIPs[0]");

    // To ClusterIP: the node port goes; back to NodePort: a new one comes.
    let (code, v) = f
        .call(
            Method::PATCH,
            &format!("{SVCS}/web"),
            json!({"spec": {"type": "ClusterIP"}}),
            MERGE,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(node_port(&v), 0, "{v}");
    let (code, v) = f
        .call(
            Method::PATCH,
            &format!("{SVCS}/web"),
            json!({"spec": {"type": "NodePort"}}),
            MERGE,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(node_port(&v) >= 30000, "{v}");
}
