//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets,
//! as kube-controller-manager's deployment controller does.
//!
//! It owns the Deployment's ReplicaSets (`<deploy>-<pod-template-hash>`, created,
//! scaled, annotated with revisions, adopted, released and pruned by
//! `revisionHistoryLimit`), the Deployment's `status` and its
//! `deployment.kubernetes.io/revision` annotation, and `ScalingReplicaSet` Events. It
//! never writes a Deployment's spec (`kubectl rollout undo` is kubectl's own patch of the
//! template, as upstream), nor pods (the ReplicaSet controller's).
//!
//! A kube-runtime [`Controller`] over Deployments, woken by the ReplicaSets they own, by
//! orphan ReplicaSets their selector matches (both from one ReplicaSet watch that also
//! fills the cache reconciles read, through kube-runtime's `watches_stream`), and by the
//! pods of a Recreate Deployment going away. Each reconcile takes the namespace's
//! ReplicaSets from that cache (as upstream's lister; a set the cache has not shown yet is
//! found by its create's 409, and every write to a set carries the resourceVersion it was
//! computed from, so a stale cache costs a retry, never a wrong scale), claims them
//! ([`crate::ownership`]), then takes upstream's `syncDeployment` path:
//! status only while being deleted; the paused condition; scaling only when paused or
//! when `spec.replicas` changed ([`scaling`]); otherwise a [`rollout`] step — RollingUpdate
//! or Recreate — through [`sync::Pass`], with revisions in [`history`], the hash in
//! [`hash`] and the status in [`status`].

pub mod hash;
pub mod history;
pub mod rollout;
pub mod scaling;
pub mod status;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::caches;
use crate::ownership::{self, Claim};
use crate::recorder::Events;

/// The `reportingController` of its Events.
pub const CONTROLLER_NAME: &str = "deployment-controller";

/// How the Deployment controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `reportingInstance` of its Events.
    pub instance: String,
}

impl Config {
    /// The defaults for a server on `host`.
    pub fn new(host: &str) -> Config {
        Config {
            instance: format!("{CONTROLLER_NAME}-{host}"),
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
    /// The Deployment cannot be acted on as it is.
    #[error("{0}")]
    Invalid(String),
    /// The new ReplicaSet's name is taken by another template; `collisionCount` was bumped.
    #[error("replica set {0} exists with another template (hash collision)")]
    Collision(String),
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// What every reconcile shares.
pub struct Context {
    client: kube::Client,
    events: Events,
    replica_sets: Store<ReplicaSet>,
    shutdown: CancellationToken,
}

fn selector_of(s: &LabelSelector) -> Option<Selector> {
    Selector::try_from(s.clone()).ok()
}

fn selector(d: &Deployment) -> Option<Selector> {
    d.spec.as_ref().and_then(|s| selector_of(&s.selector))
}

/// The Deployments an orphan ReplicaSet's labels match.
fn deployments_selecting(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    if ownership::controller_of(&rs.metadata).is_some() {
        return Vec::new();
    }
    store
        .state()
        .into_iter()
        .filter(|d| d.namespace() == rs.namespace())
        .filter(|d| selector(d).is_some_and(|s| !s.selects_all() && s.matches(rs.labels())))
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

/// The Recreate Deployment a departing pod belongs to (its ReplicaSet is
/// `<deploy>-<pod-template-hash>`), so the rollout goes on once old pods are gone.
fn deployment_of_departing_pod(
    store: &Store<Deployment>,
    pod: &Pod,
) -> Option<ObjectRef<Deployment>> {
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if pod.metadata.deletion_timestamp.is_none() && !finished {
        return None;
    }
    let owner = ownership::controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet")?;
    let pod_hash = pod.labels().get(hash::LABEL)?;
    let name = owner.name.strip_suffix(&format!("-{pod_hash}"))?;
    let ns = pod.namespace()?;
    let d = store.get(&ObjectRef::new(name).within(&ns))?;
    rollout::is_recreate(&d).then(|| ObjectRef::from_obj(&*d))
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let for_orphans = controller.store();
    let for_pods = controller.store();
    let (replica_sets, rs_events) = caches::reflected::<ReplicaSet>(&client);
    let rs_to_deployments = move |rs: ReplicaSet| -> Vec<ObjectRef<Deployment>> {
        match ownership::controller_of(&rs.metadata) {
            Some(owner) if owner.kind == "Deployment" && owner.api_version == "apps/v1" => {
                let mut r = ObjectRef::new(&owner.name);
                if let Some(ns) = rs.namespace() {
                    r = r.within(&ns);
                }
                vec![r]
            }
            Some(_) => Vec::new(),
            None => deployments_selecting(&for_orphans, &rs),
        }
    };
    let ctx = Arc::new(Context {
        events: Events::new(client.clone(), CONTROLLER_NAME, &config.instance),
        client: client.clone(),
        replica_sets,
        shutdown: shutdown.clone(),
    });
    tracing::info!("deployment controller started");
    let stop = shutdown.clone();
    controller
        .watches_stream(rs_events, rs_to_deployments)
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            move |pod| deployment_of_departing_pod(&for_pods, &pod),
        )
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(d: Arc<Deployment>, error: &Error, _: Arc<Context>) -> Action {
    match error {
        Error::Api {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => {
            tracing::debug!(deployment = %d.name_any(), %error, "conflict; retrying");
            Action::requeue(Duration::from_millis(200))
        }
        Error::Collision(_) => Action::requeue(Duration::from_millis(200)),
        _ => {
            tracing::warn!(deployment = %d.name_any(), %error, "deployment sync failed; retrying");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_else(|| "default".into());
    let name = d.name_any();
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(sel) = selector(&d) else {
        return Err(Error::Invalid(format!(
            "deployment {ns}/{name} has an invalid selector"
        )));
    };
    if sel.selects_all() {
        ctx.events.warning(
            &*d,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        if d.status.as_ref().and_then(|s| s.observed_generation) != d.metadata.generation {
            let patch = json!({"status": {"observedGeneration": d.metadata.generation}});
            d_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_error(format!("writing the status of {ns}/{name}")))?;
        }
        return Ok(Action::await_change());
    }

    let sets = claim_replica_sets(&ctx, &d, &sel, &rs_api).await?;
    let pods = if rollout::is_recreate(&d) {
        let uids: Vec<String> = sets.iter().filter_map(|rs| rs.uid()).collect();
        Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default().labels_from(&sel))
            .await
            .map_err(api_error(format!("listing the pods of {ns}/{name}")))?
            .items
            .into_iter()
            .filter(|p| {
                ownership::controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut pass = sync::Pass {
        ctx: &ctx,
        d: (*d).clone(),
        sets,
        pods,
        rs_api,
        d_api,
    };
    if d.metadata.deletion_timestamp.is_some() {
        return pass.status_only().await;
    }
    if let Some(c) = status::paused_condition(&pass.d, Timestamp::now()) {
        let mut s = pass.d.status.clone().unwrap_or_default();
        status::set(&mut s, c);
        let patch = json!({"status": s});
        pass.d_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("writing the status of {ns}/{name}")))?;
        pass.d.status = Some(s);
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let all: Vec<&ReplicaSet> = pass.sets.iter().collect();
    if paused || scaling::is_scaling_event(&d, &all) {
        return pass.sync().await;
    }
    if rollout::is_recreate(&d) {
        pass.recreate().await
    } else {
        pass.rolling().await
    }
}

/// The Deployment's ReplicaSets, oldest first: those it controls and selects, plus the
/// orphans it adopts; those it controls but no longer selects are released.
async fn claim_replica_sets(
    ctx: &Context,
    d: &Deployment,
    sel: &Selector,
    api: &Api<ReplicaSet>,
) -> Result<Vec<ReplicaSet>, Error> {
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let deleting = d.meta().deletion_timestamp.is_some();
    // A pass on a cache that has not had its first list would see no sets at all.
    let first_list = async { ctx.replica_sets.wait_until_ready().await.is_ok() };
    if !caches::ready(&ctx.shutdown, first_list).await {
        return Err(Error::Invalid("the replica set cache is gone".into()));
    }
    let ns = d.namespace();
    // Only sets this Deployment controls or could adopt matter to the claim below.
    let listed: Vec<ReplicaSet> = ctx
        .replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace() == ns)
        .filter(|rs| match ownership::controller_of(&rs.metadata) {
            Some(owner) => owner.uid == uid,
            None => sel.matches(rs.labels()),
        })
        .map(|rs| (**rs).clone())
        .collect();
    let owner = ownership::controller_ref(d);
    let mut fresh_checked = false;
    let mut sets = Vec::new();
    for rs in listed {
        let selected = sel.matches(rs.labels());
        let rs_uid = rs.uid().unwrap_or_default();
        match ownership::decide(&uid, deleting, &rs.metadata, selected) {
            Claim::Keep => sets.push(rs),
            Claim::Ignore => {}
            Claim::Release => match ownership::release(api, &rs.name_any(), &rs_uid, &uid).await {
                Ok(_) => {}
                Err(e) if ownership::is_not_found(&e) => {}
                Err(e) => {
                    return Err(api_error(format!(
                        "releasing replica set {}",
                        rs.name_any()
                    ))(e))
                }
            },
            Claim::Adopt => {
                let Some(owner) = &owner else { continue };
                if !fresh_checked {
                    let d_api: Api<Deployment> =
                        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
                    let fresh = d_api
                        .get(&name)
                        .await
                        .map_err(api_error(format!("re-reading deployment {name}")))?;
                    if fresh.uid() != d.uid() || fresh.meta().deletion_timestamp.is_some() {
                        return Err(Error::Invalid(format!(
                            "deployment {name} is gone or being deleted"
                        )));
                    }
                    fresh_checked = true;
                }
                match ownership::adopt(api, &rs.name_any(), &rs_uid, owner).await {
                    Ok(adopted) => sets.push(adopted),
                    Err(e) if ownership::is_not_found(&e) => {}
                    Err(e) => {
                        return Err(api_error(format!("adopting replica set {}", rs.name_any()))(e))
                    }
                }
            }
        }
    }
    sets.sort_by(scaling::by_creation);
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn store_with(deployments: Vec<Deployment>) -> Store<Deployment> {
        let (store, mut writer) = reflector::store::<Deployment>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for d in deployments {
            writer.apply_watcher_event(&watcher::Event::InitApply(d));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        store
    }

    fn deployment(name: &str, strategy: &str, labels: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"selector": {"matchLabels": labels}, "template": {},
                "strategy": {"type": strategy}},
        }))
        .expect("deployment")
    }

    fn pod(owner: &str, hash: &str, deleting: bool) -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "ns",
                "labels": {"app": "web", hash::LABEL: hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": owner, "uid": "rs-uid", "controller": true}]},
            "status": {"phase": "Running"},
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).expect("pod")
    }

    #[test]
    fn departing_pods_wake_their_recreate_deployment_only() {
        let store = store_with(vec![
            deployment("web", "Recreate", json!({"app": "web"})),
            deployment("roll", "RollingUpdate", json!({"app": "roll"})),
        ]);
        let woken = deployment_of_departing_pod(&store, &pod("web-abc12", "abc12", true));
        assert_eq!(woken.map(|r| r.name), Some("web".to_string()));
        assert!(deployment_of_departing_pod(&store, &pod("web-abc12", "abc12", false)).is_none());
        assert!(deployment_of_departing_pod(&store, &pod("roll-abc12", "abc12", true)).is_none());
        assert!(deployment_of_departing_pod(&store, &pod("web-abc12", "other", true)).is_none());
    }

    #[test]
    fn orphan_replica_sets_wake_the_deployments_selecting_them() {
        let store = store_with(vec![
            deployment("web", "RollingUpdate", json!({"app": "web"})),
            deployment("all", "RollingUpdate", json!({})),
        ]);
        let orphan: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "ns", "labels": {"app": "web"}},
        }))
        .expect("rs");
        let names: Vec<String> = deployments_selecting(&store, &orphan)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["web"]);
        let mut owned = orphan.clone();
        owned.metadata.owner_references = serde_json::from_value(json!([{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]))
        .ok();
        assert!(deployments_selecting(&store, &owned).is_empty());
    }
}
