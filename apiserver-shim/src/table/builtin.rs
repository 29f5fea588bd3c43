//! kube-apiserver's printer columns for the built-in kinds (pkg/printers/internalversion
//! in kubernetes v1.32), one function per kind. `(w)` columns have priority 1.

use serde_json::{json, Value};

use super::{age_column, name_column, Cell, Column};

fn col(name: &str, priority: u8, f: fn(&Value) -> Value) -> Column {
    Column {
        name: name.into(),
        ty: if matches!(
            name,
            "Restarts"
                | "Desired"
                | "Current"
                | "Data"
                | "Up-to-date"
                | "Available"
                | "MinPods"
                | "MaxPods"
                | "Replicas"
                | "Secrets"
        ) {
            "integer"
        } else {
            "string"
        },
        format: "",
        priority,
        description: String::new(),
        cell: Cell::Fn(f),
    }
}

fn s<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn none_if_empty(v: String) -> Value {
    if v.is_empty() {
        json!("<none>")
    } else {
        json!(v)
    }
}

fn arr<'a>(o: &'a Value, p: &str) -> &'a [Value] {
    o.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn selector_string(o: &Value, p: &str) -> Value {
    let Some(m) = o.pointer(p).and_then(Value::as_object) else {
        return json!("<none>");
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    none_if_empty(pairs.join(","))
}

fn containers(o: &Value, p: &str, field: &str) -> Value {
    none_if_empty(
        arr(o, p)
            .iter()
            .map(|c| c.get(field).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn pod_status(o: &Value) -> Value {
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return json!("Terminating");
    }
    if !s(o, "/status/reason").is_empty() {
        return json!(s(o, "/status/reason"));
    }
    for cs in arr(o, "/status/containerStatuses") {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
            return json!(r);
        }
        if let Some(r) = cs
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            return json!(r);
        }
    }
    none_if_empty(s(o, "/status/phase").to_string())
}

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

/// The `-o wide` columns Deployments and ReplicaSets share.
fn workload_wide_columns(c: &mut Vec<Column>) {
    c.push(col("Containers", 1, |o| {
        containers(o, "/spec/template/spec/containers", "name")
    }));
    c.push(col("Images", 1, |o| {
        containers(o, "/spec/template/spec/containers", "image")
    }));
    c.push(col("Selector", 1, |o| {
        selector_string(o, "/spec/selector/matchLabels")
    }));
}

/// The columns of a built-in kind (Name + Age for kinds without their own).
pub fn columns(kind: &str) -> Vec<Column> {
    let mut c = vec![name_column()];
    match kind {
        "Pod" => {
            c.push(col("Ready", 0, |o| {
                let total = arr(o, "/spec/containers").len();
                let ready = arr(o, "/status/containerStatuses")
                    .iter()
                    .filter(|cs| cs.get("ready") == Some(&json!(true)))
                    .count();
                json!(format!("{ready}/{total}"))
            }));
            c.push(col("Status", 0, pod_status));
            c.push(col("Restarts", 0, |o| {
                json!(arr(o, "/status/containerStatuses")
                    .iter()
                    .map(|cs| cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                    .sum::<i64>())
            }));
            c.push(age_column());
            c.push(col("IP", 1, |o| {
                none_if_empty(s(o, "/status/podIP").into())
            }));
            c.push(col("Node", 1, |o| {
                none_if_empty(s(o, "/spec/nodeName").into())
            }));
            c.push(col("Nominated Node", 1, |o| {
                none_if_empty(s(o, "/status/nominatedNodeName").into())
            }));
            c.push(col("Readiness Gates", 1, |o| {
                let gates = arr(o, "/spec/readinessGates");
                if gates.is_empty() {
                    json!("<none>")
                } else {
                    json!(format!("0/{}", gates.len()))
                }
            }));
        }
        "Deployment" => {
            c.push(col("Ready", 0, |o| {
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                ))
            }));
            c.push(col("Up-to-date", 0, |o| {
                json!(i(o, "/status/updatedReplicas"))
            }));
            c.push(col("Available", 0, |o| {
                json!(i(o, "/status/availableReplicas"))
            }));
            c.push(age_column());
            workload_wide_columns(&mut c);
        }
        "ReplicaSet" => {
            c.push(col("Desired", 0, |o| json!(i(o, "/spec/replicas"))));
            c.push(col("Current", 0, |o| json!(i(o, "/status/replicas"))));
            c.push(col("Ready", 0, |o| json!(i(o, "/status/readyReplicas"))));
            c.push(age_column());
            workload_wide_columns(&mut c);
        }
        "Service" => {
            c.push(col("Type", 0, |o| json!(s(o, "/spec/type"))));
            c.push(col("Cluster-IP", 0, |o| {
                none_if_empty(s(o, "/spec/clusterIP").into())
            }));
            c.push(col("External-IP", 0, external_ip));
            c.push(col("Port(s)", 0, service_ports));
            c.push(age_column());
            c.push(col("Selector", 1, |o| selector_string(o, "/spec/selector")));
        }
        "Node" => {
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
        }
        "Namespace" => {
            c.push(col("Status", 0, |o| json!(s(o, "/status/phase"))));
            c.push(age_column());
        }
        "Secret" => {
            c.push(col("Type", 0, |o| json!(s(o, "/type"))));
            c.push(col("Data", 0, |o| {
                json!(o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |d| d.len()))
            }));
            c.push(age_column());
        }
        "ConfigMap" => {
            c.push(col("Data", 0, |o| {
                let n = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |d| d.len());
                json!(n("data") + n("binaryData"))
            }));
            c.push(age_column());
        }
        "ServiceAccount" => {
            c.push(col("Secrets", 0, |o| json!(arr(o, "/secrets").len())));
            c.push(age_column());
        }
        "Endpoints" => {
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
        }
        "EndpointSlice" => {
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
        }
        "Event" => {
            c.clear();
            c.push(col("Last Seen", 0, |o| {
                let t = o
                    .get("lastTimestamp")
                    .filter(|v| !v.is_null())
                    .or(o.get("eventTime"))
                    .or(o.pointer("/metadata/creationTimestamp"));
                json!(super::age(t))
            }));
            c.push(col("Type", 0, |o| json!(s(o, "/type"))));
            c.push(col("Reason", 0, |o| json!(s(o, "/reason"))));
            c.push(col("Object", 0, |o| {
                json!(format!(
                    "{}/{}",
                    s(o, "/involvedObject/kind").to_ascii_lowercase(),
                    s(o, "/involvedObject/name")
                ))
            }));
            c.push(col("Message", 0, |o| json!(s(o, "/message"))));
            let mut name = name_column();
            name.priority = 1;
            c.push(name);
        }
        "Lease" => {
            c.push(col("Holder", 0, |o| json!(s(o, "/spec/holderIdentity"))));
            c.push(age_column());
        }
        "RuntimeClass" => {
            c.push(col("Handler", 0, |o| json!(s(o, "/handler"))));
            c.push(age_column());
        }
        "HorizontalPodAutoscaler" => {
            c.push(col("Reference", 0, |o| {
                json!(format!(
                    "{}/{}",
                    s(o, "/spec/scaleTargetRef/kind"),
                    s(o, "/spec/scaleTargetRef/name")
                ))
            }));
            c.push(col("Targets", 0, |o| {
                let n = arr(o, "/spec/metrics").len();
                json!(if n == 0 {
                    "<none>".to_string()
                } else {
                    format!("{n} metric(s)")
                })
            }));
            c.push(col("MinPods", 0, |o| {
                json!(o
                    .pointer("/spec/minReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1))
            }));
            c.push(col("MaxPods", 0, |o| json!(i(o, "/spec/maxReplicas"))));
            c.push(col("Replicas", 0, |o| {
                json!(i(o, "/status/currentReplicas"))
            }));
            c.push(age_column());
        }
        "Ingress" => {
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
        }
        "IngressClass" => {
            c.push(col("Controller", 0, |o| json!(s(o, "/spec/controller"))));
            c.push(col("Parameters", 0, |o| {
                none_if_empty(s(o, "/spec/parameters/name").into())
            }));
            c.push(age_column());
        }
        "CustomResourceDefinition" => {
            let mut created = col("Created At", 0, |o| {
                json!(s(o, "/metadata/creationTimestamp"))
            });
            created.ty = "date";
            c.push(created);
        }
        _ => c.push(age_column()),
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Cell;

    fn cells(kind: &str, obj: &Value) -> Vec<(String, Value)> {
        columns(kind)
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
