//! One pod's lifecycle, as the kubelet drives it: admit (runtime class, one container),
//! give it an address, pull its image (`ErrImagePull`, then `ImagePullBackOff`), start its
//! sandbox (`ContainerCreating` → `Running` once it listens), restart it per
//! `restartPolicy` with the kubelet's back-off (immediately once, then 10 s doubling to
//! 5 min, reset after 10 min of running; `CrashLoopBackOff` meanwhile), and on deletion
//! stop it within its grace period (SIGTERM, then SIGKILL), free its address and delete
//! the pod with grace period 0.
//!
//! The worker is the only writer of the pod's status; it reads the pod only from the
//! channel [`crate::pods`] feeds, and re-reads it from the API just before each status
//! write (a full `pods/status` replace with the current resourceVersion, retried on
//! conflict, as virtual-kubelet does).
//!
//! A restarted agent re-adopts the sandbox a pod still has ([`adopt`]); when the agent
//! stops, sandboxes keep running (as containers outlive a kubelet).
//!
//! This module holds the worker and what every step shares (waiting, status, events,
//! the end); the steps are [`start`] (address, cgroup, pull, spawn until listening),
//! [`restart`] (the run loop, exits and `restartPolicy`) and [`adopt`].

mod adopt;
mod restart;
mod start;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cgroup::PodCgroup;
use crate::events::{Kind, Recorder};
use crate::network::PodNetwork;
use crate::sandbox::{self, Sandbox};
use crate::status::{self, Container, State, View};
use crate::AgentConfig;

/// The first back-off after a repeated failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long has its back-off reset.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Grace period when nothing says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// The port a container serves on when it declares none (containerd-shim-spin's).
pub const DEFAULT_PORT: u16 = 80;

/// What every pod worker shares.
pub struct Shared {
    /// The API client.
    pub client: kube::Client,
    /// The agent's configuration.
    pub config: Arc<AgentConfig>,
    /// Pod addresses.
    pub network: Arc<PodNetwork>,
    /// Events.
    pub recorder: Recorder,
    /// The node's address.
    pub host_ip: String,
    /// The node's allocatable cpu (millicores) and memory (bytes).
    pub allocatable: (u64, u64),
    /// Compiles pulled images' code before their sandboxes start.
    pub precompiler: crate::image::precompile::Precompiler,
}

/// The kubelet's exponential back-off: the first retry at once, then 10 s doubling up
/// to 5 min.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The delay before the next retry, advancing the back-off.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.unwrap_or(Duration::ZERO);
        self.next = Some(match self.next {
            None => BACKOFF_INITIAL,
            Some(d) => (d * 2).min(BACKOFF_MAX),
        });
        delay
    }

    /// Back to a first failure.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// Why a wait ended early.
enum Interrupt {
    /// The pod is being deleted (its grace period) or is gone from the API (`None`).
    Deleted(Option<Duration>),
    /// The agent stops.
    Shutdown,
}

/// One pod's worker.
struct Worker {
    shared: Arc<Shared>,
    pods: Api<Pod>,
    namespace: String,
    name: String,
    uid: String,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    shutdown: CancellationToken,
    view: View,
    ip: Option<Ipv4Addr>,
    cgroup: Option<PodCgroup>,
    /// OOM kills of the pod's cgroup already accounted to an exit.
    oom_seen: u64,
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE.as_secs() as i64);
    Duration::from_secs(secs.max(0) as u64)
}

impl Worker {
    fn pod(&self) -> Option<Arc<Pod>> {
        self.rx.borrow().clone()
    }

    fn deleting(&self) -> Option<Interrupt> {
        match self.pod() {
            None => Some(Interrupt::Deleted(None)),
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                Some(Interrupt::Deleted(Some(grace_of(&p))))
            }
            Some(_) => None,
        }
    }

    /// Waits `delay`, unless the pod is deleted or the agent stops first.
    async fn pause(&mut self, delay: Duration) -> Option<Interrupt> {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            if let Some(i) = self.deleting() {
                return Some(i);
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return Some(Interrupt::Shutdown),
                () = tokio::time::sleep_until(deadline) => return None,
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return Some(Interrupt::Deleted(None));
                    }
                }
            }
        }
    }

    /// Writes the status the view describes, on the pod as the API has it now.
    async fn write_status(&self) {
        for _ in 0..5 {
            let current = match self.pods.get_opt(&self.name).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(pod = %self.name, error = %e, "cannot read the pod");
                    return;
                }
            };
            if current.metadata.uid.as_deref() != Some(self.uid.as_str()) {
                return;
            }
            let status = status::build(&current, &self.view);
            let mut next = current;
            next.status = match serde_json::from_value(status) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(pod = %self.name, error = %e, "cannot build the pod status");
                    return;
                }
            };
            match self
                .pods
                .replace_status(&self.name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!(pod = %self.name, error = %e, "cannot write the pod status");
                    return;
                }
            }
        }
    }

    fn container(&mut self) -> &mut Container {
        &mut self.view.containers[0]
    }

    async fn event(&self, container: Option<&str>, kind: Kind, reason: &str, message: &str) {
        if let Some(pod) = self.pod() {
            self.shared
                .recorder
                .record(&pod, container, kind, reason, message)
                .await;
        }
    }

    /// Fails the pod for good (it cannot run here).
    async fn fail(&mut self, reason: &str, message: String) {
        self.view.phase = "Failed";
        self.view.reason = Some(reason.to_string());
        self.view.message = Some(message.clone());
        self.event(None, Kind::Warning, reason, &message).await;
        self.write_status().await;
    }

    /// Why this node cannot run the pod, if it cannot.
    async fn admit(&self, pod: &Pod) -> Option<(String, String)> {
        let spec = pod.spec.as_ref()?;
        if let Some(class) = &spec.runtime_class_name {
            let classes: Api<RuntimeClass> = Api::all(self.shared.client.clone());
            let handler = match classes.get_opt(class).await {
                Ok(Some(rc)) => rc.handler,
                Ok(None) => {
                    return Some((
                        "RuntimeClassNotFound".into(),
                        format!("RuntimeClass {class:?} not found"),
                    ))
                }
                Err(e) => return Some(("RuntimeClassNotFound".into(), e.to_string())),
            };
            if handler != crate::SPIN_HANDLER {
                return Some((
                    "UnsupportedRuntimeHandler".into(),
                    format!(
                        "RuntimeClass {class:?} selects handler {handler:?}; spinlet runs only the {:?} handler (Spin apps in wasmtime)",
                        crate::SPIN_HANDLER
                    ),
                ));
            }
        }
        if spec.containers.len() != 1
            || spec.init_containers.as_ref().is_some_and(|c| !c.is_empty())
        {
            return Some((
                "UnsupportedPodSpec".into(),
                format!(
                    "spinlet runs pods of exactly one container and no init containers; this pod has {} containers and {} init containers",
                    spec.containers.len(),
                    spec.init_containers.as_ref().map_or(0, Vec::len)
                ),
            ));
        }
        None
    }

    /// Runs the pod until it is deleted or the agent stops.
    async fn run(mut self) {
        let Some(pod) = self.pod() else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            let leftover = self.leftover();
            self.finish(Interrupt::Deleted(Some(grace_of(&pod))), leftover)
                .await;
            return;
        }
        let phase_done = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if phase_done {
            let why = self.wait_for_deletion().await;
            self.finish(why, None).await;
            return;
        }
        if let Some((reason, message)) = self.admit(&pod).await {
            self.fail(&reason, message).await;
            let why = self.wait_for_deletion().await;
            self.finish(why, None).await;
            return;
        }
        let adopted = self.adopt(&pod).await;
        if adopted.is_none() {
            self.write_status().await;
        }
        let (why, sandbox) = self.drive(adopted).await;
        self.finish(why, sandbox).await;
    }

    async fn wait_for_deletion(&mut self) -> Interrupt {
        loop {
            if let Some(i) = self.pause(BACKOFF_MAX).await {
                return i;
            }
        }
    }

    async fn until_deleted(&mut self) -> Interrupt {
        self.wait_for_deletion().await
    }

    /// Stops what runs, frees the address and the pod's files, and deletes the pod with
    /// grace 0 when it is being deleted; when the agent stops, leaves everything running.
    async fn finish(&mut self, why: Interrupt, sandbox: Option<Sandbox>) {
        let grace = match &why {
            Interrupt::Deleted(Some(g)) => *g,
            Interrupt::Deleted(None) => Duration::ZERO,
            // The sandbox, its address and cgroup stay: the next agent adopts them.
            Interrupt::Shutdown => return,
        };
        if let Some(mut sandbox) = sandbox {
            if let Interrupt::Deleted(Some(_)) = why {
                let cname = self
                    .view
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                self.event(
                    Some(&cname),
                    Kind::Normal,
                    "Killing",
                    &format!("Stopping container {cname}"),
                )
                .await;
            }
            let exit = sandbox.stop(grace).await;
            tracing::info!(pod = %self.name, code = exit.code, "sandbox stopped");
        }
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.delete();
        }
        if let Some(ip) = self.ip.take() {
            self.shared.network.release(ip).await;
        }
        let _ = std::fs::remove_dir_all(sandbox::dir(&self.shared.config.data_dir, &self.uid));
        let _ = std::fs::remove_dir_all(crate::cri_log::pod_dir(
            &self.shared.config.pod_log_dir,
            &self.namespace,
            &self.name,
            &self.uid,
        ));
        if let Interrupt::Deleted(Some(_)) = why {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.pods.delete(&self.name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => tracing::warn!(pod = %self.name, error = %e, "cannot delete the pod"),
            }
        }
    }
}

/// Runs the worker of the pod `rx` carries until the pod is gone or `shutdown`.
pub async fn run(
    shared: Arc<Shared>,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    shutdown: CancellationToken,
) {
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| Container {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: None,
                    state: State::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    },
                    last: None,
                    restart_count: 0,
                    ready: false,
                })
                .collect()
        })
        .unwrap_or_default();
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(crate::node::now);
    let worker = Worker {
        pods: Api::namespaced(shared.client.clone(), &ns),
        namespace: ns.clone(),
        view: View {
            phase: "Pending",
            host_ip: shared.host_ip.clone(),
            pod_ip: None,
            start_time,
            containers,
            reason: None,
            message: None,
        },
        shared,
        name,
        uid,
        rx,
        shutdown,
        ip: None,
        cgroup: None,
        oom_seen: 0,
    };
    worker.run().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_once_then_doubles_to_five_minutes() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
