//! The ReplicaSet controller: keeps `spec.replicas` pods of each ReplicaSet running, as
//! kube-controller-manager's replicaset controller does.
//!
//! It owns the pods it creates from a ReplicaSet's template (controller references,
//! adoption of orphans its selector picks, release of pods it no longer selects), their
//! deletion when there are too many, the ReplicaSet's `status` subresource and its
//! Events. It never writes a ReplicaSet's spec or metadata (that is the Deployment
//! controller's or the user's), nor pods controlled by anything else.
//!
//! A kube-runtime [`Controller`] over ReplicaSets, woken by the pods they own and by
//! orphan pods their selector matches, both from one pod watch that also fills a cache
//! (a kube-runtime reflector, fed through `watches_stream`: kube-runtime's
//! `unstable-runtime` feature). Each reconcile reads the namespace's pods from
//! that cache — never a list from the API per pass, which with a hundred sets made every
//! pass decode every pod — then: claim ([`crate::ownership`]), create or delete the
//! difference ([`pods`], in the order of [`ranking`]) unless the cache has not yet shown
//! the previous pass's creations and deletions ([`crate::expectations`], as upstream),
//! write the status ([`status`]).

pub mod pods;
pub mod ranking;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::caches;
use crate::expectations::{Expectations, Seen};
use crate::ownership::{self, Claim};
use crate::recorder::Events;

/// The `reportingController` of its Events.
pub const CONTROLLER_NAME: &str = "replicaset-controller";

/// How the ReplicaSet controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `reportingInstance` of its Events.
    pub instance: String,
    /// Most pods created or deleted in one pass (upstream's `burstReplicas`).
    pub burst_replicas: usize,
}

impl Config {
    /// kube-controller-manager's defaults (500 pods per pass).
    pub fn new(host: &str) -> Config {
        Config {
            instance: format!("{CONTROLLER_NAME}-{host}"),
            burst_replicas: 500,
        }
    }
}

/// Errors of one reconcile (retried with back-off).
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
    /// The ReplicaSet's selector cannot be parsed.
    #[error("invalid selector: {0}")]
    Selector(String),
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

struct Context {
    client: kube::Client,
    config: Config,
    events: Events,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    shutdown: CancellationToken,
}

/// How long a pass's creations and deletions are waited for at most (upstream: 5 min).
const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);

/// The selector of a workload as a [`Selector`]; `None` when it has none.
fn selector_of(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Option<Selector>, Error> {
    selector
        .cloned()
        .map(Selector::try_from)
        .transpose()
        .map_err(|e| Error::Selector(e.to_string()))
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let orphans = store.clone();
    // One pod watch: it fills the cache reconciles read, and wakes the set that owns a
    // pod (as `owns` would) or the sets an active orphan's labels match.
    let (pods, pod_events) = caches::reflected::<Pod>(&client);
    let expectations = Arc::new(Expectations::new(EXPECTATIONS_TTL));
    let observer = expectations.clone();
    let cache = pods.clone();
    let pod_to_replica_sets = move |pod: Pod| -> Vec<ObjectRef<ReplicaSet>> {
        if let Some(owner) = ownership::controller_of(&pod.metadata) {
            if owner.kind != "ReplicaSet" || owner.api_version != "apps/v1" {
                return Vec::new();
            }
            // The reflector has applied this event before handing it on: a pod the
            // cache no longer has was deleted.
            let seen = match cache.get(&ObjectRef::from_obj(&pod)) {
                None => Seen::Absent,
                Some(p) if p.metadata.deletion_timestamp.is_some() => Seen::Deleting,
                Some(_) => Seen::Present,
            };
            observer.observe(&owner.uid, &pod.uid().unwrap_or_default(), seen);
            let mut r = ObjectRef::new(&owner.name);
            if let Some(ns) = pod.namespace() {
                r = r.within(&ns);
            }
            return vec![r];
        }
        if !status::is_active(&pod) {
            return Vec::new();
        }
        let ns = pod.namespace();
        orphans
            .state()
            .into_iter()
            .filter(|rs| rs.namespace() == ns)
            .filter(|rs| {
                selector_of(rs.spec.as_ref().map(|s| &s.selector))
                    .ok()
                    .flatten()
                    .is_some_and(|s| !s.selects_all() && s.matches(pod.labels()))
            })
            .map(|rs| ObjectRef::from_obj(&*rs))
            .collect()
    };
    let ctx = Arc::new(Context {
        events: Events::new(client.clone(), CONTROLLER_NAME, &config.instance),
        client: client.clone(),
        config,
        replica_sets: store,
        pods,
        expectations,
        shutdown: shutdown.clone(),
    });
    tracing::info!("replicaset controller started");
    let stop = shutdown.clone();
    controller
        .watches_stream(pod_events, pod_to_replica_sets)
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(rs: Arc<ReplicaSet>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(replicaset = %rs.name_any(), %error, "replicaset sync failed; retrying");
    match error {
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Action::requeue(Duration::from_millis(200)),
        Error::Selector(_) => Action::await_change(),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = rs.namespace().unwrap_or_else(|| "default".into());
    let name = rs.name_any();
    let uid = rs.uid().unwrap_or_default();
    let selector = selector_of(rs.spec.as_ref().map(|s| &s.selector))?.unwrap_or_default();
    // An empty selector would claim every pod, and a template its selector does not
    // match would make pods the set never counts (creating more forever): API
    // validation forbids both; they are refused here too.
    if selector.selects_all() {
        return Err(Error::Selector(
            "a ReplicaSet needs a non-empty selector".into(),
        ));
    }
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !selector.matches(&template_labels) {
        return Err(Error::Selector(
            "the selector does not match the template's labels".into(),
        ));
    }
    // A pass on a cache that has not had its first list would see no pods at all.
    if !caches::ready(&ctx.shutdown, async {
        ctx.pods.wait_until_ready().await.is_ok()
    })
    .await
    {
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let needs_sync = ctx.expectations.satisfied(&uid, |pod_uid| {
        match all.iter().find(|p| p.uid().as_deref() == Some(pod_uid)) {
            None => Seen::Absent,
            Some(p) if p.metadata.deletion_timestamp.is_some() => Seen::Deleting,
            Some(_) => Seen::Present,
        }
    });
    let deleting = rs.meta().deletion_timestamp.is_some();
    let owner = ownership::controller_ref(&*rs);

    // Claim: what is ours, what to adopt, what to release.
    let mut claimed: Vec<Pod> = Vec::new();
    let mut fresh_checked = false;
    for pod in all.iter().filter(|p| status::is_active(p)) {
        let selected = selector.matches(pod.labels());
        match ownership::decide(&uid, deleting, &pod.metadata, selected) {
            Claim::Keep => claimed.push((**pod).clone()),
            Claim::Ignore => {}
            Claim::Release => {
                ownership::release(
                    &pods_api,
                    &pod.name_any(),
                    &pod.uid().unwrap_or_default(),
                    &uid,
                )
                .await
                .or_else(ignore_not_found)
                .map_err(api_error(format!("releasing pod {}", pod.name_any())))?;
            }
            Claim::Adopt => {
                let Some(owner) = &owner else { continue };
                if !fresh_checked {
                    // Adopt only for a ReplicaSet that still exists and is not being
                    // deleted (upstream's RecheckDeletionTimestamp).
                    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
                    let fresh = api
                        .get(&name)
                        .await
                        .map_err(api_error(format!("re-reading {ns}/{name}")))?;
                    if fresh.uid() != rs.uid() || fresh.meta().deletion_timestamp.is_some() {
                        return Ok(Action::await_change());
                    }
                    fresh_checked = true;
                }
                match ownership::adopt(
                    &pods_api,
                    &pod.name_any(),
                    &pod.uid().unwrap_or_default(),
                    owner,
                )
                .await
                {
                    Ok(p) => claimed.push(p),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(api_error(format!("adopting pod {}", pod.name_any()))(e)),
                }
            }
        }
    }

    // Create or delete the difference.
    let mut manage_error = None;
    if !deleting && needs_sync {
        if let Some(owner) = &owner {
            manage_error = manage(&ctx, &rs, owner, &pods_api, &claimed, &all).await;
        }
    }

    // Status, from the pods as they are now: a pass that created pods writes the old
    // count and is woken again by the new pods' events, as upstream.
    let now = Timestamp::now();
    let refs: Vec<&Pod> = claimed.iter().collect();
    let new_status = status::compute(
        &rs,
        &refs,
        manage_error.as_ref().map(|e| e.to_string()).as_deref(),
        now,
    );
    if status::needs_write(&rs, &new_status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": {
            "replicas": new_status.replicas,
            "fullyLabeledReplicas": new_status.fully_labeled_replicas,
            "readyReplicas": new_status.ready_replicas,
            "availableReplicas": new_status.available_replicas,
            "observedGeneration": rs.metadata.generation,
            "conditions": new_status.conditions,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .or_else(ignore_not_found)
            .map_err(api_error(format!("writing the status of {ns}/{name}")))?;
    }
    if let Some(e) = manage_error {
        return Err(Error::Api {
            what: format!("managing the pods of {ns}/{name}"),
            source: e,
        });
    }
    // Wake up when a ready pod becomes available (minReadySeconds).
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let next = refs
        .iter()
        .filter(|p| !status::is_available(p, min_ready, now))
        .filter_map(|p| status::available_at(p, min_ready))
        .min();
    // Writes the cache has not shown yet wake the set through their watch events; the
    // requeue is the fallback should an event be missed.
    let recheck = (!needs_sync).then_some(Duration::from_secs(1));
    let available =
        next.map(|at| at.duration_since(now).unsigned_abs() + Duration::from_millis(500));
    Ok(match recheck.into_iter().chain(available).min() {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

fn ignore_not_found<T: Default>(e: kube::Error) -> Result<T, kube::Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 => Ok(T::default()),
        e => Err(e),
    }
}

/// Creates or deletes pods so `claimed` (the active pods) reaches `spec.replicas`;
/// returns the first error.
async fn manage(
    ctx: &Context,
    rs: &ReplicaSet,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    api: &Api<Pod>,
    claimed: &[Pod],
    all: &[Arc<Pod>],
) -> Option<kube::Error> {
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let have = claimed.len();
    let uid = rs.uid().unwrap_or_default();
    if have < want {
        let count = (want - have).min(ctx.config.burst_replicas);
        let (created, error) = pods::create(api, &ctx.events, rs, owner, count).await;
        ctx.expectations.expect(&uid, created, Vec::new());
        error
    } else if have > want {
        let count = (have - want).min(ctx.config.burst_replicas);
        let related = related_pods(ctx, rs, all);
        let candidates: Vec<&Pod> = claimed.iter().collect();
        let doomed = ranking::to_delete(&candidates, &related, count, Timestamp::now());
        let (deleted, error) = pods::delete(api, &ctx.events, rs, &doomed).await;
        ctx.expectations.expect(&uid, Vec::new(), deleted);
        error
    } else {
        None
    }
}

/// The active pods of every ReplicaSet with the same controller as `rs` (itself
/// included), for the "doubled up" rank of the deletion order.
fn related_pods<'a>(ctx: &Context, rs: &ReplicaSet, all: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let own_uid = rs.uid();
    let siblings: Vec<String> = match ownership::controller_of(&rs.metadata) {
        None => own_uid.into_iter().collect(),
        Some(parent) => ctx
            .replica_sets
            .state()
            .iter()
            .filter(|o| o.namespace() == rs.namespace())
            .filter(|o| ownership::controller_of(&o.metadata).is_some_and(|r| r.uid == parent.uid))
            .filter_map(|o| o.uid())
            .chain(own_uid)
            .collect(),
    };
    all.iter()
        .map(|p| &**p)
        .filter(|p| status::is_active(p))
        .filter(|p| {
            ownership::controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid))
        })
        .collect()
}
