//! The `discovery.k8s.io/v1` EndpointSlices of a selector Service, as
//! kube-controller-manager's endpointslice controller writes them: IPv4 slices named
//! `<service>-<random>`, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by
//! the Service (so they go with it), one per set of resolved ports, each endpoint with
//! its `ready` / `serving` / `terminating` conditions (terminating pods stay listed, not
//! ready). A Service with no pods keeps one empty slice, as upstream's placeholder.
//!
//! It only touches slices carrying its managed-by label for that Service.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::ResourceExt;

use super::legacy::labels_of;
use super::{api_error, has_ports, publishes_not_ready, target_ref, Error, Member, MemberPort};

/// Names the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Names the controller managing a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Upstream's controller name, which this controller stands in for.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

fn endpoint(m: &Member, publish: bool) -> Endpoint {
    Endpoint {
        addresses: vec![m.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (m.ready && !m.terminating)),
            serving: Some(publish || m.ready),
            terminating: Some(m.terminating),
        }),
        node_name: m.node_name.clone(),
        target_ref: Some(target_ref(m)),
        ..Endpoint::default()
    }
}

fn port(p: &MemberPort) -> EndpointPort {
    EndpointPort {
        name: Some(p.name.clone()),
        port: Some(p.port),
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

/// What the slices should hold: per sorted port set, its endpoints (sorted by pod).
pub fn desired(service: &Service, members: &[Member]) -> BTreeMap<Vec<MemberPort>, Vec<Endpoint>> {
    let publish = publishes_not_ready(service);
    let has_ports = has_ports(service);
    let mut groups: BTreeMap<Vec<MemberPort>, Vec<Endpoint>> = BTreeMap::new();
    for m in members {
        if m.ip.contains(':') || (has_ports && m.ports.is_empty()) {
            continue;
        }
        let mut ports = m.ports.clone();
        ports.sort();
        groups.entry(ports).or_default().push(endpoint(m, publish));
    }
    groups
}

fn ports_of(slice: &EndpointSlice) -> Vec<EndpointPort> {
    slice.ports.clone().unwrap_or_default()
}

fn owner(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.name_any(),
        uid: service.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `slice` is one this controller manages for the Service `name`.
pub fn managed_for(slice: &EndpointSlice, name: &str) -> bool {
    let labels = slice.labels();
    labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
        && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
}

/// What to write to make a Service's slices hold `wanted` (port set → endpoints).
#[derive(Debug, Default)]
pub struct Plan {
    /// Slices to replace with the new content (their ports, endpoints, labels, owner).
    pub update: Vec<EndpointSlice>,
    /// Slices to create.
    pub create: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

/// The writes turning `existing` into `wanted` (a Service with no endpoints wants
/// upstream's placeholder: one empty slice). A slice whose port set is still wanted is
/// updated when its content differs; a new port set takes over a slice that would
/// otherwise be deleted, as upstream's reconciler prefers an update to a delete plus a
/// create; only what is left is created or deleted.
pub fn plan(
    service: &Service,
    labels: &BTreeMap<String, String>,
    mut wanted: Vec<(Vec<EndpointPort>, Vec<Endpoint>)>,
    existing: Vec<EndpointSlice>,
) -> Plan {
    if wanted.is_empty() {
        wanted.push((Vec::new(), Vec::new()));
    }
    let content = |mut slice: EndpointSlice, ports: Vec<EndpointPort>, endpoints| {
        slice.endpoints = endpoints;
        slice.ports = (!ports.is_empty()).then_some(ports);
        slice.metadata.labels = Some(labels.clone());
        slice.metadata.owner_references = Some(vec![owner(service)]);
        slice
    };
    let mut out = Plan::default();
    let mut unused = existing;
    let mut missing = Vec::new();
    for (ports, endpoints) in wanted {
        let found = unused
            .iter()
            .position(|s| ports_of(s) == ports)
            .map(|i| unused.remove(i));
        match found {
            Some(cur) => {
                let same = cur.endpoints == endpoints
                    && cur.labels() == labels
                    && cur
                        .owner_references()
                        .iter()
                        .any(|o| o.controller == Some(true));
                if !same {
                    out.update.push(content(cur, ports, endpoints));
                }
            }
            None => missing.push((ports, endpoints)),
        }
    }
    for (ports, endpoints) in missing {
        match unused.pop() {
            Some(reused) => out.update.push(content(reused, ports, endpoints)),
            None => {
                let fresh = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{}-", service.name_any())),
                        namespace: service.namespace(),
                        ..ObjectMeta::default()
                    },
                    address_type: "IPv4".into(),
                    ..EndpointSlice::default()
                };
                out.create.push(content(fresh, ports, endpoints));
            }
        }
    }
    out.delete = unused;
    out
}

/// Makes the Service's slices list `members` ([`plan`]). `cached` are its slices as the
/// watch cache has them: updates from a stale copy fail with a conflict (retried), and
/// before creating a slice the slices are listed from the API server, so a slice created
/// moments ago and not yet in the cache is never created twice.
pub async fn write(
    client: &kube::Client,
    service: &Service,
    members: &[Member],
    cached: Vec<EndpointSlice>,
) -> Result<(), Error> {
    let ns = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let mut labels = labels_of(service);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let wanted: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = desired(service, members)
        .into_iter()
        .map(|(ports, eps)| (ports.iter().map(port).collect(), eps))
        .collect();
    let mut todo = plan(service, &labels, wanted.clone(), cached);
    if !todo.create.is_empty() {
        let selector = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}");
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(api_error(format!(
                "listing the endpoint slices of {ns}/{name}"
            )))?
            .items;
        todo = plan(service, &labels, wanted, listed);
    }
    for next in todo.update {
        let slice = next.name_any();
        api.replace(&slice, &PostParams::default(), &next)
            .await
            .map_err(api_error(format!("updating endpoint slice {ns}/{slice}")))?;
    }
    for fresh in todo.create {
        api.create(&PostParams::default(), &fresh)
            .await
            .map_err(api_error(format!(
                "creating an endpoint slice for {ns}/{name}"
            )))?;
    }
    for stale in todo.delete {
        match api
            .delete(&stale.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(api_error(format!(
                    "deleting endpoint slice {ns}/{}",
                    stale.name_any()
                ))(e))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(name: &str, ready: bool, terminating: bool, port: i32) -> Member {
        Member {
            ip: format!("10.42.0.{}", port - 8000),
            node_name: None,
            pod_name: name.into(),
            namespace: "default".into(),
            uid: None,
            ready,
            terminating,
            ports: vec![MemberPort {
                name: "http".into(),
                port,
                protocol: "TCP".into(),
                app_protocol: None,
            }],
        }
    }

    #[test]
    fn one_slice_per_port_set_with_kubelet_conditions() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        let members = [
            member("a", true, false, 8080),
            member("b", false, false, 8080),
            member("c", true, true, 8080),
            member("d", true, false, 8081),
        ];
        let groups = desired(&service, &members);
        assert_eq!(
            groups.len(),
            2,
            "pods serving the port on different numbers split"
        );
        let first = groups.values().next().unwrap();
        let cond = |i: usize| first[i].conditions.clone().unwrap();
        assert_eq!(
            (cond(0).ready, cond(0).serving, cond(0).terminating),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!((cond(1).ready, cond(1).serving), (Some(false), Some(false)));
        assert_eq!(
            (cond(2).ready, cond(2).serving, cond(2).terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn a_new_port_set_takes_over_the_placeholder_instead_of_create_and_delete() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service");
        let labels = BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), "web".to_string())]);
        let empty = plan(&svc, &labels, Vec::new(), Vec::new());
        assert_eq!(
            (empty.update.len(), empty.create.len(), empty.delete.len()),
            (0, 1, 0)
        );
        let mut placeholder = empty.create[0].clone();
        placeholder.metadata.name = Some("web-abcde".into());
        let ports = vec![port(&member("a", true, false, 8080).ports[0])];
        let eps = vec![endpoint(&member("a", true, false, 8080), false)];
        let next = plan(
            &svc,
            &labels,
            vec![(ports.clone(), eps.clone())],
            vec![placeholder.clone()],
        );
        assert!(next.create.is_empty() && next.delete.is_empty());
        assert_eq!(next.update.len(), 1);
        assert_eq!(next.update[0].metadata.name.as_deref(), Some("web-abcde"));
        assert_eq!(next.update[0].ports.as_ref(), Some(&ports));
        assert_eq!(next.update[0].endpoints, eps);
        // Unchanged: nothing to write.
        let settled = plan(&svc, &labels, vec![(ports, eps)], next.update);
        assert!(
            settled.update.is_empty() && settled.create.is_empty() && settled.delete.is_empty()
        );
    }
}
