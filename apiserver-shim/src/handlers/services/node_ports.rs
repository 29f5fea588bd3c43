//! Node ports: every port of a `NodePort` or `LoadBalancer` Service gets one from the
//! node port range (default 30000–32767, `--service-node-port-range`): the requested one
//! if it is in range and free, else a free one picked at random as kube-apiserver does.
//! A `ClusterIP` Service may not ask for one; switching a Service to `ClusterIP` drops
//! them. On update a port that leaves `nodePort` out keeps the one allocated to the same
//! port and protocol.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};

use super::{invalid, service_type};
use crate::api::Api;
use crate::error::{ApiResult, Cause};
use crate::object;

/// kube-apiserver's default `--service-node-port-range`.
pub const DEFAULT_RANGE: (u16, u16) = (30000, 32767);

fn has_node_ports(ty: &str) -> bool {
    ty == "NodePort" || ty == "LoadBalancer"
}

fn ports(svc: &Value) -> Vec<Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn key(port: &Value) -> (i64, String) {
    (
        port.get("port").and_then(Value::as_i64).unwrap_or(0),
        port.get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string(),
    )
}

/// The node ports every stored Service but `except` (namespace, name) holds.
fn used(api: &Arc<Api>, except: Option<(&str, &str)>) -> ApiResult<HashSet<u16>> {
    let (items, _) = api.store.list("", "services", None)?;
    let mut used: HashSet<u16> = items
        .iter()
        .filter(|s| {
            except.is_none_or(|(ns, name)| {
                object::namespace_of(s) != ns || object::name_of(s) != name
            })
        })
        .flat_map(ports)
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    let recent = api
        .recent_node_ports
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    used.extend(recent.iter().copied());
    Ok(used)
}

/// Sets or checks the node ports of `svc`; `old` is the stored Service on update.
/// Returns the ports newly reserved.
pub(super) fn allocate(
    api: &Arc<Api>,
    old: Option<&Value>,
    svc: &mut Value,
) -> ApiResult<Vec<u16>> {
    let ty = service_type(svc).to_string();
    let mut list = ports(svc);
    if !has_node_ports(&ty) {
        let type_changed = old.is_some_and(|o| has_node_ports(service_type(o)));
        let mut causes = Vec::new();
        for (i, p) in list.iter_mut().enumerate() {
            let Some(m) = p.as_object_mut() else { continue };
            if type_changed {
                m.remove("nodePort");
            } else if m.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                causes.push(Cause {
                    reason: "FieldValueForbidden",
                    message: format!("Forbidden: may not be used when `type` is '{ty}'"),
                    field: format!("spec.ports[{i}].nodePort"),
                });
            }
        }
        if !causes.is_empty() {
            return Err(invalid(svc, causes));
        }
        if type_changed {
            svc["spec"]["ports"] = json!(list);
        }
        return Ok(Vec::new());
    }
    let old_ports: Vec<Value> = old.map(ports).unwrap_or_default();
    let (lo, hi) = api.options.node_port_range;
    let me = old.map(|o| {
        (
            object::namespace_of(o).to_string(),
            object::name_of(o).to_string(),
        )
    });
    let mut taken = used(api, me.as_ref().map(|(ns, n)| (ns.as_str(), n.as_str())))?;
    // This Service's own ports are its to keep, even while a write of it is pending.
    for p in &old_ports {
        if let Some(own) = p.get("nodePort").and_then(Value::as_u64) {
            taken.retain(|t| u64::from(*t) != own);
        }
    }
    let mut causes = Vec::new();
    let mut fresh = Vec::new();
    for (i, p) in list.iter_mut().enumerate() {
        let requested = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        let requested = if requested == 0 {
            // Kept from the stored Service for the same port and protocol.
            old_ports
                .iter()
                .find(|o| key(o) == key(p))
                .and_then(|o| o.get("nodePort").and_then(Value::as_i64))
                .unwrap_or(0)
        } else {
            requested
        };
        let port = if requested != 0 {
            let field = format!("spec.ports[{i}].nodePort");
            let in_range = u16::try_from(requested).is_ok_and(|r| (lo..=hi).contains(&r));
            if !in_range {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                    ),
                    field,
                });
                continue;
            }
            let r = requested as u16;
            let own = old_ports
                .iter()
                .any(|o| o.get("nodePort").and_then(Value::as_i64) == Some(requested));
            if !taken.insert(r) {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {requested}: provided port is already allocated"
                    ),
                    field,
                });
                continue;
            }
            if !own {
                fresh.push(r);
            }
            r
        } else {
            let span = u32::from(hi - lo) + 1;
            let start = rand::rng().random_range(0..span);
            let Some(free) = (0..span)
                .map(|k| lo + ((start + k) % span) as u16)
                .find(|c| !taken.contains(c))
            else {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: 0: failed to allocate a nodePort: range is full ({lo}-{hi})"
                    ),
                    field: format!("spec.ports[{i}].nodePort"),
                });
                continue;
            };
            taken.insert(free);
            fresh.push(free);
            free
        };
        if let Some(m) = p.as_object_mut() {
            m.insert("nodePort".into(), json!(port));
        }
    }
    if !causes.is_empty() {
        return Err(invalid(svc, causes));
    }
    api.recent_node_ports
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(fresh.iter().copied());
    svc["spec"]["ports"] = json!(list);
    Ok(fresh)
}
