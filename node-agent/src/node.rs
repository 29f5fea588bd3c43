//! The Node object: created (or taken over) at start with the kubelet's labels and
//! annotations, a pod range, and a status whose capacity, conditions, addresses, daemon
//! endpoints and node info are the kubelet's; the conditions are refreshed every minute
//! (the Lease is the fast heartbeat, [`crate::lease`]).
//!
//! Owns the Node's labels it sets, `spec.podCIDR(s)` (set once) and `status`; never
//! touches `spec.unschedulable` or taints (cordon is the user's).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::machine::Machine;
use crate::{AgentConfig, Error, Result};

/// The kubelet version this agent reports (the API version spinlet serves).
pub const KUBELET_VERSION: &str = "v1.32.4+spinlet";

/// The container runtime this agent reports in `nodeInfo`.
pub const RUNTIME_VERSION: &str = concat!("spinlet-wasmtime://", env!("CARGO_PKG_VERSION"));

/// Pods one node accepts (the kubelet's default `--max-pods`).
pub const MAX_PODS: u32 = 110;

/// How often the conditions' heartbeat is written when a Lease carries the liveness.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(60);

/// What registration settled.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The Node's uid (the Lease's owner).
    pub uid: String,
    /// The node's pod range as text (`10.42.0.0/24`).
    pub pod_cidr: String,
    /// The same range.
    pub pod_range: (Ipv4Addr, u8),
}

/// The labels the kubelet puts on its Node.
pub fn labels(config: &AgentConfig, machine: &Machine) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", machine.arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", machine.arch),
        ("kubernetes.io/hostname", config.node_name.as_str()),
        ("node.kubernetes.io/instance-type", "spinlet"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The /24s of the cluster range, in order.
fn ranges(cluster: (Ipv4Addr, u8)) -> impl Iterator<Item = (Ipv4Addr, u8)> {
    let base = u32::from(cluster.0) & (u32::MAX << (32 - u32::from(cluster.1)));
    let count = if cluster.1 >= 24 {
        1
    } else {
        1u32 << (24 - cluster.1)
    };
    (0..count).map(move |i| (Ipv4Addr::from(base + (i << 8)), 24))
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    Some((ip.parse().ok()?, bits.parse().ok()?))
}

/// The node's pod range: the one its Node already has, else the first /24 of the
/// cluster range no other Node has.
pub fn pick_range(
    cluster: (Ipv4Addr, u8),
    own: Option<&str>,
    taken: &[String],
) -> Option<(Ipv4Addr, u8)> {
    if let Some(r) = own.and_then(parse_cidr) {
        return Some(r);
    }
    let taken: Vec<(Ipv4Addr, u8)> = taken.iter().filter_map(|t| parse_cidr(t)).collect();
    ranges(cluster).find(|r| !taken.contains(r))
}

fn quantity_ki(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// One condition as the kubelet writes it; the transition time is kept while the status
/// stays the same.
fn condition(kind: &str, status: &str, reason: &str, message: &str, old: &[Value]) -> Value {
    let now = now();
    let transition = old
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": transition,
    })
}

/// The current time as the API writes it (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The Node's status: capacity, conditions, addresses, daemon endpoints and node info.
pub fn status(config: &AgentConfig, machine: &Machine, old_conditions: &[Value]) -> Value {
    let resources = json!({
        "cpu": machine.cpus.to_string(),
        "memory": quantity_ki(machine.memory_bytes),
        "ephemeral-storage": quantity_ki(machine.ephemeral_bytes),
        "pods": MAX_PODS.to_string(),
    });
    let c =
        |kind, status, reason, message| condition(kind, status, reason, message, old_conditions);
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": machine.internal_ip.to_string()},
            {"type": "Hostname", "address": machine.hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "architecture": machine.arch,
            "bootID": machine.boot_id,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kernelVersion": machine.kernel_version,
            "kubeProxyVersion": "",
            "kubeletVersion": KUBELET_VERSION,
            "machineID": machine.machine_id,
            "operatingSystem": "linux",
            "osImage": machine.os_image,
            "systemUUID": machine.machine_id,
        },
        "phase": "Running",
    })
}

fn old_conditions(node: Option<&Node>) -> Vec<Value> {
    node.and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates the Node, or takes over the one of the same name, and writes its status.
pub async fn register(
    client: &kube::Client,
    config: &AgentConfig,
    machine: &Machine,
) -> Result<Registered> {
    let nodes: Api<Node> = Api::all(client.clone());
    let err = |source| Error::Register {
        node: config.node_name.clone(),
        source,
    };
    let existing = nodes.get_opt(&config.node_name).await.map_err(err)?;
    let own = existing
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.pod_cidr.clone());
    let taken: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .map_err(err)?
        .items
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(&config.node_name))
        .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
        .collect();
    let range = pick_range(config.cluster_cidr, own.as_deref(), &taken).ok_or_else(|| {
        Error::NoPodRange(
            format!("{}/{}", config.cluster_cidr.0, config.cluster_cidr.1),
            config.node_name.clone(),
        )
    })?;
    let pod_cidr = format!("{}/{}", range.0, range.1);
    let meta = json!({
        "name": config.node_name,
        "labels": labels(config, machine),
        "annotations": {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        },
    });
    let node = match &existing {
        None => {
            let body: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node", "metadata": meta,
                "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
            }))
            .map_err(|e| err(kube::Error::SerdeError(e)))?;
            nodes
                .create(&PostParams::default(), &body)
                .await
                .map_err(err)?
        }
        Some(_) => {
            let mut patch = json!({"metadata": meta});
            if own.is_none() {
                patch["spec"] = json!({"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]});
            }
            nodes
                .patch(
                    &config.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(err)?
        }
    };
    let status = status(config, machine, &old_conditions(existing.as_ref()));
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(err)?;
    Ok(Registered {
        uid: node.metadata.uid.unwrap_or_default(),
        pod_cidr,
        pod_range: range,
    })
}

/// Rewrites the Node's conditions every [`STATUS_INTERVAL`] until cancelled.
pub async fn keep_status(
    client: kube::Client,
    config: AgentConfig,
    machine: Machine,
    shutdown: CancellationToken,
) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(STATUS_INTERVAL) => {}
        }
        let old = match nodes.get_opt(&config.node_name).await {
            Ok(n) => old_conditions(n.as_ref()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Node");
                continue;
            }
        };
        let status = status(&config, &machine, &old);
        if let Err(e) = nodes
            .patch_status(
                &config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot update the Node's status");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config(dir: &std::path::Path) -> AgentConfig {
        AgentConfig {
            node_name: "n1".into(),
            data_dir: dir.to_owned(),
            pod_log_dir: dir.join("logs"),
            cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
            sandbox_program: "spinlet".into(),
            sandbox_args: vec!["sandbox".into()],
            node_ip: None,
            kubelet_port: crate::DEFAULT_KUBELET_PORT,
            client_ca: None,
            pod_interface: "spinlet0".into(),
            log_rotation: crate::cri_log::Rotation::default(),
            service_proxy: false,
            compile_cache_max_bytes: spin_runtime::cache::evict::DEFAULT_MAX_BYTES,
        }
    }

    #[test]
    fn a_node_keeps_its_range_and_a_new_one_takes_the_first_free() {
        let cluster = (Ipv4Addr::new(10, 42, 0, 0), 16);
        assert_eq!(
            pick_range(cluster, Some("10.42.7.0/24"), &[]),
            Some((Ipv4Addr::new(10, 42, 7, 0), 24))
        );
        assert_eq!(
            pick_range(cluster, None, &[]),
            Some((Ipv4Addr::new(10, 42, 0, 0), 24))
        );
        let taken = vec!["10.42.0.0/24".to_string(), "10.42.2.0/24".to_string()];
        assert_eq!(
            pick_range(cluster, None, &taken),
            Some((Ipv4Addr::new(10, 42, 1, 0), 24))
        );
        let small = (Ipv4Addr::new(10, 42, 0, 0), 24);
        assert_eq!(pick_range(small, None, &["10.42.0.0/24".into()]), None);
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let machine = Machine::read(&config);
        let old = vec![
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
            json!({"type": "MemoryPressure", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
        ];
        let s = status(&config, &machine, &old);
        let find = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(find("Ready")["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(find("Ready")["reason"], "KubeletReady");
        assert_ne!(
            find("MemoryPressure")["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert!(s["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("spinlet-wasmtime://"));
    }
}
