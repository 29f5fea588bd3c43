//! SpinApps end to end against the real release server in a network namespace: how long
//! a SpinApp takes from its create (what `kubectl apply` sends) to the first 200 from its
//! pod, image cached — through the SpinApp controller, the Deployment and ReplicaSet
//! controllers, the scheduler and the node agent; how long 100 SpinApps created at once
//! take until every one reports a ready replica; and what the server and the sandboxes
//! cost idle with them all running (CPU over 30 s, PSS).
//!
//! Run (as root: pod addresses need a network namespace):
//! `cargo build --release && cargo bench -p integration --bench spinapps`.
//! `SPINLET_BENCH_APPS` sets how many apps the one-at-a-time run starts (default 9, so
//! that with the warm-up and the burst the node holds its 110 pods);
//! `SPINLET_BENCH_BURST` the burst (default 100).

#[path = "../tests/common/mod.rs"]
mod common;
mod measure;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::pods::{PodEnv, HELLO_IMAGE};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use measure::{cpu_ticks, pss_kib, summary, ticks_per_second, until_serving};

const APP_LABEL: &str = "core.spinkube.dev/app-name";

fn spinapp(name: &str) -> DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp",
        "metadata": {"name": name},
        "spec": {"image": HELLO_IMAGE, "replicas": 1, "executor": "containerd-shim-spin"},
    }))
    .expect("spinapp")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates the SpinApp `name` and waits for its pod to be Ready and serve; returns
/// (create → pod Ready, create → first 200) in ms.
async fn one_app(apps: &Api<DynamicObject>, pods: &Api<Pod>, name: &str) -> (f64, f64) {
    let selector = format!("{APP_LABEL}={name}");
    let mut events = watcher(pods.clone(), watcher::Config::default().labels(&selector))
        .applied_objects()
        .boxed();
    let start = Instant::now();
    apps.create(&PostParams::default(), &spinapp(name))
        .await
        .expect("create spinapp");
    let mut found = None;
    while let Some(Ok(p)) = events.next().await {
        if ready(&p) {
            found = Some((Instant::now(), p.status.and_then(|s| s.pod_ip)));
            break;
        }
    }
    let (ready_at, ip) = found.expect("the app's pod turns ready");
    let addr: SocketAddr = format!("{}:80", ip.expect("a pod IP"))
        .parse()
        .expect("pod address");
    let serving = tokio::task::spawn_blocking(move || until_serving(addr, Duration::from_secs(60)))
        .await
        .expect("probe")
        .expect("the pod serves");
    (
        (ready_at - start).as_secs_f64() * 1e3,
        (serving - start).as_secs_f64() * 1e3,
    )
}

/// When each burst app's pod was first seen, bound to the node, running and Ready (ms
/// since the creates began): where the burst's time goes.
#[derive(Default)]
struct BurstPhases {
    seen: std::collections::HashMap<String, f64>,
    bound: std::collections::HashMap<String, f64>,
    running: std::collections::HashMap<String, f64>,
    ready: std::collections::HashMap<String, f64>,
}

impl BurstPhases {
    fn saw(&mut self, app: String, p: &Pod, at: f64) {
        self.seen.entry(app.clone()).or_insert(at);
        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
            self.bound.entry(app.clone()).or_insert(at);
        }
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            self.running.entry(app.clone()).or_insert(at);
        }
        if ready(p) {
            self.ready.entry(app).or_insert(at);
        }
    }

    fn print(&self) {
        let values = |m: &std::collections::HashMap<String, f64>| m.values().copied().collect();
        summary(
            "burst: pod created (since creates began)",
            values(&self.seen),
        );
        summary("burst: pod bound", values(&self.bound));
        summary("burst: pod Running", values(&self.running));
        summary("burst: pod Ready", values(&self.ready));
    }
}

fn main() {
    let count: usize = std::env::var("SPINLET_BENCH_APPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(9);
    let burst: usize = std::env::var("SPINLET_BENCH_BURST")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let Some(env) = PodEnv::start("spinapps-bench", &[]) else {
        eprintln!("skipping: needs root for a network namespace");
        return;
    };
    let netns = std::fs::File::open(format!("/run/netns/{}", env.ns.0)).expect("netns file");
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let gvk = GroupVersionKind::gvk("core.spinkube.dev", "v1alpha1", "SpinApp");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "spinapps");

    let (to_ready, to_serving, burst_ms, burst_ready) = runtime.block_on(async {
        let client = env.server.client().await;
        let apps: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        // The default executor exists once the controllers started.
        let executors = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("core.spinkube.dev", "v1alpha1", "SpinAppExecutor"),
            "spinappexecutors",
        );
        let executors: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &executors);
        while executors
            .get_opt("containerd-shim-spin")
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Warm-up: the first app pulls and compiles into the agent's cache.
        one_app(&apps, &pods, "warmup").await;
        let mut to_ready = Vec::new();
        let mut to_serving = Vec::new();
        for i in 0..count {
            let (r, s) = one_app(&apps, &pods, &format!("seq-{i}")).await;
            to_ready.push(r);
            to_serving.push(s);
        }

        // The burst: every app created at once; done when each has a Ready pod.
        let mut events = watcher(pods.clone(), watcher::Config::default())
            .applied_objects()
            .boxed();
        let start = Instant::now();
        let creates = (0..burst).map(|i| {
            let apps = apps.clone();
            async move {
                apps.create(&PostParams::default(), &spinapp(&format!("burst-{i}")))
                    .await
                    .expect("create spinapp")
            }
        });
        futures::future::join_all(creates).await;
        let created_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut phases = BurstPhases::default();
        let deadline = start + Duration::from_secs(300);
        while phases.ready.len() < burst && Instant::now() < deadline {
            let next = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
            let Ok(Some(Ok(p))) = next else { continue };
            let app = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(APP_LABEL))
                .cloned()
                .unwrap_or_default();
            if app.starts_with("burst-") {
                phases.saw(app, &p, start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let burst_ms = start.elapsed().as_secs_f64() * 1e3;
        println!("burst: the {burst} creates answered {created_ms:.0} ms after they began");
        phases.print();
        (to_ready, to_serving, burst_ms, phases.ready.len())
    });

    // Idle with every app running, once the burst's aftermath (statuses, endpoints,
    // Events written after the pods turned Ready) has settled.
    let settle = Duration::from_secs(20);
    std::thread::sleep(settle);
    let sandboxes_dir = env.server.data_dir.join("agent/sandboxes");
    let pids: Vec<u32> = std::fs::read_dir(&sandboxes_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let server_pid = env.server.pid().expect("server pid");
    let window = Duration::from_secs(30);
    let before = (
        cpu_ticks(server_pid),
        pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>(),
    );
    std::thread::sleep(window);
    let after = (
        cpu_ticks(server_pid),
        pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>(),
    );
    let percent = |ticks: u64| ticks as f64 / ticks_per_second() / window.as_secs_f64() * 100.0;
    let server_kib = pss_kib(server_pid).unwrap_or(0) as f64;
    let sandbox_kib: f64 = pids
        .iter()
        .filter_map(|p| pss_kib(*p))
        .map(|k| k as f64)
        .sum();

    runtime.block_on(async {
        let client = env.server.client().await;
        let apps: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
        let _ = apps
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await;
    });
    println!(
        "machine: {} cores; {count} SpinApps one after another, then {burst} at once; all left running",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    summary("SpinApp create → pod Ready", to_ready);
    summary("SpinApp create → first 200 from its pod", to_serving);
    println!(
        "burst: {burst_ready}/{burst} SpinApps with a Ready pod {burst_ms:.0} ms after the creates began"
    );
    println!(
        "idle over {} s ({} s after the burst) with {} apps running: server {:.2} % of a core, sandboxes {:.2} % together; PSS server {:.1} MiB + sandboxes {:.1} MiB = {:.1} MiB",
        window.as_secs(),
        settle.as_secs(),
        pids.len(),
        percent(after.0 - before.0),
        percent(after.1 - before.1),
        server_kib / 1024.0,
        sandbox_kib / 1024.0,
        (server_kib + sandbox_kib) / 1024.0,
    );
}
