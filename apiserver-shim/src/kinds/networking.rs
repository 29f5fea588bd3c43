//! networking.k8s.io Ingresses and IngressClasses: generation tracking, printer columns.

use serde_json::{json, Value};

use super::{Kind, KindStrategy};
use crate::table::cells::{arr, col, none_if_empty, s};
use crate::table::{age_column, name_column, Column};

/// `/apis/networking.k8s.io/v1/ingresses`.
pub const INGRESS: Kind = Kind {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    singular: "ingress",
    namespaced: true,
    short_names: &["ing"],
    categories: &[],
    status: true,
    scale: false,
    strategy: &Ingress,
};

/// `/apis/networking.k8s.io/v1/ingressclasses`.
pub const INGRESS_CLASS: Kind = Kind {
    group: "networking.k8s.io",
    version: "v1",
    kind: "IngressClass",
    plural: "ingressclasses",
    singular: "ingressclass",
    namespaced: false,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    strategy: &IngressClass,
};

/// The Ingress strategy.
pub struct Ingress;

impl KindStrategy for Ingress {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Class", 0, |o| {
            none_if_empty(s(o, "/spec/ingressClassName").into())
        }));
        c.push(col("Hosts", 0, |o| {
            let hosts: Vec<&str> = arr(o, "/spec/rules")
                .iter()
                .map(|r| r.get("host").and_then(Value::as_str).unwrap_or("*"))
                .collect();
            json!(if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            })
        }));
        c.push(col("Address", 0, |o| {
            json!(arr(o, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(","))
        }));
        c.push(col("Ports", 0, |o| {
            json!(if arr(o, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            })
        }));
        c.push(age_column());
        c
    }
}

/// The IngressClass strategy.
pub struct IngressClass;

impl KindStrategy for IngressClass {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Controller", 0, |o| json!(s(o, "/spec/controller"))));
        c.push(col("Parameters", 0, |o| {
            none_if_empty(s(o, "/spec/parameters/name").into())
        }));
        c.push(age_column());
        c
    }
}
