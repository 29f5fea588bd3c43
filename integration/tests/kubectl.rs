//! The issue-2 acceptance scenario, driven through the real kubectl against the real
//! spinlet binary: namespaces, `get all`, create/get/delete of built-in and SpinApp
//! objects under both API groups, label selectors, describe, api-resources, a watch that
//! sees another process's change, bad input, authentication and file modes, and Events
//! that expire after `--event-ttl`.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use common::Server;

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cm1, labels: {app: x}}
data: {a: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: s1, labels: {app: other}}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: svc1, labels: {app: x}}
spec:
  selector: {app: x}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn spinapp(group: &str, name: &str) -> String {
    format!(
        "apiVersion: {group}/v1alpha1\nkind: SpinApp\nmetadata:\n  name: {name}\nspec:\n  image: \"ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1\"\n  replicas: 1\n  executor: containerd-shim-spin\n"
    )
}

#[test]
fn fresh_server_has_system_namespaces_and_kubernetes_service() {
    let s = Server::start();
    let ns = s.kubectl(&["get", "ns", "-o", "name"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
    let all = s.kubectl(&["get", "all", "-A"]);
    assert!(all.contains("kubernetes"), "{all}");
    let v = s.kubectl(&["version", "-o", "json"]);
    assert!(v.contains("\"minor\": \"32\""), "{v}");
}

#[test]
fn create_get_delete_builtin_objects() {
    let s = Server::start();
    let out = s.kubectl_stdin(&["create", "-f", "-"], OBJECTS);
    assert!(out.contains("configmap/cm1 created"), "{out}");
    assert!(out.contains("secret/s1 created"), "{out}");
    assert!(out.contains("service/svc1 created"), "{out}");

    let cm = s.kubectl(&["get", "configmap", "cm1", "-o", "yaml"]);
    assert!(cm.contains("a: \"1\""), "{cm}");
    assert!(
        cm.contains("uid:") && cm.contains("resourceVersion:"),
        "{cm}"
    );
    let secret = s.jsonpath(&["secret", "s1"], "{.data.password}");
    assert_eq!(secret, "aHVudGVyMg==", "stringData folded into base64 data");
    let ip = s.jsonpath(&["svc", "svc1"], "{.spec.clusterIP}");
    assert!(
        ip.starts_with("10.43."),
        "cluster IP from the service CIDR: {ip}"
    );

    let labelled = s.kubectl(&["get", "cm,secret,svc", "-l", "app=x", "-o", "name"]);
    assert!(labelled.contains("configmap/cm1"), "{labelled}");
    assert!(labelled.contains("service/svc1"), "{labelled}");
    assert!(!labelled.contains("secret/s1"), "{labelled}");

    let described = s.kubectl(&["describe", "service", "svc1"]);
    assert!(
        described.contains("Name:") && described.contains("svc1"),
        "{described}"
    );
    assert!(described.contains("8080/TCP"), "{described}");

    let dup = s.kubectl_fails(&["create", "-f", "-"], Some(OBJECTS));
    assert!(dup.contains("AlreadyExists"), "{dup}");

    let out = s.kubectl_stdin(&["delete", "-f", "-"], OBJECTS);
    assert!(out.contains("configmap \"cm1\" deleted"), "{out}");
    let gone = s.kubectl_fails(&["get", "configmap", "cm1"], None);
    assert!(gone.contains("NotFound"), "{gone}");
}

#[test]
fn spinapps_under_both_groups() {
    let s = Server::start();
    let resources = s.kubectl(&["api-resources"]);
    for g in ["core.spinoperator.dev", "core.spinkube.dev"] {
        assert!(
            resources
                .lines()
                .any(|l| l.starts_with("spinapps") && l.contains(g)),
            "{resources}"
        );
    }
    s.kubectl_stdin(&["apply", "-f", "-"], &std::fs::read_to_string(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/seeds/manifests/shim-executor.yaml"),
    ).unwrap_or_else(|_| {
        "apiVersion: core.spinoperator.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: containerd-shim-spin\nspec:\n  createDeployment: true\n  deploymentConfig:\n    runtimeClassName: wasmtime-spin-v2\n".into()
    }));
    for (group, name) in [
        ("core.spinoperator.dev", "old-group-app"),
        ("core.spinkube.dev", "new-group-app"),
    ] {
        let out = s.kubectl_stdin(&["create", "-f", "-"], &spinapp(group, name));
        assert!(
            out.contains(&format!("spinapp.{group}/{name} created")),
            "{out}"
        );
        let y = s.kubectl(&["get", &format!("spinapps.{group}"), name, "-o", "yaml"]);
        assert!(y.contains(&format!("apiVersion: {group}/v1alpha1")), "{y}");
        assert!(y.contains("generation: 1"), "{y}");
        // Applied twice, the second apply changes nothing.
        let again = s.kubectl_stdin(&["apply", "-f", "-"], &spinapp(group, name));
        assert!(
            again.contains("configured") || again.contains("unchanged"),
            "{again}"
        );
    }
    // The groups share storage: an app created under the docs' group is listed under
    // the current one.
    let listed = s.kubectl(&["get", "spinapps.core.spinkube.dev", "-o", "name"]);
    assert!(
        listed.contains("old-group-app") && listed.contains("new-group-app"),
        "{listed}"
    );

    // Unknown fields are rejected with the field named (kubectl asks for Strict).
    let bad =
        spinapp("core.spinkube.dev", "bad").replace("replicas: 1", "replicas: 1\n  bogus: true");
    let err = s.kubectl_fails(&["create", "-f", "-"], Some(&bad));
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    // A wrong type is a 422 naming the field.
    let bad = spinapp("core.spinkube.dev", "bad").replace("replicas: 1", "replicas: lots");
    let err = s.kubectl_fails(&["create", "-f", "-"], Some(&bad));
    assert!(err.contains("spec.replicas"), "{err}");

    for (group, name) in [
        ("core.spinoperator.dev", "old-group-app"),
        ("core.spinkube.dev", "new-group-app"),
    ] {
        let out = s.kubectl(&["delete", &format!("spinapps.{group}"), name]);
        assert!(out.contains("deleted"), "{out}");
    }
    let none = s.kubectl(&["get", "spinapps.core.spinoperator.dev", "-o", "name"]);
    assert!(none.trim().is_empty(), "{none}");
}

#[test]
fn watch_sees_a_change_from_another_process() {
    let s = Server::start();
    s.kubectl(&["create", "configmap", "watched", "--from-literal=k=v1"]);
    let mut watch = s
        .kubectl_cmd()
        .args([
            "get",
            "configmap",
            "watched",
            "-w",
            "-o",
            "jsonpath={.data.k}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("initial value");
    assert_eq!(first, "v1");
    s.kubectl(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"v2"}}"#,
    ]);
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watched change");
    assert_eq!(next, "v2");
    let _ = watch.kill();
    let _ = watch.wait();

    // Table output: the watch events are one-row Tables, so one header is printed.
    let mut table = s
        .kubectl_cmd()
        .args(["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let stdout = table.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = vec![rx.recv_timeout(Duration::from_secs(10)).expect("header")];
    lines.push(rx.recv_timeout(Duration::from_secs(10)).expect("first row"));
    s.kubectl(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"v3"}}"#,
    ]);
    lines.push(
        rx.recv_timeout(Duration::from_secs(10))
            .expect("changed row"),
    );
    let _ = table.kill();
    let _ = table.wait();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("DATA"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("watched") && lines[2].starts_with("watched"),
        "{lines:?}"
    );
}

#[test]
fn bad_input_gets_kube_errors_and_changes_nothing() {
    let s = Server::start();
    let err = s.kubectl_fails(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n"),
    );
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
    let err = s.kubectl_fails(
        &["create", "-n", "nowhere", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"),
    );
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let err = s.kubectl_fails(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\nbogus: 1\n"),
    );
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    let err = s.kubectl_fails(
        &["create", "--validate=false", "-f", "-"],
        Some("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: \"three\"}\n"),
    );
    assert!(
        err.contains("BadRequest") || err.contains("cannot"),
        "{err}"
    );
    let err = s.kubectl_fails(
        &["create", "-f", "-"],
        Some("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: inv422}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: i}]}\n"),
    );
    assert!(
        err.contains("The Deployment \"inv422\" is invalid")
            && err.contains("spec.replicas: Invalid value: -1"),
        "{err}"
    );
    let err = s.kubectl_fails(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 70000}]}\n"),
    );
    assert!(
        err.contains("spec.ports[0].port") && err.contains("between 1 and 65535"),
        "{err}"
    );
    // A body over 3 MiB is refused whole.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{x: \"{}\"}}\n",
        "a".repeat(3 * 1024 * 1024 + 10)
    );
    let err = s.kubectl_fails(&["create", "-f", "-"], Some(&big));
    assert!(err.contains("Request entity too large"), "{err}");
    // Malformed JSON straight to the API: 400 with the parse error.
    let out = s.kubectl_output(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some("{\"apiVersion\": \"v1\", \"kind\": "),
    );
    assert!(!out.status.success());
    let cms = s.kubectl(&["get", "configmaps", "-o", "name"]);
    assert!(cms.trim().is_empty(), "nothing stored: {cms}");
    let err = s.kubectl_fails(&["delete", "namespace", "kube-system"], None);
    assert!(err.contains("Forbidden"), "{err}");
}

#[test]
fn namespace_delete_removes_its_contents() {
    let s = Server::start();
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: scratch}\n",
    );
    let out = s.kubectl(&["delete", "namespace", "scratch", "--timeout=20s"]);
    assert!(out.contains("deleted"), "{out}");
    let err = s.kubectl_fails(&["get", "configmap", "c", "-n", "scratch"], None);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn credentials_are_required_and_private() {
    let s = Server::start();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&s.kubeconfig), 0o600);
    for key in ["server-ca.key", "serving.key", "client-admin.key"] {
        assert_eq!(
            mode(&s.data_dir.join("server/tls").join(key)),
            0o600,
            "{key}"
        );
    }
    assert_eq!(mode(&s.data_dir.join("server/token")), 0o600);

    // The same cluster without a user: kubectl gets 401.
    let text = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let anonymous: String = text
        .lines()
        .take_while(|l| !l.starts_with("users:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "users:\n- name: default\n  user: {}\n";
    let path = s.dir.path().join("anonymous.yaml");
    std::fs::write(&path, anonymous).expect("write");
    // A request without credentials gets a 401 Status.
    let out = std::process::Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{}/api/v1/namespaces", s.port))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.ends_with("\n401"), "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");

    // The bearer token from the data dir authenticates.
    let token = std::fs::read_to_string(s.data_dir.join("server/token")).expect("token");
    let with_token = std::fs::read_to_string(&path).expect("read").replace(
        "  user: {}",
        &format!("  user: {{token: {}}}", token.trim()),
    );
    let token_path = s.dir.path().join("token.yaml");
    std::fs::write(&token_path, with_token).expect("write");
    let out = s
        .kubectl_cmd()
        .env("KUBECONFIG", &token_path)
        .args(["get", "ns", "default", "-o", "name"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generators_send_protobuf_and_tables_come_back() {
    let s = Server::start();
    s.kubectl(&["create", "namespace", "demo"]);
    s.kubectl(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "demo",
        "--from-literal=a=b",
        "--from-literal=x=y",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "demo",
        "--from-literal=pw=secret",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        "demo",
        "--docker-server=registry.local:5000",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    s.kubectl(&["create", "serviceaccount", "sa1", "-n", "demo"]);
    s.kubectl(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "demo",
        "--tcp=80:8080",
    ]);
    s.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "demo",
        "--image=nginx",
        "--replicas=2",
        "--port=80",
    ]);

    assert_eq!(s.jsonpath(&["cm", "c1", "-n", "demo"], "{.data.x}"), "y");
    assert_eq!(
        s.jsonpath(&["secret", "regcred", "-n", "demo"], "{.type}"),
        "kubernetes.io/dockerconfigjson"
    );
    let port = s.jsonpath(&["svc", "web", "-n", "demo"], "{.spec.ports[0].targetPort}");
    assert_eq!(port, "8080");
    let replicas = s.jsonpath(&["deploy", "web", "-n", "demo"], "{.spec.replicas}");
    assert_eq!(replicas, "2");

    // Server-side printing: kube-apiserver's columns.
    let svc = s.kubectl(&["get", "svc", "-n", "demo"]);
    assert!(
        svc.starts_with("NAME") && svc.contains("CLUSTER-IP") && svc.contains("80/TCP"),
        "{svc}"
    );
    let deploy = s.kubectl(&["get", "deploy", "-n", "demo", "-o", "wide"]);
    assert!(
        deploy.contains("UP-TO-DATE") && deploy.contains("0/2") && deploy.contains("nginx"),
        "{deploy}"
    );
    let secrets = s.kubectl(&["get", "secrets", "-n", "demo"]);
    assert!(
        secrets.contains("TYPE") && secrets.contains("Opaque"),
        "{secrets}"
    );
    let ns = s.kubectl(&["get", "ns", "demo"]);
    assert!(ns.contains("STATUS") && ns.contains("Active"), "{ns}");

    // SpinApp columns from the CRD, and the scale subresource.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &spinapp("core.spinoperator.dev", "hello"),
    );
    let apps = s.kubectl(&["get", "spinapps"]);
    let header: Vec<&str> = apps
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "DESIRED", "EXECUTOR"], "{apps}");
    let wide = s.kubectl(&["get", "spinapps", "-o", "wide"]);
    assert!(
        wide.contains("DEPLOYMENT") && wide.contains("SERVICE"),
        "{wide}"
    );
    let out = s.kubectl(&["scale", "spinapp", "hello", "--replicas=3"]);
    assert!(out.contains("scaled"), "{out}");
    let apps = s.jsonpath(
        &["spinapps.core.spinoperator.dev", "hello"],
        "{.spec.replicas}",
    );
    assert_eq!(apps, "3");
    let explain = s.kubectl(&[
        "explain",
        "spinapp.spec.variables",
        "--api-version=core.spinoperator.dev/v1alpha1",
    ]);
    assert!(explain.contains("valueFrom"), "{explain}");
    let explain = s.kubectl(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("rollingUpdate") && explain.contains("Recreate"),
        "{explain}"
    );
}

/// Creates a ConfigMap owned by `owner` (a ConfigMap) and returns nothing.
fn dependent(s: &Server, name: &str, owner: &str, block: bool) {
    let uid = s.kubectl(&["get", "configmap", owner, "-o", "jsonpath={.metadata.uid}"]);
    s.kubectl_stdin(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: {block}\n"
        ),
    );
}

#[test]
fn cascading_deletes_follow_the_propagation_policy() {
    let s = Server::start();
    for owner in ["bg", "fg", "orph"] {
        s.kubectl(&["create", "configmap", owner]);
    }
    dependent(&s, "bg-child", "bg", false);
    dependent(&s, "fg-child", "fg", true);
    dependent(&s, "orph-child", "orph", false);

    let wait_gone = |name: &str| {
        for _ in 0..100 {
            if !s
                .kubectl_output(&["get", "configmap", name], None)
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} was not garbage collected");
    };

    s.kubectl(&["delete", "configmap", "bg"]);
    wait_gone("bg-child");

    s.kubectl(&[
        "delete",
        "configmap",
        "fg",
        "--cascade=foreground",
        "--timeout=20s",
    ]);
    wait_gone("fg");
    wait_gone("fg-child");

    s.kubectl(&[
        "delete",
        "configmap",
        "orph",
        "--cascade=orphan",
        "--timeout=20s",
    ]);
    wait_gone("orph");
    let refs = s.jsonpath(&["configmap", "orph-child"], "{.metadata.ownerReferences}");
    assert!(
        refs.trim().is_empty(),
        "orphaned child keeps no owner reference: {refs}"
    );

    // The collector does not follow Events (as kube-controller-manager's), but a
    // Foreground delete of one still deletes its dependents and then the Event.
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: ev-owner\ninvolvedObject:\n  kind: ConfigMap\n  name: orph-child\n  namespace: default\nreason: Test\nmessage: owner\ntype: Normal\n",
    );
    let uid = s.jsonpath(&["event", "ev-owner"], "{.metadata.uid}");
    s.kubectl_stdin(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ev-child\n  ownerReferences:\n  - apiVersion: v1\n    kind: Event\n    name: ev-owner\n    uid: {uid}\n    blockOwnerDeletion: true\n"
        ),
    );
    s.kubectl(&[
        "delete",
        "event",
        "ev-owner",
        "--cascade=foreground",
        "--timeout=20s",
    ]);
    wait_gone("ev-child");
    for _ in 0..100 {
        if !s
            .kubectl_output(&["get", "event", "ev-owner"], None)
            .status
            .success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the Event deleted in the foreground stayed");
}

const DEPLOY_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1
        env: [{name: A, value: a}, {name: B, value: b}]
        ports: [{containerPort: 80}, {containerPort: 8080}]
";

#[test]
fn apply_client_and_server_side() {
    let s = Server::start();
    // Client-side apply: create, unchanged, then a list edit via strategic merge patch.
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], DEPLOY_V1)
        .contains("created"));
    // The Deployment controller writes its revision annotation and status once; compare
    // from when it has.
    let settled = || {
        s.jsonpath(
            &["deploy", "web"],
            "{.status.observedGeneration}/{.metadata.generation}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while settled() != "1/1/1" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rv = s.jsonpath(&["deploy", "web"], "{.metadata.resourceVersion}");
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], DEPLOY_V1)
        .contains("unchanged"));
    let rv2 = s.jsonpath(&["deploy", "web"], "{.metadata.resourceVersion}");
    assert_eq!(rv, rv2, "an unchanged apply writes nothing");
    let v2 = DEPLOY_V1
        .replace("nginx:1", "nginx:2")
        .replace(
            "[{containerPort: 80}, {containerPort: 8080}]",
            "[{containerPort: 8080}]",
        )
        .replace(", {name: B, value: b}", "");
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], &v2)
        .contains("configured"));
    let c = s.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[0]}");
    assert!(
        c.contains("nginx:2") && c.contains("8080") && !c.contains(":80}"),
        "{c}"
    );
    assert!(!c.contains("\"B\""), "env B removed: {c}");
    let gen = s.jsonpath(&["deploy", "web"], "{.metadata.generation}");
    assert_eq!(gen, "2");
    let last = s.jsonpath(
        &["deploy", "web"],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    );
    assert!(last.contains("nginx:2"), "{last}");

    // kubectl patch, every type.
    s.kubectl(&["patch", "deploy", "web", "--type=strategic", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","ports":[{"$patch":"delete","containerPort":8080}]}]}}}}"#]);
    let ports = s.jsonpath(
        &["deploy", "web"],
        "{.spec.template.spec.containers[0].ports}",
    );
    assert!(!ports.contains("8080"), "{ports}");
    s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"fe"}}}"#,
    ]);
    assert_eq!(
        s.jsonpath(
            &["deploy", "web"],
            "{.spec.replicas}/{.metadata.labels.tier}"
        ),
        "4/fe"
    );
    let err = s.kubectl_fails(
        &[
            "patch",
            "deploy",
            "web",
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","$patch":"explode"}]}}}}"#,
        ],
        None,
    );
    assert!(err.contains("explode"), "{err}");

    // Server-side apply by two managers: a conflict naming the field, then forced.
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {a: \"1\", b: \"2\"}\n";
    assert!(s
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], cm)
        .contains("serverside-applied"));
    let other = cm.replace("\"1\"", "\"9\"");
    let err = s.kubectl_fails(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some(&other),
    );
    assert!(
        err.contains("conflict with \"kubectl\"") && err.contains(".data.a"),
        "{err}"
    );
    s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other,
    );
    assert_eq!(s.jsonpath(&["cm", "shared"], "{.data.a}"), "9");
    // The first manager drops b from its configuration: b goes, a stays (owned by other).
    s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {}\n",
    );
    let data = s.jsonpath(&["cm", "shared"], "{.data}");
    assert!(
        data.contains("\"a\":\"9\"") && data.contains("\"b\""),
        "b is co-owned by other: {data}"
    );
}

#[test]
fn kubeconfig_mode_flag_and_restart_keep_state() {
    let mut s = Server::start_with(&["--write-kubeconfig-mode", "644"]);
    let mode = std::fs::metadata(&s.kubeconfig)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
    s.kubectl(&["create", "configmap", "kept", "--from-literal=k=v"]);
    let uid = s.jsonpath(&["cm", "kept"], "{.metadata.uid}");
    s.stop();
    s.boot();
    assert_eq!(s.jsonpath(&["cm", "kept"], "{.metadata.uid}"), uid);
    assert!(
        s.log().contains("kubeconfig written to"),
        "start-up log names the kubeconfig"
    );
}

#[test]
fn replace_edit_wait_sort_and_dry_run() {
    let s = Server::start();
    s.kubectl_stdin(&["apply", "-f", "-"], DEPLOY_V1);
    s.kubectl(&["create", "configmap", "b-second", "--from-literal=k=2"]);
    s.kubectl(&["create", "configmap", "a-first", "--from-literal=k=1"]);

    // replace: GET, edit the YAML, PUT.
    let yaml = s
        .kubectl(&["get", "cm", "a-first", "-o", "yaml"])
        .replace("k: \"1\"", "k: \"10\"");
    assert!(s
        .kubectl_stdin(&["replace", "-f", "-"], &yaml)
        .contains("replaced"));
    assert_eq!(s.jsonpath(&["cm", "a-first"], "{.data.k}"), "10");
    // A stale replace is a conflict.
    let err = s.kubectl_fails(&["replace", "-f", "-"], Some(&yaml));
    assert!(
        err.contains("Conflict") || err.contains("modified"),
        "{err}"
    );

    // edit, with a scripted editor.
    let out = s
        .kubectl_cmd()
        .env("KUBE_EDITOR", "sed -i s/nginx:1/nginx:edited/")
        .args(["edit", "deploy", "web"])
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = s.jsonpath(
        &["deploy", "web"],
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "nginx:edited");

    // wait for a condition written through the status subresource (of a Node: with no
    // agent, no controller writes a Node's status here; Deployments have theirs).
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: hand-made\n",
    );
    s.kubectl(&[
        "patch",
        "node",
        "hand-made",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test"}]}}"#,
    ]);
    let out = s.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "node/hand-made",
        "--timeout=30s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // The main resource's writes leave status alone.
    s.kubectl(&["label", "node", "hand-made", "touched=yes"]);
    let cond = s.jsonpath(&["node", "hand-made"], "{.status.conditions[0].type}");
    assert_eq!(cond, "Ready");
    let out = s.kubectl(&[
        "wait",
        "--for=jsonpath={.metadata.labels.touched}=yes",
        "node/hand-made",
        "--timeout=30s",
    ]);
    assert!(out.contains("condition met"), "{out}");

    // sort-by and custom columns.
    let sorted = s.kubectl(&[
        "get",
        "cm",
        "--sort-by=.metadata.name",
        "-o",
        "custom-columns=NAME:.metadata.name,K:.data.k",
    ]);
    let names: Vec<&str> = sorted
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names.first().copied(), Some("a-first"), "{sorted}");

    // dry-run=server changes nothing.
    let out = s.kubectl(&[
        "create",
        "configmap",
        "ghost",
        "--dry-run=server",
        "-o",
        "name",
    ]);
    assert!(out.contains("ghost"), "{out}");
    assert!(!s
        .kubectl_output(&["get", "cm", "ghost"], None)
        .status
        .success());
    s.kubectl(&["delete", "cm", "a-first", "--dry-run=server"]);
    assert!(s
        .kubectl_output(&["get", "cm", "a-first"], None)
        .status
        .success());

    // wait --for=delete.
    s.kubectl(&["delete", "cm", "b-second", "--wait=false"]);
    let out = s.kubectl_output(
        &["wait", "--for=delete", "cm/b-second", "--timeout=10s"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bound_pods_are_deleted_gracefully() {
    let s = Server::start();
    let pod = |name: &str, node: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: \"{node}\"\n  containers: [{{name: app, image: registry.local/app:1}}]\n")
    };
    s.kubectl_stdin(&["create", "-f", "-"], &pod("bound", "node-1"));
    s.kubectl_stdin(&["create", "-f", "-"], &pod("unbound", ""));
    let table = s.kubectl(&["get", "pods"]);
    assert!(
        table.contains("READY") && table.contains("0/1") && table.contains("Pending"),
        "{table}"
    );

    s.kubectl(&["delete", "pod", "unbound", "--wait=false"]);
    assert!(!s
        .kubectl_output(&["get", "pod", "unbound"], None)
        .status
        .success());

    s.kubectl(&[
        "delete",
        "pod",
        "bound",
        "--wait=false",
        "--grace-period=20",
    ]);
    let grace = s.jsonpath(&["pod", "bound"], "{.metadata.deletionGracePeriodSeconds}");
    assert_eq!(
        grace, "20",
        "the kubelet gets the grace period to stop the pod"
    );
    let status = s.kubectl(&["get", "pod", "bound"]);
    assert!(status.contains("Terminating"), "{status}");
    s.kubectl(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    assert!(!s
        .kubectl_output(&["get", "pod", "bound"], None)
        .status
        .success());
}

/// Events of both groups are one storage and expire (issue 12): an Event written through
/// events.k8s.io/v1 shows in `kubectl get events` (core/v1) and in `kubectl describe` of
/// the pod it regards, and is gone, through both groups, once `--event-ttl` has passed
/// since it was last seen; the pod it regards stays. The TTL leaves room for the checks
/// before it; the wait after it is generous (state, not speed).
#[test]
fn events_of_both_groups_show_and_expire_after_the_event_ttl() {
    let s = Server::start_with(&["--event-ttl", "20s"]);
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: regarded}\nspec:\n  containers: [{name: app, image: registry.local/app:1}]\n",
    );
    let uid = s.jsonpath(&["pod", "regarded"], "{.metadata.uid}");
    // events.k8s.io wants a MicroTime: the pod's creation time will do.
    let created = s.jsonpath(&["pod", "regarded"], "{.metadata.creationTimestamp}");
    let event_time = created.replace('Z', ".000000Z");
    let event = format!(
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: regarded.ttl}}\neventTime: \"{event_time}\"\nreportingController: spinlet.test/ttl\nreportingInstance: test\naction: Checking\nreason: TtlCheck\nnote: kept for the event TTL\ntype: Normal\nregarding: {{apiVersion: v1, kind: Pod, name: regarded, namespace: default, uid: \"{uid}\"}}\n"
    );
    s.kubectl_stdin(&["create", "-f", "-"], &event);

    let listed = s.kubectl(&["get", "events"]);
    assert!(
        listed.contains("TtlCheck") && listed.contains("pod/regarded"),
        "{listed}"
    );
    let described = s.kubectl(&["describe", "pod", "regarded"]);
    assert!(
        described.contains("TtlCheck") && described.contains("kept for the event TTL"),
        "{described}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let by_reason = ["--field-selector", "reason=TtlCheck", "-o", "name"];
    let left = |resource: &str| {
        let mut args = vec!["get", resource];
        args.extend_from_slice(&by_reason);
        s.kubectl(&args)
    };
    while !left("events").trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the Event outlived its TTL by far: {}",
            s.kubectl(&["get", "events", "-o", "yaml"])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(left("events.v1.events.k8s.io").trim(), "");
    assert_eq!(s.jsonpath(&["pod", "regarded"], "{.metadata.uid}"), uid);
}
