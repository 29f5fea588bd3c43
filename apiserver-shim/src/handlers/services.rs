//! Services' allocated values, as kube-apiserver's Service REST storage handles them: a
//! cluster IP from the service CIDR ([`cluster_ip`]) and, for `NodePort` and
//! `LoadBalancer` Services, a node port per port from `--service-node-port-range`
//! ([`node_ports`]). On update, values the request leaves out are kept (a PUT of a
//! manifest without `clusterIP` or `nodePort` keeps the ones allocated), a set cluster IP
//! cannot change, and switching to `ClusterIP` drops the node ports. Values are free when
//! no stored Service holds them, so a delete releases them; a dry run stores nothing and
//! so allocates nothing.

mod cluster_ip;
mod node_ports;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::Api;
use crate::error::{ApiError, ApiResult, Cause};
use crate::object;

pub use node_ports::DEFAULT_RANGE as DEFAULT_NODE_PORT_RANGE;

/// `spec.type`, defaulted.
pub(super) fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn invalid(svc: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", object::name_of(svc), causes)
}

/// Values handed out to a write that is not stored yet: concurrent writes do not get
/// them too. Dropped once the write is stored (or failed); from then on the store says
/// what is taken.
#[must_use = "the values are free again once this is dropped"]
pub(super) struct Reservation {
    api: Arc<Api>,
    ip: Option<std::net::Ipv4Addr>,
    ports: Vec<u16>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut ips = self
                .api
                .recent_cluster_ips
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(i) = ips.iter().position(|r| *r == ip) {
                ips.swap_remove(i);
            }
        }
        let mut ports = self
            .api
            .recent_node_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ports.retain(|p| !self.ports.contains(p));
    }
}

/// Allocates a new Service's cluster IP and node ports.
pub(super) fn allocate(api: &Arc<Api>, svc: &mut Value) -> ApiResult<Reservation> {
    let mut reservation = Reservation {
        api: api.clone(),
        ip: cluster_ip::allocate(api, svc)?,
        ports: Vec::new(),
    };
    reservation.ports = node_ports::allocate(api, None, svc)?;
    Ok(reservation)
}

/// Keeps what an update leaves out and allocates what it newly needs.
pub(super) fn update(api: &Arc<Api>, old: &Value, new: &mut Value) -> ApiResult<Reservation> {
    let mut reservation = Reservation {
        api: api.clone(),
        ip: None,
        ports: Vec::new(),
    };
    let old_type = service_type(old).to_string();
    let new_type = service_type(new).to_string();
    let old_ip = old
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let new_ip = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if new_type != "ExternalName" && old_type != "ExternalName" {
        match (old_ip.as_str(), new_ip.as_str()) {
            (_, "") => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("clusterIP".into(), json!(old_ip));
                    let ips = old.pointer("/spec/clusterIPs").cloned();
                    spec.insert("clusterIPs".into(), ips.unwrap_or(json!([old_ip])));
                }
            }
            (o, n) if o != n && !o.is_empty() => {
                return Err(invalid(
                    new,
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        message: format!("Invalid value: {n:?}: field is immutable"),
                        field: "spec.clusterIPs[0]".into(),
                    }],
                ));
            }
            _ => {}
        }
    } else if old_type == "ExternalName" && new_type != "ExternalName" && new_ip.is_empty() {
        reservation.ip = cluster_ip::allocate(api, new)?;
    }
    reservation.ports = node_ports::allocate(api, Some(old), new)?;
    Ok(reservation)
}
