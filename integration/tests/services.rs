//! Services on the node, as kube-proxy serves them: a Deployment's pods behind a
//! NodePort Service answer at the cluster IP and at the node port, connections spread
//! over the ready pods, and a curl loop at the cluster IP loses no request while the
//! Deployment rolls its pods over. Real server, agent, kubectl and curl, in a network
//! namespace the test creates (see `common::pods`).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv};

const APP: &str = r#"
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
        - name: http
          containerPort: 8080
        readinessProbe:
          httpGet:
            path: /.well-known/spin/health
            port: http
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - name: web
    port: 80
    targetPort: http
"#;

/// `curl` in the namespace named `ns`: the HTTP status, 0 when nothing answered.
fn curl_status(ns: &str, url: &str) -> u16 {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args([
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "10",
            url,
        ])
        .output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// curl at one URL, again and again, on a thread, until finished.
struct CurlLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<u16>)>,
}

impl CurlLoop {
    fn start(ns: &str, url: &str) -> CurlLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ns, url) = (stop.clone(), ns.to_string(), url.to_string());
        let thread = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                match curl_status(&ns, &url) {
                    200 => ok += 1,
                    other => failed.push(other),
                }
            }
            (ok, failed)
        });
        CurlLoop { stop, thread }
    }

    /// Stops the loop; every request it made must have answered 200.
    fn finish_without_failures(self) {
        self.stop.store(true, Ordering::SeqCst);
        let (ok, failed) = self.thread.join().expect("curl loop");
        assert!(ok > 0, "the loop ran");
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {failed:?}",
            failed.len(),
            ok as usize + failed.len()
        );
    }
}

#[test]
fn cluster_ips_and_node_ports_reach_ready_pods_through_a_rollout() {
    let Some(env) = PodEnv::start("services", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], APP);
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let ip = s.jsonpath(&["svc", "web"], "{.spec.clusterIP}");
    let node_port = s.jsonpath(&["svc", "web"], "{.spec.ports[0].nodePort}");

    // The cluster IP answers once the proxy has the endpoints; then every request does.
    let url = format!("http://{ip}/?op=print&text=via-cluster-ip");
    wait_or_show(
        "the cluster IP to answer",
        Duration::from_secs(120),
        || (curl_status(&env.ns.0, &url) == 200).then_some(()),
        || {
            format!(
                "{}\n{}",
                state(s),
                s.kubectl(&["get", "endpointslices", "-o", "wide"])
            )
        },
    );
    for _ in 0..20 {
        assert_eq!(curl_status(&env.ns.0, &url), 200);
    }
    // Both pods served some of them.
    let pods = s.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"]);
    for pod in pods.lines() {
        let logs = s.kubectl(&["logs", pod]);
        assert!(
            logs.contains("via-cluster-ip"),
            "{pod} served nothing: {logs}"
        );
    }
    // The node port, on the node's addresses.
    assert_eq!(
        curl_status(&env.ns.0, &format!("http://127.0.0.1:{node_port}/")),
        200
    );

    // A rollout with a curl loop running: no request fails.
    let looper = CurlLoop::start(&env.ns.0, &url);
    s.kubectl(&["rollout", "restart", "deploy/web"]);
    let out = s.kubectl(&["rollout", "status", "deploy/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    // Let the old pods finish terminating under the loop too.
    wait_or_show(
        "the old pods to go",
        Duration::from_secs(120),
        || {
            let n = s.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"]);
            (n.lines().count() == 2).then_some(())
        },
        || state(s),
    );
    looper.finish_without_failures();
}

#[test]
fn a_spinapp_image_change_rolls_out_with_no_failed_request() {
    let Some(env) = PodEnv::start("spinapp-rollout", &[]) else {
        return;
    };
    let s = &env.server;
    // A second tag of the app, as a new release would be pushed.
    let push = env
        .ns
        .cmd(&common::spinlet_bin().to_string_lossy())
        .arg("push")
        .arg(env.scratch.path().join("app"))
        .arg("127.0.0.1:5000/pod-hello:v2")
        .output()
        .expect("push");
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let app = |tag: &str| {
        format!(
            "apiVersion: core.spinoperator.dev/v1alpha1\nkind: SpinApp\nmetadata:\n  name: rolling\nspec:\n  image: 127.0.0.1:5000/pod-hello:{tag}\n  replicas: 2\n  executor: containerd-shim-spin\n  checks:\n    readiness:\n      httpGet:\n        path: /.well-known/spin/health\n"
        )
    };
    s.kubectl_stdin(&["apply", "-f", "-"], &app("v1"));
    let ip = wait_or_show(
        "the app's Service",
        Duration::from_secs(120),
        || {
            let out = s.kubectl_output(
                &["get", "svc", "rolling", "-o", "jsonpath={.spec.clusterIP}"],
                None,
            );
            let ip = String::from_utf8_lossy(&out.stdout).into_owned();
            (!ip.is_empty()).then_some(ip)
        },
        || state(s),
    );
    let url = format!("http://{ip}/?op=print&text=rolling");
    wait_or_show(
        "the app to answer at its cluster IP",
        Duration::from_secs(180),
        || (curl_status(&env.ns.0, &url) == 200).then_some(()),
        || state(s),
    );
    let out = s.kubectl(&["rollout", "status", "deploy/rolling", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    // As the quickstart reaches an app: kubectl port-forward svc/rolling.
    let forward = common::pods::port_forward(s, "svc/rolling", 8083);
    let through_forward = "http://127.0.0.1:8083/?op=print&text=forwarded";
    for _ in 0..5 {
        assert_eq!(curl_status(&env.ns.0, through_forward), 200, "{}", state(s));
    }
    drop(forward);

    let looper = CurlLoop::start(&env.ns.0, &url);
    s.kubectl_stdin(&["apply", "-f", "-"], &app("v2"));
    wait_or_show(
        "the new image to roll out",
        Duration::from_secs(180),
        || {
            let images = s.kubectl(&[
                "get",
                "pods",
                "-l",
                "core.spinoperator.dev/app-name=rolling",
                "-o",
                "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
            ]);
            let lines: Vec<&str> = images.lines().collect();
            (lines.len() == 2 && lines.iter().all(|l| l.ends_with(":v2"))).then_some(())
        },
        || state(s),
    );
    let out = s.kubectl(&["rollout", "status", "deploy/rolling", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    looper.finish_without_failures();
    // A port-forward started now reaches a pod of the new image. (One started before the
    // rollout could not have carried the loop: kubectl port-forward svc/… resolves the
    // Service to one pod when it starts, and ends with "lost connection to pod" when that
    // pod goes, on Kubernetes as here; the loop runs at the Service's cluster IP.)
    let forward = common::pods::port_forward(s, "svc/rolling", 8084);
    for _ in 0..5 {
        assert_eq!(
            curl_status(&env.ns.0, "http://127.0.0.1:8084/?op=print&text=forwarded"),
            200,
            "{}",
            state(s)
        );
    }
    drop(forward);
}
