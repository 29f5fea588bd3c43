//! `kubectl apply` of a 20-object manifest end to end against the real release server:
//! first apply (create), unchanged re-apply and changed re-apply, each compared with the
//! same run's `kubectl get -f` of those objects (the kubectl + TLS + discovery floor).
//!
//! Run: `cargo build --release && cargo bench -p integration --bench kubectl_apply`.
//! `SPINLET_BENCH_REPEATS` sets the repeats per case (default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Server;

/// 10 ConfigMaps, 5 Services and 5 Deployments; `variant` changes every object.
fn manifest(variant: u32) -> String {
    let mut docs = Vec::new();
    for i in 0..10 {
        docs.push(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm{i}, labels: {{bench: apply}}}}\ndata: {{key: \"v{variant}\", other: \"x\"}}\n"
        ));
    }
    for i in 0..5 {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, labels: {{bench: apply}}}}\nspec:\n  selector: {{app: web{i}}}\n  ports: [{{port: 80, targetPort: {}}}]\n",
            8080 + variant
        ));
        docs.push(format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web{i}, labels: {{bench: apply}}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web{i}}}}}\n  template:\n    metadata: {{labels: {{app: web{i}}}}}\n    spec:\n      containers:\n      - name: web\n        image: registry.local/web:{variant}\n        env: [{{name: VARIANT, value: \"{variant}\"}}]\n        ports: [{{containerPort: 8080}}]\n"
        ));
    }
    docs.join("---\n")
}

fn time_kubectl(s: &Server, args: &[&str], file: &std::path::Path, expect: &str) -> Duration {
    let start = Instant::now();
    let out = s
        .kubectl_cmd()
        .args(args)
        .arg("-f")
        .arg(file)
        .output()
        .expect("run kubectl");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(expect),
        "kubectl {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (String, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    (
        format!(
            "{name:<28} median {median:>8.1} ms   min {:>8.1}   max {:>8.1}   (n={})",
            ms(samples[0]),
            ms(samples[samples.len() - 1]),
            samples.len()
        ),
        median,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repeats: usize = std::env::var("SPINLET_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let s = Server::start();
    let dir = s.dir.path().to_path_buf();
    let files: Vec<std::path::PathBuf> = (0..2)
        .map(|v| {
            let p = dir.join(format!("manifest-{v}.yaml"));
            std::fs::write(&p, manifest(v)).expect("write manifest");
            p
        })
        .collect();
    // Warm kubectl's discovery and OpenAPI caches.
    s.kubectl(&["create", "namespace", "warm"]);
    time_kubectl(&s, &["apply", "-n", "warm"], &files[0], "created");

    let (mut get, mut create, mut unchanged, mut changed) = (vec![], vec![], vec![], vec![]);
    for r in 0..repeats {
        let ns = format!("bench{r}");
        s.kubectl(&["create", "namespace", &ns]);
        create.push(time_kubectl(
            &s,
            &["apply", "-n", &ns],
            &files[0],
            "created",
        ));
        get.push(time_kubectl(&s, &["get", "-n", &ns], &files[0], "cm0"));
        unchanged.push(time_kubectl(
            &s,
            &["apply", "-n", &ns],
            &files[0],
            "unchanged",
        ));
        changed.push(time_kubectl(
            &s,
            &["apply", "-n", &ns],
            &files[1],
            "configured",
        ));
    }
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default();
    println!(
        "kubectl apply of 20 objects (10 ConfigMaps, 5 Services, 5 Deployments); {} CPUs, {cpus}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (line, base) = summary("baseline: kubectl get -f", get);
    println!("{line}");
    for (name, samples) in [
        ("apply (create)", create),
        ("apply (unchanged)", unchanged),
        ("apply (changed)", changed),
    ] {
        let (line, median) = summary(name, samples);
        println!("{line}   = {:.2}x baseline", median / base);
    }
}
