//! Getting a container running: the pod's address, its cgroup, the image pull
//! (`ErrImagePull`, then `ImagePullBackOff` with the kubelet's back-off), its environment
//! (`CreateContainerConfigError` while a ConfigMap or Secret it needs is missing), its
//! volumes (`FailedMount` while they cannot be made) and the sandbox, until it listens
//! (`Running`, ready) or ends first. Between the pull and the sandbox, the image's code is
//! compiled into the compile cache (once per content), so the sandbox does not compile.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::{Backoff, Interrupt, Worker, BACKOFF_INITIAL, DEFAULT_PORT};
use crate::cgroup::PodCgroup;
use crate::events::Kind;
use crate::sandbox::{self, Exit, Sandbox};
use crate::sandbox_process::Options;
use crate::status::{self, Container, State};
use crate::volumes::Volumes;

/// How soon a container whose ConfigMap or Secret is missing is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(5);

/// How an attempt to start the container went.
pub(super) enum Started {
    /// It listens: running and ready.
    Running(Sandbox),
    /// It ended before it listened.
    Exited(Sandbox, Exit),
    /// It could not be started; the back-off has been waited, try again.
    Retry,
    /// The pod is being deleted or the agent stops (with the sandbox, if one started).
    Interrupted(Interrupt, Option<Sandbox>),
}

impl Worker {
    /// Gives the pod an address from the node's range, retrying with back-off.
    pub(super) async fn prepare_address(&mut self) -> Option<Interrupt> {
        let mut backoff = Backoff::default();
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
                    let delay = backoff.next_delay().max(Duration::from_secs(1));
                    if let Some(i) = self.pause(delay).await {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Creates the pod's cgroup with the container's limits. A limit that does not parse
    /// fails the pod; a machine without usable cgroups runs it unconfined, with a Warning.
    pub(super) async fn prepare_cgroup(&mut self) -> Option<Interrupt> {
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

    /// Waits `delay` before the next attempt, unless the pod is deleted meanwhile.
    async fn retry_after(&mut self, delay: Duration) -> Started {
        match self.pause(delay).await {
            Some(i) => Started::Interrupted(i, None),
            None => Started::Retry,
        }
    }

    /// Pulls the image and starts the sandbox, waiting until it listens or ends.
    pub(super) async fn pull_and_start(
        &mut self,
        pull_backoff: &mut Backoff,
        crash_backoff: &mut Backoff,
    ) -> Started {
        let Some(pod) = self.pod() else {
            return Started::Interrupted(Interrupt::Deleted(None), None);
        };
        let Some(spec) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .cloned()
        else {
            return Started::Interrupted(self.wait_for_deletion().await, None);
        };
        let image = spec.image.clone().unwrap_or_default();
        let cname = spec.name.clone();
        self.event(
            Some(&cname),
            Kind::Normal,
            "Pulling",
            &format!("Pulling image {image:?}"),
        )
        .await;
        let credentials =
            crate::image::pull_secret_credentials(&self.shared.client, &pod, &image).await;
        let policy = crate::image::policy(&spec);
        let pulled =
            match crate::image::pull(&image, &self.shared.config.cache_dir(), policy, credentials)
                .await
            {
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
                    // A pull that can succeed later backs off; a bad name or a `Never`
                    // policy keeps its reason, as the kubelet shows them.
                    if e.retries() {
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
                    }
                    return self.retry_after(delay).await;
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
        // Compiled here, once per content and off the async runtime, rather than by each
        // sandbox as it starts; a failure is logged there and the sandbox compiles.
        self.shared
            .precompiler
            .precompile(&pulled.pinned, pulled.wasm.clone())
            .await;

        let ctx = crate::env::Context {
            pod_ip: self.view.pod_ip.as_deref().unwrap_or_default(),
            host_ip: &self.shared.host_ip,
            allocatable: self.shared.allocatable,
        };
        let environment = match crate::env::build(&self.shared.client, &pod, &spec, &ctx).await {
            Ok(e) => e,
            Err(e) => {
                self.container().state = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.to_string()),
                };
                self.write_status().await;
                self.event(
                    Some(&cname),
                    Kind::Warning,
                    "Failed",
                    &format!("Error: {e}"),
                )
                .await;
                return self.retry_after(CONFIG_RETRY).await;
            }
        };
        let volumes = Volumes::new(&sandbox::dir(&self.shared.config.data_dir, &self.uid));
        let ip_text = self.view.pod_ip.clone().unwrap_or_default();
        let mounts = match volumes.refresh(&self.shared.client, &pod, &ip_text).await {
            Ok(()) => volumes.mounts(&pod, &spec),
            Err(e) => Err(e),
        };
        let mounts = match mounts {
            Ok(m) => m,
            Err(e) => {
                self.event(None, Kind::Warning, "FailedMount", &e.to_string())
                    .await;
                return self.retry_after(CONFIG_RETRY).await;
            }
        };
        let port = spec
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(DEFAULT_PORT);
        let Some(ip) = self.ip else {
            return Started::Interrupted(Interrupt::Deleted(None), None);
        };
        let mut sandbox = match self.spawn(
            &pod,
            &spec,
            &pulled.pinned,
            SocketAddr::from((ip, port)),
            environment,
            mounts,
        ) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("Error: cannot start the sandbox: {e}");
                self.event(Some(&cname), Kind::Warning, "Failed", &msg)
                    .await;
                let delay = crash_backoff.next_delay().max(BACKOFF_INITIAL);
                return self.retry_after(delay).await;
            }
        };
        self.event(
            Some(&cname),
            Kind::Normal,
            "Created",
            &format!("Created container {cname}"),
        )
        .await;
        let outcome = tokio::select! {
            ready = sandbox.ready() => Ok(ready.err()),
            i = self.until_deleted() => Err(i),
        };
        match outcome {
            Err(i) => Started::Interrupted(i, Some(sandbox)),
            Ok(Some(exit)) => Started::Exited(sandbox, exit),
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
                    ready: !crate::probe::gates_readiness(&spec),
                    ..self.view.containers[0].clone()
                };
                self.write_status().await;
                Started::Running(sandbox)
            }
        }
    }

    /// Spawns the sandbox of `spec` serving `app` on `listen`.
    fn spawn(
        &self,
        pod: &Pod,
        spec: &k8s_openapi::api::core::v1::Container,
        app: &str,
        listen: SocketAddr,
        (env, variables): (Vec<(String, String)>, Vec<String>),
        mounts: crate::volumes::Mounted,
    ) -> std::io::Result<Sandbox> {
        let config = &self.shared.config;
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let dir = sandbox::dir(&config.data_dir, &self.uid);
        let (ready_file, termination_log, state_dir) = sandbox::paths(&dir);
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
            mounts: mounts.preopens,
            runtime_config: mounts.runtime_config,
            ca_bundle: mounts.ca_bundle,
            log_rotation: config.log_rotation,
        };
        Sandbox::spawn(
            &config.sandbox_program,
            &config.sandbox_args,
            &dir,
            &options,
        )
    }
}
