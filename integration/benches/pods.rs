//! Pods on the node agent, end to end against the real release server in a network
//! namespace: how long a pod bound to the node (image cached) takes to be Ready and to
//! serve its first request, and what each running hello pod costs in memory (PSS of the
//! agent's share plus its sandbox). The baseline, measured in the same run, is the bare
//! runtime: `spinlet run <same image>` from spawn to its first 200, which is the floor a
//! sandbox start cannot beat.
//!
//! Run (as root: pod addresses need a network namespace):
//! `cargo build --release && cargo bench -p integration --bench pods`.
//! `SPINLET_BENCH_PODS` sets how many pods start and stay running (default 50).
//!
//! With the pods running it also measures the idle CPU of the server and of the
//! sandboxes over 30 s, and the time a restarted server (SIGKILL, then start) takes to
//! re-adopt every sandbox.

#[path = "../tests/common/mod.rs"]
mod common;
mod measure;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::pods::{PodEnv, HELLO_IMAGE, NODE};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use measure::{cpu_ticks, percentile, pss_kib, summary, ticks_per_second, until_serving};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "app", "image": HELLO_IMAGE}],
        },
    }))
    .expect("pod")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `spinlet run <image>` from spawn to its first 200, `n` times, the first not counted.
///
/// The first run fills the compile cache with Cranelift's code, as the agent does at
/// pull time for a pod: `SPINLET_FAST_TIER=off` compiles and stores it before serving.
/// With the fast tier, a run stopped right after its first answer stored nothing
/// (Winch's code is stored, and Cranelift's compiled, in the background), so every
/// later run compiled again: a p50 of 79.5 ms in one run of session 29, 31–35 ms in two
/// others.
fn baseline(env: &PodEnv, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..n {
        let port = 18000 + i as u16;
        let listen = format!("127.0.0.1:{port}");
        let cache = env.scratch.path().join("baseline-cache");
        let start = Instant::now();
        let mut cmd = env.ns.cmd(&common::spinlet_bin().to_string_lossy());
        if i == 0 {
            cmd.env("SPINLET_FAST_TIER", "off");
        }
        let mut child = cmd
            .args(["run", HELLO_IMAGE, "--listen", &listen, "--cache-dir"])
            .arg(&cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spinlet run");
        let addr: SocketAddr = listen.parse().expect("addr");
        let served = until_serving(addr, Duration::from_secs(120));
        let _ = child.kill();
        let _ = child.wait();
        // The first run compiles into the cache; it is a cold start, not the baseline.
        if let (Some(t), true) = (served, i > 0) {
            out.push((t - start).as_secs_f64() * 1e3);
        }
    }
    out
}

fn main() {
    let count: usize = std::env::var("SPINLET_BENCH_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let Some(mut env) = PodEnv::start("bench", &[]) else {
        eprintln!("skipping: needs root for a network namespace");
        return;
    };
    // This thread (and the runtime's threads it starts) join the pods' namespace, where
    // the server, the registry and the pod addresses are.
    let netns = std::fs::File::open(format!("/run/netns/{}", env.ns.0)).expect("netns file");
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");

    let base = baseline(&env, 11);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (to_ready, to_serving, pss, names) = runtime.block_on(async {
        let client = env.server.client().await;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        // Warm-up: the first pod pulls and compiles into the agent's cache.
        let mut names = vec!["warmup".to_string()];
        let mut to_ready = Vec::new();
        let mut to_serving = Vec::new();
        for i in 0..=count {
            let name = if i == 0 {
                "warmup".to_string()
            } else {
                format!("bench-{i}")
            };
            let fields = format!("metadata.name={name}");
            let mut events = watcher(pods.clone(), watcher::Config::default().fields(&fields))
                .applied_objects()
                .boxed();
            let start = Instant::now();
            pods.create(&PostParams::default(), &pod(&name))
                .await
                .expect("create pod");
            let mut ready_at = None;
            let mut ip = None;
            while let Some(Ok(p)) = events.next().await {
                if ready(&p) {
                    ready_at = Some(Instant::now());
                    ip = p.status.and_then(|s| s.pod_ip);
                    break;
                }
            }
            let ip = ip.expect("a ready pod has an IP");
            let addr: SocketAddr = format!("{ip}:80").parse().expect("pod addr");
            let serving = until_serving(addr, Duration::from_secs(60)).expect("pod serves");
            if i > 0 {
                names.push(name);
                to_ready.push((ready_at.expect("ready") - start).as_secs_f64() * 1e3);
                to_serving.push((serving - start).as_secs_f64() * 1e3);
            }
        }
        // Memory of the running pods: every sandbox's PSS, plus the whole server's
        // (API server, controllers and agent) spread over the pods.
        let sandboxes = env.server.data_dir.join("agent/sandboxes");
        let mut sandbox_kib = Vec::new();
        for entry in std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
        {
            let pid = std::fs::read_to_string(entry.path().join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(kib) = pid.and_then(pss_kib) {
                sandbox_kib.push(kib as f64);
            }
        }
        let server_kib = env.server.pid().and_then(pss_kib).unwrap_or(0) as f64;
        (to_ready, to_serving, (sandbox_kib, server_kib), names)
    });
    let (sandbox_kib, server_kib) = pss;

    // Idle cost with every pod running: the server's CPU (API server, scheduler, agent:
    // Lease and Node heartbeats, pod workers) and the sandboxes' together, over 30 s.
    let sandboxes_dir = env.server.data_dir.join("agent/sandboxes");
    let sandbox_pids = || -> Vec<u32> {
        std::fs::read_dir(&sandboxes_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("pid")).ok())
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    };
    let server_pid = env.server.pid().expect("server pid");
    let pids = sandbox_pids();
    let window = Duration::from_secs(30);
    let (server_before, sandboxes_before) = (
        cpu_ticks(server_pid),
        pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>(),
    );
    std::thread::sleep(window);
    let (server_after, sandboxes_after) = (
        cpu_ticks(server_pid),
        pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>(),
    );
    let percent = |ticks: u64| ticks as f64 / ticks_per_second() / window.as_secs_f64() * 100.0;

    // Re-adoption: SIGKILL the server and start it again; time until every sandbox is
    // adopted again (the agent logs each).
    let adopted_before = env
        .server
        .log()
        .matches("re-adopted the pod's sandbox")
        .count();
    env.server.kill();
    let restart = Instant::now();
    env.server.boot();
    let api_up = restart.elapsed();
    let expected = adopted_before + pids.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while env
        .server
        .log()
        .matches("re-adopted the pod's sandbox")
        .count()
        < expected
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let all_adopted = restart.elapsed();
    let adopted = env
        .server
        .log()
        .matches("re-adopted the pod's sandbox")
        .count()
        - adopted_before;
    let same_pids = sandbox_pids().iter().filter(|p| pids.contains(p)).count();

    runtime.block_on(async {
        let client = env.server.client().await;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        for name in &names {
            let _ = pods.delete(name, &DeleteParams::default()).await;
        }
    });
    println!(
        "machine: {} cores; {count} pods started one after another, each left running",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    summary("baseline: spinlet run → first 200", base);
    summary("pod create (bound) → Ready", to_ready);
    summary("pod create (bound) → first 200", to_serving);
    let n = sandbox_kib.len().max(1) as f64;
    let mut sorted = sandbox_kib.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "memory: {} sandboxes, PSS per sandbox p50={:.1} MiB max={:.1} MiB; server PSS {:.1} MiB; per pod (sandbox + server share) {:.1} MiB",
        sandbox_kib.len(),
        percentile(&sorted, 0.5) / 1024.0,
        sorted.last().copied().unwrap_or(0.0) / 1024.0,
        server_kib / 1024.0,
        (sandbox_kib.iter().sum::<f64>() + server_kib) / n / 1024.0,
    );
    println!(
        "idle over {} s with {} pods running: server {:.2} % of a core, all sandboxes {:.2} % ({:.3} % each)",
        window.as_secs(),
        pids.len(),
        percent(server_after - server_before),
        percent(sandboxes_after - sandboxes_before),
        percent(sandboxes_after - sandboxes_before) / pids.len().max(1) as f64,
    );
    println!(
        "re-adoption after SIGKILL of the server: API up in {:.0} ms, {adopted}/{} sandboxes adopted in {:.0} ms ({same_pids} kept their pid)",
        api_up.as_secs_f64() * 1e3,
        pids.len(),
        all_adopted.as_secs_f64() * 1e3,
    );
}
