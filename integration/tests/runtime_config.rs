//! A runtime config mounted at `/runtime-config.toml` (as spin-operator mounts its
//! runtime-config Secret, with a `subPath`) is the app's runtime config, as
//! containerd-shim-spin reads it: here it points the app's default key-value store at a
//! database the test names, and the app's writes land there; and a SpinApp's
//! `runtimeConfig.keyValueStores` of type `redis` (the controller renders the TOML, the
//! pod mounts it) keeps the app's keys in a real `redis-server`. In a network namespace
//! the test creates (see `common::pods`).

mod common;

use std::time::Duration;

use base64::Engine;
use common::pods::{state, wait_for, wait_or_show, Killed, PodEnv, HELLO_IMAGE};

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

/// Runs `redis-cli -p <port> <args>` in the test's namespace; its trimmed output.
fn redis_cli(env: &PodEnv, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    let out = env.ns.run("redis-cli", &all);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_spinapp_key_value_store_of_type_redis_keeps_keys_in_redis() {
    let Some(env) = PodEnv::start("runtimecfg-redis", &[]) else {
        return;
    };
    let s = &env.server;
    // Debian's redis-server on the namespace's loopback, without persistence.
    let port = 6390;
    let log = std::fs::File::create(env.scratch.path().join("redis.log")).expect("redis log");
    let _redis = Killed(
        env.ns
            .cmd("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(env.scratch.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server (Debian's redis-server package)"),
    );
    wait_for("redis-server", Duration::from_secs(30), || {
        (redis_cli(&env, port, &["PING"]) == "PONG").then_some(())
    });

    let app = format!(
        r#"
apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: redis-kv
spec:
  image: {HELLO_IMAGE}
  replicas: 1
  executor: containerd-shim-spin
  runtimeConfig:
    keyValueStores:
    - name: default
      type: redis
      options:
      - name: url
        value: redis://127.0.0.1:{port}/2
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &app);
    let ip = wait_or_show(
        "a ready pod of redis-kv",
        Duration::from_secs(180),
        || {
            let ready = s.jsonpath(
                &["pods", "-l", "core.spinoperator.dev/app-name=redis-kv"],
                "{.items[0].status.containerStatuses[0].ready}",
            );
            (ready == "true").then(|| {
                s.jsonpath(
                    &["pods", "-l", "core.spinoperator.dev/app-name=redis-kv"],
                    "{.items[0].status.podIP}",
                )
            })
        },
        || state(s),
    );
    // The rendered runtime config the pod mounts names the store.
    let secrets = s.kubectl(&[
        "get",
        "secrets",
        "-l",
        "core.spinoperator.dev/app-name=redis-kv",
        "-o",
        "jsonpath={.items[0].data.runtime-config\\.toml}",
    ]);
    let toml = base64::engine::general_purpose::STANDARD
        .decode(secrets.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| panic!("runtime config {secrets:?}: {e}"));
    assert!(
        toml.contains("[key_value_store.default]") && toml.contains("redis"),
        "{toml}"
    );

    let (code, body) = env.ns.curl(&format!(
        "http://{ip}:80/?op=kv-set&key=greeting&value=hello"
    ));
    assert_eq!((code, body.as_str()), (200, "stored"));
    assert_eq!(
        redis_cli(&env, port, &["-n", "2", "GET", "greeting"]),
        "hello"
    );
    redis_cli(
        &env,
        port,
        &["-n", "2", "SET", "from-cli", "written by redis-cli"],
    );
    let (code, body) = env
        .ns
        .curl(&format!("http://{ip}:80/?op=kv-get&key=from-cli"));
    assert_eq!((code, body.as_str()), (200, "written by redis-cli"));
    let (code, body) = env.ns.curl(&format!("http://{ip}:80/?op=kv-keys"));
    assert_eq!((code, body.as_str()), (200, "from-cli,greeting"));
}
