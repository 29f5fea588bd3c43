//! The SpinApp and SpinAppExecutor controllers end to end: the docs' manifests applied
//! with the real kubectl to a real `spinlet server`, and what spin-operator would have
//! made of them (Deployment, Service, runtime-config Secret, status, events), under both
//! API groups; then, with the node agent, the app's pod serving.

mod common;

use std::time::Duration;

use common::pods::{state, wait_or_show, PodEnv, HELLO_IMAGE};
use common::Server;
use serde_json::Value;

// The docs' manifests, verbatim (/work/shared/seeds/manifests).
const RUNTIME_CLASS: &str = "apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: wasmtime-spin-v2
handler: spin
";

const SHIM_EXECUTOR: &str = "apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinAppExecutor
metadata:
  name: containerd-shim-spin
spec:
  createDeployment: true
  deploymentConfig:
    runtimeClassName: wasmtime-spin-v2
";

const SIMPLE: &str = r#"apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: simple-spinapp
spec:
  image: "ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1"
  replicas: 1
  executor: containerd-shim-spin
"#;

const VARIABLE_EXPLORER: &str = "kind: ConfigMap
apiVersion: v1
metadata:
  name: spinapp-cfg
data:
  logLevel: INFO
---
kind: Secret
apiVersion: v1
metadata:
  name: spinapp-secret
data:
  password: c2VjcmV0X3NhdWNlCg==
---
kind: SpinApp
apiVersion: core.spinoperator.dev/v1alpha1
metadata:
  name: variable-explorer
spec:
  replicas: 1
  image: ttl.sh/variable-explorer:1h
  executor: containerd-shim-spin
  variables:
    - name: platform_name
      value: Kubernetes
    - name: log_level
      valueFrom:
        configMapKeyRef:
          name: spinapp-cfg
          key: logLevel
          optional: true
    - name: db_password
      valueFrom:
        secretKeyRef:
          name: spinapp-secret
          key: password
          optional: false
";

const KV_APP: &str = "apiVersion: v1
kind: Secret
metadata:
  name: redis-auth
stringData:
  url: redis://redis.default.svc:6379
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata:
  name: kv-app
spec:
  image: ghcr.io/spinkube/spin-operator/redis-sample:latest
  replicas: 2
  executor: containerd-shim-spin
  runtimeConfig:
    keyValueStores:
      - name: default
        type: redis
        options:
          - name: url
            valueFrom:
              secretKeyRef:
                name: redis-auth
                key: url
";

const EXTERNAL: &str = "apiVersion: core.spinkube.dev/v1alpha1
kind: SpinAppExecutor
metadata:
  name: external
spec:
  createDeployment: false
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata:
  name: external-app
spec:
  image: ghcr.io/example/app:v1
  replicas: 1
  executor: external
";

const CUSTOMIZED: &str = "apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: simple-spinapp
spec:
  image: 'ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1'
  replicas: 3
  imagePullSecrets:
    - name: spin-image-secret
  serviceAnnotations:
    key: value
  podAnnotations:
    key: value
  resources:
    limits:
      cpu: '1'
      memory: 512Mi
    requests:
      cpu: '0.5'
      memory: 256Mi
  env:
    - name: ENV_VAR1
      value: value1
    - name: ENV_VAR2
      value: value2
";

const HPA_APP: &str = "apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: hpa-spinapp
spec:
  image: ghcr.io/spinkube/spin-operator/cpu-load-gen:20240311-163328-g1121986
  executor: containerd-shim-spin
  enableAutoscaling: true
  resources:
    limits:
      cpu: 500m
      memory: 500Mi
    requests:
      cpu: 100m
      memory: 400Mi
";

const LIMIT: Duration = Duration::from_secs(60);

/// `kubectl get <target> -o json`, or None while it does not exist.
fn get(s: &Server, target: &[&str]) -> Option<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(target);
    args.extend_from_slice(&["-o", "json"]);
    let out = s.kubectl_output(&args, None);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn wait_get(s: &Server, target: &[&str]) -> Value {
    wait_or_show(
        &format!("{target:?} to exist"),
        LIMIT,
        || get(s, target),
        || s.log(),
    )
}

fn wait_gone(s: &Server, target: &[&str]) {
    wait_or_show(
        &format!("{target:?} to be gone"),
        LIMIT,
        || get(s, target).is_none().then_some(()),
        || s.log(),
    );
}

/// The runtime-config Secrets of an app (labelled with its app-name key).
fn config_secrets(s: &Server, label: &str) -> Vec<Value> {
    get(s, &["secrets", "-l", label])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn secret_text(secret: &Value, key: &str) -> String {
    use base64::Engine;
    let b64 = secret["data"][key].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

/// (reason, note) of the controllers' events about `name` (`events.k8s.io/v1`).
fn events_about(s: &Server, name: &str) -> Vec<(String, String)> {
    let list = get(s, &["events.v1.events.k8s.io"]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn docs_manifests_become_deployments_services_and_secrets() {
    let s = Server::start();

    // Out of the box: the docs' RuntimeClass and executor exist, and applying the docs'
    // files changes nothing.
    wait_get(&s, &["runtimeclass", "wasmtime-spin-v2"]);
    let executor = wait_get(&s, &["spinappexecutor", "containerd-shim-spin"]);
    assert_eq!(
        executor["spec"],
        serde_json::json!({"createDeployment": true, "deploymentConfig": {"runtimeClassName": "wasmtime-spin-v2"}})
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], RUNTIME_CLASS);
    assert_eq!(
        out.trim(),
        "runtimeclass.node.k8s.io/wasmtime-spin-v2 unchanged"
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], SHIM_EXECUTOR);
    assert_eq!(
        out.trim(),
        "spinappexecutor.core.spinoperator.dev/containerd-shim-spin unchanged"
    );

    // simple.yaml → Deployment and Service simple-spinapp, labelled and owned as the
    // docs-era operator made them.
    let out = s.kubectl_stdin(&["apply", "-f", "-"], SIMPLE);
    assert_eq!(
        out.trim(),
        "spinapp.core.spinoperator.dev/simple-spinapp created"
    );
    let app = wait_get(&s, &["spinapp", "simple-spinapp"]);
    let uid = app["metadata"]["uid"].as_str().expect("uid").to_string();
    let d = wait_get(&s, &["deployment", "simple-spinapp"]);
    assert_eq!(
        d["metadata"]["labels"]["core.spinoperator.dev/app-name"],
        "simple-spinapp"
    );
    let owner = &d["metadata"]["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "core.spinoperator.dev/v1alpha1");
    assert_eq!(owner["kind"], "SpinApp");
    assert_eq!(owner["uid"], uid.as_str());
    assert_eq!(owner["controller"], true);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        serde_json::json!({"core.spinoperator.dev/app-name": "simple-spinapp",
            "core.spinoperator.dev/app.simple-spinapp.status": "ready"})
    );
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["runtimeClassName"], "wasmtime-spin-v2");
    assert_eq!(pod["serviceAccountName"], "default");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "simple-spinapp");
    assert_eq!(
        c["image"],
        "ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1"
    );
    assert_eq!(c["ports"][0]["containerPort"], 80);
    assert_eq!(c["ports"][0]["name"], "http-app");
    assert!(c["env"]
        .as_array()
        .expect("env")
        .iter()
        .any(|e| e["name"] == "SPIN_HTTP_LISTEN_ADDR" && e["value"] == "0.0.0.0:80"));
    let fields = s.kubectl(&[
        "get",
        "deployment",
        "simple-spinapp",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        fields.split_whitespace().any(|m| m == "spin-operator"),
        "{fields}"
    );

    let svc = wait_get(&s, &["service", "simple-spinapp"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-app");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["selector"],
        serde_json::json!({"core.spinoperator.dev/app.simple-spinapp.status": "ready"})
    );
    assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], uid.as_str());

    // The runtime-config Secret: env provider only, mounted by the Deployment.
    let secrets = config_secrets(&s, "core.spinoperator.dev/app-name=simple-spinapp");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let secret_name = secrets[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(secret_name.starts_with("simple-spinapp-"), "{secret_name}");
    assert_eq!(
        secret_text(&secrets[0], "runtime-config.toml"),
        "[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n"
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        secret_name.as_str()
    );
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/runtime-config.toml");

    // Status and printer columns.
    wait_or_show(
        "the SpinApp's status",
        LIMIT,
        || {
            let a = get(&s, &["spinapp", "simple-spinapp"])?;
            (a["status"]["deploymentName"] == "simple-spinapp"
                && a["status"]["serviceName"] == "simple-spinapp"
                && a["status"]["activeScheduler"] == "containerd-shim-spin")
                .then_some(())
        },
        || s.log(),
    );
    let table = s.kubectl(&["get", "spinapps"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "READY", "DESIRED", "EXECUTOR"],
        "{table}"
    );
    assert_eq!(lines[1][0], "simple-spinapp", "{table}");
    assert_eq!(lines[1][2..], ["1", "containerd-shim-spin"], "{table}");
    let wide = s.kubectl(&["get", "spinapps", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "DESIRED",
            "EXECUTOR",
            "DEPLOYMENT",
            "SERVICE"
        ],
        "{wide}"
    );
    assert!(
        wide.lines()
            .nth(1)
            .unwrap_or("")
            .ends_with("simple-spinapp   simple-spinapp"),
        "{wide}"
    );

    // kubectl scale spinapp → the Deployment follows.
    s.kubectl(&["scale", "spinapp", "simple-spinapp", "--replicas=2"]);
    wait_or_show(
        "the Deployment to scale",
        LIMIT,
        || (get(&s, &["deployment", "simple-spinapp"])?["spec"]["replicas"] == 2).then_some(()),
        || s.log(),
    );

    // variable-explorer.yaml → SPIN_VARIABLE_* env with each source.
    s.kubectl_stdin(&["apply", "-f", "-"], VARIABLE_EXPLORER);
    let d = wait_get(&s, &["deployment", "variable-explorer"]);
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0],
        serde_json::json!({"name": "SPIN_VARIABLE_PLATFORM_NAME", "value": "Kubernetes"})
    );
    assert_eq!(
        env[1],
        serde_json::json!({"name": "SPIN_VARIABLE_LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"key": "logLevel", "name": "spinapp-cfg", "optional": true}}})
    );
    assert_eq!(
        env[2],
        serde_json::json!({"name": "SPIN_VARIABLE_DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "spinapp-secret", "optional": false}}})
    );

    // Under core.spinkube.dev: that group's label keys; keyValueStores rendered with
    // the Secret's value.
    s.kubectl_stdin(&["apply", "-f", "-"], KV_APP);
    let d = wait_get(&s, &["deployment", "kv-app"]);
    assert_eq!(
        d["metadata"]["labels"]["core.spinkube.dev/app-name"],
        "kv-app"
    );
    assert_eq!(
        d["metadata"]["ownerReferences"][0]["apiVersion"],
        "core.spinkube.dev/v1alpha1"
    );
    assert_eq!(d["spec"]["replicas"], 2);
    let secrets = config_secrets(&s, "core.spinkube.dev/app-name=kv-app");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(
        secret_text(&secrets[0], "runtime-config.toml"),
        "[[config_provider]]\ntype = 'env'\nprefix = 'SPIN_VARIABLE_'\n\n[key_value_store]\n[key_value_store.default]\ntype = 'redis'\nurl = 'redis://redis.default.svc:6379'\n"
    );
    // Both groups list every app.
    for group in [
        "spinapps.core.spinoperator.dev",
        "spinapps.core.spinkube.dev",
    ] {
        let names = s.kubectl(&["get", group, "-o", "name"]);
        assert!(
            names.contains("simple-spinapp") && names.contains("kv-app"),
            "{names}"
        );
    }

    // createDeployment: false → the Service only.
    s.kubectl_stdin(&["apply", "-f", "-"], EXTERNAL);
    wait_get(&s, &["service", "external-app"]);
    assert!(get(&s, &["deployment", "external-app"]).is_none());

    // A missing executor (admission refuses apps naming none, and the finalizer keeps
    // one in use, so it is taken away by force): MissingExecutor event and condition.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: nope\nspec:\n  createDeployment: true\n  deploymentConfig:\n    runtimeClassName: wasmtime-spin-v2\n---\napiVersion: core.spinkube.dev/v1alpha1\nkind: SpinApp\nmetadata:\n  name: orphan\nspec:\n  image: x\n  replicas: 1\n  executor: nope\n",
    );
    wait_get(&s, &["deployment", "orphan"]);
    wait_or_show(
        "the executor's finalizer",
        LIMIT,
        || {
            (get(&s, &["spinappexecutor", "nope"])?["metadata"]["finalizers"][0]
                == "core.spinkube.dev/finalizer")
                .then_some(())
        },
        || s.log(),
    );
    s.kubectl(&["delete", "spinappexecutor", "nope", "--wait=false"]);
    s.kubectl(&[
        "patch",
        "spinappexecutor",
        "nope",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_gone(&s, &["spinappexecutor", "nope"]);
    wait_or_show(
        "the MissingExecutor condition",
        LIMIT,
        || {
            let a = get(&s, &["spinapp", "orphan"])?;
            let c = a["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Available")?
                .clone();
            (c["status"] == "False" && c["reason"] == "MissingExecutor").then_some(())
        },
        || s.log(),
    );
    let events = events_about(&s, "orphan");
    assert!(
        events.contains(&(
            "MissingExecutor".to_string(),
            "Could not find SpinAppExecutor default/nope".to_string()
        )),
        "{events:?}"
    );

    // Deleting the app deletes its Deployment, Service and Secret.
    s.kubectl(&["delete", "spinapp", "simple-spinapp"]);
    wait_gone(&s, &["deployment", "simple-spinapp"]);
    wait_gone(&s, &["service", "simple-spinapp"]);
    wait_gone(&s, &["secret", &secret_name]);

    // hpa.yaml's app: autoscaling leaves the Deployment's replicas to others; a
    // reconcile (here for a new service annotation) keeps what they set.
    s.kubectl_stdin(&["apply", "-f", "-"], HPA_APP);
    let d = wait_get(&s, &["deployment", "hpa-spinapp"]);
    assert_eq!(d["spec"]["replicas"], 1, "defaulted by the API server");
    s.kubectl(&["scale", "deployment", "hpa-spinapp", "--replicas=3"]);
    s.kubectl(&[
        "patch",
        "spinapp",
        "hpa-spinapp",
        "--type=merge",
        "-p",
        r#"{"spec":{"serviceAnnotations":{"reconciled":"yes"}}}"#,
    ]);
    wait_or_show(
        "the reconcile after the patch",
        LIMIT,
        || {
            (get(&s, &["service", "hpa-spinapp"])?["metadata"]["annotations"]["reconciled"]
                == "yes")
                .then_some(())
        },
        || s.log(),
    );
    assert_eq!(
        get(&s, &["deployment", "hpa-spinapp"]).expect("deployment")["spec"]["replicas"],
        3
    );

    // The docs' customized.yaml (no executor: admission defaults it to the
    // alphabetically first; where no admission hook runs, the app waits with
    // MissingExecutor until it names one) passes spec.env to the container.
    s.kubectl_stdin(&["apply", "-f", "-"], CUSTOMIZED);
    let executor = wait_get(&s, &["spinapp", "simple-spinapp"])["spec"]["executor"].clone();
    if executor.is_null() {
        let missing = wait_or_show(
            "MissingExecutor for an app without executor",
            LIMIT,
            || {
                let a = get(&s, &["spinapp", "simple-spinapp"])?;
                let c = a["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["reason"] == "MissingExecutor")?
                    .clone();
                c["message"].as_str().map(str::to_string)
            },
            || s.log(),
        );
        assert_eq!(missing, "Could not find SpinAppExecutor default/");
        s.kubectl(&[
            "patch",
            "spinapp",
            "simple-spinapp",
            "--type=merge",
            "-p",
            r#"{"spec":{"executor":"containerd-shim-spin"}}"#,
        ]);
    } else {
        assert_eq!(executor, "containerd-shim-spin");
    }
    let d = wait_get(&s, &["deployment", "simple-spinapp"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["key"], "value");
    assert_eq!(
        pod["spec"]["imagePullSecrets"][0]["name"],
        "spin-image-secret"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().into(),
                e["value"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert!(
        env.contains(&("ENV_VAR1".into(), "value1".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("ENV_VAR2".into(), "value2".into())),
        "{env:?}"
    );
    let svc = wait_get(&s, &["service", "simple-spinapp"]);
    assert_eq!(svc["metadata"]["annotations"]["key"], "value");

    // An executor in use cannot be deleted until its apps are gone.
    s.kubectl(&["delete", "spinappexecutor", "external", "--wait=false"]);
    wait_or_show(
        "the DeletionBlocked event",
        LIMIT,
        || {
            events_about(&s, "external")
                .iter()
                .any(|(reason, _)| reason == "DeletionBlocked")
                .then_some(())
        },
        || s.log(),
    );
    let ex = get(&s, &["spinappexecutor", "external"]).expect("still there");
    assert!(ex["metadata"]["deletionTimestamp"].is_string());
    s.kubectl(&["delete", "spinapp", "external-app"]);
    wait_gone(&s, &["spinappexecutor", "external"]);
}

#[test]
fn spin_image_executors_say_spinlet_runs_apps_natively() {
    let s = Server::start();
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: core.spinoperator.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: spintainer\nspec:\n  createDeployment: true\n  deploymentConfig:\n    spinImage: ghcr.io/fermyon/spin:v2.7.0\n",
    );
    let c = wait_or_show(
        "the RunsNatively condition",
        LIMIT,
        || {
            let e = get(&s, &["spinappexecutor", "spintainer"])?;
            e["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "RunsNatively")
                .cloned()
        },
        || s.log(),
    );
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "SpinImageIgnored");
    let message = c["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spinlet runs Spin apps natively"),
        "{message}"
    );
    let events = events_about(&s, "spintainer");
    assert!(
        events
            .iter()
            .any(|(reason, _)| reason == "SpinImageIgnored"),
        "{events:?}"
    );
    // Its finalizer is in place.
    let e = get(&s, &["spinappexecutor", "spintainer"]).expect("executor");
    assert_eq!(
        e["metadata"]["finalizers"][0],
        "core.spinkube.dev/finalizer"
    );
}

#[test]
fn the_simple_app_serves_from_its_pod() {
    let Some(env) = PodEnv::start("spinapp", &[]) else {
        return;
    };
    let s = &env.server;
    // simple.yaml with the local image, plus a Spin variable the hello app reads.
    let manifest = SIMPLE.replace(
        "ghcr.io/spinkube/containerd-shim-spin/examples/spin-rust-hello:v0.14.1",
        HELLO_IMAGE,
    ) + "  variables:\n  - name: greeting\n    value: hi-from-a-spinapp\n";
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    let ip = wait_or_show(
        "the app's pod to be ready",
        Duration::from_secs(120),
        || {
            let pods = get(
                s,
                &[
                    "pods",
                    "-l",
                    "core.spinoperator.dev/app-name=simple-spinapp",
                ],
            )?;
            let pod = pods["items"].as_array()?.first()?.clone();
            let ready = pod["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then(|| pod["status"]["podIP"].as_str().map(str::to_string))?
        },
        || state(s),
    );
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:80/?op=var&name=greeting"));
    assert_eq!(
        (code, body.as_str()),
        (200, "hi-from-a-spinapp"),
        "{}",
        state(s)
    );
    wait_or_show(
        "readyReplicas 1",
        LIMIT,
        || (get(s, &["spinapp", "simple-spinapp"])?["status"]["readyReplicas"] == 1).then_some(()),
        || state(s),
    );
    // A changed variable rolls out: the new pod serves the new value.
    s.kubectl(&[
        "patch",
        "spinapp",
        "simple-spinapp",
        "--type=merge",
        "-p",
        r#"{"spec":{"variables":[{"name":"greeting","value":"hi-again"}]}}"#,
    ]);
    let ip = wait_or_show(
        "the new pod to serve the new value",
        Duration::from_secs(120),
        || {
            let pods = get(
                s,
                &[
                    "pods",
                    "-l",
                    "core.spinoperator.dev/app-name=simple-spinapp",
                ],
            )?;
            pods["items"].as_array()?.iter().find_map(|pod| {
                let ip = pod["status"]["podIP"].as_str()?;
                let (code, body) = env
                    .ns
                    .curl(&format!("http://{ip}:80/?op=var&name=greeting"));
                (code == 200 && body == "hi-again").then(|| ip.to_string())
            })
        },
        || state(s),
    );
    wait_or_show(
        "the old pod to go",
        Duration::from_secs(120),
        || {
            let pods = get(
                s,
                &[
                    "pods",
                    "-l",
                    "core.spinoperator.dev/app-name=simple-spinapp",
                ],
            )?;
            (pods["items"].as_array()?.len() == 1).then_some(())
        },
        || state(s),
    );

    // The Service's endpoints are the app's pod on port 80 (its named port `http-app`).
    wait_or_show(
        "the Service's endpoints",
        LIMIT,
        || {
            let e = get(s, &["endpoints", "simple-spinapp"])?;
            let subset = &e["subsets"][0];
            (subset["addresses"][0]["ip"] == ip.as_str() && subset["ports"][0]["port"] == 80)
                .then_some(())
        },
        || state(s),
    );
    // The Quickstart's last step: kubectl port-forward svc/simple-spinapp 8083:80.
    let child = common::pods::port_forward(s, "svc/simple-spinapp", 8083);
    let (code, body) = env.ns.curl("http://127.0.0.1:8083/?op=var&name=greeting");
    assert_eq!((code, body.as_str()), (200, "hi-again"), "{}", state(s));
    drop(child);

    // The variable-explorer tutorial's last step: kubectl logs -l <app-name label>.
    let (code, _) = env.ns.curl(&format!(
        "http://{ip}:80/?op=print&text=logged-by-the-spinapp"
    ));
    assert_eq!(code, 200);
    wait_or_show(
        "the app's log line through kubectl logs -l",
        LIMIT,
        || {
            let out = s.kubectl_output(
                &[
                    "logs",
                    "-l",
                    "core.spinoperator.dev/app-name=simple-spinapp",
                ],
                None,
            );
            String::from_utf8_lossy(&out.stdout)
                .contains("logged-by-the-spinapp")
                .then_some(())
        },
        || state(s),
    );

    let table = s.kubectl(&["get", "spinapp", "simple-spinapp", "--no-headers"]);
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(
        row,
        ["simple-spinapp", "1", "1", "containerd-shim-spin"],
        "{table}"
    );

    // Deleting the app stops its pod (SpinApp → Deployment → ReplicaSet → Pod).
    s.kubectl(&["delete", "spinapp", "simple-spinapp"]);
    wait_or_show(
        "the app's pods to be gone",
        LIMIT,
        || {
            let pods = get(
                s,
                &[
                    "pods",
                    "-l",
                    "core.spinoperator.dev/app-name=simple-spinapp",
                ],
            )?;
            pods["items"].as_array()?.is_empty().then_some(())
        },
        || state(s),
    );
}

#[tokio::test]
async fn admission_rules_read_executors_from_the_api() {
    use controllers::spinapp::admission::{default_spinapp, validate_executor, validate_spinapp};
    use serde_json::json;

    let s = Server::start();
    wait_get(&s, &["spinappexecutor", "containerd-shim-spin"]);
    s.kubectl(&["create", "namespace", "other"]);
    s.kubectl_stdin(
        &["apply", "-n", "other", "-f", "-"],
        "apiVersion: core.spinkube.dev/v1alpha1\nkind: SpinAppExecutor\nmetadata:\n  name: a-external\nspec:\n  createDeployment: false\n",
    );
    let client = s.client().await;

    // The defaulter picks the alphabetically first executor of the whole cluster, and
    // leaves a named one alone.
    let mut app = json!({"apiVersion": "core.spinoperator.dev/v1alpha1", "kind": "SpinApp",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {"image": "x", "replicas": 1}});
    default_spinapp(&client, &mut app).await.expect("default");
    assert_eq!(app["spec"]["executor"], "a-external");
    let mut named = json!({"spec": {"image": "x", "executor": "containerd-shim-spin"}});
    default_spinapp(&client, &mut named).await.expect("default");
    assert_eq!(named["spec"]["executor"], "containerd-shim-spin");

    // ...which the validator then rejects in another namespace, as spin-operator's does.
    let v = validate_spinapp(&client, &app).await.expect("validate");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].field.as_str(), v[0].message.as_str()),
        ("spec.executor", "executor does not exist in namespace")
    );
    app["metadata"]["namespace"] = json!("other");
    app["spec"]["deploymentAnnotations"] = json!({"a": "b"});
    let v = validate_spinapp(&client, &app).await.expect("validate");
    assert_eq!(
        v.iter().map(|v| v.message.as_str()).collect::<Vec<_>>(),
        ["deploymentAnnotations can't be set when the executor does not use operator deployments"]
    );
    let no_image = json!({"metadata": {"namespace": "default"},
        "spec": {"executor": "containerd-shim-spin", "replicas": 1}});
    let v = validate_spinapp(&client, &no_image)
        .await
        .expect("validate");
    assert_eq!(
        v.iter()
            .map(|v| (v.field.as_str(), v.message.as_str()))
            .collect::<Vec<_>>(),
        [("spec.image", "image must be set")]
    );
    let ok = json!({"metadata": {"namespace": "default"},
        "spec": {"image": "x", "executor": "containerd-shim-spin", "replicas": 1}});
    assert!(validate_spinapp(&client, &ok)
        .await
        .expect("validate")
        .is_empty());
    assert!(validate_executor(
        &get(&s, &["spinappexecutor", "containerd-shim-spin"]).expect("executor")
    )
    .is_empty());
}
