//! The pods bound to this node: one watch of pods with `spec.nodeName=<node>` (a list,
//! then changes, re-listed after errors, through kube-runtime's watcher), and one worker
//! per pod uid ([`crate::pod`]), fed the pod's latest version through a watch channel.
//!
//! Owns the set of workers; a pod that disappears from the API (or from a re-list) is
//! sent `None`, which stops its worker. At start, sandboxes a previous run of the agent
//! left behind are stopped (re-adopting them is not done yet), so their pods start fresh.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::network::PodNetwork;
use crate::pod::Shared;
use crate::AgentConfig;

struct Entry {
    tx: watch::Sender<Option<Arc<Pod>>>,
    handle: JoinHandle<()>,
}

/// Stops sandboxes that an earlier run of the agent left running.
fn stop_leftovers(agent_dir: &Path) {
    let root = agent_dir.join("sandboxes");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let dir = entry.path();
        let pid = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let spec = dir.join("spec.json");
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*spec.to_string_lossy());
            if ours {
                tracing::info!(pid, dir = %dir.display(), "stopping a sandbox left by an earlier run");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
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
    shutdown: CancellationToken,
) {
    stop_leftovers(&config.data_dir);
    let shared = Arc::new(Shared {
        recorder: Recorder::new(client.clone(), &config.node_name),
        client: client.clone(),
        config: config.clone(),
        network,
        host_ip: host_ip.to_string(),
    });
    let pods: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut stream = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
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
