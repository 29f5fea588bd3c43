//! Service cluster IPs: validation of a requested `spec.clusterIP` and allocation of a
//! free one from the service CIDR (the first address belongs to the `kubernetes` service).
//! Addresses are free when no stored Service holds them: deleting a Service releases its
//! address.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::Api;
use crate::error::{ApiError, ApiResult, Cause};
use crate::object;

fn in_cidr(ip: Ipv4Addr, (base, bits): (Ipv4Addr, u8)) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits.min(32)))
    };
    (u32::from(ip) & mask) == (u32::from(base) & mask)
}

/// Sets `spec.clusterIP`/`clusterIPs` for a Service that has none yet; returns the
/// address reserved for it (none for headless and ExternalName Services).
pub(super) fn allocate(api: &Arc<Api>, svc: &mut Value) -> ApiResult<Option<Ipv4Addr>> {
    if super::service_type(svc) == "ExternalName" {
        return Ok(None);
    }
    let cidr = api.options.service_cidr;
    let requested = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = object::name_of(svc).to_string();
    let (items, _) = api.store.list("", "services", None)?;
    let mut used: HashSet<Ipv4Addr> = items
        .iter()
        .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut recent = api
        .recent_cluster_ips
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    used.extend(recent.iter().copied());
    let ip = match requested.as_str() {
        "None" => {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(None);
        }
        "" => {
            let base = u32::from(cidr.0);
            let size = 1u32 << (32 - u32::from(cidr.1.min(31)));
            (10..size - 1)
                .map(|i| Ipv4Addr::from(base + i))
                .find(|ip| !used.contains(ip))
                .ok_or_else(|| ApiError::internal("service CIDR exhausted"))?
        }
        s => {
            let invalid = |msg: String| {
                ApiError::invalid(
                    "",
                    "Service",
                    &name,
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        message: msg,
                        field: "spec.clusterIPs".into(),
                    }],
                )
            };
            let ip: Ipv4Addr = s.parse().map_err(|_| {
                invalid(format!("Invalid value: {s:?}: must be a valid IP address"))
            })?;
            if !in_cidr(ip, cidr) {
                return Err(invalid(format!(
                    "Invalid value: {s:?}: failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {}/{}",
                    cidr.0, cidr.1
                )));
            }
            if used.contains(&ip) {
                return Err(invalid(format!(
                    "Invalid value: {s:?}: failed to allocate IP {s}: provided IP is already allocated"
                )));
            }
            ip
        }
    };
    recent.push(ip);
    svc["spec"]["clusterIP"] = json!(ip.to_string());
    svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
    Ok(Some(ip))
}
