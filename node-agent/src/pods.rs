//! The pods bound to this node: one watch of pods with `spec.nodeName=<node>` (a list,
//! then changes, re-listed after errors, through kube-runtime's watcher), and one worker
//! per pod uid ([`crate::pod`]), fed the pod's latest version through a watch channel.
//!
//! Owns the set of workers; a pod that disappears from the API (or from a re-list) is
//! sent `None`, which stops its worker. After the first list, the sandboxes an earlier
//! run of the agent left for pods that are gone are stopped; the others are adopted by
//! their pods' workers ([`crate::pod`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cgroup::PodCgroup;
use crate::events::Recorder;
use crate::network::PodNetwork;
use crate::pod::Shared;
use crate::sandbox::Sandbox;
use crate::AgentConfig;

struct Entry {
    tx: watch::Sender<Option<Arc<Pod>>>,
    handle: JoinHandle<()>,
}

/// Stops the sandboxes an earlier run of the agent left for pods this node no longer has
/// (the others are adopted by their pods' workers), and frees their address and cgroup.
async fn stop_orphans(shared: &Shared, workers: &HashMap<String, Entry>) {
    let root = shared.config.data_dir.join("sandboxes");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if workers.contains_key(&uid) {
            continue;
        }
        let dir = entry.path();
        if let Some(mut sandbox) = Sandbox::adopt(&dir, String::new()) {
            tracing::info!(pid = sandbox.pid, %uid, "stopping the sandbox of a pod this node no longer has");
            sandbox.stop(Duration::ZERO).await;
        }
        if let Ok(spec) = crate::sandbox_process::read_spec(&dir.join("spec.json")) {
            if let std::net::IpAddr::V4(ip) = spec.listen.ip() {
                shared.network.release(ip).await;
            }
            if let Some(cgroup) = spec.cgroup.as_deref().and_then(PodCgroup::open) {
                cgroup.delete();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Watches this node's pods and runs a worker for each until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: Arc<AgentConfig>,
    network: Arc<PodNetwork>,
    host_ip: IpAddr,
    allocatable: (u64, u64),
    precompiler: crate::image::precompile::Precompiler,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        recorder: Recorder::new(client.clone(), &config.node_name),
        client: client.clone(),
        config: config.clone(),
        network,
        host_ip: host_ip.to_string(),
        allocatable,
        precompiler,
    });
    let pods: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut stream = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    let mut orphans_stopped = false;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            e = stream.next() => e,
        };
        let Some(event) = event else { break };
        workers.retain(|_, e| !e.handle.is_finished());
        match event {
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(seen), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                apply(&shared, &mut workers, pod, &shutdown);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = listed.take() {
                    for (uid, entry) in &workers {
                        if !seen.contains(uid) {
                            let _ = entry.tx.send(None);
                        }
                    }
                }
                if !orphans_stopped {
                    stop_orphans(&shared, &workers).await;
                    orphans_stopped = true;
                }
            }
            Ok(watcher::Event::Apply(pod)) => apply(&shared, &mut workers, pod, &shutdown),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(entry) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    let _ = entry.tx.send(None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "watching this node's pods"),
        }
    }
    for (_, entry) in workers {
        let _ = entry.handle.await;
    }
}

fn apply(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, Entry>,
    pod: Pod,
    shutdown: &CancellationToken,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(entry) = workers.get(&uid) {
        entry.tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let handle = tokio::spawn(crate::pod::run(shared.clone(), rx, shutdown.clone()));
    workers.insert(uid, Entry { tx, handle });
}
