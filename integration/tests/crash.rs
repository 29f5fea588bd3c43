//! Crash test: concurrent writers create ConfigMaps as fast as they can while the server
//! is killed with SIGKILL at random moments and restarted on the same data dir, many
//! times. After every restart, every create that got a 2xx reply must be there with the
//! resourceVersion it was acknowledged with, the list resourceVersion must not be behind
//! any acknowledged (or previously observed) one, and a new write must get a higher one.
//!
//! `SPINLET_CRASH_CYCLES` sets the number of kill/restart cycles (default 15).
//! Run `cargo build` first: the harness starts `target/<profile>/spinlet`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;

const NAMESPACE: &str = "crash";
const WRITERS: usize = 8;
const DEFAULT_CYCLES: usize = 15;

fn cycles() -> usize {
    std::env::var("SPINLET_CRASH_CYCLES")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("SPINLET_CRASH_CYCLES={v:?} is not a number"))
        })
        .unwrap_or(DEFAULT_CYCLES)
}

fn rv_num(rv: Option<String>) -> u64 {
    let rv = rv.expect("resourceVersion set");
    rv.parse()
        .unwrap_or_else(|_| panic!("resourceVersion {rv:?} is not a number"))
}

fn configmap(name: &str, writer: usize, cycle: usize, seq: usize) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.data = Some(BTreeMap::from([
        ("writer".to_string(), writer.to_string()),
        ("cycle".to_string(), cycle.to_string()),
        ("seq".to_string(), seq.to_string()),
    ]));
    c
}

/// What the writers of one cycle saw.
#[derive(Default)]
struct Outcome {
    /// Acknowledged creates: name → resourceVersion in the reply.
    acked: Vec<(String, u64)>,
    /// Error replies from a live server (a create with a fresh name must not fail).
    api_errors: Vec<String>,
}

/// Creates ConfigMaps named `w<writer>-c<cycle>-<seq>` until a request fails (the server
/// died), recording every acknowledged one.
async fn writer(client: Client, writer: usize, cycle: usize, out: Arc<Mutex<Outcome>>) {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let pp = PostParams::default();
    for seq in 0.. {
        let name = format!("w{writer}-c{cycle}-{seq}");
        match api.create(&pp, &configmap(&name, writer, cycle, seq)).await {
            Ok(created) => {
                assert_eq!(created.name_any(), name);
                let rv = rv_num(created.resource_version());
                out.lock().expect("lock").acked.push((name, rv));
            }
            Err(kube::Error::Api(s)) => {
                out.lock().expect("lock").api_errors.push(format!(
                    "create {name}: {} {}: {}",
                    s.code, s.reason, s.message
                ));
                return;
            }
            // Transport errors: the server was killed.
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let started = Instant::now();
    let cycles = cycles();
    let mut server = Server::start();
    {
        let client = server.client().await;
        let mut ns = Namespace::default();
        ns.metadata.name = Some(NAMESPACE.to_string());
        Api::<Namespace>::all(client)
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }

    // name → acknowledged resourceVersion, over all cycles
    let mut acked: HashMap<String, u64> = HashMap::new();
    // every resourceVersion seen so far: acknowledged creates, lists, fresh creates
    let mut highest_seen = 0u64;
    let mut per_cycle = Vec::new();
    let mut rng = rand::rng();

    for cycle in 0..cycles {
        // Writers, each with its own client (and connections).
        let out = Arc::new(Mutex::new(Outcome::default()));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let client = server.client().await;
            tasks.push(tokio::spawn(writer(client, w, cycle, out.clone())));
        }
        let delay = Duration::from_millis(rng.random_range(50..=400));
        tokio::time::sleep(delay).await;
        server.kill();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("a writer hung after the server was killed")
                .expect("writer task panicked");
        }
        let out = std::mem::take(&mut *out.lock().expect("lock"));
        assert!(
            out.api_errors.is_empty(),
            "cycle {cycle}: the live server failed creates: {:?}",
            out.api_errors
        );
        let cycle_max = out.acked.iter().map(|(_, rv)| *rv).max().unwrap_or(0);
        for (name, rv) in &out.acked {
            assert!(
                *rv > highest_seen,
                "cycle {cycle}: {name} was acknowledged with resourceVersion {rv}, not above \
                 {highest_seen} seen before the last restart (revisions went backwards)"
            );
        }
        for (name, rv) in &out.acked {
            if let Some(prev) = acked.insert(name.clone(), *rv) {
                panic!("{name} acknowledged twice ({prev}, {rv})");
            }
        }
        highest_seen = highest_seen.max(cycle_max);
        let mut rvs: Vec<u64> = acked.values().copied().collect();
        rvs.sort_unstable();
        let before = rvs.len();
        rvs.dedup();
        assert_eq!(
            rvs.len(),
            before,
            "cycle {cycle}: two acknowledged creates share a resourceVersion"
        );

        // Restart on the same data dir.
        server.boot();
        let client = server.client().await;
        let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);

        // Every acknowledged write of this cycle, by name.
        let checks = futures::stream::iter(out.acked.iter().cloned())
            .map(|(name, rv)| {
                let api = api.clone();
                async move { (api.get_opt(&name).await, name, rv) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (got, name, rv) in checks {
            let got = got.unwrap_or_else(|e| panic!("cycle {cycle}: GET {name}: {e}"));
            let got = got.unwrap_or_else(|| {
                panic!(
                    "cycle {cycle}: acknowledged create {name} (resourceVersion {rv}) lost after \
                     SIGKILL; server log:\n{}",
                    server.log()
                )
            });
            assert_eq!(
                rv_num(got.resource_version()),
                rv,
                "cycle {cycle}: {name} has a different resourceVersion than acknowledged"
            );
        }

        // Every acknowledged write of every cycle, in one list.
        let list = api.list(&ListParams::default()).await.expect("list");
        let list_rv = rv_num(list.metadata.resource_version.clone());
        assert!(
            list_rv >= highest_seen,
            "cycle {cycle}: list resourceVersion {list_rv} is behind {highest_seen} \
             (acknowledged or observed before the restart)"
        );
        let listed: HashMap<String, u64> = list
            .items
            .iter()
            .map(|c| (c.name_any(), rv_num(c.resource_version())))
            .collect();
        for (name, rv) in &acked {
            assert_eq!(
                listed.get(name),
                Some(rv),
                "cycle {cycle}: acknowledged {name} (resourceVersion {rv}) missing or changed \
                 in the list after restart"
            );
        }
        for c in &list.items {
            let rv = rv_num(c.resource_version());
            assert!(
                rv <= list_rv,
                "cycle {cycle}: {} has resourceVersion {rv} above the list's {list_rv}",
                c.name_any()
            );
        }
        highest_seen = highest_seen.max(list_rv);

        // A fresh write gets a revision above everything acknowledged before.
        let name = format!("fresh-c{cycle}");
        let fresh = api
            .create(&PostParams::default(), &configmap(&name, 99, cycle, 0))
            .await
            .expect("create after restart");
        let fresh_rv = rv_num(fresh.resource_version());
        assert!(
            fresh_rv > highest_seen,
            "cycle {cycle}: create after restart got resourceVersion {fresh_rv}, not above \
             {highest_seen}"
        );
        acked.insert(name, fresh_rv);
        highest_seen = fresh_rv;
        per_cycle.push((delay.as_millis(), out.acked.len()));
    }

    let total: usize = per_cycle.iter().map(|(_, n)| n).sum();
    eprintln!(
        "crash test: {cycles} SIGKILL cycles, {total} acknowledged creates from {WRITERS} \
         writers, all present after restart, in {:.1?}; (kill delay ms, acks) per cycle: \
         {per_cycle:?}",
        started.elapsed()
    );
    assert!(
        total > 0,
        "no create was ever acknowledged: the test proved nothing"
    );
}
