//! Strategic merge patch of a 100-container pod spec (issue 3 target: ≤ 1 ms).

use std::hint::black_box;

use apiserver_shim::kinds;
use apiserver_shim::strategic::apply;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

const CONTAINERS: usize = 100;

/// A Deployment whose pod template has 100 containers, each with ports, env and mounts.
fn deployment() -> Value {
    let containers: Vec<Value> = (0..CONTAINERS)
        .map(|i| {
            json!({
                "name": format!("app-{i}"),
                "image": format!("ghcr.io/spinkube/app-{i}:v1"),
                "imagePullPolicy": "IfNotPresent",
                "args": ["--listen", "0.0.0.0:80"],
                "ports": [
                    {"containerPort": 80, "name": "http", "protocol": "TCP"},
                    {"containerPort": 9090 + i, "name": "metrics", "protocol": "TCP"}
                ],
                "env": (0..5).map(|e| json!({"name": format!("VAR_{e}"), "value": format!("{i}-{e}")}))
                    .collect::<Vec<_>>(),
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/app"},
                    {"name": "data", "mountPath": format!("/data/{i}")}
                ],
                "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            })
        })
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big", "namespace": "default", "generation": 3,
                     "labels": {"app": "big"}, "finalizers": ["example.com/guard"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "big"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {
                    "containers": containers,
                    "volumes": [{"name": "config", "configMap": {"name": "big"}},
                                {"name": "data", "emptyDir": {}}],
                    "restartPolicy": "Always"
                }
            }
        }
    })
}

/// What kubectl apply sends when every container gets a new image, one env var changes,
/// one is dropped and the metrics port is removed: the heaviest realistic patch.
fn kubectl_patch() -> Value {
    let containers: Vec<Value> = (0..CONTAINERS)
        .map(|i| {
            json!({
                "name": format!("app-{i}"),
                "image": format!("ghcr.io/spinkube/app-{i}:v2"),
                "$setElementOrder/env": (0..4).map(|e| json!({"name": format!("VAR_{e}")}))
                    .collect::<Vec<_>>(),
                "env": [{"name": "VAR_0", "value": "changed"}, {"$patch": "delete", "name": "VAR_4"}],
                "$setElementOrder/ports": [{"containerPort": 80}],
                "ports": [{"$patch": "delete", "containerPort": 9090 + i}]
            })
        })
        .collect();
    let order: Vec<Value> = (0..CONTAINERS)
        .map(|i| json!({"name": format!("app-{i}")}))
        .collect();
    json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        "template": {"spec": {"$setElementOrder/containers": order, "containers": containers}}
    }})
}

fn bench(c: &mut Criterion) {
    let original = deployment();
    let patch = kubectl_patch();
    let schema = kinds::builtin("apps", "Deployment").and_then(|k| k.strategy.merge_schema());
    // The patch must apply cleanly, or the timing means nothing.
    assert!(apply(schema, &original, &patch).is_ok());
    c.bench_function("strategic_merge_100_container_pod_spec", |b| {
        b.iter(|| apply(schema, black_box(&original), black_box(&patch)))
    });
    // The floor: `apply` takes the stored object by reference, so it clones it once.
    c.bench_function("clone_100_container_deployment", |b| {
        b.iter(|| black_box(&original).clone())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
