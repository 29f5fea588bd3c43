//! SpinKube's tutorials and samples beyond the quickstart, as a user runs them with
//! spinlet in place of the cluster set-up: the package-and-deploy tutorial's private
//! registry (htpasswd auth, `kubectl create secret docker-registry`, the docs'
//! `private-image.yaml`), and a SpinApp with health checks, resources, annotations and
//! selected components. Real registry, real kubectl, real pods, in a network namespace
//! the test creates (see `common::pods`).

mod common;

use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv, HELLO_IMAGE};
use common::private_registry::{push, PrivateRegistry};
use common::Server;
use serde_json::Value;

const PRIVATE_IMAGE: &str = include_str!("../../../shared/seeds/manifests/private-image.yaml");

fn json(s: &Server, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = s.kubectl_output(&all, None);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until `app` has `n` ready pods; returns their IPs.
fn ready_pods(s: &Server, app: &str, n: usize) -> Vec<String> {
    wait_or_show(
        &format!("{n} ready pods of {app}"),
        Duration::from_secs(180),
        || {
            let label = format!("core.spinoperator.dev/app-name={app}");
            let pods = json(s, &["pods", "-l", &label])?;
            let ips: Vec<String> = pods["items"]
                .as_array()?
                .iter()
                .filter(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
                .collect();
            (ips.len() == n).then_some(ips)
        },
        || state(s),
    )
}

#[test]
fn the_private_registry_tutorial_pulls_with_a_docker_registry_secret() {
    let Some(env) = PodEnv::start("private-tutorial", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    let dir = env.scratch.path().join("private");
    // spin registry login + push, as the tutorial does (credentials in a Docker config).
    let registry = PrivateRegistry::start(ns, &dir, 5002, "gh-user", "gh-token");
    let app = common::pods::hello_app(&dir);
    registry.push(ns, &app, "127.0.0.1:5002/gh-user/hello-spin:0.0.1");

    // The tutorial's secret and manifest, with its image in our registry.
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "ghcr",
        "--docker-server",
        "127.0.0.1:5002",
        "--docker-username",
        "gh-user",
        "--docker-password",
        "gh-token",
    ]);
    let manifest = PRIVATE_IMAGE.replace(
        "ghcr.io/$GH_USER/hello-spin:0.0.1",
        "127.0.0.1:5002/gh-user/hello-spin:0.0.1",
    );
    assert!(manifest.contains("127.0.0.1:5002"), "{manifest}");
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let ips = ready_pods(s, "hello-spin", 2);
    for ip in ips {
        let (code, _) = ns.curl(&format!("http://{ip}:80/?op=print&text=private"));
        assert_eq!(code, 200);
    }
    let app = json(s, &["spinapp", "hello-spin"]).expect("the app");
    assert_eq!(app["status"]["readyReplicas"], 2, "{app}");
    let pulled = s.kubectl(&["get", "events", "--field-selector", "reason=Pulled"]);
    assert!(pulled.contains("hello-spin"), "{pulled}");
}

#[test]
fn a_spinapp_with_checks_resources_annotations_and_components() {
    let Some(env) = PodEnv::start("samples", &[]) else {
        return;
    };
    let s = &env.server;
    let manifest = format!(
        r#"
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: sampled
spec:
  image: {HELLO_IMAGE}
  replicas: 1
  executor: containerd-shim-spin
  components: ["hello"]
  checks:
    readiness:
      httpGet:
        path: /.well-known/spin/health
    liveness:
      httpGet:
        path: /.well-known/spin/health
  resources:
    limits:
      cpu: 500m
      memory: 128Mi
    requests:
      cpu: 100m
      memory: 64Mi
  deploymentAnnotations:
    example.com/deployment: "yes"
  podAnnotations:
    example.com/pod: "yes"
  serviceAnnotations:
    example.com/service: "yes"
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let ips = ready_pods(s, "sampled", 1);
    let (code, body) = env
        .ns
        .curl(&format!("http://{}:80/.well-known/spin/health", ips[0]));
    assert_eq!((code, body.trim()), (200, "OK"));

    let deploy = json(s, &["deploy", "sampled"]).expect("deployment");
    assert_eq!(
        deploy["metadata"]["annotations"]["example.com/deployment"],
        "yes"
    );
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/.well-known/spin/health"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], 80);
    let pods = json(s, &["pods", "-l", "core.spinoperator.dev/app-name=sampled"]).expect("pods");
    let pod = &pods["items"][0];
    assert_eq!(pod["metadata"]["annotations"]["example.com/pod"], "yes");
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    let env_vars = pod["spec"]["containers"][0]["env"].to_string();
    assert!(env_vars.contains("SPIN_COMPONENTS_TO_RETAIN"), "{env_vars}");
    let svc = json(s, &["svc", "sampled"]).expect("service");
    assert_eq!(svc["metadata"]["annotations"]["example.com/service"], "yes");

    // kubectl scale spinapp: the Deployment follows and a second pod serves.
    s.kubectl(&["scale", "spinapp", "sampled", "--replicas=2"]);
    ready_pods(s, "sampled", 2);
    // kubectl delete spinapp removes what it made.
    s.kubectl(&["delete", "spinapp", "sampled", "--timeout=120s"]);
    wait_or_show(
        "the app's objects and pods to go",
        Duration::from_secs(120),
        || {
            let gone =
                json(s, &["deploy", "sampled"]).is_none() && json(s, &["svc", "sampled"]).is_none();
            let pods = json(s, &["pods", "-l", "core.spinoperator.dev/app-name=sampled"])?;
            (gone && pods["items"].as_array()?.is_empty()).then_some(())
        },
        || state(s),
    );
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An executor's CA bundle (spin-operator's `caCertSecret` / `installDefaultCACerts`,
/// mounted at /etc/ssl/certs/ca-certificates.crt) is what the app's outbound HTTPS
/// trusts: with the user's CA in `caCertSecret`, a fetch from a loopback TLS server that
/// CA signed succeeds; with the default `spin-ca` (made by spinlet from the host's trust
/// bundle, as the operator makes it from its own) the same fetch is refused, and the
/// user's Secret is left as it was.
#[test]
fn an_executors_ca_certificates_are_what_the_apps_outbound_tls_trusts() {
    let Some(env) = PodEnv::start("ca-certs", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    let dir = env.scratch.path().join("tls");
    std::fs::create_dir_all(&dir).expect("dir");
    // A CA of the test's own and a certificate it signs for 127.0.0.1.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=spinlet test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::write(dir.join("hello.txt"), "hello over tls").expect("page");
    // openssl's web server on the namespace's loopback.
    let log = std::fs::File::create(dir.join("s_server.log")).expect("log");
    let _tls_server = common::pods::Killed(
        ns.cmd("openssl")
            .current_dir(&dir)
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:8443",
                "-cert",
                "server.pem",
            ])
            .args(["-key", "server.key", "-WWW", "-quiet"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("openssl s_server"),
    );

    // The hello app allowed to reach that server, pushed as its own image.
    let wasm = {
        let (app, support) = test_apps::spin_runtime_app("rust-v5-hello");
        test_apps::build(&app, &[&support], "wasm32-wasip2")
    };
    let app_dir = dir.join("app");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(
        app_dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "ca-hello"
version = "1.0.0"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "{}"
allowed_outbound_hosts = ["https://127.0.0.1:8443"]
"#,
            wasm.display()
        ),
    )
    .expect("spin.toml");
    push(ns, &app_dir, "127.0.0.1:5000/ca-hello:v1");

    // The user's CA Secret, then two executors and an app on each.
    let ca = std::fs::read_to_string(dir.join("ca.pem")).expect("ca");
    let ca_file = format!("ca-certificates.crt={}", dir.join("ca.pem").display());
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "test-ca",
        "--from-file",
        &ca_file,
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinAppExecutor
metadata:
  name: own-ca
spec:
  createDeployment: true
  deploymentConfig:
    runtimeClassName: wasmtime-spin-v2
    installDefaultCACerts: true
    caCertSecret: test-ca
---
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinAppExecutor
metadata:
  name: default-ca
spec:
  createDeployment: true
  deploymentConfig:
    runtimeClassName: wasmtime-spin-v2
    installDefaultCACerts: true
---
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: trusting
spec:
  image: 127.0.0.1:5000/ca-hello:v1
  replicas: 1
  executor: own-ca
---
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: defaulted
spec:
  image: 127.0.0.1:5000/ca-hello:v1
  replicas: 1
  executor: default-ca
"#,
    );
    let fetch = "/?op=fetch&url=https%3A%2F%2F127.0.0.1%3A8443%2Fhello.txt";
    let trusting = ready_pods(s, "trusting", 1);
    let (code, body) = ns.curl(&format!("http://{}:80{fetch}", trusting[0]));
    assert_eq!((code, body.as_str()), (200, "200 hello over tls"));

    // spin-ca: made from the host's bundle, annotated as the operator's; the test's CA is
    // not in it, so the other app's fetch fails the certificate check.
    let spin_ca = json(s, &["secret", "spin-ca"]).expect("the spin-ca Secret");
    assert_eq!(
        spin_ca["metadata"]["annotations"]["app.kubernetes.io/managed-by"],
        "spin-operator.spinkube.dev"
    );
    let bundle = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        spin_ca["data"]["ca-certificates.crt"]
            .as_str()
            .expect("bundle"),
    )
    .expect("base64");
    let bundle = String::from_utf8_lossy(&bundle);
    assert!(bundle.contains("-----BEGIN CERTIFICATE-----"));
    assert!(
        !bundle.contains(ca.trim()),
        "the test's CA is not the host's"
    );
    let defaulted = ready_pods(s, "defaulted", 1);
    let (code, body) = ns.curl(&format!("http://{}:80{fetch}", defaulted[0]));
    assert_eq!(code, 502, "{body}");

    // The user's Secret is theirs: not rewritten, not annotated.
    let own = json(s, &["secret", "test-ca"]).expect("test-ca");
    assert!(own["metadata"]["annotations"]["app.kubernetes.io/managed-by"].is_null());
    let own_bundle = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        own["data"]["ca-certificates.crt"].as_str().expect("bundle"),
    )
    .expect("base64");
    assert_eq!(String::from_utf8_lossy(&own_bundle), ca);
}
