//! The node agent end to end: a real `spinlet server` (API server + in-process agent), the
//! real kubectl, a real registry (Debian's `docker-registry`) holding a real Spin app built
//! from source with spin-sdk and pushed with `spinlet push`, and real pod sandboxes.
//!
//! Pods get addresses from 10.42.0.0/24, so everything — server, kubectl, registry, curl —
//! runs inside a network namespace this test creates (`ip netns add`); no traffic leaves
//! it. Where namespaces cannot be created (not root) the test prints why and skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::pods::{pod_field, state, wait_or_show, PodEnv};
use common::private_registry::PrivateRegistry;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
    env:
    - name: SPIN_VARIABLE_GREETING
      value: hi-from-env
"#;

const MISSING: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: missing
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/no-such-app:v1
"#;

#[test]
fn a_bound_pod_runs_serves_restarts_and_is_deleted_cleanly() {
    let Some(env) = PodEnv::start("agent", &[]) else {
        return;
    };
    let (s, ns, logs) = (&env.server, &env.ns, &env.pod_logs);

    // The node registers and is Ready, with its lease.
    wait_or_show(
        "the node to be Ready",
        Duration::from_secs(60),
        || {
            let out = s.kubectl_output(
                &[
                    "get",
                    "node",
                    "spinlet-test",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                None,
            );
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        },
        || state(s),
    );
    let labels = s.jsonpath(&["node", "spinlet-test"], "{.metadata.labels}");
    assert!(
        labels.contains("\"node.kubernetes.io/instance-type\":\"spinlet\""),
        "{labels}"
    );
    assert!(
        labels.contains("\"kubernetes.io/hostname\":\"spinlet-test\""),
        "{labels}"
    );
    assert_eq!(
        s.jsonpath(&["node", "spinlet-test"], "{.spec.podCIDR}"),
        "10.42.0.0/24"
    );
    assert!(s
        .jsonpath(
            &["node", "spinlet-test"],
            "{.status.nodeInfo.containerRuntimeVersion}"
        )
        .starts_with("spinlet-wasmtime://"));
    assert_eq!(
        s.jsonpath(
            &["lease", "-n", "kube-node-lease", "spinlet-test"],
            "{.spec.holderIdentity}"
        ),
        "spinlet-test"
    );

    // A pod bound to the node runs and serves on its address.
    s.kubectl_stdin(&["apply", "-f", "-"], POD);
    wait_or_show(
        "the pod to run",
        Duration::from_secs(180),
        || {
            (pod_field(s, "hello", "{.status.phase}") == "Running"
                && pod_field(s, "hello", "{.status.containerStatuses[0].ready}") == "true")
                .then_some(())
        },
        || state(s),
    );
    let ip = pod_field(s, "hello", "{.status.podIP}");
    assert!(ip.starts_with("10.42.0."), "pod IP {ip}");
    assert_eq!(
        pod_field(s, "hello", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let image_id = pod_field(s, "hello", "{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with("127.0.0.1:5000/pod-hello@sha256:"),
        "{image_id}"
    );
    let ready = pod_field(
        s,
        "hello",
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(ready, "True");
    let (code, body) = ns.curl(&format!("http://{ip}:8080/?op=var&name=greeting"));
    assert_eq!((code, body.as_str()), (200, "hi-from-env"));
    let (code, body) = ns.curl(&format!(
        "http://{ip}:8080/?op=print&text=hello-from-the-pod"
    ));
    assert_eq!((code, body.as_str()), (200, "printed"));

    // Its output is in the CRI log.
    let uid = pod_field(s, "hello", "{.metadata.uid}");
    let log = logs.join(format!("default_hello_{uid}/app/0.log"));
    let text = wait_or_show(
        "the log line",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("stdout F hello-from-the-pod"))
        },
        || state(s),
    );
    assert!(
        text.contains("stderr F to stderr: hello-from-the-pod"),
        "{text}"
    );

    // Killing the sandbox restarts it, and the restart is counted.
    let pid = env.kill_sandbox(&uid);
    env.wait_restarted("hello", 1);
    assert_eq!(
        pod_field(
            s,
            "hello",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "137"
    );
    let (code, _) = ns.curl(&format!("http://{ip}:8080/"));
    assert_eq!(
        code, 200,
        "the restarted sandbox serves on the same address"
    );

    // A second crash backs off: CrashLoopBackOff, with a BackOff event.
    let pid2 = env.kill_sandbox(&uid);
    assert_ne!(pid, pid2);
    env.wait_waiting("hello", "CrashLoopBackOff", Duration::from_secs(60));
    env.wait_restarted("hello", 2);

    // A missing image: ErrImagePull, then ImagePullBackOff, with the registry's error.
    s.kubectl_stdin(&["apply", "-f", "-"], MISSING);
    let message = env.wait_waiting("missing", "ImagePullBackOff", Duration::from_secs(60));
    assert!(message.contains("no-such-app"), "{message}");

    // Events as the kubelet records them.
    let events = s.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hello",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    for reason in ["Pulling", "Pulled", "Created", "Started", "BackOff"] {
        assert!(
            events.lines().any(|l| l == reason),
            "no {reason} event in:\n{events}"
        );
    }
    let events = s.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=missing",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    assert!(events.lines().any(|l| l == "Failed"), "{events}");

    // Deletion stops the sandbox and leaves nothing behind.
    s.kubectl(&["delete", "pod", "hello", "missing", "--timeout=120s"]);
    let out = s.kubectl_output(&["get", "pod", "hello"], None);
    assert!(!out.status.success(), "the pod is gone");
    let sandbox_dir = s.data_dir.join(format!("agent/sandboxes/{uid}"));
    assert!(
        !sandbox_dir.exists(),
        "sandbox dir left: {}",
        sandbox_dir.display()
    );
    assert!(
        !log.parent().map(Path::exists).unwrap_or(false),
        "log dir left"
    );
    let addrs = String::from_utf8_lossy(&ns.run("ip", &["addr", "show"]).stdout).into_owned();
    assert!(
        !addrs.contains(&format!("{ip}/32")),
        "address left:\n{addrs}"
    );
    let procs = Command::new("pgrep")
        .args(["-f", &format!("agent/sandboxes/{uid}/spec.json")])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&procs.stdout).trim().is_empty(),
        "sandbox processes left"
    );
}

const LIMITED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: limited
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    resources:
      requests:
        cpu: 100m
        memory: 32Mi
      limits:
        cpu: 200m
        memory: 192Mi
"#;

/// Total cpu time of a cgroup in nanoseconds, from cgroup v1's cpuacct or v2's cpu.stat.
fn cgroup_cpu_ns(path: &str) -> Option<u64> {
    let v1 = format!("/sys/fs/cgroup/cpuacct/{path}/cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(v1) {
        return text.trim().parse().ok();
    }
    let v2 = std::fs::read_to_string(format!("/sys/fs/cgroup/{path}/cpu.stat")).ok()?;
    v2.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|u| u.trim().parse::<u64>().ok())
        .map(|us| us * 1000)
}

#[test]
fn limits_hold_a_busy_pod_to_its_cpu_quota_and_a_memory_bomb_ends_oom_killed() {
    let Some(env) = PodEnv::start("limits", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    s.kubectl_stdin(&["apply", "-f", "-"], LIMITED);
    let ip = env.wait_running("limited");
    let uid = pod_field(s, "limited", "{.metadata.uid}");
    assert_eq!(pod_field(s, "limited", "{.status.qosClass}"), "Burstable");
    let cgroup = format!("kubepods/burstable/pod{uid}");
    let before = cgroup_cpu_ns(&cgroup)
        .unwrap_or_else(|| panic!("no cpu accounting for cgroup {cgroup}\n{}", state(s)));

    // A handler that never returns, for 4 s of wall time: at most 200m of a core.
    let started = std::time::Instant::now();
    let (code, _) = ns.curl_with(&["-m", "4"], &format!("http://{ip}/?op=loop"));
    assert_eq!(code, 0, "the looping request times out on the client side");
    let elapsed = started.elapsed().as_secs_f64();
    let used = cgroup_cpu_ns(&cgroup).expect("cpu accounting") - before;
    let cores = used as f64 / 1e9 / elapsed;
    assert!(
        cores > 0.02 && cores < 0.35,
        "a busy guest under limits.cpu 200m used {cores:.3} cores over {elapsed:.1} s"
    );

    // A memory bomb is killed by the kernel at limits.memory: OOMKilled, then restarted.
    let _ = ns.curl_with(&["-m", "30"], &format!("http://{ip}/?op=bomb"));
    wait_or_show(
        "OOMKilled",
        Duration::from_secs(120),
        || {
            (pod_field(
                s,
                "limited",
                "{.status.containerStatuses[0].lastState.terminated.reason}",
            ) == "OOMKilled")
                .then_some(())
        },
        || state(s),
    );
    assert_eq!(
        pod_field(
            s,
            "limited",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "137"
    );
    env.wait_running("limited");
    let (code, _) = ns.curl(&format!("http://{ip}/"));
    assert_eq!(code, 200, "the restarted sandbox serves again");

    // Deleting the pod removes its cgroup.
    s.kubectl(&["delete", "pod", "limited", "--timeout=120s"]);
    assert!(
        cgroup_cpu_ns(&cgroup).is_none(),
        "cgroup {cgroup} is left after the pod was deleted"
    );
}

#[test]
fn a_restarted_server_re_adopts_its_sandboxes_and_loses_no_request() {
    let Some(mut env) = PodEnv::start("adopt", &[]) else {
        return;
    };
    env.server.kubectl_stdin(&["apply", "-f", "-"], POD);
    let ip = env.wait_running("hello");
    let uid = pod_field(&env.server, "hello", "{.metadata.uid}");
    let started_at = pod_field(
        &env.server,
        "hello",
        "{.status.containerStatuses[0].state.running.startedAt}",
    );
    let pid = env.sandbox_pid(&uid);

    // Requests keep flowing while the server is SIGKILLed and started again.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let url = format!("http://{ip}:8080/");
    let (served, failed) = std::thread::scope(|scope| {
        let ns = &env.ns;
        let (stop, url) = (&stop, &url);
        let load = scope.spawn(move || {
            let (mut served, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match ns.curl(url) {
                    (200, _) => served += 1,
                    other => failed.push(other),
                }
            }
            (served, failed)
        });
        std::thread::sleep(Duration::from_millis(500));
        env.server.kill();
        std::thread::sleep(Duration::from_millis(500));
        env.server.boot();
        wait_or_show(
            "the agent to re-adopt the sandbox",
            Duration::from_secs(60),
            || {
                env.server
                    .log()
                    .contains("re-adopted the pod's sandbox")
                    .then_some(())
            },
            || state(&env.server),
        );
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().expect("load thread")
    });
    assert!(
        failed.is_empty(),
        "requests failed across the restart: {failed:?}"
    );
    assert!(served >= 5, "only {served} requests were served");

    // The same sandbox, as the same container run.
    let s = &env.server;
    assert_eq!(env.sandbox_pid(&uid), pid);
    assert_eq!(
        pod_field(s, "hello", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    assert_eq!(
        pod_field(
            s,
            "hello",
            "{.status.containerStatuses[0].state.running.startedAt}"
        ),
        started_at
    );
    assert_eq!(pod_field(s, "hello", "{.status.podIP}"), ip);

    // The new agent watches it: a crash is seen and counted.
    env.kill_sandbox(&uid);
    env.wait_restarted("hello", 1);
    assert_eq!(
        pod_field(
            s,
            "hello",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "137"
    );
}

const CONFIGURED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: configured
  labels:
    app: configured
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    resources:
      limits:
        memory: 256Mi
    envFrom:
    - prefix: CFG_
      configMapRef:
        name: settings
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef:
          name: settings
          key: greeting
    - name: TOKEN
      valueFrom:
        secretKeyRef:
          name: creds
          key: token
    - name: MISSING_OK
      valueFrom:
        configMapKeyRef:
          name: settings
          key: nope
          optional: true
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: NODE
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    - name: APP_LABEL
      valueFrom:
        fieldRef:
          fieldPath: metadata.labels['app']
    - name: MEMORY_MI
      valueFrom:
        resourceFieldRef:
          resource: limits.memory
          divisor: 1Mi
    - name: COMBINED
      value: "$(GREETING) and $(NODE), not $$(GREETING)"
"#;

const SETTINGS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello from a configmap
  colour: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  token: s3cret
"#;

#[test]
fn an_unbound_pod_is_scheduled_and_gets_its_config_maps_secrets_and_downward_api() {
    let Some(env) = PodEnv::start("env", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    // No nodeName: the scheduler binds it to the node; its ConfigMap does not exist yet.
    s.kubectl_stdin(&["apply", "-f", "-"], CONFIGURED);
    let message = env.wait_waiting(
        "configured",
        "CreateContainerConfigError",
        Duration::from_secs(120),
    );
    assert_eq!(message, "configmap \"settings\" not found");
    assert_eq!(
        pod_field(s, "configured", "{.spec.nodeName}"),
        "spinlet-test"
    );

    // Once they exist, the pod starts with them.
    s.kubectl_stdin(&["apply", "-f", "-"], SETTINGS);
    let ip = env.wait_running("configured");
    let get = |name: &str| {
        let (code, body) = ns.curl(&format!("http://{ip}/?op=env&name={name}"));
        assert_eq!(code, 200, "{name}: {body}");
        body
    };
    assert_eq!(get("GREETING"), "hello from a configmap");
    assert_eq!(get("CFG_colour"), "blue");
    assert_eq!(get("TOKEN"), "s3cret");
    assert_eq!(get("POD_IP"), ip);
    assert_eq!(get("NODE"), "spinlet-test");
    assert_eq!(get("APP_LABEL"), "configured");
    assert_eq!(get("MEMORY_MI"), "256");
    assert_eq!(
        get("COMBINED"),
        "hello from a configmap and spinlet-test, not $(GREETING)"
    );
    let (code, _) = ns.curl(&format!("http://{ip}/?op=env&name=MISSING_OK"));
    assert_eq!(code, 404, "an optional missing key sets nothing");
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - name: web
      containerPort: 80
    readinessProbe:
      httpGet:
        path: /?op=kv-get&key=ready
        port: web
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      tcpSocket:
        port: 80
      periodSeconds: 1
"#;

const UNHEALTHY: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: unhealthy
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    livenessProbe:
      httpGet:
        path: /?op=status&code=500
        port: 80
      periodSeconds: 1
      failureThreshold: 2
"#;

fn events_of(s: &common::Server, pod: &str) -> String {
    s.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn readiness_probes_drive_ready_and_a_failing_liveness_probe_restarts_the_container() {
    let Some(env) = PodEnv::start("probes", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    s.kubectl_stdin(&["apply", "-f", "-"], PROBED);
    s.kubectl_stdin(&["apply", "-f", "-"], UNHEALTHY);

    // Running but not ready while the readiness endpoint answers 404.
    let ip = wait_or_show(
        "the probed pod to run, not ready",
        Duration::from_secs(120),
        || {
            (pod_field(s, "probed", "{.status.phase}") == "Running"
                && events_of(s, "probed").contains(
                    "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404",
                ))
            .then(|| pod_field(s, "probed", "{.status.podIP}"))
        },
        || state(s),
    );
    assert_eq!(
        pod_field(s, "probed", "{.status.containerStatuses[0].ready}"),
        "false"
    );
    assert_eq!(
        pod_field(
            s,
            "probed",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );

    // The app becomes ready: READY 1/1; and unready again: 0/1.
    assert_eq!(
        ns.curl(&format!("http://{ip}/?op=kv-set&key=ready&value=1"))
            .0,
        200
    );
    wait_or_show(
        "ready",
        Duration::from_secs(60),
        || {
            (pod_field(
                s,
                "probed",
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            ) == "True")
                .then_some(())
        },
        || state(s),
    );
    assert_eq!(
        ns.curl(&format!("http://{ip}/?op=kv-delete&key=ready")).0,
        200
    );
    wait_or_show(
        "unready",
        Duration::from_secs(60),
        || {
            (pod_field(s, "probed", "{.status.containerStatuses[0].ready}") == "false")
                .then_some(())
        },
        || state(s),
    );
    assert_eq!(
        pod_field(s, "probed", "{.status.containerStatuses[0].restartCount}"),
        "0",
        "readiness never restarts"
    );

    // Liveness failing twice in a row: Unhealthy, Killing, restarted.
    wait_or_show(
        "the liveness restart",
        Duration::from_secs(120),
        || {
            let restarts: u32 = pod_field(
                s,
                "unhealthy",
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
            (restarts >= 1).then_some(())
        },
        || state(s),
    );
    let events = events_of(s, "unhealthy");
    assert!(
        events.contains("Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500"),
        "{events}"
    );
    assert!(
        events.contains("Killing: Container app failed liveness probe, will be restarted"),
        "{events}"
    );
}

const MOUNTED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: mounted
  labels:
    tier: web
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    volumeMounts:
    - {name: cfg, mountPath: /config}
    - {name: sec, mountPath: /secret}
    - {name: scratch, mountPath: /scratch}
    - {name: info, mountPath: /info}
    - {name: host, mountPath: /host, readOnly: true}
  volumes:
  - name: cfg
    configMap:
      name: files
  - name: sec
    secret:
      secretName: keys
      items:
      - {key: token, path: nested/token.txt}
  - name: scratch
    emptyDir: {}
  - name: info
    downwardAPI:
      items:
      - path: name
        fieldRef: {fieldPath: metadata.name}
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
  - name: host
    hostPath:
      path: HOST_DIR
      type: DirectoryOrCreate
"#;

const FILES: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: files
data:
  greeting: first version
---
apiVersion: v1
kind: Secret
metadata:
  name: keys
stringData:
  token: s3cret-file
"#;

#[test]
fn volumes_are_mounted_as_preopens_and_follow_their_config_map() {
    let Some(env) = PodEnv::start("volumes", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    let host_dir = env.scratch.path().join("host-volume");
    let manifest = MOUNTED.replace("HOST_DIR", &host_dir.to_string_lossy());
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    // The ConfigMap does not exist yet: FailedMount, and no start.
    wait_or_show(
        "FailedMount",
        Duration::from_secs(60),
        || {
            events_of(s, "mounted")
                .contains("FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"files\" not found")
                .then_some(())
        },
        || state(s),
    );
    s.kubectl_stdin(&["apply", "-f", "-"], FILES);
    std::fs::create_dir_all(&host_dir).expect("host dir");
    std::fs::write(host_dir.join("from-host"), "host file").expect("host file");
    let ip = env.wait_running("mounted");
    let read = |path: &str| ns.curl(&format!("http://{ip}/?op=read&path={path}"));
    assert_eq!(read("/config/greeting"), (200, "first version".to_string()));
    assert_eq!(
        read("/secret/nested/token.txt"),
        (200, "s3cret-file".to_string())
    );
    assert_eq!(read("/info/name"), (200, "mounted".to_string()));
    assert_eq!(read("/info/labels"), (200, "tier=\"web\"\n".to_string()));
    assert_eq!(read("/host/from-host"), (200, "host file".to_string()));
    let write = |path: &str| ns.curl(&format!("http://{ip}/?op=write&path={path}")).0;
    assert_eq!(write("/scratch/new"), 200, "emptyDir is writable");
    assert_eq!(read("/scratch/new").0, 200);
    assert_ne!(write("/config/new"), 200, "configMap volumes are read-only");
    assert_ne!(write("/host/new"), 200, "readOnly mounts are read-only");
    assert!(!host_dir.join("new").exists());

    // A change to the ConfigMap reaches the running pod.
    s.kubectl(&[
        "patch",
        "configmap",
        "files",
        "-p",
        r#"{"data":{"greeting":"second version"}}"#,
    ]);
    wait_or_show(
        "the updated file",
        Duration::from_secs(60),
        || (read("/config/greeting").1 == "second version").then_some(()),
        || state(s),
    );
}

#[test]
fn image_pull_secrets_and_pull_policies_are_honoured() {
    let Some(env) = PodEnv::start("pull", &[]) else {
        return;
    };
    let (s, ns) = (&env.server, &env.ns);
    // A second registry that wants credentials.
    let private = env.scratch.path().join("private");
    let registry = PrivateRegistry::start(ns, &private, 5001, "puller", "pa55");
    // Push there with credentials from a Docker config, as `spin registry push` would.
    let app = common::pods::hello_app(&private);
    registry.push(ns, &app, "127.0.0.1:5001/private:v1");

    let pod = |name: &str, image: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}  containers:\n  - name: app\n    image: {image}\n"
        )
    };
    // Without the secret: the registry's 401 is the pull error.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("nosecret", "127.0.0.1:5001/private:v1", ""),
    );
    let message = wait_or_show(
        "ErrImagePull without credentials",
        Duration::from_secs(60),
        || {
            let m = pod_field(
                s,
                "nosecret",
                "{.status.containerStatuses[0].state.waiting.message}",
            );
            m.contains("401").then_some(m)
        },
        || state(s),
    );
    assert!(message.contains("127.0.0.1:5001"), "{message}");
    // With a dockerconfigjson secret: it runs.
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=127.0.0.1:5001",
        "--docker-username=puller",
        "--docker-password=pa55",
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod(
            "withsecret",
            "127.0.0.1:5001/private:v1",
            "  imagePullSecrets:\n  - name: regcred\n",
        ),
    );
    env.wait_running("withsecret");

    // Never: only the cache. The node has the public image cached once a pod used it.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("never-missing", "127.0.0.1:5000/never-pulled:v1", "").replace(
            "    image: 127.0.0.1:5000/never-pulled:v1\n",
            "    image: 127.0.0.1:5000/never-pulled:v1\n    imagePullPolicy: Never\n",
        ),
    );
    env.wait_waiting(
        "never-missing",
        "ErrImageNeverPull",
        Duration::from_secs(60),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("cached", common::pods::HELLO_IMAGE, ""),
    );
    env.wait_running("cached");
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("never-cached", common::pods::HELLO_IMAGE, "").replace(
            "    image: 127.0.0.1:5000/pod-hello:v1\n",
            "    image: 127.0.0.1:5000/pod-hello:v1\n    imagePullPolicy: Never\n",
        ),
    );
    env.wait_running("never-cached");
}
