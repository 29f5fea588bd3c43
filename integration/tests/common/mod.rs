//! Test harness shared by the end-to-end tests: starts the real `spinlet` binary on a
//! free port with its own data dir, runs the real `kubectl` against it, and builds a real
//! `kube` client from the kubeconfig it writes.
//!
//! The binary is looked up next to the test executable (`target/<profile>/spinlet`), so
//! run `cargo build` before `cargo test` (the README's test command does), or set
//! `SPINLET_BIN`.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod installer;
pub mod pods;
pub mod private_registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the spinlet binary under test.
pub fn spinlet_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SPINLET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/spinlet
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("spinlet"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build` first (the README's test command does)",
        bin.display()
    );
    bin
}

/// A running spinlet server.
pub struct Server {
    child: Option<Child>,
    /// Scratch dir holding data dir, kubeconfig, kubectl's HOME and the log.
    pub dir: tempfile::TempDir,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
    /// The HTTPS port.
    pub port: u16,
    extra: Vec<String>,
    /// The network namespace the server and kubectl run in, if any (entered with
    /// `nsenter --net`, which keeps the host's mounts: `ip netns exec` remounts /sys and
    /// so hides the cgroup hierarchies).
    netns: Option<String>,
}

impl Server {
    /// Starts a server with default flags.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra flags and without the node agent (the API tests'
    /// servers: no Node, Lease or pod sandboxes of their own in what they check).
    pub fn start_with(extra: &[&str]) -> Server {
        let mut flags = vec!["--disable-agent"];
        flags.extend_from_slice(extra);
        Server::launch(&flags, None)
    }

    /// Starts a server with its node agent inside the network namespace `netns`; kubectl
    /// runs there too.
    pub fn start_in_netns(netns: &str, extra: &[&str]) -> Server {
        Server::launch(extra, Some(netns.to_string()))
    }

    fn launch(extra: &[&str], netns: Option<String>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut s = Server {
            child: None,
            dir,
            data_dir,
            kubeconfig,
            port: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns,
        };
        s.boot();
        s
    }

    /// (Re)starts the process on the same data dir and waits until it serves.
    pub fn boot(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = self
            .in_netns(&spinlet_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--write-kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--https-listen-port", "0"])
            .args(
                (!self.extra.iter().any(|f| f == "--bind-address"))
                    .then_some(["--bind-address", "127.0.0.1"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn spinlet");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.kubeconfig) {
                if let Some(port) = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
                    .and_then(|p| p.trim().parse().ok())
                {
                    self.port = port;
                    // The kubeconfig is written once the server listens; from outside
                    // its namespace that is all there is to see.
                    if self.netns.is_some()
                        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    {
                        return;
                    }
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("spinlet exited early with {status}; log:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "spinlet did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no shutdown path runs).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `program`, run inside the server's network namespace when it has one.
    pub fn in_netns(&self, program: &Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(program);
                c
            }
        }
    }

    /// A kubectl command against this server, with its own discovery cache.
    pub fn kubectl_cmd(&self) -> Command {
        let mut c = self.in_netns(Path::new("kubectl"));
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path());
        c
    }

    /// Runs kubectl, returning its output whatever the exit status.
    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.kubectl_cmd();
        c.args(args);
        match stdin {
            None => c.output().expect("run kubectl"),
            Some(input) => {
                use std::io::Write;
                let mut child = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run kubectl");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("kubectl output")
            }
        }
    }

    /// Runs kubectl and returns stdout, panicking with stderr on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get <target…> -o jsonpath=<path>`: one field of a stored object.
    pub fn jsonpath(&self, target: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(target);
        let output = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &output]);
        self.kubectl(&args)
    }

    /// Runs kubectl with a manifest on stdin (`-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], manifest: &str) -> String {
        let out = self.kubectl_output(args, Some(manifest));
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {} should have failed but printed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A kube client from the written kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
