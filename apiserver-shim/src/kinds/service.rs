//! Services (kube-apiserver's pkg/registry/core/service): defaults (type, session
//! affinity, IP families, ports' protocol and target port), validation (type, ports,
//! selector), DNS-label names, printer columns, field labels, merge keys of `ports`, and
//! the custom REST storage that allocates cluster IPs and node ports (`handlers::services`).

use serde_json::{json, Value};

use super::{Kind, KindStrategy, NameRule, Rest};
use crate::defaults::set_default;
use crate::error::Cause;
use crate::strategic::merge_keys::{ListStrategy::ByKey, MergeSchema};
use crate::table::cells::{arr, col, none_if_empty, s, selector_string};
use crate::table::{age_column, name_column, Column};
use crate::validation::{invalid, labels, port_range, required};

/// `/api/v1/services`.
pub const SERVICE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    namespaced: true,
    short_names: &["svc"],
    categories: &["all"],
    status: true,
    scale: false,
    strategy: &Service,
};

const MERGE_SCHEMA: MergeSchema = MergeSchema {
    pod_spec: None,
    rules: &[("spec.ports", ByKey("port"))],
};

/// The Service strategy.
pub struct Service;

impl KindStrategy for Service {
    fn default(&self, obj: &mut Value) {
        default_service(obj);
    }

    fn validate(&self, obj: &Value, out: &mut Vec<Cause>) {
        service(obj, out);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Type", 0, |o| json!(s(o, "/spec/type"))));
        c.push(col("Cluster-IP", 0, |o| {
            none_if_empty(s(o, "/spec/clusterIP").into())
        }));
        c.push(col("External-IP", 0, external_ip));
        c.push(col("Port(s)", 0, service_ports));
        c.push(age_column());
        c.push(col("Selector", 1, |o| selector_string(o, "/spec/selector")));
        c
    }

    fn field_labels(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }

    fn merge_schema(&self) -> Option<&'static MergeSchema> {
        Some(&MERGE_SCHEMA)
    }

    fn rest(&self) -> Rest {
        Rest::Service
    }
}

fn default_service(obj: &mut Value) {
    set_default(obj, "/spec/type", json!("ClusterIP"));
    set_default(obj, "/spec/sessionAffinity", json!("None"));
    set_default(obj, "/spec/internalTrafficPolicy", json!("Cluster"));
    set_default(obj, "/spec/ipFamilies", json!(["IPv4"]));
    set_default(obj, "/spec/ipFamilyPolicy", json!("SingleStack"));
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            let port = p.get("port").cloned();
            if let Some(m) = p.as_object_mut() {
                m.entry("protocol").or_insert(json!("TCP"));
                if let Some(port) = port {
                    m.entry("targetPort").or_insert(port);
                }
            }
        }
    }
}

fn service(obj: &Value, out: &mut Vec<Cause>) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort"
    ) {
        out.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            field: "spec.type".into(),
        });
    }
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    if ports.is_none_or(Vec::is_empty) && ty != "ExternalName" && !headless {
        out.push(required("spec.ports".into()));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        port_range(p.get("port"), &format!("spec.ports[{i}].port"), out);
        if let Some(t) = p.get("targetPort").and_then(Value::as_i64) {
            if !(1..=65535).contains(&t) {
                out.push(invalid(
                    format!("spec.ports[{i}].targetPort"),
                    format!("Invalid value: {t}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
    if let Some(sel) = obj.pointer("/spec/selector") {
        labels(sel, "spec.selector", out);
    }
}

fn service_ports(o: &Value) -> Value {
    none_if_empty(
        arr(o, "/spec/ports")
            .iter()
            .map(|p| {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                match p.get("nodePort").and_then(Value::as_i64) {
                    Some(np) => format!("{port}:{np}/{proto}"),
                    None => format!("{port}/{proto}"),
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn external_ip(o: &Value) -> Value {
    let ips: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let lb: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
        .collect();
    match s(o, "/spec/type") {
        "LoadBalancer" if lb.is_empty() && ips.is_empty() => json!("<pending>"),
        "LoadBalancer" => json!([lb, ips].concat().join(",")),
        "ExternalName" => json!(s(o, "/spec/externalName")),
        _ => none_if_empty(ips.join(",")),
    }
}
