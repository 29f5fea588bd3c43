//! Services on this node, as kube-proxy serves them in its userspace mode: every TCP port
//! of a Service with a cluster IP is listened on at `<clusterIP>:<port>` (the address put
//! on the pod interface, like pod addresses), every node port at `0.0.0.0:<nodePort>`,
//! and each accepted connection is joined to one ready endpoint of the Service (round
//! robin; an endpoint that refuses is skipped for the next one, so a pod stopping during
//! a rollout costs no request).
//!
//! Owns those listeners and the service addresses on the interface; reads Services and
//! EndpointSlices through the `kube` client (watches) and writes nothing to the API. The
//! decision (which listener goes to which endpoints) is the pure [`plan`]; the sockets
//! are [`listener`]'s.
//!
//! Why userspace and not iptables/nftables: spinlet keeps pods on the host network with
//! no packet rewriting (see `network`), the node's firewall stays the operator's, and a
//! Spin pod's connections are few and short. UDP and SCTP ports are not served.

pub mod listener;
pub mod plan;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::network::PodNetwork;
use listener::Listener;
use plan::Listen;

/// How often the listeners are reconciled when nothing wakes them.
const RESYNC: Duration = Duration::from_secs(10);

fn reflect<K>(api: Api<K>, wake: Arc<Notify>, shutdown: CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                next = stream.next() => match next {
                    Some(_) => wake.notify_one(),
                    None => return,
                },
            }
        }
    });
    reader
}

/// Serves the cluster's Services on this node until `shutdown`.
pub async fn run(client: kube::Client, network: Arc<PodNetwork>, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let services = reflect(
        Api::<Service>::all(client.clone()),
        wake.clone(),
        shutdown.clone(),
    );
    let slices = reflect(
        Api::<EndpointSlice>::all(client),
        wake.clone(),
        shutdown.clone(),
    );
    let mut running: HashMap<Listen, Listener> = HashMap::new();
    loop {
        let services_now: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let slices_now: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        let wanted = plan::plan(&services_now, &slices_now);
        // Gone: stop the listener, then free its address if no other listener uses it.
        let gone: Vec<Listen> = running
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(l) = running.remove(&key) {
                l.stop();
            }
            if let IpAddr::V4(ip) = key.ip {
                let shared = running.keys().any(|k| k.ip == key.ip);
                if !ip.is_unspecified() && !shared {
                    network.remove_extra(ip).await;
                }
            }
        }
        for (key, backends) in wanted {
            if let Some(l) = running.get(&key) {
                l.set_backends(backends);
                continue;
            }
            if let IpAddr::V4(ip) = key.ip {
                if !ip.is_unspecified() {
                    if let Err(e) = network.add_extra(ip).await {
                        tracing::warn!(error = %e, %ip, "cannot put a service address on the interface");
                        continue;
                    }
                }
            }
            match Listener::start(key.clone(), backends, shutdown.clone()).await {
                Ok(l) => {
                    running.insert(key, l);
                }
                Err(e) => {
                    tracing::warn!(error = %e, listen = %key, "cannot serve a service port; retrying")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = wake.notified() => {
                // Let a burst of changes (a rollout) settle into one pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
    for (key, l) in running.drain() {
        l.stop();
        if let IpAddr::V4(ip) = key.ip {
            if ip != Ipv4Addr::UNSPECIFIED {
                network.remove_extra(ip).await;
            }
        }
    }
}
