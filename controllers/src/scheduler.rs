//! The scheduler: assigns pending pods to nodes as kube-scheduler's default profile does,
//! for one node and ready for more.
//!
//! It owns the binding of pods whose `spec.schedulerName` is `default-scheduler`, have no
//! `spec.nodeName`, no scheduling gates and no deletion under way; for those it writes the
//! `pods/binding` subresource, the `PodScheduled=False` condition when no node fits, and
//! `Scheduled` / `FailedScheduling` Events. It never writes Nodes, other pod fields or
//! pods bound already, and reads the cluster only through watches (nodes, pods,
//! RuntimeClasses) via the `kube` client.
//!
//! # How a pod is placed
//! 1. Watches fill three caches (kube-runtime reflectors); a change that matters for
//!    placement (a node's labels, taints, cordon, allocatable or readiness; a pod bound,
//!    finished or gone; a RuntimeClass) bumps a generation and wakes the loop. The
//!    scheduler's own status writes change nothing that matters, so they wake nothing.
//! 2. Each pass takes the pending pods (highest `priority` first, then oldest), and for
//!    each runs the [`filters`] against every node, with what the node's pods already
//!    request ([`resources`]) plus the pods bound in this run that the cache has not yet
//!    seen bound ("assumed", as kube-scheduler's cache has them).
//! 3. Among the nodes that fit, the least allocated wins (ties by name); the pod is assumed
//!    there at once and the pass goes on to the next pod; the pass's bindings are then
//!    written concurrently (a 409 means someone else bound or is deleting it, which is
//!    fine; any other failure drops the assumption and retries the pod after a back-off).
//! 4. When none fits, the pod gets `PodScheduled=False`/`Unschedulable` with
//!    kube-scheduler's message and a `FailedScheduling` Event, and is retried after a
//!    back-off (1 s doubling to 10 s) once the cluster changes, and every 30 s anyway.
//!    With no Node at all (a server starting, before its agent registers) pods just wait
//!    and nothing is written about them.

pub mod events;
pub mod filters;
pub mod resources;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use events::{Recorded, Recorder};
use filters::{PodFacts, Unfit};
use resources::Usage;

/// The scheduler name pods ask for by default (the API server defaults
/// `spec.schedulerName` to it).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `reportingInstance` of its Events (kube-scheduler: `default-scheduler-<host>`).
    pub instance: String,
    /// How often an unschedulable pod is retried when nothing changes.
    pub resync: Duration,
    /// First retry delay after a failed attempt; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Config {
    /// kube-scheduler's defaults (back-off 1 s to 10 s), retrying every 30 s.
    pub fn new(host: &str) -> Config {
        Config {
            instance: format!("{SCHEDULER_NAME}-{host}"),
            resync: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Errors that stop the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch stopped before delivering its first list (its task ended).
    #[error("the {0} watch stopped before its first list")]
    WatchEnded(&'static str),
}

/// Result type of the scheduler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wakes the scheduling loop; `generation` counts changes that matter for placement.
#[derive(Default)]
struct Signal {
    generation: AtomicU64,
    notify: Notify,
}

impl Signal {
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn wake(&self) {
        self.notify.notify_one();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

fn fingerprint(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// What about a watched object matters for placement, and whether a first sighting of it
/// only needs the loop woken (a new pending pod), not every waiting pod retried.
type Relevance<K> = fn(&K) -> (u64, bool);

fn pod_relevance(pod: &Pod) -> (u64, bool) {
    let fp = fingerprint(&json!([
        pod.spec,
        resources::is_terminal(pod),
        pod.metadata.deletion_timestamp.is_some(),
    ]));
    let unbound = pod
        .spec
        .as_ref()
        .is_none_or(|s| s.node_name.as_deref().unwrap_or("").is_empty());
    (fp, unbound)
}

fn node_relevance(node: &Node) -> (u64, bool) {
    let spec = node.spec.as_ref();
    let fp = fingerprint(&json!([
        node.metadata.labels,
        spec.and_then(|s| s.unschedulable),
        spec.and_then(|s| s.taints.as_ref()),
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        filters::ready_status(node),
    ]));
    (fp, false)
}

fn runtime_class_relevance(rc: &RuntimeClass) -> (u64, bool) {
    (fingerprint(&json!([rc.handler, rc.scheduling])), false)
}

/// Keeps `store` filled from a watch of `api` until `shutdown`, signalling changes.
fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    signal: Arc<Signal>,
    relevance: Relevance<K>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let kind = K::kind(&());
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        futures::pin_mut!(stream);
        let key = |o: &K| o.uid().unwrap_or_else(|| o.name_any());
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut listing: HashMap<String, u64> = HashMap::new();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = stream.next() => e,
            };
            match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, %kind, "scheduler watch failed; retrying")
                }
                Some(Ok(watcher::Event::Init)) => listing.clear(),
                Some(Ok(watcher::Event::InitApply(o))) => {
                    listing.insert(key(&o), relevance(&o).0);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    seen = std::mem::take(&mut listing);
                    signal.changed();
                }
                Some(Ok(watcher::Event::Apply(o))) => {
                    let (fp, quiet_when_new) = relevance(&o);
                    match seen.insert(key(&o), fp) {
                        Some(old) if old == fp => {}
                        None if quiet_when_new => signal.wake(),
                        _ => signal.changed(),
                    }
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    seen.remove(&key(&o));
                    signal.changed();
                }
            }
        }
    })
}

/// A pending pod's place in the retry queue.
struct Queued {
    attempts: u32,
    tried_at: Instant,
    generation: u64,
    backoff_until: Instant,
    event: Option<Recorded>,
}

/// A pod bound in this run that the cache may not show bound yet.
struct Assumed {
    node: String,
    pod: Arc<Pod>,
}

struct Scheduler {
    client: kube::Client,
    config: Config,
    pods: Store<Pod>,
    nodes: Store<Node>,
    runtime_classes: Store<RuntimeClass>,
    signal: Arc<Signal>,
    recorder: Recorder,
    queue: HashMap<String, Queued>,
    assumed: HashMap<String, Assumed>,
}

/// Runs the scheduler until `shutdown` is cancelled.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    let signal = Arc::new(Signal::default());
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (nodes, nodes_writer) = reflector::store::<Node>();
    let (runtime_classes, rc_writer) = reflector::store::<RuntimeClass>();
    let watches = [
        spawn_watch(
            Api::<Pod>::all(client.clone()),
            pods_writer,
            signal.clone(),
            pod_relevance,
            shutdown.clone(),
        ),
        spawn_watch(
            Api::<Node>::all(client.clone()),
            nodes_writer,
            signal.clone(),
            node_relevance,
            shutdown.clone(),
        ),
        spawn_watch(
            Api::<RuntimeClass>::all(client.clone()),
            rc_writer,
            signal.clone(),
            runtime_class_relevance,
            shutdown.clone(),
        ),
    ];
    let ready = async {
        pods.wait_until_ready()
            .await
            .map_err(|_| Error::WatchEnded("pod"))?;
        nodes
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchEnded("node"))?;
        runtime_classes
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchEnded("runtimeclass"))
    };
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        r = ready => r,
    };
    if shutdown.is_cancelled() || result.is_err() {
        for w in watches {
            w.abort();
        }
        return result;
    }
    tracing::info!("scheduler started");
    let mut scheduler = Scheduler {
        recorder: Recorder::new(client.clone(), &config.instance),
        client,
        config,
        pods,
        nodes,
        runtime_classes,
        signal: signal.clone(),
        queue: HashMap::new(),
        assumed: HashMap::new(),
    };
    loop {
        let deadline = scheduler
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + scheduler.config.resync);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = signal.notify.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        scheduler.pass().await;
    }
    for w in watches {
        let _ = w.await;
    }
    Ok(())
}

/// How many bindings are written at once.
const BIND_CONCURRENCY: usize = 32;

/// Writes the `pods/binding` of `pod` to `node`.
async fn bind(
    client: &kube::Client,
    pod: &Pod,
    uid: &str,
    node: &str,
) -> Result<Value, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource("binding", &name, &PostParams::default(), &binding)
        .await
}

fn is_pending(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && !resources::is_terminal(pod)
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.name_any()
    )
}

impl Scheduler {
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.config
            .initial_backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }

    /// When the next waiting pod is due.
    fn next_deadline(&self) -> Option<Instant> {
        let generation = self.signal.generation();
        self.queue
            .values()
            .map(|q| {
                let resync = q.tried_at + self.config.resync;
                if generation > q.generation {
                    q.backoff_until.min(resync)
                } else {
                    resync
                }
            })
            .min()
    }

    /// One pass over the pending pods.
    async fn pass(&mut self) {
        let generation = self.signal.generation();
        let now = Instant::now();
        let pods = self.pods.state();
        let mut nodes = self.nodes.state();
        if nodes.is_empty() {
            // No Node yet (the agent registers its node moments after the API starts):
            // pods wait, and nothing is written about them until a node appears.
            return;
        }
        nodes.sort_by_key(|n| n.name_any());

        let by_uid: HashMap<String, &Arc<Pod>> = pods
            .iter()
            .filter_map(|p| p.uid().map(|u| (u, p)))
            .collect();
        self.assumed
            .retain(|uid, _| by_uid.get(uid).is_some_and(|p| bound_node(p).is_none()));

        let mut usage: HashMap<String, Usage> = HashMap::new();
        for pod in &pods {
            if let Some(node) = bound_node(pod) {
                if !resources::is_terminal(pod) {
                    usage.entry(node.to_string()).or_default().add(pod);
                }
            }
        }
        for a in self.assumed.values() {
            usage.entry(a.node.clone()).or_default().add(&a.pod);
        }

        let mut pending: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| is_pending(p))
            .filter(|p| p.uid().is_some_and(|u| !self.assumed.contains_key(&u)))
            .collect();
        pending.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)),
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                full_name(p),
            )
        });
        let pending_uids: std::collections::HashSet<String> =
            pending.iter().filter_map(|p| p.uid()).collect();
        self.queue.retain(|uid, _| pending_uids.contains(uid));

        let mut decided = Vec::new();
        for pod in pending {
            let Some(uid) = pod.uid() else { continue };
            if let Some(q) = self.queue.get(&uid) {
                let due = (generation > q.generation && now >= q.backoff_until)
                    || now >= q.tried_at + self.config.resync;
                if !due {
                    continue;
                }
            }
            let runtime_class = pod
                .spec
                .as_ref()
                .and_then(|s| s.runtime_class_name.as_deref())
                .and_then(|name| self.runtime_classes.get(&ObjectRef::new(name)));
            let facts = PodFacts::new(pod, runtime_class.as_deref());
            let mut unfit: Vec<Unfit> = Vec::new();
            let mut best: Option<(i64, String)> = None;
            let empty = Usage::default();
            for node in &nodes {
                let name = node.name_any();
                let node_usage = usage.get(&name).unwrap_or(&empty);
                match filters::filter(&facts, node, node_usage) {
                    Ok(()) => {
                        let score = filters::score(&facts, node, node_usage);
                        if best.as_ref().is_none_or(|(s, _)| score > *s) {
                            best = Some((score, name));
                        }
                    }
                    Err(u) => unfit.push(u),
                }
            }
            match best {
                Some((_, node)) => {
                    // Assumed at once, so the next pod in this pass sees the node's
                    // room taken; the binding itself runs below, with the others.
                    usage.entry(node.clone()).or_default().add(pod);
                    self.assumed.insert(
                        uid.clone(),
                        Assumed {
                            node: node.clone(),
                            pod: (*pod).clone(),
                        },
                    );
                    decided.push(((*pod).clone(), uid, node));
                }
                None => {
                    let message =
                        filters::fit_error_message(nodes.len(), &unfit, facts.never_preempts);
                    self.unschedulable(pod, &uid, &message, generation).await;
                }
            }
        }
        self.bind_all(decided, generation).await;
    }

    /// Writes the bindings decided in a pass, up to [`BIND_CONCURRENCY`] at once (as
    /// kube-scheduler's binding cycles run beside its scheduling cycle: a burst of pods is
    /// bound in a few group commits of the store instead of one round trip after another).
    async fn bind_all(&mut self, decided: Vec<(Arc<Pod>, String, String)>, generation: u64) {
        let client = self.client.clone();
        let results: Vec<_> = futures::stream::iter(decided)
            .map(|(pod, uid, node)| {
                let client = client.clone();
                async move {
                    let result = bind(&client, &pod, &uid, &node).await;
                    (pod, uid, node, result)
                }
            })
            .buffer_unordered(BIND_CONCURRENCY)
            .collect()
            .await;
        for (pod, uid, node, result) in results {
            if !self.bound(&pod, &uid, &node, result, generation).await {
                self.assumed.remove(&uid);
            }
        }
    }

    /// Marks a failed attempt and returns the Event recorded last time.
    fn failed(&mut self, uid: &str, generation: u64) -> Option<Recorded> {
        let now = Instant::now();
        let attempts = self.queue.get(uid).map_or(0, |q| q.attempts) + 1;
        let backoff = self.backoff(attempts);
        let q = self.queue.entry(uid.to_string()).or_insert(Queued {
            attempts,
            tried_at: now,
            generation,
            backoff_until: now + backoff,
            event: None,
        });
        q.attempts = attempts;
        q.tried_at = now;
        q.generation = generation;
        q.backoff_until = now + backoff;
        q.event.take()
    }

    /// Takes the outcome of binding `pod` to `node`; true when this scheduler bound it.
    async fn bound(
        &mut self,
        pod: &Pod,
        uid: &str,
        node: &str,
        result: Result<Value, kube::Error>,
        generation: u64,
    ) -> bool {
        match result {
            Ok(_) => {
                tracing::info!(pod = %full_name(pod), node, "pod scheduled");
                self.queue.remove(uid);
                // Off the binding path: the next pod need not wait for this Event.
                let message = format!("Successfully assigned {} to {node}", full_name(pod));
                let recorder = self.recorder.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    recorder
                        .record(&pod, "Normal", "Scheduled", "Binding", &message, None)
                        .await;
                });
                true
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                // Bound by someone else, being deleted, or gone: the watch will say.
                tracing::debug!(pod = %full_name(pod), code = s.code, message = %s.message, "binding not needed");
                self.queue.remove(uid);
                false
            }
            Err(e) => {
                tracing::warn!(pod = %full_name(pod), node, error = %e, "binding failed; will retry");
                let last = self.failed(uid, generation);
                let message = format!("Binding rejected: {e}");
                let recorded = self
                    .recorder
                    .record(
                        pod,
                        "Warning",
                        "FailedScheduling",
                        "Scheduling",
                        &message,
                        last.as_ref(),
                    )
                    .await;
                if let Some(q) = self.queue.get_mut(uid) {
                    q.event = recorded;
                }
                false
            }
        }
    }

    /// Records that no node fits `pod`: its PodScheduled condition and an Event.
    async fn unschedulable(&mut self, pod: &Pod, uid: &str, message: &str, generation: u64) {
        tracing::info!(pod = %full_name(pod), message, "pod unschedulable");
        let last = self.failed(uid, generation);
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.name_any();
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        });
        if !unchanged {
            let transition = current
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .and_then(|t| serde_json::to_value(t).ok())
                .unwrap_or_else(|| json!(events::now()));
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": null, "lastTransitionTime": transition,
            }]}});
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::warn!(pod = %full_name(pod), error = %e, "cannot set PodScheduled=False");
            }
        }
        let recorded = self
            .recorder
            .record(
                pod,
                "Warning",
                "FailedScheduling",
                "Scheduling",
                message,
                last.as_ref(),
            )
            .await;
        if let Some(q) = self.queue.get_mut(uid) {
            q.event = recorded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"schedulerName": SCHEDULER_NAME, "containers": [{"name": "c", "image": "x"}]},
        });
        if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), v.get("spec")) {
            spec.extend(extra.as_object().cloned().unwrap_or_default());
        }
        for key in ["status", "metadata"] {
            if let Some(extra) = v.get(key) {
                let entry = p.as_object_mut().unwrap().entry(key).or_insert(json!({}));
                entry
                    .as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().cloned().unwrap_or_default());
            }
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn which_pods_are_pending() {
        assert!(is_pending(&pod(json!({}))));
        assert!(!is_pending(&pod(json!({"spec": {"nodeName": "n1"}}))));
        assert!(!is_pending(&pod(
            json!({"spec": {"schedulerName": "other"}})
        )));
        assert!(!is_pending(&pod(
            json!({"spec": {"schedulingGates": [{"name": "wait"}]}})
        )));
        assert!(is_pending(&pod(json!({"spec": {"schedulingGates": []}}))));
        assert!(!is_pending(&pod(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
        )));
        assert!(!is_pending(&pod(json!({"status": {"phase": "Failed"}}))));
    }

    #[test]
    fn the_schedulers_own_status_writes_are_not_changes() {
        let before = pod(json!({}));
        let after = pod(json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available",
        }]}}));
        assert_eq!(pod_relevance(&before), pod_relevance(&after));
        assert!(
            pod_relevance(&before).1,
            "a new pending pod only wakes the loop"
        );
        let bound = pod(json!({"spec": {"nodeName": "n1"}}));
        assert_ne!(pod_relevance(&before).0, pod_relevance(&bound).0);
        assert!(!pod_relevance(&bound).1);
        let finished = pod(json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}}));
        assert_ne!(pod_relevance(&bound).0, pod_relevance(&finished).0);
    }

    #[test]
    fn node_heartbeats_are_not_changes() {
        let node = |heartbeat: &str, ready: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": "n1"},
                "status": {"conditions": [{"type": "Ready", "status": ready,
                    "lastHeartbeatTime": heartbeat}]},
            }))
            .unwrap()
        };
        let a = node("2026-01-01T00:00:00Z", "True");
        let b = node("2026-01-01T00:01:00Z", "True");
        let c = node("2026-01-01T00:01:00Z", "False");
        assert_eq!(node_relevance(&a), node_relevance(&b));
        assert_ne!(node_relevance(&b), node_relevance(&c));
    }
}
