//! SpinKube's tutorials and samples beyond the quickstart, as a user runs them with
//! spinlet in place of the cluster set-up: the package-and-deploy tutorial's private
//! registry (htpasswd auth, `kubectl create secret docker-registry`, the docs'
//! `private-image.yaml`), and a SpinApp with health checks, resources, annotations and
//! selected components. Real registry, real kubectl, real pods, in a network namespace
//! the test creates (see `common::pods`).

mod common;

use std::time::Duration;

use common::pods::{registry_on, state, wait_or_show, PodEnv, HELLO_IMAGE};
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
    std::fs::create_dir_all(&dir).expect("dir");
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("gh-user:{}\n", bcrypt::hash("gh-token", 4).expect("bcrypt")),
    )
    .expect("htpasswd");
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: spinlet-test\n    path: {}\n",
        htpasswd.display()
    );
    let _registry = registry_on(ns, &dir, 5002, &auth);
    // spin registry login + push, as the tutorial does (credentials in a Docker config).
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).expect("dir");
    std::fs::write(
        docker.join("config.json"),
        r#"{"auths":{"127.0.0.1:5002":{"auth":"Z2gtdXNlcjpnaC10b2tlbg=="}}}"#,
    )
    .expect("docker config");
    let app = common::pods::hello_app(&dir);
    let push = ns
        .cmd(&common::spinlet_bin().to_string_lossy())
        .env("DOCKER_CONFIG", &docker)
        .args(["push"])
        .arg(&app)
        .arg("127.0.0.1:5002/gh-user/hello-spin:0.0.1")
        .output()
        .expect("push");
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );

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
