//! The node agent end to end: a real `spinlet server` (API server + in-process agent), the
//! real kubectl, a real registry (Debian's `docker-registry`) holding a real Spin app built
//! from source with spin-sdk and pushed with `spinlet push`, and real pod sandboxes.
//!
//! Pods get addresses from 10.42.0.0/24, so everything — server, kubectl, registry, curl —
//! runs inside a network namespace this test creates (`ip netns add`); no traffic leaves
//! it. Where namespaces cannot be created (not root) the test prints why and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spinlet_bin, Server};

/// A network namespace with `lo` up, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(tag: &str) -> Option<Netns> {
        let name = format!("spinlet-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "skipping: `ip netns add` is not permitted here: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return None;
            }
            Err(e) => {
                eprintln!("skipping: cannot run `ip` (iproute2): {e}");
                return None;
            }
        }
        let ns = Netns(name);
        assert!(ns.run("ip", &["link", "set", "lo", "up"]).status.success());
        Some(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        self.cmd(program).args(args).output().expect("run in netns")
    }

    /// `curl` inside the namespace: (HTTP status, body).
    fn curl(&self, url: &str) -> (u16, String) {
        let out = self.run("curl", &["-s", "-m", "20", "-w", "\n%{http_code}", url]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `docker-registry` on 127.0.0.1:5000 inside `ns`.
fn registry(ns: &Netns, dir: &Path) -> Killed {
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
            dir.join("registry").display()
        ),
    )
    .expect("registry config");
    let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
    let child = ns
        .cmd("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start docker-registry (Debian's docker-registry package)");
    let registry = Killed(child);
    wait_for("the registry", Duration::from_secs(30), || {
        (ns.curl("http://127.0.0.1:5000/v2/").0 == 200).then_some(())
    });
    registry
}

/// Polls `check` every 100 ms until it gives a value; panics after `limit`.
fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_or_show(what, limit, check, String::new)
}

/// As [`wait_for`], printing `show()` when it times out.
fn wait_or_show<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    show: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            show()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pods, the events and the server's log, for a failure message.
fn state(s: &Server) -> String {
    let pods = s.kubectl_output(&["get", "pods", "-o", "yaml"], None);
    let events = s.kubectl_output(&["get", "events"], None);
    format!(
        "pods:\n{}\nevents:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&pods.stdout),
        String::from_utf8_lossy(&events.stdout),
        s.log()
    )
}

/// The hello app (spin-sdk 5) with a variable, as a manifest directory.
fn hello_app(dir: &Path) -> PathBuf {
    let (app, support) = test_apps::spin_runtime_app("rust-v5-hello");
    let wasm = test_apps::build(&app, &[&support], "wasm32-wasip2");
    let app_dir = dir.join("app");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(
        app_dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "pod-hello"
version = "1.0.0"
[variables]
greeting = {{ default = "unset" }}
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "{}"
[component.hello.variables]
greeting = "{{{{ greeting }}}}"
"#,
            wasm.display()
        ),
    )
    .expect("spin.toml");
    app_dir
}

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

fn pod_field(s: &Server, pod: &str, path: &str) -> String {
    s.jsonpath(&["pod", pod], path)
}

#[test]
fn a_bound_pod_runs_serves_restarts_and_is_deleted_cleanly() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: pod addresses need root (CAP_NET_ADMIN) in a network namespace");
        return;
    }
    let Some(ns) = Netns::create("agent") else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let _registry = registry(&ns, scratch.path());
    let app = hello_app(scratch.path());
    let push = ns
        .cmd(&spinlet_bin().to_string_lossy())
        .args(["push"])
        .arg(&app)
        .arg("127.0.0.1:5000/pod-hello:v1")
        .output()
        .expect("spinlet push");
    assert!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    let logs = scratch.path().join("pod-logs");
    let logs_flag = logs.to_string_lossy().into_owned();
    let s = Server::start_in_netns(
        &ns.0,
        &["--node-name", "spinlet-test", "--pod-log-dir", &logs_flag],
    );

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
        || state(&s),
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
            (pod_field(&s, "hello", "{.status.phase}") == "Running"
                && pod_field(&s, "hello", "{.status.containerStatuses[0].ready}") == "true")
                .then_some(())
        },
        || state(&s),
    );
    let ip = pod_field(&s, "hello", "{.status.podIP}");
    assert!(ip.starts_with("10.42.0."), "pod IP {ip}");
    assert_eq!(
        pod_field(&s, "hello", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let image_id = pod_field(&s, "hello", "{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with("127.0.0.1:5000/pod-hello@sha256:"),
        "{image_id}"
    );
    let ready = pod_field(
        &s,
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
    let uid = pod_field(&s, "hello", "{.metadata.uid}");
    let log = logs.join(format!("default_hello_{uid}/app/0.log"));
    let text = wait_or_show(
        "the log line",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("stdout F hello-from-the-pod"))
        },
        || state(&s),
    );
    assert!(
        text.contains("stderr F to stderr: hello-from-the-pod"),
        "{text}"
    );

    // Killing the sandbox restarts it, and the restart is counted.
    let pid_file = s.data_dir.join(format!("agent/sandboxes/{uid}/pid"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("sandbox pid")
        .trim()
        .parse()
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the sandbox");
    wait_or_show(
        "the restart",
        Duration::from_secs(120),
        || {
            (pod_field(&s, "hello", "{.status.containerStatuses[0].restartCount}") == "1"
                && pod_field(&s, "hello", "{.status.containerStatuses[0].ready}") == "true")
                .then_some(())
        },
        || state(&s),
    );
    assert_eq!(
        pod_field(
            &s,
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
    let pid2: i32 = std::fs::read_to_string(&pid_file)
        .expect("sandbox pid")
        .trim()
        .parse()
        .expect("pid");
    assert_ne!(pid, pid2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid2),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the sandbox");
    wait_or_show(
        "CrashLoopBackOff",
        Duration::from_secs(60),
        || {
            (pod_field(
                &s,
                "hello",
                "{.status.containerStatuses[0].state.waiting.reason}",
            ) == "CrashLoopBackOff")
                .then_some(())
        },
        || state(&s),
    );
    wait_or_show(
        "the restart after the back-off",
        Duration::from_secs(120),
        || {
            (pod_field(&s, "hello", "{.status.containerStatuses[0].restartCount}") == "2"
                && pod_field(&s, "hello", "{.status.containerStatuses[0].ready}") == "true")
                .then_some(())
        },
        || state(&s),
    );

    // A missing image: ErrImagePull, then ImagePullBackOff, with the registry's error.
    s.kubectl_stdin(&["apply", "-f", "-"], MISSING);
    let message = wait_or_show(
        "ImagePullBackOff",
        Duration::from_secs(60),
        || {
            let reason = pod_field(
                &s,
                "missing",
                "{.status.containerStatuses[0].state.waiting.reason}",
            );
            (reason == "ImagePullBackOff").then(|| {
                pod_field(
                    &s,
                    "missing",
                    "{.status.containerStatuses[0].state.waiting.message}",
                )
            })
        },
        || state(&s),
    );
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
