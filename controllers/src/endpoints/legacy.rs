//! The core/v1 `Endpoints` of a selector Service: one subset per set of resolved ports,
//! ready pods in `addresses`, the others in `notReadyAddresses`, terminating pods left
//! out (all pods ready and kept when the Service sets `publishNotReadyAddresses`), as
//! kube-controller-manager's endpoints controller writes them. Also removes the
//! Endpoints it wrote once their Service is gone (they carry no owner reference, as
//! upstream's do not; the last-change-trigger-time annotation marks them as ours).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use super::{
    api_error, has_ports, publishes_not_ready, selector, target_ref, Error, Member, MemberPort,
};

/// The annotation upstream's controller sets on every Endpoints it writes.
pub const TRIGGER_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The label a headless Service's endpoints carry.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The labels both kinds copy from their Service.
pub fn labels_of(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    let headless = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None");
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

fn address(m: &Member) -> EndpointAddress {
    EndpointAddress {
        ip: m.ip.clone(),
        node_name: m.node_name.clone(),
        target_ref: Some(target_ref(m)),
        ..EndpointAddress::default()
    }
}

fn port(p: &MemberPort) -> EndpointPort {
    EndpointPort {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        port: p.port,
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

/// The subsets for these members, in a stable order.
pub fn subsets(service: &Service, members: &[Member]) -> Vec<EndpointSubset> {
    let publish = publishes_not_ready(service);
    let has_ports = has_ports(service);
    let mut groups: BTreeMap<Vec<MemberPort>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for m in members {
        if m.terminating && !publish {
            continue;
        }
        if has_ports && m.ports.is_empty() {
            continue;
        }
        let mut ports = m.ports.clone();
        ports.sort();
        let group = groups.entry(ports).or_default();
        if m.ready || publish {
            group.0.push(address(m));
        } else {
            group.1.push(address(m));
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.iter().map(port).collect()),
        })
        .collect()
}

/// Now, as upstream writes the trigger time.
fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates or updates the Service's Endpoints when what they list changed; `current` is
/// the cached copy (a stale one makes the update fail with a conflict, retried, or the
/// create find it there: its watch event wakes the Service again).
pub async fn write(
    client: &kube::Client,
    service: &Service,
    members: &[Member],
    current: Option<Endpoints>,
) -> Result<(), Error> {
    let ns = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
    let subsets = subsets(service, members);
    let labels = labels_of(service);
    let mut annotations = BTreeMap::new();
    annotations.insert(TRIGGER_ANNOTATION.to_string(), now());
    match current {
        Some(cur) => {
            let same_subsets = cur.subsets.clone().unwrap_or_default() == subsets;
            let same_labels = cur.labels() == &labels;
            if same_subsets && same_labels {
                return Ok(());
            }
            let mut next = cur.clone();
            next.subsets = (!subsets.is_empty()).then_some(subsets);
            next.metadata.labels = Some(labels);
            next.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(annotations);
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(api_error(format!("updating endpoints {ns}/{name}")))?;
        }
        None => {
            let e = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                subsets: (!subsets.is_empty()).then_some(subsets),
            };
            match api.create(&PostParams::default(), &e).await {
                Ok(_) => {}
                // Written meanwhile (a second pass races the first): the next change
                // of the Endpoints wakes this Service again.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(api_error(format!("creating endpoints {ns}/{name}"))(e)),
            }
        }
    }
    Ok(())
}

async fn delete_ours(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let ours = match api.get_opt(name).await {
        Ok(Some(e)) => e.annotations().contains_key(TRIGGER_ANNOTATION),
        Ok(None) => false,
        Err(e) => {
            tracing::debug!(error = %e, "reading endpoints {ns}/{name}");
            false
        }
    };
    if ours {
        if let Err(e) = api.delete(name, &DeleteParams::default()).await {
            tracing::debug!(error = %e, "deleting endpoints {ns}/{name}");
        }
    }
}

/// Deletes the Endpoints this controller wrote for Services that are gone: on each
/// Service deletion, and after each (re)list for those deleted while nobody watched.
pub async fn remove_orphans(client: kube::Client, shutdown: CancellationToken) {
    let on_delete = |s: Service| {
        let client = client.clone();
        async move {
            if selector(&s).is_some() {
                delete_ours(&client, &s.namespace().unwrap_or_default(), &s.name_any()).await;
            }
        }
    };
    let on_listed = |services: Vec<Service>| {
        let client = client.clone();
        async move {
            let all: Api<Endpoints> = Api::all(client.clone());
            let Ok(list) = all.list(&ListParams::default()).await else {
                return;
            };
            let present: std::collections::HashSet<(String, String)> = services
                .iter()
                .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
                .collect();
            for e in list.items {
                let key = (e.namespace().unwrap_or_default(), e.name_any());
                if !present.contains(&key) && e.annotations().contains_key(TRIGGER_ANNOTATION) {
                    delete_ours(&client, &key.0, &key.1).await;
                }
            }
        }
    };
    super::watch_services(client.clone(), shutdown, on_delete, on_listed).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(publish: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": publish,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap()
    }

    fn member(name: &str, ip: &str, ready: bool, terminating: bool) -> Member {
        Member {
            ip: ip.into(),
            node_name: Some("n1".into()),
            pod_name: name.into(),
            namespace: "default".into(),
            uid: Some(format!("uid-{name}")),
            ready,
            terminating,
            ports: vec![MemberPort {
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into(),
                app_protocol: None,
            }],
        }
    }

    #[test]
    fn ready_and_not_ready_pods_are_kept_apart_and_terminating_ones_left_out() {
        let members = [
            member("a", "10.42.0.2", true, false),
            member("b", "10.42.0.3", false, false),
            member("c", "10.42.0.4", true, true),
        ];
        let subsets = subsets(&service(false), &members);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&s.addresses), ["10.42.0.2"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.42.0.3"]);
        let ports = s.ports.as_ref().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), 8080)
        );
        let target = s.addresses.as_ref().unwrap()[0]
            .target_ref
            .as_ref()
            .unwrap();
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        assert_eq!(target.uid.as_deref(), Some("uid-a"));
    }

    #[test]
    fn publish_not_ready_lists_every_pod_as_ready() {
        let members = [
            member("a", "10.42.0.2", false, false),
            member("b", "10.42.0.3", true, true),
        ];
        let subsets = subsets(&service(true), &members);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 2);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn no_members_no_subsets() {
        assert!(subsets(&service(false), &[]).is_empty());
    }
}
