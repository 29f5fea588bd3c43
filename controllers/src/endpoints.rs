//! The endpoints controllers: for every Service with a selector, the core/v1 `Endpoints`
//! of the same name and the `discovery.k8s.io/v1` EndpointSlices, listing the pods the
//! selector picks, as kube-controller-manager's endpoint and endpointslice controllers
//! keep them.
//!
//! It owns those two kinds' objects for selector Services (and deletes the Endpoints it
//! wrote when their Service goes; slices go with their Service through their owner
//! reference). It never writes Services or Pods, nor the Endpoints of a Service without
//! a selector (the user's, or the API server's for `kubernetes`). It reads through the
//! `kube` client only.
//!
//! One pass per Service ([`reconcile`]): take the selected pods, the Endpoints and the
//! slices from caches (one watch per kind, reflected, which also wakes the Services
//! concerned — no read from the API per pass but the list before a slice is created), turn each into a [`Member`] (address, readiness, ports
//! resolved against the pod's container ports), then write both kinds from the same
//! members ([`legacy`], [`slices`]).

pub mod legacy;
pub mod slices;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use crate::caches::{self, reflected};

/// Errors of one reconcile (retried) or of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// One port of a member, resolved: the Service port's name and protocol, the pod's port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberPort {
    /// The Service port's name ("" when the Service has one unnamed port).
    pub name: String,
    /// The port on the pod.
    pub port: i32,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The Service port's appProtocol.
    pub app_protocol: Option<String>,
}

/// A selected pod, as both kinds list it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The pod's IP.
    pub ip: String,
    /// Its node.
    pub node_name: Option<String>,
    /// Name, namespace and uid for `targetRef`.
    pub pod_name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's uid.
    pub uid: Option<String>,
    /// The pod's `Ready` condition is True.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// The Service's ports this pod serves (a named targetPort the pod does not declare
    /// is left out, as upstream does).
    pub ports: Vec<MemberPort>,
}

/// The pod's `Ready` condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The Service's ports as this pod serves them.
pub fn resolve_ports(service: &Service, pod: &Pod) -> Vec<MemberPort> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .cloned()
        .unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut out = Vec::new();
    for sp in ports {
        let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
        let port = match &sp.target_port {
            None => Some(sp.port),
            Some(IntOrString::Int(p)) => Some(*p),
            Some(IntOrString::String(name)) => containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|cp| cp.container_port),
        };
        if let Some(port) = port {
            out.push(MemberPort {
                name: sp.name.clone().unwrap_or_default(),
                port,
                protocol,
                app_protocol: sp.app_protocol.clone(),
            });
        }
    }
    out
}

/// Whether a pod belongs in the endpoints at all: it has an address and has not
/// finished (a finished pod serves nothing, whatever its restart policy).
fn listable(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    has_ip && phase != "Succeeded" && phase != "Failed"
}

/// The members of `service` among `pods` (already selected), sorted by pod name.
pub fn members(service: &Service, pods: &[Pod]) -> Vec<Member> {
    let mut out: Vec<Member> = pods
        .iter()
        .filter(|p| listable(p))
        .map(|pod| Member {
            ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            pod_name: pod.name_any(),
            namespace: pod.namespace().unwrap_or_default(),
            uid: pod.uid(),
            ready: pod_ready(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ports: resolve_ports(service, pod),
        })
        .collect();
    out.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
    out
}

/// Whether the Service lists not-ready pods as ready (`publishNotReadyAddresses`).
pub fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether the Service declares ports (a pod serving none of them is left out).
pub fn has_ports(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty())
}

/// The member's pod, as both kinds' `targetRef`.
pub fn target_ref(m: &Member) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        kind: Some("Pod".into()),
        name: Some(m.pod_name.clone()),
        namespace: Some(m.namespace.clone()),
        uid: m.uid.clone(),
        ..Default::default()
    }
}

/// The Service's selector, when it has a non-empty one.
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn matches(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    shutdown: CancellationToken,
}

/// Writes the Endpoints and EndpointSlices of one Service.
async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(sel) = selector(&service) else {
        return Ok(Action::await_change());
    };
    // A pass on caches that have not had their first list would empty the endpoints.
    let first_lists = async {
        ctx.pods.wait_until_ready().await.is_ok()
            && ctx.endpoints.wait_until_ready().await.is_ok()
            && ctx.slices.wait_until_ready().await.is_ok()
    };
    if !caches::ready(&ctx.shutdown, first_lists).await {
        return Ok(Action::await_change());
    }
    let ns = service.namespace();
    let selected: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.namespace() == ns && matches(sel, p))
        .map(|p| (**p).clone())
        .collect();
    let members = members(&service, &selected);
    let name = service.name_any();
    let mut current = ObjectRef::<Endpoints>::new(&name);
    if let Some(ns) = &ns {
        current = current.within(ns);
    }
    let current = ctx.endpoints.get(&current).map(|e| (*e).clone());
    legacy::write(&ctx.client, &service, &members, current).await?;
    let cached: Vec<EndpointSlice> = ctx
        .slices
        .state()
        .iter()
        .filter(|s| s.namespace() == ns && slices::managed_for(s, &name))
        .map(|s| (**s).clone())
        .collect();
    slices::write(&ctx.client, &service, &members, cached).await?;
    Ok(Action::await_change())
}

fn error_policy(service: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    match error {
        // Written from a cached copy that was stale: again once the cache has caught up.
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => {
            tracing::debug!(service = %service.name_any(), %error, "conflict; retrying");
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            tracing::warn!(service = %service.name_any(), %error, "endpoints not written; retrying");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

/// The Service controlling `slice`.
fn slice_to_service(slice: EndpointSlice) -> Option<ObjectRef<Service>> {
    let owner = slice
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Service" && o.api_version == "v1")?;
    let mut r = ObjectRef::<Service>::new(&owner.name);
    if let Some(ns) = slice.namespace() {
        r = r.within(&ns);
    }
    Some(r)
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default());
    let store = controller.store();
    let pod_to_services = move |pod: Pod| {
        let ns = pod.namespace();
        store
            .state()
            .into_iter()
            .filter(|s| s.namespace() == ns && selector(s).is_some_and(|sel| matches(sel, &pod)))
            .map(|s| ObjectRef::from_obj(&*s))
            .collect::<Vec<_>>()
    };
    let endpoints_to_service = |e: Endpoints| {
        let mut r = ObjectRef::<Service>::new(&e.name_any());
        if let Some(ns) = e.namespace() {
            r = r.within(&ns);
        }
        Some(r)
    };
    // One watch per kind read: each fills the cache reconciles read and wakes the
    // Services concerned (a pod: those whose selector it matches).
    let (pods, pod_events) = reflected::<Pod>(&client);
    let (endpoints, endpoints_events) = reflected::<Endpoints>(&client);
    let (slices, slice_events) = reflected::<EndpointSlice>(&client);
    let cleanup = tokio::spawn(legacy::remove_orphans(client.clone(), shutdown.clone()));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods,
        endpoints,
        slices,
        shutdown: shutdown.clone(),
    });
    let stop = shutdown.clone();
    controller
        .watches_stream(slice_events, slice_to_service)
        .watches_stream(pod_events, pod_to_services)
        .watches_stream(endpoints_events, endpoints_to_service)
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    let _ = cleanup.await;
}

/// Watches Services and hands each deletion to `on_delete`; runs `on_listed` with the
/// names present after every (re)list.
pub(crate) async fn watch_services<D, DF, L, LF>(
    client: kube::Client,
    shutdown: CancellationToken,
    on_delete: D,
    on_listed: L,
) where
    D: Fn(Service) -> DF,
    DF: std::future::Future<Output = ()>,
    L: Fn(Vec<Service>) -> LF,
    LF: std::future::Future<Output = ()>,
{
    let api: Api<Service> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = Vec::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.next() => e,
        };
        match event {
            None => return,
            Some(Err(e)) => tracing::debug!(error = %e, "service watch error; retrying"),
            Some(Ok(watcher::Event::Delete(s))) => on_delete(s).await,
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(s))) => listed.push(s),
            Some(Ok(watcher::Event::InitDone)) => on_listed(std::mem::take(&mut listed)).await,
            Some(Ok(watcher::Event::Apply(_))) => {}
        }
    }
}
