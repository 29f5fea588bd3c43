//! A runtime config mounted at `/runtime-config.toml` (as spin-operator mounts its
//! runtime-config Secret, with a `subPath`) is the app's runtime config, as
//! containerd-shim-spin reads it: here it points the app's default key-value store at a
//! database the test names, and the app's writes land there. In a network namespace the
//! test creates (see `common::pods`).

mod common;

use std::time::Duration;

use common::pods::{wait_for, PodEnv};

#[test]
fn a_mounted_runtime_config_configures_the_app() {
    let Some(env) = PodEnv::start("runtimecfg", &[]) else {
        return;
    };
    let s = &env.server;
    let db = env.scratch.path().join("kv-from-runtime-config");
    let secret = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: app-runtime-config
stringData:
  runtime-config.toml: |
    [key_value_store.default]
    type = "spin"
    path = "{}"
"#,
        db.display()
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &secret);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: configured
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
    volumeMounts:
    - name: spin-runtime-config
      mountPath: /runtime-config.toml
      subPath: runtime-config.toml
      readOnly: true
  volumes:
  - name: spin-runtime-config
    secret:
      secretName: app-runtime-config
      optional: true
      items:
      - key: runtime-config.toml
        path: runtime-config.toml
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], pod);
    let ip = env.wait_running("configured");
    // The store is opened where the runtime config says when the app loads.
    wait_for(
        "the store at the configured path",
        Duration::from_secs(30),
        || db.exists().then_some(()),
    );
    let (code, body) = env.ns.curl(&format!(
        "http://{ip}:8080/?op=kv-set&key=greeting&value=hello"
    ));
    assert_eq!((code, body.as_str()), (200, "stored"));
    wait_for(
        "the store at the configured path",
        Duration::from_secs(30),
        || db.exists().then_some(()),
    );
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:8080/?op=kv-get&key=greeting"));
    assert_eq!((code, body.as_str()), (200, "hello"));
}
