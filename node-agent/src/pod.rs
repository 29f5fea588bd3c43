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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cgroup::PodCgroup;
use crate::events::{Kind, Recorder};
use crate::network::PodNetwork;
use crate::sandbox::{self, Exit, Sandbox};
use crate::sandbox_process::Options;
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
/// Grace given to sandboxes when the agent itself stops.
pub const AGENT_STOP_GRACE: Duration = Duration::from_secs(5);
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
    name: String,
    uid: String,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    shutdown: CancellationToken,
    view: View,
    ip: Option<Ipv4Addr>,
    cgroup: Option<PodCgroup>,
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

/// The container's environment: plain values, and `SPIN_VARIABLE_*` also as Spin
/// variables, as containerd-shim-spin does.
fn environment(
    container: &k8s_openapi::api::core::v1::Container,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut variables = Vec::new();
    for e in container.env.iter().flatten() {
        let value = e.value.clone().unwrap_or_default();
        if let Some(var) = e.name.strip_prefix("SPIN_VARIABLE_") {
            variables.push(format!("{}={value}", var.to_ascii_lowercase()));
        }
        env.push((e.name.clone(), value));
    }
    (env, variables)
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
            self.finish(Interrupt::Deleted(Some(Duration::ZERO)), None)
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
        self.write_status().await;
        let (why, sandbox) = self.drive().await;
        self.finish(why, sandbox).await;
    }

    async fn wait_for_deletion(&mut self) -> Interrupt {
        loop {
            if let Some(i) = self.pause(BACKOFF_MAX).await {
                return i;
            }
        }
    }

    /// Address, pull, start, restart: returns why it stopped and the sandbox still running.
    async fn drive(&mut self) -> (Interrupt, Option<Sandbox>) {
        let mut net_backoff = Backoff::default();
        while self.ip.is_none() {
            match self.shared.network.allocate().await {
                Ok(ip) => {
                    self.ip = Some(ip);
                    self.view.pod_ip = Some(ip.to_string());
                }
                Err(e) => {
                    let msg = format!("Failed to create pod sandbox: {e}");
                    self.event(None, Kind::Warning, "FailedCreatePodSandBox", &msg)
                        .await;
                    let delay = net_backoff.next_delay().max(Duration::from_secs(1));
                    if let Some(i) = self.pause(delay).await {
                        return (i, None);
                    }
                }
            }
        }
        if let Some(i) = self.prepare_cgroup().await {
            return (i, None);
        }
        let mut pull_backoff = Backoff::default();
        let mut crash_backoff = Backoff::default();
        loop {
            if let Some(i) = self.deleting() {
                return (i, None);
            }
            let Some(pod) = self.pod() else {
                return (Interrupt::Deleted(None), None);
            };
            let Some(spec) = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .cloned()
            else {
                return (self.wait_for_deletion().await, None);
            };
            let image = spec.image.clone().unwrap_or_default();
            let cname = spec.name.clone();

            // Pull.
            self.event(
                Some(&cname),
                Kind::Normal,
                "Pulling",
                &format!("Pulling image {image:?}"),
            )
            .await;
            let pulled = match crate::image::pull(&image, &self.shared.config.cache_dir()).await {
                Ok(p) => {
                    pull_backoff.reset();
                    p
                }
                Err(e) => {
                    let reason = e.reason();
                    self.container().state = State::Waiting {
                        reason: reason.to_string(),
                        message: Some(e.to_string()),
                    };
                    self.container().ready = false;
                    self.write_status().await;
                    self.event(Some(&cname), Kind::Warning, "Failed", &e.to_string())
                        .await;
                    self.event(
                        Some(&cname),
                        Kind::Warning,
                        "Failed",
                        &format!("Error: {reason}"),
                    )
                    .await;
                    let delay = pull_backoff.next_delay().max(BACKOFF_INITIAL);
                    self.container().state = State::Waiting {
                        reason: "ImagePullBackOff".into(),
                        message: Some(format!("Back-off pulling image {image:?}: {e}")),
                    };
                    self.write_status().await;
                    self.event(
                        Some(&cname),
                        Kind::Normal,
                        "BackOff",
                        &format!("Back-off pulling image {image:?}"),
                    )
                    .await;
                    if let Some(i) = self.pause(delay).await {
                        return (i, None);
                    }
                    continue;
                }
            };
            self.container().image_id = Some(pulled.pinned.clone());
            self.event(
                Some(&cname),
                Kind::Normal,
                "Pulled",
                &format!(
                    "Successfully pulled image {image:?} in {}ms",
                    pulled.elapsed.as_millis()
                ),
            )
            .await;

            // Start.
            let port = spec
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| u16::try_from(p.container_port).ok())
                .unwrap_or(DEFAULT_PORT);
            let Some(ip) = self.ip else {
                return (Interrupt::Deleted(None), None);
            };
            let mut sandbox =
                match self.start(&pod, &spec, &pulled.pinned, SocketAddr::from((ip, port))) {
                    Ok(s) => s,
                    Err(e) => {
                        let msg = format!("Error: cannot start the sandbox: {e}");
                        self.event(Some(&cname), Kind::Warning, "Failed", &msg)
                            .await;
                        let delay = crash_backoff.next_delay().max(BACKOFF_INITIAL);
                        if let Some(i) = self.pause(delay).await {
                            return (i, None);
                        }
                        continue;
                    }
                };
            self.event(
                Some(&cname),
                Kind::Normal,
                "Created",
                &format!("Created container {cname}"),
            )
            .await;
            let started = Instant::now();
            let oom_before = self.cgroup.as_ref().map_or(0, PodCgroup::oom_kills);
            let outcome = tokio::select! {
                ready = sandbox.ready() => Ok(ready.err()),
                i = self.until_deleted() => Err(i),
            };
            let exit = match outcome {
                Err(i) => return (i, Some(sandbox)),
                Ok(Some(exit)) => exit,
                Ok(None) => {
                    self.event(
                        Some(&cname),
                        Kind::Normal,
                        "Started",
                        &format!("Started container {cname}"),
                    )
                    .await;
                    let started_at = sandbox.started_at.clone();
                    self.view.phase = "Running";
                    *self.container() = Container {
                        state: State::Running { started_at },
                        ready: true,
                        ..self.view.containers[0].clone()
                    };
                    self.write_status().await;
                    let outcome = tokio::select! {
                        exit = sandbox.wait() => Ok(exit),
                        i = self.until_deleted() => Err(i),
                    };
                    match outcome {
                        Ok(exit) => exit,
                        Err(i) => return (i, Some(sandbox)),
                    }
                }
            };
            let mut exit = exit;
            exit.oom_killed = self.cgroup.as_ref().map_or(0, PodCgroup::oom_kills) > oom_before;
            if started.elapsed() >= BACKOFF_RESET {
                crash_backoff.reset();
            }
            if let Some(i) = self
                .exited(&pod, &cname, &sandbox, exit, &mut crash_backoff)
                .await
            {
                return (i, None);
            }
        }
    }

    /// Records an exit; restarts after the back-off per `restartPolicy`, or waits for
    /// deletion once the pod has ended. Returns an interrupt when waiting was cut short.
    async fn exited(
        &mut self,
        pod: &Pod,
        cname: &str,
        sandbox: &Sandbox,
        exit: Exit,
        backoff: &mut Backoff,
    ) -> Option<Interrupt> {
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let failed = exit.code != 0;
        let terminated = State::Terminated {
            exit: exit.clone(),
            started_at: sandbox.started_at.clone(),
        };
        let restart = policy == "Always" || (policy == "OnFailure" && failed);
        self.container().ready = false;
        if !restart {
            self.view.phase = if failed { "Failed" } else { "Succeeded" };
            self.container().state = terminated;
            self.write_status().await;
            return Some(self.wait_for_deletion().await);
        }
        let delay = backoff.next_delay();
        let uid = self.uid.clone();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.name.clone();
        let c = self.container();
        c.last = Some(terminated);
        c.restart_count += 1;
        c.state = if delay.is_zero() {
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            }
        } else {
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={cname} pod={name}_{ns}({uid})",
                    delay.as_secs()
                )),
            }
        };
        self.write_status().await;
        if !delay.is_zero() {
            self.event(
                Some(cname),
                Kind::Warning,
                "BackOff",
                &format!("Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"),
            )
            .await;
        }
        self.pause(delay).await
    }

    /// Creates the pod's cgroup with the container's limits. A limit that does not parse
    /// fails the pod; a machine without usable cgroups runs it unconfined, with a Warning.
    async fn prepare_cgroup(&mut self) -> Option<Interrupt> {
        let pod = self.pod()?;
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())?
            .clone();
        let limits = match crate::resources::of(&container) {
            Ok(l) => l,
            Err(e) => {
                self.fail(
                    "InvalidResources",
                    format!("container {}: {e}", container.name),
                )
                .await;
                return Some(self.wait_for_deletion().await);
            }
        };
        let path = crate::cgroup::path_for(status::qos_class(&pod), &self.uid);
        match PodCgroup::create(&path, &limits) {
            Ok(c) => self.cgroup = Some(c),
            Err(e) => {
                let msg = format!(
                    "cgroups are not usable here, so resource limits are not enforced: {e}"
                );
                tracing::warn!(pod = %self.name, "{msg}");
                self.event(None, Kind::Warning, "FailedCgroup", &msg).await;
            }
        }
        None
    }

    async fn until_deleted(&mut self) -> Interrupt {
        self.wait_for_deletion().await
    }

    fn start(
        &self,
        pod: &Pod,
        spec: &k8s_openapi::api::core::v1::Container,
        app: &str,
        listen: SocketAddr,
    ) -> std::io::Result<Sandbox> {
        let config = &self.shared.config;
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let dir = sandbox::dir(&config.data_dir, &self.uid);
        let (ready_file, termination_log, state_dir) = sandbox::paths(&dir);
        let (env, variables) = environment(spec);
        let options = Options {
            app: app.to_string(),
            listen,
            cache_dir: config.cache_dir(),
            log_file: crate::cri_log::path(
                &config.pod_log_dir,
                ns,
                &self.name,
                &self.uid,
                &spec.name,
                self.view.containers[0].restart_count,
            ),
            ready_file,
            termination_log,
            env,
            variables,
            state_dir,
            cgroup: self.cgroup.as_ref().map(|c| c.path().to_string()),
        };
        Sandbox::spawn(
            &config.sandbox_program,
            &config.sandbox_args,
            &dir,
            &options,
        )
    }

    /// Stops what runs, frees the address and the pod's files, and deletes the pod with
    /// grace 0 when it is being deleted.
    async fn finish(&mut self, why: Interrupt, sandbox: Option<Sandbox>) {
        let grace = match &why {
            Interrupt::Deleted(Some(g)) => *g,
            Interrupt::Deleted(None) => Duration::ZERO,
            Interrupt::Shutdown => AGENT_STOP_GRACE,
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
        match why {
            Interrupt::Deleted(Some(_)) => {
                let ns = self
                    .pod()
                    .and_then(|p| p.metadata.namespace.clone())
                    .unwrap_or_default();
                let _ = std::fs::remove_dir_all(crate::cri_log::pod_dir(
                    &self.shared.config.pod_log_dir,
                    &ns,
                    &self.name,
                    &self.uid,
                ));
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
            Interrupt::Deleted(None) => {
                let ns = self
                    .pod()
                    .and_then(|p| p.metadata.namespace.clone())
                    .unwrap_or_default();
                let _ = std::fs::remove_dir_all(crate::cri_log::pod_dir(
                    &self.shared.config.pod_log_dir,
                    &ns,
                    &self.name,
                    &self.uid,
                ));
            }
            Interrupt::Shutdown => {}
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

    #[test]
    fn spin_variables_come_from_the_environment() {
        let c: k8s_openapi::api::core::v1::Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "env": [{"name": "SPIN_VARIABLE_GREETING", "value": "hi"}, {"name": "PLAIN", "value": "x"}],
        }))
        .unwrap();
        let (env, vars) = environment(&c);
        assert_eq!(vars, vec!["greeting=hi".to_string()]);
        assert_eq!(env.len(), 2);
    }
}
