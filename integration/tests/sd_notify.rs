//! `Type=notify` readiness: the test binds a Unix datagram socket, starts the real
//! `spinlet server` with `NOTIFY_SOCKET` pointing at it, and checks that `READY=1`
//! arrives and that, when it does, the API answers and (with the node agent) the Node is
//! already Ready; `STOPPING=1` follows SIGTERM. The server with its agent runs in a
//! network namespace the test creates, as the other pod tests do.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pods::{Killed, Netns};
use common::spinlet_bin;

/// The next datagram, as text (panics after `limit`). A signal interrupting the wait
/// (EINTR: the other test's children come and go) is waited through.
fn receive(socket: &UnixDatagram, limit: Duration, log: &Path) -> String {
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && !left.is_zero() => {}
            Err(e) => panic!(
                "no notification ({e}); server log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// Starts `spinlet server` (inside network namespace `netns` when given) with
/// `NOTIFY_SOCKET` set.
fn spawn(netns: Option<&str>, dir: &Path, socket: &Path, extra: &[String]) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).expect("log");
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .arg("--")
                .arg(spinlet_bin());
            c
        }
        None => Command::new(spinlet_bin()),
    };
    command
        .arg("server")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--write-kubeconfig")
        .arg(dir.join("kubeconfig.yaml"))
        .args(["--https-listen-port", "0", "--bind-address", "127.0.0.1"])
        .args(extra)
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn spinlet")
}

fn terminate(child: &Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[test]
fn ready_is_sent_once_the_api_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let log = dir.path().join("server.log");
    let child = spawn(None, dir.path(), &path, &["--disable-agent".to_string()]);
    let server = Killed(child);
    let message = receive(&socket, Duration::from_secs(60), &log);
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    // Ready means serving: the kubeconfig is written and the port answers.
    let kubeconfig =
        std::fs::read_to_string(dir.path().join("kubeconfig.yaml")).expect("kubeconfig");
    let port: u16 = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("a port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    terminate(&server.0);
    let message = receive(&socket, Duration::from_secs(60), &log);
    assert!(message.lines().any(|l| l == "STOPPING=1"), "{message:?}");
}

#[test]
fn with_the_agent_ready_waits_for_the_node_to_be_ready() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the node agent's pod network needs root in a network namespace");
        return;
    }
    let Some(ns) = Netns::create("notify") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let log = dir.path().join("server.log");
    let pod_logs = dir.path().join("pod-logs").to_string_lossy().into_owned();
    let extra = ["--node-name", "notify-node", "--pod-log-dir", &pod_logs].map(String::from);
    let server = Killed(spawn(Some(&ns.0), dir.path(), &path, &extra));
    let message = receive(&socket, Duration::from_secs(120), &log);
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    // When READY=1 arrives, the Node is registered and Ready.
    let out = ns
        .cmd("kubectl")
        .env("KUBECONFIG", dir.path().join("kubeconfig.yaml"))
        .env("HOME", dir.path())
        .args([
            "get",
            "node",
            "notify-node",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .output()
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    terminate(&server.0);
    let message = receive(&socket, Duration::from_secs(60), &log);
    assert!(message.lines().any(|l| l == "STOPPING=1"), "{message:?}");
}
