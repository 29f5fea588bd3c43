//! The node group of kinds: Nodes (kube-apiserver's pkg/registry/core/node: the status a
//! kubelet registers kept at create, the `proxy` subresource, printer columns, field
//! labels, merge keys) and RuntimeClasses (node.k8s.io: printer columns).

use serde_json::{json, Value};

use super::{Extra, Kind, KindStrategy, Subresource};
use crate::strategic::merge_keys::{
    ListStrategy::{ByKey, Set},
    MergeSchema,
};
use crate::table::cells::{arr, col, none_if_empty, s};
use crate::table::{age_column, name_column, Column};

/// `/api/v1/nodes`.
pub const NODE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    status: true,
    scale: false,
    strategy: &Node,
};

/// `/apis/node.k8s.io/v1/runtimeclasses`.
pub const RUNTIME_CLASS: Kind = Kind {
    group: "node.k8s.io",
    version: "v1",
    kind: "RuntimeClass",
    plural: "runtimeclasses",
    singular: "runtimeclass",
    namespaced: false,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    strategy: &RuntimeClass,
};

const MERGE_SCHEMA: MergeSchema = MergeSchema {
    pod_spec: None,
    rules: &[("spec.podCIDRs", Set), ("status.addresses", ByKey("type"))],
};

/// The Node strategy.
pub struct Node;

impl KindStrategy for Node {
    fn resets_status_on_create(&self) -> bool {
        false
    }

    fn subresources(&self) -> &'static [Subresource] {
        NODE_SUBRESOURCES
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Status", 0, node_status));
        c.push(col("Roles", 0, |o| {
            let mut roles: Vec<&str> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            none_if_empty(roles.join(","))
        }));
        c.push(age_column());
        c.push(col("Version", 0, |o| {
            json!(s(o, "/status/nodeInfo/kubeletVersion"))
        }));
        c.push(col("Internal-IP", 1, |o| node_address(o, "InternalIP")));
        c.push(col("External-IP", 1, |o| node_address(o, "ExternalIP")));
        c.push(col("OS-Image", 1, |o| {
            json!(s(o, "/status/nodeInfo/osImage"))
        }));
        c.push(col("Kernel-Version", 1, |o| {
            json!(s(o, "/status/nodeInfo/kernelVersion"))
        }));
        c.push(col("Container-Runtime", 1, |o| {
            json!(s(o, "/status/nodeInfo/containerRuntimeVersion"))
        }));
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MERGE_SCHEMA)
    }
}

/// The RuntimeClass strategy.
pub struct RuntimeClass;

impl KindStrategy for RuntimeClass {
    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Handler", 0, |o| json!(s(o, "/handler"))));
        c.push(age_column());
        c
    }
}

const NODE_SUBRESOURCES: &[Subresource] = &[Subresource {
    extra: Extra::NodeProxy,
    name: "proxy",
    group_version: ("", "v1"),
    kind: "NodeProxyOptions",
    verbs: &["create", "delete", "get", "patch", "update"],
}];

fn node_status(o: &Value) -> Value {
    let ready = arr(o, "/status/conditions")
        .iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
        .map(|c| {
            if c.get("status") == Some(&json!("True")) {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        json!(format!("{ready},SchedulingDisabled"))
    } else {
        json!(ready)
    }
}

fn node_address(o: &Value, ty: &str) -> Value {
    none_if_empty(
        arr(o, "/status/addresses")
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(ty))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .unwrap_or("")
            .to_string(),
    )
}
