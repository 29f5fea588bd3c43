//! Re-adoption: a restarted agent carries on with the sandbox an earlier run started for
//! a pod, instead of restarting it (as a kubelet finds its containers running after a
//! restart). It is adopted when its process still runs its spec and the pod's status
//! says the container was running with an address; the address, the cgroup, the restart
//! count, `startedAt` and the last state carry on unchanged. A sandbox that cannot be
//! adopted is stopped, and the pod starts afresh.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

use super::Worker;
use crate::cgroup::PodCgroup;
use crate::sandbox::{self, Sandbox};
use crate::status::{self, Container, State};

impl Worker {
    /// The sandbox an earlier agent left running for this pod, if any.
    pub(super) fn leftover(&self) -> Option<Sandbox> {
        let dir = sandbox::dir(&self.shared.config.data_dir, &self.uid);
        Sandbox::adopt(&dir, crate::node::now())
    }

    /// Takes over this pod's running sandbox, or stops a leftover that cannot be taken.
    pub(super) async fn adopt(&mut self, pod: &Pod) -> Option<Sandbox> {
        let mut leftover = self.leftover()?;
        let status = pod.status.as_ref();
        let container = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first());
        let running = container
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref());
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let (Some(container), Some(running), Some(ip)) = (container, running, ip) else {
            tracing::info!(pod = %self.name, pid = leftover.pid, "stopping a sandbox whose pod is not running");
            leftover.stop(std::time::Duration::ZERO).await;
            return None;
        };
        if let Err(e) = self.shared.network.claim(ip).await {
            tracing::warn!(pod = %self.name, error = %e, "cannot take the pod's address back; restarting it");
            leftover.stop(std::time::Duration::ZERO).await;
            return None;
        }
        self.ip = Some(ip);
        self.view.pod_ip = Some(ip.to_string());
        self.cgroup = PodCgroup::open(&crate::cgroup::path_for(status::qos_class(pod), &self.uid));
        let started_at = running
            .started_at
            .as_ref()
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| leftover.started_at.clone());
        leftover.started_at = started_at.clone();
        self.view.phase = "Running";
        self.view.containers[0] = Container {
            name: container.name.clone(),
            image: container.image.clone(),
            image_id: Some(container.image_id.clone()).filter(|i| !i.is_empty()),
            state: State::Running { started_at },
            last: container
                .last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .map(status::from_terminated),
            restart_count: container.restart_count,
            ready: true,
        };
        tracing::info!(pod = %self.name, pid = leftover.pid, "re-adopted the pod's sandbox");
        Some(leftover)
    }
}
