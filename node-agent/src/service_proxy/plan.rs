//! Which listeners the node should have and where each sends its connections, from the
//! Services and EndpointSlices alone (pure; unit-tested).
//!
//! A Service port (TCP) is listened on at its cluster IP (not for headless or
//! ExternalName Services) and, for NodePort and LoadBalancer Services, at `0.0.0.0` on
//! its node port. Its endpoints are the ready addresses of the Service's slices (label
//! `kubernetes.io/service-name`) at the slice port of the same name, as kube-proxy
//! matches them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

/// One listening socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listen {
    /// The address (a cluster IP, or unspecified for a node port).
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", SocketAddr::new(self.ip, self.port))
    }
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p > 0)
}

/// The ready endpoints of `service`'s port named `port_name`.
fn endpoints(service: &Service, port_name: &str, slices: &[EndpointSlice]) -> Vec<SocketAddr> {
    let ns = service.namespace();
    let name = service.name_any();
    let mut out = Vec::new();
    for slice in slices {
        let ours = slice.namespace() == ns
            && slice.labels().get("kubernetes.io/service-name") == Some(&name);
        if !ours {
            continue;
        }
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(port_u16);
        let Some(port) = port else { continue };
        for e in &slice.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every listener wanted, with its endpoints.
pub fn plan(services: &[Service], slices: &[EndpointSlice]) -> HashMap<Listen, Vec<SocketAddr>> {
    let mut out = HashMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            continue;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        for p in spec.ports.iter().flatten() {
            if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let backends = endpoints(svc, p.name.as_deref().unwrap_or(""), slices);
            if let (Some(ip), Some(port)) = (cluster_ip, port_u16(p.port)) {
                out.insert(
                    Listen {
                        ip: IpAddr::V4(ip),
                        port,
                    },
                    backends.clone(),
                );
            }
            let node_port = p.node_port.and_then(port_u16);
            if let (true, Some(port)) = (matches!(ty, "NodePort" | "LoadBalancer"), node_port) {
                out.insert(
                    Listen {
                        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        port,
                    },
                    backends,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_ips_and_node_ports_go_to_ready_endpoints() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.20",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.42.0.3"], "conditions": {"ready": true}},
                {"addresses": ["10.42.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.42.0.4"], "conditions": {"ready": false}},
            ]
        }))
        .unwrap();
        let wanted = plan(&[svc, headless], &[slice]);
        assert_eq!(wanted.len(), 2, "{wanted:?}");
        let expected: Vec<SocketAddr> = vec![
            "10.42.0.2:8080".parse().unwrap(),
            "10.42.0.3:8080".parse().unwrap(),
        ];
        let cluster = Listen {
            ip: "10.43.0.20".parse().unwrap(),
            port: 80,
        };
        let node = Listen {
            ip: "0.0.0.0".parse().unwrap(),
            port: 30080,
        };
        assert_eq!(wanted[&cluster], expected);
        assert_eq!(wanted[&node], expected);
    }
}
