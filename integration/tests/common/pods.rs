//! Pods end to end: a network namespace (pod addresses live in 10.42.0.0/24, so server,
//! kubectl, registry and curl all run inside one the test creates), Debian's
//! `docker-registry` on 127.0.0.1:5000 in it, the spin-sdk 5 hello app built from source
//! and pushed with `spinlet push`, and a `spinlet server` with its node agent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{spinlet_bin, Server};

/// The node name the pod tests' server registers.
pub const NODE: &str = "spinlet-test";

/// The hello app's reference in the namespace's registry.
pub const HELLO_IMAGE: &str = "127.0.0.1:5000/pod-hello:v1";

/// A network namespace with `lo` up, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn create(tag: &str) -> Option<Netns> {
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

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.0))
            .arg("--")
            .arg(program);
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        self.cmd(program).args(args).output().expect("run in netns")
    }

    /// `curl` inside the namespace: (HTTP status, body).
    pub fn curl(&self, url: &str) -> (u16, String) {
        self.curl_with(&["-m", "20"], url)
    }

    /// `curl` with extra options (e.g. `-m 4`): (HTTP status, 0 when none came; body).
    pub fn curl_with(&self, options: &[&str], url: &str) -> (u16, String) {
        let mut args = vec!["-s", "-w", "\n%{http_code}"];
        args.extend_from_slice(options);
        args.push(url);
        let out = self.run("curl", &args);
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
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `docker-registry` on 127.0.0.1:5000 inside `ns`.
pub fn registry(ns: &Netns, dir: &Path) -> Killed {
    registry_on(ns, dir, 5000, "")
}

/// Starts `docker-registry` on 127.0.0.1:`port` inside `ns`, storing under `dir`, with
/// `extra` top-level YAML (e.g. an `auth:` section); waits until `/v2/` answers.
pub fn registry_on(ns: &Netns, dir: &Path, port: u16, extra: &str) -> Killed {
    std::fs::create_dir_all(dir).expect("registry dir");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
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
    let url = format!("http://127.0.0.1:{port}/v2/");
    wait_for("the registry", Duration::from_secs(30), || {
        matches!(ns.curl(&url).0, 200 | 401).then_some(())
    });
    registry
}

/// Polls `check` every 100 ms until it gives a value; panics after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_or_show(what, limit, check, String::new)
}

/// As [`wait_for`], printing `show()` when it times out.
pub fn wait_or_show<T>(
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
pub fn state(s: &Server) -> String {
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
pub fn hello_app(dir: &Path) -> PathBuf {
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
key_value_stores = ["default"]
[component.hello.variables]
greeting = "{{{{ greeting }}}}"
"#,
            wasm.display()
        ),
    )
    .expect("spin.toml");
    app_dir
}

/// `kubectl port-forward <target> <local>:80`, once it says it forwards; killed on drop.
pub fn port_forward(s: &Server, target: &str, local: u16) -> Killed {
    let mut cmd = s.kubectl_cmd();
    cmd.args(["port-forward", target, &format!("{local}:80")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Killed(cmd.spawn().expect("kubectl port-forward"));
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with(&format!("Forwarding from 127.0.0.1:{local}")),
        "kubectl port-forward {target}: {first:?}\n{}",
        state(s)
    );
    // Keep reading so kubectl never writes to a closed pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    child
}

/// `kubectl get pod <pod> -o jsonpath=<path>`.
pub fn pod_field(s: &Server, pod: &str, path: &str) -> String {
    s.jsonpath(&["pod", pod], path)
}

/// A namespace with a registry holding the hello app and a server with its agent.
pub struct PodEnv {
    /// The server (kubectl runs in the namespace).
    pub server: Server,
    /// Where container logs go.
    pub pod_logs: PathBuf,
    _registry: Option<Killed>,
    /// Scratch space (registry storage, the app).
    pub scratch: tempfile::TempDir,
    /// The namespace (dropped last).
    pub ns: Netns,
}

impl PodEnv {
    /// Sets everything up; `None` (after saying why) where namespaces cannot be made.
    pub fn start(tag: &str, extra_flags: &[&str]) -> Option<PodEnv> {
        PodEnv::start_with(tag, extra_flags, true)
    }

    /// A namespace with no registry at all and a server with its agent (the air-gapped
    /// tests bring their images in archives).
    pub fn start_offline(tag: &str, extra_flags: &[&str]) -> Option<PodEnv> {
        PodEnv::start_with(tag, extra_flags, false)
    }

    fn start_with(tag: &str, extra_flags: &[&str], with_registry: bool) -> Option<PodEnv> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: pod addresses need root (CAP_NET_ADMIN) in a network namespace");
            return None;
        }
        let ns = Netns::create(tag)?;
        let scratch = tempfile::tempdir().expect("scratch");
        let pod_logs = scratch.path().join("pod-logs");
        let logs_flag = pod_logs.to_string_lossy().into_owned();
        let mut flags = vec!["--node-name", NODE, "--pod-log-dir", &logs_flag];
        flags.extend_from_slice(extra_flags);
        if !with_registry {
            let server = Server::start_in_netns(&ns.0, &flags);
            return Some(PodEnv {
                server,
                pod_logs,
                _registry: None,
                scratch,
                ns,
            });
        }
        let registry = registry(&ns, scratch.path());
        let app = hello_app(scratch.path());
        let push = ns
            .cmd(&spinlet_bin().to_string_lossy())
            .args(["push"])
            .arg(&app)
            .arg(HELLO_IMAGE)
            .output()
            .expect("spinlet push");
        assert!(
            push.status.success(),
            "push: {}",
            String::from_utf8_lossy(&push.stderr)
        );
        let server = Server::start_in_netns(&ns.0, &flags);
        Some(PodEnv {
            server,
            pod_logs,
            _registry: Some(registry),
            scratch,
            ns,
        })
    }

    /// The sandboxes this environment's agent started (they outlive the server, as
    /// containers outlive a kubelet): (pid, cgroup path) of each.
    fn sandboxes(&self) -> Vec<(i32, Option<String>)> {
        let root = self.server.data_dir.join("agent/sandboxes");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(entry.path().join("pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok());
            let cgroup = std::fs::read(entry.path().join("spec.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["cgroup"].as_str().map(str::to_string));
            if let Some(pid) = pid {
                out.push((pid, cgroup));
            }
        }
        out
    }

    /// The pid of the sandbox running pod `uid`.
    pub fn sandbox_pid(&self, uid: &str) -> i32 {
        let file = self
            .server
            .data_dir
            .join(format!("agent/sandboxes/{uid}/pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// SIGKILLs the sandbox of pod `uid`; returns its pid.
    pub fn kill_sandbox(&self, uid: &str) -> i32 {
        let pid = self.sandbox_pid(uid);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the sandbox");
        pid
    }

    /// Waits until `pod`'s container has restarted `count` times and is ready again.
    pub fn wait_restarted(&self, pod: &str, count: u32) {
        let s = &self.server;
        let count = count.to_string();
        wait_or_show(
            &format!("{pod} to restart ({count})"),
            Duration::from_secs(120),
            || {
                (pod_field(s, pod, "{.status.containerStatuses[0].restartCount}") == count
                    && pod_field(s, pod, "{.status.containerStatuses[0].ready}") == "true")
                    .then_some(())
            },
            || state(s),
        );
    }

    /// Waits until `pod`'s container waits with `reason`; returns the waiting message.
    pub fn wait_waiting(&self, pod: &str, reason: &str, limit: Duration) -> String {
        let s = &self.server;
        wait_or_show(
            &format!("{pod} to wait with {reason}"),
            limit,
            || {
                let now = pod_field(
                    s,
                    pod,
                    "{.status.containerStatuses[0].state.waiting.reason}",
                );
                (now == reason).then(|| {
                    pod_field(
                        s,
                        pod,
                        "{.status.containerStatuses[0].state.waiting.message}",
                    )
                })
            },
            || state(s),
        )
    }

    /// Runs `f` with a kube client on a thread inside the test's network namespace (the
    /// server listens on the namespace's 127.0.0.1).
    pub fn in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce(kube::Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
            + Send
            + 'static,
    ) -> T {
        let ns_path = format!("/run/netns/{}", self.ns.0);
        let kubeconfig = self.server.kubeconfig.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&ns_path).expect("open the netns");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("client config");
                let client = kube::Client::try_from(config).expect("client");
                f(client).await
            })
        })
        .join()
        .expect("the netns thread")
    }

    /// Waits until the pod runs with its container ready; returns its IP.
    pub fn wait_running(&self, pod: &str) -> String {
        let s = &self.server;
        wait_or_show(
            &format!("pod {pod} to run"),
            Duration::from_secs(180),
            || {
                (pod_field(s, pod, "{.status.phase}") == "Running"
                    && pod_field(s, pod, "{.status.containerStatuses[0].ready}") == "true")
                    .then(|| pod_field(s, pod, "{.status.podIP}"))
            },
            || state(s),
        )
    }
}

impl Drop for PodEnv {
    fn drop(&mut self) {
        self.server.kill();
        for (pid, cgroup) in self.sandboxes() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let data_dir = self.server.data_dir.to_string_lossy().into_owned();
            if String::from_utf8_lossy(&cmdline).contains(&data_dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                // Wait for it to go so its cgroup can be removed.
                let deadline = Instant::now() + Duration::from_secs(10);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if let Some(cgroup) = cgroup {
                for controller in ["cpu", "cpuacct", "memory", "pids", ""] {
                    let _ = std::fs::remove_dir(
                        Path::new("/sys/fs/cgroup").join(controller).join(&cgroup),
                    );
                }
            }
        }
    }
}
