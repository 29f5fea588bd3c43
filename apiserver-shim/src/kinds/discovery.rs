//! Where a Service's endpoints are listed: core Endpoints and discovery.k8s.io
//! EndpointSlices, with kube-apiserver's printer columns.

use serde_json::{json, Value};

use super::{Kind, KindStrategy};
use crate::table::cells::{arr, col, none_if_empty, s};
use crate::table::{age_column, name_column, Column};

/// `/api/v1/endpoints`.
pub const ENDPOINTS: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    namespaced: true,
    short_names: &["ep"],
    categories: &[],
    status: false,
    scale: false,
    strategy: &Endpoints,
};

/// `/apis/discovery.k8s.io/v1/endpointslices`.
pub const ENDPOINT_SLICE: Kind = Kind {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    namespaced: true,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    strategy: &EndpointSlice,
};

/// The Endpoints strategy.
pub struct Endpoints;

impl KindStrategy for Endpoints {
    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("Endpoints", 0, |o| {
            let mut eps = Vec::new();
            for sub in arr(o, "/subsets") {
                for a in sub
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in sub
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        eps.push(format!(
                            "{}:{}",
                            a.get("ip").and_then(Value::as_str).unwrap_or(""),
                            p.get("port").and_then(Value::as_i64).unwrap_or(0)
                        ));
                    }
                }
            }
            none_if_empty(eps.join(","))
        }));
        c.push(age_column());
        c
    }
}

/// The EndpointSlice strategy.
pub struct EndpointSlice;

impl KindStrategy for EndpointSlice {
    fn columns(&self) -> Vec<Column> {
        let mut c = vec![name_column()];
        c.push(col("AddressType", 0, |o| json!(s(o, "/addressType"))));
        c.push(col("Ports", 0, |o| {
            let ports: Vec<String> = arr(o, "/ports")
                .iter()
                .map(|p| match p.get("port").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None => "<unset>".into(),
                })
                .collect();
            json!(if ports.is_empty() {
                "<unset>".to_string()
            } else {
                ports.join(",")
            })
        }));
        c.push(col("Endpoints", 0, |o| {
            let addresses: Vec<&str> = arr(o, "/endpoints")
                .iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter_map(Value::as_str)
                .collect();
            json!(match addresses.len() {
                0 => "<unset>".to_string(),
                n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
                _ => addresses.join(","),
            })
        }));
        c.push(age_column());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Cell;

    fn cells(kind: &str, obj: &Value) -> Vec<(String, Value)> {
        assert_eq!(kind, "EndpointSlice");
        EndpointSlice
            .columns()
            .into_iter()
            .filter_map(|c| match c.cell {
                Cell::Fn(f) => Some((c.name, f(obj))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn endpoint_slices_print_as_kubectl_prints_them() {
        let slice = json!({
            "addressType": "IPv4",
            "ports": [{"port": 8080}, {"port": 9090}],
            "endpoints": [
                {"addresses": ["10.42.0.2"]}, {"addresses": ["10.42.0.3"]},
                {"addresses": ["10.42.0.4"]}, {"addresses": ["10.42.0.5"]},
            ],
        });
        let got = cells("EndpointSlice", &slice);
        let cell = |name: &str| {
            got.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(cell("AddressType"), "IPv4");
        assert_eq!(cell("Ports"), "8080,9090");
        assert_eq!(
            cell("Endpoints"),
            "10.42.0.2,10.42.0.3,10.42.0.4 + 1 more..."
        );
        let empty = cells("EndpointSlice", &json!({"addressType": "IPv4"}));
        assert!(empty
            .iter()
            .any(|(n, v)| n == "Endpoints" && v == "<unset>"));
    }
}
