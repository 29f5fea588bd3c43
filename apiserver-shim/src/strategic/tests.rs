//! The strategic merge patch's tests: directives, element order, errors, upstream's
//! fixtures (`patch_test.go`) replayed, and random documents that must never panic.

use super::*;
use serde_json::json;

/// A kind the server does not serve, whose pod spec sits deepest.
const CRON_JOB: MergeSchema = MergeSchema {
    pod_spec: Some("spec.jobTemplate.spec.template.spec"),
    rules: &[],
};

/// The merge schema of a built-in kind by name (`CronJob` too); `None` otherwise.
fn schema(kind: &str) -> Option<&'static MergeSchema> {
    if kind == "CronJob" {
        return Some(&CRON_JOB);
    }
    crate::kinds::BUILTIN
        .iter()
        .find(|k| k.kind == kind)
        .and_then(|k| k.strategy.merge_schema())
}

/// Applies and asserts that no directive reached the result.
fn patch(kind: &str, original: Value, patch: Value) -> Value {
    let out = match apply(schema(kind), &original, &patch) {
        Ok(out) => out,
        Err(err) => panic!("apply failed: {err}"),
    };
    assert_no_directives(&out, "");
    out
}

fn assert_no_directives(value: &Value, path: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                assert!(
                    !(k == DIRECTIVE
                        || k == RETAIN_KEYS
                        || k.starts_with(SET_ORDER_PREFIX)
                        || k.starts_with(DELETE_PRIMITIVE_PREFIX)),
                    "directive {k} leaked at {path}"
                );
                assert_no_directives(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_no_directives(v, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn names(list: &Value, key: &str) -> Vec<Value> {
    list.as_array()
        .map(|items| items.iter().map(|i| i[key].clone()).collect())
        .unwrap_or_default()
}

fn hello_deployment(ports: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {
                    "containers": [{
                        "name": "hello",
                        "image": "ghcr.io/spinkube/spin-hello:v0.13.0",
                        "ports": ports,
                        "resources": {}
                    }],
                    "restartPolicy": "Always"
                }
            }
        }
    })
}

#[test]
fn kubectl_132_patch_removes_port_80_and_keeps_8080() {
    let original = hello_deployment(json!([
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 8080, "protocol": "TCP"}
    ]));
    // Contract §9, verbatim apart from the image.
    let body = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"hello"}],
        "containers":[{
            "name":"hello",
            "image":"ghcr.io/spinkube/spin-hello:v0.14.0",
            "$setElementOrder/ports":[{"containerPort":8080}],
            "ports":[{"containerPort":8080},{"$patch":"delete","containerPort":80}]
        }]
    }}}});
    let out = patch("Deployment", original.clone(), body);
    let container = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/spinkube/spin-hello:v0.14.0");
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(container["resources"], json!({}));
    assert_eq!(out["spec"]["replicas"], 1);
    assert_eq!(out["metadata"], original["metadata"]);
}

#[test]
fn set_element_order_orders_ports_added_and_kept() {
    let original = hello_deployment(json!([
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 8080, "protocol": "TCP"}
    ]));
    let body = json!({"spec":{"template":{"spec":{"containers":[{
        "name":"hello",
        "$setElementOrder/ports":[{"containerPort":9090},{"containerPort":8080}],
        "ports":[{"containerPort":9090},{"$patch":"delete","containerPort":80}]
    }]}}}});
    let out = patch("Deployment", original, body);
    let ports = &out["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert_eq!(
        ports,
        &json!([{"containerPort": 9090}, {"containerPort": 8080, "protocol": "TCP"}])
    );
}

#[test]
fn env_add_change_and_remove() {
    let original = json!({"spec": {"containers": [{
        "name": "app",
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "2"},
            {"name": "C", "value": "3"}
        ]
    }]}});
    let body = json!({"spec": {"containers": [{
        "name": "app",
        "$setElementOrder/env": [{"name": "A"}, {"name": "C"}, {"name": "D"}],
        "env": [
            {"name": "C", "value": "33"},
            {"name": "D", "value": "4"},
            {"$patch": "delete", "name": "B"}
        ]
    }]}});
    let out = patch("Pod", original.clone(), body);
    assert_eq!(
        out["spec"]["containers"][0]["env"],
        json!([
            {"name": "A", "value": "1"},
            {"name": "C", "value": "33"},
            {"name": "D", "value": "4"}
        ])
    );

    // Without $setElementOrder a new item goes first, as kube-apiserver does (the
    // Kubernetes "kubectl patch" task shows the added container first).
    let out = patch(
        "Pod",
        original,
        json!({"spec": {"containers": [{"name": "app", "env": [{"name": "E", "value": "5"}]}]}}),
    );
    assert_eq!(
        names(&out["spec"]["containers"][0]["env"], "name"),
        vec![json!("E"), json!("A"), json!("B"), json!("C")]
    );

    // A null value inside an env item removes only that field.
    let out = patch(
        "Pod",
        out,
        json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": null}]}]}}),
    );
    assert_eq!(out["spec"]["containers"][0]["env"][1], json!({"name": "A"}));
}

#[test]
fn containers_reordered_by_set_element_order() {
    let original = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:1"},
        {"name": "c", "image": "c:1"}
    ]}}}});
    let body = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]
    }}}});
    let out = patch("Deployment", original, body);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "c", "image": "c:1"},
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:1"}
        ])
    );
}

#[test]
fn set_element_order_not_matching_patch_is_rejected() {
    let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let body = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "b", "image": "b:2"}]
    }});
    let err = apply(schema("Pod"), &original, &body).err();
    assert!(
        matches!(&err, Some(StrategicError::OrderMismatch { path, .. }) if path == "spec.containers"),
        "{err:?}"
    );
}

#[test]
fn retain_keys_switches_strategy_rolling_update_to_recreate() {
    let original = json!({"spec": {"replicas": 2, "strategy": {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
    }}});
    // What kubectl 1.32 sends for `strategy: {type: Recreate}` on apply.
    let body = json!({"spec": {"strategy": {
        "$retainKeys": ["type"],
        "rollingUpdate": null,
        "type": "Recreate"
    }}});
    let out = patch("Deployment", original.clone(), body);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(out["spec"]["replicas"], 2);

    // $retainKeys alone clears the unlisted fields too.
    let body = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = patch("Deployment", original.clone(), body);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    // A field the patch sets must be listed.
    let body = json!({"spec": {"strategy": {
        "$retainKeys": ["type"],
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1}
    }}});
    let err = apply(schema("Deployment"), &original, &body).err();
    assert!(
        matches!(&err, Some(StrategicError::RetainKeysMismatch { path, field, .. })
            if path == "spec.strategy" && field == "rollingUpdate"),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with("invalid patch format of retainKeys"),
        "{text}"
    );
}

#[test]
fn retain_keys_on_volume_items() {
    let original = json!({"spec": {"volumes": [
        {"name": "data", "emptyDir": {}},
        {"name": "conf", "configMap": {"name": "c"}}
    ]}});
    let body = json!({"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/d"}}
    ]}});
    let out = patch("Pod", original, body);
    assert_eq!(
        out["spec"]["volumes"],
        json!([
            {"name": "data", "hostPath": {"path": "/d"}},
            {"name": "conf", "configMap": {"name": "c"}}
        ])
    );
}

#[test]
fn finalizers_delete_from_primitive_list_and_set_merge() {
    let original = json!({"metadata": {"name": "x", "finalizers": ["a", "b", "c"]}});
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));

    // Set merge: duplicates collapse; new items go first (upstream's order rule).
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"metadata": {"finalizers": ["d", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["d", "a", "b", "c"]));

    // What kubectl sends when its manifest drops "b" and adds "d".
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "c", "d"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["d"]
        }}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "d"]));

    // Deleting from a list the object does not have changes nothing.
    let out = patch(
        "ConfigMap",
        json!({"metadata": {"name": "x"}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out, json!({"metadata": {"name": "x"}}));

    // Bad shapes name the directive.
    let err = apply(
        schema("ConfigMap"),
        &original,
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "b"}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::BadPrimitiveList { path, value })
            if path == "metadata.$deleteFromPrimitiveList/finalizers" && value == "\"b\""),
        "{err:?}"
    );
}

#[test]
fn bad_patch_directive_is_an_error_naming_path_and_value() {
    let original = hello_deployment(json!([{"containerPort": 80}]));
    let body = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "hello", "$patch": "foo"}
    ]}}}});
    let err = apply(schema("Deployment"), &original, &body).err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        matches!(&err, Some(StrategicError::UnknownDirective { path, value })
            if path == "spec.template.spec.containers[0]" && value == "\"foo\""),
        "{err:?}"
    );
    assert_eq!(
        text,
        "invalid $patch directive \"foo\" at spec.template.spec.containers[0]: \
         unknown patch type: \"foo\""
    );

    // On a map, and with a non-string value.
    let err = apply(
        schema("Deployment"),
        &original,
        &json!({"spec": {"strategy": {"$patch": 7}}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::UnknownDirective { path, value })
            if path == "spec.strategy" && value == "7"),
        "{err:?}"
    );
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({"kind": "Service", "spec": {"type": "ClusterIP", "ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
    ]}});
    let body = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    let out = patch("Service", original.clone(), body);
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9090},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
        ])
    );
    // The same list on an unknown kind is replaced.
    let body = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    let out = patch("Gateway", original, body);
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}])
    );
}

#[test]
fn unknown_kind_replaces_lists_but_merges_maps() {
    let original = json!({
        "apiVersion": "core.spinoperator.dev/v1alpha1",
        "kind": "SpinApp",
        "metadata": {"name": "app", "labels": {"a": "1"}, "finalizers": ["x"]},
        "spec": {"replicas": 1, "variables": [{"name": "a", "value": "1"}]}
    });
    let body = json!({
        "metadata": {"labels": {"b": "2"}, "finalizers": ["y"]},
        "spec": {"variables": [{"name": "b", "value": "2"}]}
    });
    let out = patch("SpinApp", original, body);
    assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
    assert_eq!(
        out["spec"]["variables"],
        json!([{"name": "b", "value": "2"}])
    );
    assert_eq!(out["spec"]["replicas"], 1);
}

#[test]
fn args_command_tolerations_env_from_are_replaced() {
    let original = json!({"spec": {
        "tolerations": [{"key": "a", "effect": "NoSchedule"}],
        "containers": [{
            "name": "c",
            "args": ["--a", "--b"],
            "command": ["run"],
            "envFrom": [{"configMapRef": {"name": "one"}}]
        }]
    }});
    let body = json!({"spec": {
        "tolerations": [{"key": "b", "effect": "NoExecute"}],
        "containers": [{
            "name": "c",
            "args": ["--c"],
            "command": ["serve"],
            "envFrom": [{"secretRef": {"name": "two"}}]
        }]
    }});
    let out = patch("Pod", original, body);
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
    let c = &out["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["--c"]));
    assert_eq!(c["command"], json!(["serve"]));
    assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "two"}}]));
}

#[test]
fn null_deletes_and_map_directives() {
    let original = json!({
        "metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}},
        "data": {"k": "v", "k2": "v2"}
    });
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"metadata": {"labels": {"a": null, "c": "3"}, "annotations": null}}),
    );
    assert_eq!(out["metadata"], json!({"labels": {"b": "2", "c": "3"}}));

    // $patch: delete on a map removes it; replace swaps it whole; merge is the default.
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"metadata": {"labels": {"$patch": "delete"}}, "data": {"$patch": "replace", "n": "1"}}),
    );
    assert_eq!(out["metadata"], json!({"annotations": {"x": "y"}}));
    assert_eq!(out["data"], json!({"n": "1"}));
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"data": {"$patch": "merge", "n": "1"}}),
    );
    assert_eq!(out["data"], json!({"k": "v", "k2": "v2", "n": "1"}));

    // Nulls in a map the server lacks are not stored.
    let out = patch(
        "ConfigMap",
        json!({"metadata": {"name": "x"}}),
        json!({"metadata": {"labels": {"gone": null, "kept": "1"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"kept": "1"}));

    // The whole object: replace and delete at the top.
    let out = patch(
        "ConfigMap",
        original.clone(),
        json!({"$patch": "replace", "data": {}}),
    );
    assert_eq!(out, json!({"data": {}}));
    let out = patch("ConfigMap", original, json!({"$patch": "delete"}));
    assert_eq!(out, json!({}));
}

#[test]
fn patch_replace_inside_a_merging_list() {
    let original = json!({"spec": {"containers": [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:1"}
    ]}});
    let body = json!({"spec": {"containers": [
        {"$patch": "replace"},
        {"name": "z", "image": "z:1", "stdin": null}
    ]}});
    let out = patch("Pod", original, body);
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "z", "image": "z:1"}])
    );
}

#[test]
fn merge_key_errors_name_the_item() {
    let original = json!({"spec": {"containers": [{"name": "a"}]}});
    let err = apply(
        schema("Pod"),
        &original,
        &json!({"spec": {"containers": [{"name": "a"}, {"image": "x"}]}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::MissingMergeKey { path, key, .. })
            if path == "spec.containers[1]" && *key == "name"),
        "{err:?}"
    );
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        text,
        "map: {\"image\":\"x\"} does not contain declared merge key: name (at spec.containers[1])"
    );

    let err = apply(
        schema("Pod"),
        &original,
        &json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::MissingMergeKey { path, .. }) if path == "spec.containers[0]"),
        "{err:?}"
    );

    let err = apply(
        schema("Pod"),
        &json!({"spec": {"containers": []}}),
        &json!({"spec": {"containers": [["a"]]}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::ListOfLists { .. })),
        "{err:?}"
    );
    let err = apply(
        schema("Pod"),
        &original,
        &json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": ["a"]}}),
    )
    .err();
    assert!(
        matches!(&err, Some(StrategicError::MixedElements { path, .. }) if path == "spec.containers"),
        "{err:?}"
    );
}

#[test]
fn numbers_match_as_float64() {
    let original = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
    let body = json!({"spec": {"ports": [{"port": 80.0, "name": "web"}]}});
    let out = patch("Service", original, body);
    assert_eq!(names(&out["spec"]["ports"], "name"), vec![json!("web")]);
}

#[test]
fn conditions_merge_by_type_and_owner_references_by_uid() {
    let original = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]},
        "status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ]}
    });
    let body = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "blockOwnerDeletion": true}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    let out = patch("Pod", original, body);
    assert_eq!(
        out["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"}
        ])
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "kind": "ReplicaSet", "name": "rs", "blockOwnerDeletion": true}])
    );
}

#[test]
fn non_object_documents_and_null() {
    assert!(matches!(
        apply(schema("Pod"), &json!([]), &json!({})),
        Err(StrategicError::NotAnObject {
            which: "original",
            ..
        })
    ));
    assert!(matches!(
        apply(schema("Pod"), &json!({}), &json!("x")),
        Err(StrategicError::NotAnObject { which: "patch", .. })
    ));
    let out = apply(schema("Pod"), &Value::Null, &json!({"a": 1})).ok();
    assert_eq!(out, Some(json!({"a": 1})));
    let out = apply(schema("Pod"), &json!({"a": 1}), &Value::Null).ok();
    assert_eq!(out, Some(json!({"a": 1})));
}

#[test]
fn too_deep_is_an_error() {
    let mut deep = json!(1);
    for _ in 0..MAX_DEPTH + 5 {
        deep = json!({ "a": deep });
    }
    let err = apply(schema("Pod"), &json!({}), &deep).err();
    assert!(
        matches!(err, Some(StrategicError::TooDeep { .. })),
        "{err:?}"
    );
}

/// Cases from upstream's `pkg/util/strategicpatch/patch_test.go`, with its test type's
/// fields mapped onto Pod fields of the same strategy: `mergingList` → `spec.containers`
/// (by `name`), `mergingIntList` → `metadata.finalizers` (set), `nonMergingIntList` →
/// `spec.tolerations` (replace). Each row: description, original, patch, expected result.
#[test]
fn upstream_fixtures() {
    let rows = [
        (
            "preserve the order from the patch in a merging list",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}}),
            json!({"spec": {"containers": [
                {"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}
            ]}}),
            json!({"spec": {"containers": [
                {"name": "3", "value": "c"}, {"name": "1", "value": "a"},
                {"name": "2", "value": "b", "other": "x"}
            ]}}),
        ),
        (
            "preserve the order from the patch in a merging list 2",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}}),
            json!({"spec": {"containers": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}}),
            json!({"spec": {"containers": [
                {"name": "2", "value": "b"}, {"name": "3", "value": "c"}, {"name": "1", "value": "a"}
            ]}}),
        ),
        (
            "preserve the order from the patch in a merging int list",
            json!({"metadata": {"finalizers": [1, 2, 3]}}),
            json!({"metadata": {"finalizers": [3, 1]}}),
            json!({"metadata": {"finalizers": [2, 3, 1]}}),
        ),
        (
            "unique scalars when merging lists",
            json!({"metadata": {"finalizers": [1, 2]}}),
            json!({"metadata": {"finalizers": [2, 3]}}),
            json!({"metadata": {"finalizers": [1, 2, 3]}}),
        ),
        (
            "delete all items from merging list",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2"}]}}),
            json!({"spec": {"containers": [{"$patch": "replace"}]}}),
            json!({"spec": {"containers": []}}),
        ),
        (
            "delete all duplicate entries in a merging list",
            json!({"spec": {"containers": [
                {"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}, {"name": "3"}
            ]}}),
            json!({"spec": {"containers": [
                {"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}
            ]}}),
            json!({"spec": {"containers": [{"name": "2", "value": "a"}]}}),
        ),
        (
            "add key and delete all keys from map",
            json!({"name": 1, "value": 1}),
            json!({"other": "a", "$patch": "replace"}),
            json!({"other": "a"}),
        ),
        (
            "$setElementOrder contains item that is not present in the list to be merged",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "containers": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]
            }}),
            json!({"spec": {"containers": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]}}),
        ),
        (
            "$setElementOrder contains item that is not present in the int list to be merged",
            json!({"metadata": {"finalizers": [1, 3]}}),
            json!({"metadata": {"$setElementOrder/finalizers": [3, 2, 1]}}),
            json!({"metadata": {"finalizers": [3, 1]}}),
        ),
        (
            "$deleteFromPrimitiveList of nonexistent item should not add the item to the list",
            json!({"metadata": {"finalizers": [1, 2]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [3]}}),
            json!({"metadata": {"finalizers": [1, 2]}}),
        ),
        (
            "$deleteFromPrimitiveList on nonexistent primitive list should not add the list",
            json!({"foo": ["bar"]}),
            json!({"$deleteFromPrimitiveList/finalizers": [3]}),
            json!({"foo": ["bar"]}),
        ),
        (
            "$deleteFromPrimitiveList should delete item from a list without merge strategy",
            json!({"spec": {"tolerations": [1, 2, 3]}}),
            json!({"spec": {"$deleteFromPrimitiveList/tolerations": [2]}}),
            json!({"spec": {"tolerations": [1, 3]}}),
        ),
        (
            "replace list of scalars",
            json!({"spec": {"tolerations": [1, 2]}}),
            json!({"spec": {"tolerations": [2, 3]}}),
            json!({"spec": {"tolerations": [2, 3]}}),
        ),
        (
            "nested patch merge with empty list (three-way result)",
            json!({"name": "hi", "spec": {"containers": [{"name": "hello2"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
                "containers": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]
            }}),
            json!({"name": "hi", "spec": {"containers": [{"name": "hello"}, {"name": "hello2"}]}}),
        ),
        (
            "delete all duplicate items in lists of scalars (three-way result)",
            json!({"metadata": {"finalizers": [1, 2, 3, 3, 4]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": [1, 2],
                "$deleteFromPrimitiveList/finalizers": [3]
            }}),
            json!({"metadata": {"finalizers": [1, 2, 4]}}),
        ),
        (
            "add and delete items in lists of scalars (three-way result)",
            json!({"metadata": {"finalizers": [1, 2, 3, 4]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": [1, 2, 4],
                "$deleteFromPrimitiveList/finalizers": [3],
                "finalizers": [4]
            }}),
            json!({"metadata": {"finalizers": [1, 2, 4]}}),
        ),
        (
            "merge lists of maps (three-way result)",
            json!({"spec": {"containers": [
                {"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}
            ]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
                "containers": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}]
            }}),
            json!({"spec": {"containers": [
                {"name": "4", "value": "4"}, {"name": "1", "other": "a"},
                {"name": "2", "value": "2", "other": "b"}, {"name": "3", "value": "3"}
            ]}}),
        ),
    ];
    for (description, original, body, want) in rows {
        let got = apply(schema("Pod"), &original, &body);
        assert_eq!(got.ok(), Some(want), "{description}");
    }

    // Errors upstream expects ("doesn't match", "does not contain declared merge key").
    let mismatch = apply(
        schema("Pod"),
        &json!({"metadata": {"finalizers": [1, 3, 2]}}),
        &json!({"metadata": {"$setElementOrder/finalizers": [1, 2, 3], "finalizers": [3, 1]}}),
    );
    let text = mismatch.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("doesn't match"), "{text}");
    let missing = apply(
        schema("Pod"),
        &json!({"spec": {"containers": [{"name": "1", "value": "a"}]}}),
        &json!({"spec": {"containers": [{"value": "b"}]}}),
    );
    let text = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("does not contain declared merge key"),
        "{text}"
    );
}

#[test]
fn positions_index_agrees_with_linear_scan() {
    let keys: Vec<Value> = (0..40)
        .map(|i| match i % 5 {
            0 => json!(format!("k{}", i % 7)),
            1 => json!(i % 9),
            2 => json!((i % 9) as f64),
            3 => json!(i % 2 == 0),
            _ => json!({"n": i % 3}),
        })
        .chain([json!(-0.0), json!(0), Value::Null])
        .collect();
    let refs: Vec<&Value> = keys.iter().collect();
    let indexed = Positions::new(&refs);
    let probes = keys
        .iter()
        .cloned()
        .chain([json!("absent"), json!(99), json!(4.0)]);
    for wanted in probes {
        let linear = refs.iter().position(|k| key_eq(k, &wanted));
        assert_eq!(indexed.find(&wanted), linear, "{wanted}");
    }
}

#[test]
fn long_lists_merge_and_reorder() {
    let containers: Vec<Value> = (0..30)
        .map(|i| json!({"name": format!("c{i}"), "image": "x:1"}))
        .collect();
    let original = json!({"spec": {"containers": containers}});
    // Reverse the order, drop c0, change c5, add n.
    let mut order: Vec<Value> = (1..30)
        .rev()
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    order.push(json!({"name": "n"}));
    let body = json!({"spec": {
        "$setElementOrder/containers": order,
        "containers": [
            {"name": "c5", "image": "x:2"},
            {"name": "n", "image": "n:1"},
            {"name": "c0", "$patch": "delete"}
        ]
    }});
    let out = patch("Pod", original, body);
    let mut want: Vec<Value> = (1..30).rev().map(|i| json!(format!("c{i}"))).collect();
    want.push(json!("n"));
    assert_eq!(names(&out["spec"]["containers"], "name"), want);
    assert_eq!(
        out["spec"]["containers"][24],
        json!({"name": "c5", "image": "x:2"})
    );
}

/// xorshift64*: a dependency-free generator for the random documents below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("x")
    }
}

const FIELDS: &[&str] = &[
    "spec",
    "template",
    "metadata",
    "containers",
    "name",
    "ports",
    "containerPort",
    "env",
    "port",
    "finalizers",
    "strategy",
    "type",
    "volumes",
    "conditions",
    "uid",
    "args",
    "status",
    "ownerReferences",
    "value",
    "initContainers",
];
const DIRECTIVES: &[&str] = &[
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/ports",
    "$setElementOrder/finalizers",
    "$setElementOrder/env",
    "$setElementOrder",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/args",
    "$deleteFromPrimitiveList",
];
const WORDS: &[&str] = &[
    "delete", "replace", "merge", "foo", "a", "b", "name", "type", "spec", "",
];

fn random_value(rng: &mut Rng, depth: usize, directives: bool) -> Value {
    let roll = if depth == 0 {
        rng.below(5)
    } else {
        rng.below(9)
    };
    match roll {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.below(4)),
        3 => json!(rng.pick(WORDS)),
        4 => json!(rng.below(3) as f64),
        5 | 6 => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                let key = if directives && rng.below(4) == 0 {
                    rng.pick(DIRECTIVES)
                } else {
                    rng.pick(FIELDS)
                };
                map.insert(key.to_owned(), random_value(rng, depth - 1, directives));
            }
            Value::Object(map)
        }
        _ => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1, directives))
                .collect(),
        ),
    }
}

#[test]
fn random_documents_never_panic_and_never_leak_directives() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let kinds = ["Pod", "Deployment", "Service", "ConfigMap", "SpinApp"];
    let mut ok = 0;
    for round in 0..20_000 {
        let kind = kinds.get(round % kinds.len()).copied().unwrap_or("Pod");
        let original = Value::Object(match random_value(&mut rng, 6, false) {
            Value::Object(map) => map,
            other => std::iter::once(("spec".to_owned(), other)).collect(),
        });
        let body = random_value(&mut rng, 6, true);
        if let Ok(out) = apply(schema(kind), &original, &body) {
            assert_no_directives(&out, "");
            ok += 1;
        }
    }
    assert!(ok > 1000, "too few successful rounds: {ok}");
}
