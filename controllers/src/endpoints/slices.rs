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

/// Makes the Service's slices list `members`: updates slices whose port set is still
/// wanted, creates the missing ones, deletes the rest. `cached` are its slices as the
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
    let mut wanted_ports: Vec<Vec<EndpointPort>> = desired(service, members)
        .keys()
        .map(|ports| ports.iter().map(port).collect())
        .collect();
    if wanted_ports.is_empty() {
        wanted_ports.push(Vec::new()); // the placeholder, as below
    }
    let creates = wanted_ports
        .iter()
        .any(|ports| !cached.iter().any(|s| &ports_of(s) == ports));
    let existing = if creates {
        let selector = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}");
        api.list(&ListParams::default().labels(&selector))
            .await
            .map_err(api_error(format!(
                "listing the endpoint slices of {ns}/{name}"
            )))?
            .items
    } else {
        cached
    };
    let mut labels = labels_of(service);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());

    let mut wanted: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = desired(service, members)
        .into_iter()
        .map(|(ports, eps)| (ports.iter().map(port).collect(), eps))
        .collect();
    if wanted.is_empty() {
        // Upstream's placeholder: a Service with no endpoints keeps one empty slice.
        wanted.push((Vec::new(), Vec::new()));
    }
    let mut unused: Vec<EndpointSlice> = existing;
    for (ports, endpoints) in wanted {
        let found = unused
            .iter()
            .position(|s| ports_of(s) == ports)
            .map(|i| unused.remove(i));
        match found {
            Some(cur) => {
                let same = cur.endpoints == endpoints
                    && cur.labels() == &labels
                    && cur
                        .owner_references()
                        .iter()
                        .any(|o| o.controller == Some(true));
                if same {
                    continue;
                }
                let mut next = cur.clone();
                next.endpoints = endpoints;
                next.metadata.labels = Some(labels.clone());
                next.metadata.owner_references = Some(vec![owner(service)]);
                api.replace(&cur.name_any(), &PostParams::default(), &next)
                    .await
                    .map_err(api_error(format!(
                        "updating endpoint slice {ns}/{}",
                        cur.name_any()
                    )))?;
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner(service)]),
                        ..ObjectMeta::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints,
                    ports: (!ports.is_empty()).then_some(ports),
                };
                api.create(&PostParams::default(), &slice)
                    .await
                    .map_err(api_error(format!(
                        "creating an endpoint slice for {ns}/{name}"
                    )))?;
            }
        }
    }
    for stale in unused {
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
}
