//! Endpoints, EndpointSlices and default ServiceAccounts end to end: a real server with
//! its agent running real pods (in a network namespace the test creates, as pod
//! addresses are private-range), real kubectl reading what the controllers wrote.

mod common;

use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv};
use common::Server;

fn pod(name: &str, ready_port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: web
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      tcpSocket:
        port: {ready_port}
      periodSeconds: 1
"#
    )
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    tier: front
spec:
  selector:
    app: web
  ports:
  - name: web
    port: 80
    targetPort: http
"#;

/// A field of the `web` Endpoints, or `None` while they do not exist.
fn field(s: &Server, path: &str) -> Option<String> {
    let out = s.kubectl_output(
        &["get", "endpoints", "web", "-o", &format!("jsonpath={path}")],
        None,
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn endpoints_and_slices_follow_the_selected_pods() {
    let Some(env) = PodEnv::start("endpoints", &[]) else {
        return;
    };
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], SERVICE);
    // One pod passes its readiness probe (the app's port), one never does.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("ready", 8080));
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("unready", 9));
    let ready_ip = env.wait_running("ready");

    let (addresses, not_ready) = wait_or_show(
        "the endpoints to list both pods",
        Duration::from_secs(120),
        || {
            let ready = field(s, "{.subsets[0].addresses[*].ip}")?;
            let not_ready = field(s, "{.subsets[0].notReadyAddresses[*].targetRef.name}")?;
            (ready == ready_ip && not_ready == "unready").then_some((ready, not_ready))
        },
        || {
            format!(
                "{}\n{}",
                state(s),
                s.kubectl(&["get", "endpoints", "web", "-o", "yaml"])
            )
        },
    );
    assert_eq!(
        (addresses.as_str(), not_ready.as_str()),
        (ready_ip.as_str(), "unready")
    );
    assert_eq!(
        s.jsonpath(&["endpoints", "web"], "{.subsets[0].ports[0].port}"),
        "8080",
        "the named targetPort resolves to the pod's port"
    );
    assert_eq!(
        s.jsonpath(&["endpoints", "web"], "{.metadata.labels.tier}"),
        "front"
    );
    let wide = s.kubectl(&["get", "endpoints", "web"]);
    assert!(wide.contains(&format!("{ready_ip}:8080")), "{wide}");

    // The slice: labelled for the Service, owned by it, with per-endpoint conditions.
    let slices = || {
        s.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ])
    };
    let list: serde_json::Value = serde_json::from_str(&slices()).expect("slice list");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    let slice = &items[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["ports"][0]["port"], 8080);
    let by_pod = |name: &str| {
        slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["targetRef"]["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_pod("ready")["conditions"]["ready"], true, "{slice}");
    assert_eq!(by_pod("unready")["conditions"]["ready"], false, "{slice}");

    // A deleted pod leaves both.
    s.kubectl(&["delete", "pod", "unready", "--wait=false"]);
    wait_or_show(
        "the deleted pod to leave the endpoints",
        Duration::from_secs(120),
        || {
            let eps = s.kubectl(&["get", "endpoints", "web", "-o", "json"]);
            let slices = slices();
            (!eps.contains("\"unready\"") && !slices.contains("\"unready\"")).then_some(())
        },
        || state(s),
    );

    // The Service's deletion takes its Endpoints and slices with it.
    s.kubectl(&["delete", "service", "web"]);
    wait_or_show(
        "the endpoints and slices to go with the service",
        Duration::from_secs(120),
        || {
            let gone = s
                .kubectl_output(&["get", "endpoints", "web"], None)
                .status
                .code()
                == Some(1);
            let list: serde_json::Value = serde_json::from_str(&slices()).ok()?;
            (gone && list["items"].as_array().is_some_and(|i| i.is_empty())).then_some(())
        },
        || state(s),
    );
}

#[test]
fn every_namespace_gets_a_default_service_account_back() {
    let s = Server::start();
    let wait_sa = |ns: &str| {
        wait_or_show(
            &format!("serviceaccount {ns}/default"),
            Duration::from_secs(60),
            || {
                s.kubectl_output(&["get", "serviceaccount", "default", "-n", ns], None)
                    .status
                    .success()
                    .then_some(())
            },
            || s.kubectl(&["get", "serviceaccounts", "-A"]),
        )
    };
    wait_sa("default");
    wait_sa("kube-system");
    s.kubectl(&["create", "namespace", "team-a"]);
    wait_sa("team-a");
    let first = s.jsonpath(
        &["serviceaccount", "default", "-n", "team-a"],
        "{.metadata.uid}",
    );
    s.kubectl(&["delete", "serviceaccount", "default", "-n", "team-a"]);
    let again = wait_or_show(
        "the deleted default serviceaccount to come back",
        Duration::from_secs(60),
        || {
            let uid = s.kubectl_output(
                &[
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "team-a",
                    "-o",
                    "jsonpath={.metadata.uid}",
                ],
                None,
            );
            let uid = String::from_utf8_lossy(&uid.stdout).to_string();
            (!uid.is_empty() && uid != first).then_some(uid)
        },
        || s.kubectl(&["get", "serviceaccounts", "-A"]),
    );
    assert_ne!(again, first);
    // A terminating namespace is left alone, so its deletion finishes.
    s.kubectl(&["delete", "namespace", "team-a", "--timeout=90s"]);
    let gone = s.kubectl_output(&["get", "namespace", "team-a"], None);
    assert!(!gone.status.success(), "the namespace is gone");
}
