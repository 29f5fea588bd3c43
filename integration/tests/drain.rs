//! Cordon, drain and uncordon with the real kubectl against a real server and agent:
//! `kubectl drain` marks the node unschedulable and evicts its pods through
//! `pods/eviction`; the Deployment's replacements wait Pending until `kubectl uncordon`.
//! In a network namespace the test creates (see `common::pods`).

mod common;

use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv, NODE};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: 127.0.0.1:5000/pod-hello:v1
        ports:
        - containerPort: 8080
"#;

/// `name phase node` of each pod of the Deployment.
fn pods(s: &common::Server) -> Vec<(String, String, String)> {
    s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName}{\"\\n\"}{end}",
    ])
    .lines()
    .filter_map(|l| {
        let mut p = l.split(' ');
        Some((
            p.next()?.to_string(),
            p.next().unwrap_or("").to_string(),
            p.next().unwrap_or("").to_string(),
        ))
    })
    .collect()
}

#[test]
fn drain_evicts_and_uncordon_lets_pods_back() {
    let Some(env) = PodEnv::start("drain", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let before: Vec<String> = pods(s).into_iter().map(|p| p.0).collect();
    assert_eq!(before.len(), 2);
    // The controller's events (events.k8s.io, from kube-runtime's recorder) show where
    // kubectl looks for them (core/v1).
    let described = s.kubectl(&["describe", "deploy", "web"]);
    assert!(
        described.contains("ScalingReplicaSet") && described.contains("Scaled up replica set"),
        "{described}"
    );

    let out = s.kubectl_output(
        &["drain", NODE, "--ignore-daemonsets", "--timeout=180s"],
        None,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", state(s));
    assert!(text.contains("cordoned"), "{text}");
    for p in &before {
        assert!(text.contains(&format!("pod/{p} evicted")), "{text}");
    }
    assert!(text.contains(&format!("node/{NODE} drained")), "{text}");
    assert_eq!(s.jsonpath(&["node", NODE], "{.spec.unschedulable}"), "true");
    let status = s.kubectl(&["get", "node", NODE]);
    assert!(status.contains("SchedulingDisabled"), "{status}");

    // The replacements cannot be placed while the node is cordoned.
    wait_or_show(
        "two unschedulable replacements",
        Duration::from_secs(120),
        || {
            let now = pods(s);
            (now.len() == 2
                && now.iter().all(|(n, phase, node)| {
                    !before.contains(n) && phase == "Pending" && node.is_empty()
                }))
            .then_some(())
        },
        || state(s),
    );

    s.kubectl(&["uncordon", NODE]);
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_or_show(
        "the replacements to run on the node",
        Duration::from_secs(120),
        || {
            let now = pods(s);
            (now.len() == 2
                && now
                    .iter()
                    .all(|(_, phase, node)| phase == "Running" && node == NODE))
            .then_some(())
        },
        || state(s),
    );
    s.kubectl(&["delete", "deploy", "web"]);
}
