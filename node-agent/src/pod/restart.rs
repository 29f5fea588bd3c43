//! The run loop: start the container (or carry on with an adopted one), probe it
//! (readiness drives Ready; a failed liveness or startup probe restarts it, with
//! `Unhealthy` and `Killing` events), wait for it to end or for the pod's deletion,
//! record the exit (`OOMKilled` from the cgroup) and act
//! on `restartPolicy`: restart at once the first time, then after the kubelet's back-off
//! (`CrashLoopBackOff` meanwhile), or end the pod Succeeded/Failed.

use k8s_openapi::api::core::v1::Pod;

use super::start::Started;
use super::{Backoff, Interrupt, Worker, BACKOFF_RESET};
use crate::cgroup::PodCgroup;
use crate::events::Kind;
use crate::probe::{Prober, Report};
use crate::sandbox::{self, Exit, Sandbox};
use crate::volumes::Volumes;

/// How often a running pod's API-backed volumes are brought up to date: the kubelet's
/// default `syncFrequency` (1 minute). Each refresh reads the pod's Secrets and
/// ConfigMaps from the API; every 10 s was most of an idle node's API traffic with 100
/// pods.
const VOLUME_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);
use crate::status::State;

impl Worker {
    /// Runs the container until the pod is deleted or the agent stops; returns why, and
    /// the sandbox if one still runs. `adopted` is a sandbox an earlier agent started.
    pub(super) async fn drive(
        &mut self,
        mut adopted: Option<Sandbox>,
    ) -> (Interrupt, Option<Sandbox>) {
        if adopted.is_none() {
            if let Some(i) = self.prepare_address().await {
                return (i, None);
            }
            if let Some(i) = self.prepare_cgroup().await {
                return (i, None);
            }
        }
        self.oom_seen = self.cgroup.as_ref().map_or(0, PodCgroup::oom_kills);
        let mut pull_backoff = Backoff::default();
        let mut crash_backoff = Backoff::default();
        loop {
            if let Some(i) = self.deleting() {
                return (i, adopted);
            }
            let (mut sandbox, ended) = match adopted.take() {
                Some(s) => (s, None),
                None => match self
                    .pull_and_start(&mut pull_backoff, &mut crash_backoff)
                    .await
                {
                    Started::Running(s) => (s, None),
                    Started::Exited(s, exit) => (s, Some(exit)),
                    Started::Retry => continue,
                    Started::Interrupted(i, s) => return (i, s),
                },
            };
            let mut exit = match ended {
                Some(exit) => exit,
                None => match self.watch_running(&mut sandbox).await {
                    Ok(exit) => exit,
                    Err(i) => return (i, Some(sandbox)),
                },
            };
            let kills = self.cgroup.as_ref().map_or(0, PodCgroup::oom_kills);
            exit.oom_killed = kills > self.oom_seen;
            self.oom_seen = kills;
            if sandbox.launched.elapsed() >= BACKOFF_RESET {
                crash_backoff.reset();
            }
            let Some(pod) = self.pod() else {
                return (Interrupt::Deleted(None), None);
            };
            let cname = self.view.containers[0].name.clone();
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
    /// Waits for a running container to end (or be ended by a failed liveness or
    /// startup probe), or for the pod's deletion; acts on its probes meanwhile.
    async fn watch_running(&mut self, sandbox: &mut Sandbox) -> Result<Exit, Interrupt> {
        let spec = self
            .pod()
            .and_then(|p| p.spec.as_ref().and_then(|s| s.containers.first()).cloned());
        let (_prober, mut reports) = match (spec, self.ip) {
            (Some(spec), Some(ip)) => {
                let (prober, rx) = Prober::start(spec, ip.into());
                (Some(prober), rx)
            }
            _ => (None, tokio::sync::mpsc::channel(1).1),
        };
        let cname = self.view.containers[0].name.clone();
        let mut reports_done = false;
        let mut refresh = tokio::time::interval(VOLUME_REFRESH);
        refresh.tick().await;
        loop {
            enum Next {
                Refresh,
                Exit(Exit),
                Deleted(Interrupt),
                Report(Option<Report>),
            }
            let next = tokio::select! {
                exit = sandbox.wait() => Next::Exit(exit),
                i = self.until_deleted() => Next::Deleted(i),
                r = reports.recv(), if !reports_done => Next::Report(r),
                _ = refresh.tick() => Next::Refresh,
            };
            match next {
                Next::Refresh => self.refresh_volumes().await,
                Next::Exit(exit) => return Ok(exit),
                Next::Deleted(i) => return Err(i),
                // The prober has nothing more to say (no probes, or done).
                Next::Report(None) => {
                    reports_done = true;
                }
                Next::Report(Some(Report::Failed(kind, message))) => {
                    let msg = format!("{} probe failed: {message}", kind.name());
                    self.event(Some(&cname), Kind::Warning, "Unhealthy", &msg)
                        .await;
                }
                Next::Report(Some(Report::Ready(ready))) => {
                    if self.container().ready != ready {
                        self.container().ready = ready;
                        self.write_status().await;
                    }
                }
                Next::Report(Some(Report::Kill(kind))) => {
                    let msg = format!(
                        "Container {cname} failed {} probe, will be restarted",
                        kind.name().to_ascii_lowercase()
                    );
                    self.event(Some(&cname), Kind::Normal, "Killing", &msg)
                        .await;
                    let grace = self
                        .pod()
                        .map_or(super::DEFAULT_GRACE, |p| super::grace_of(&p));
                    return Ok(sandbox.stop(grace).await);
                }
            }
        }
    }

    /// Rewrites the pod's ConfigMap, Secret and downward-API volumes from the API, as
    /// the kubelet's periodic sync does.
    async fn refresh_volumes(&self) {
        let Some(pod) = self.pod() else { return };
        let volumes = Volumes::new(&sandbox::dir(&self.shared.config.data_dir, &self.uid));
        let ip = self.view.pod_ip.clone().unwrap_or_default();
        if let Err(e) = volumes.refresh(&self.shared.client, &pod, &ip).await {
            tracing::warn!(pod = %self.name, error = %e, "cannot refresh the pod's volumes");
        }
    }

    pub(super) async fn exited(
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
}
