//! API server benchmark: a closed-loop load generator against the real release `spinlet`
//! binary.
//!
//! Run it with
//!
//! ```text
//! cargo build --release && cargo bench -p integration --bench api
//! ```
//!
//! Each repeat starts a fresh `spinlet server` on a fresh temp data dir and measures, over
//! TLS with the admin client certificate, with `SPINLET_BENCH_CLIENTS` (default 24)
//! concurrent clients, each on its own TLS connection speaking HTTP/1.1 with keep-alive
//! (`hyper::client::conn::http1` over `tokio_rustls`, ALPN `http/1.1`):
//!
//! 1. idle RSS and CPU of the server process (after start-up + 3 s, over a 10 s window);
//! 2. `GET /healthz` (the TLS + HTTP transport floor) and `GET` of one ConfigMap;
//! 3. the raw `write + fdatasync` rate of the disk (same temp dir), then durable creates;
//! 4. watch delivery latency (ADDED event received − create's 2xx reply received), with one
//!    paced writer on an otherwise idle server, and under the full create load;
//! 5. RSS after the load phases.
//!
//! Every phase runs for `SPINLET_BENCH_SECS` (default 5) after a warm-up of
//! `SPINLET_BENCH_WARMUP_SECS` (default 1); the whole sequence is repeated
//! `SPINLET_BENCH_REPEATS` (default 5) times and the table reports the median and the
//! min–max of each figure across repeats. `SPINLET_BENCH_IDLE_SECS` (default 10) sets the
//! idle window. The binary is `SPINLET_BIN` or `target/release/spinlet`, found next to this
//! bench executable.
//!
//! The load generator runs on the same machine as the server, so both share the cores;
//! the table also shows how much CPU each side used during each load phase.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

type Sender = SendRequest<Full<Bytes>>;

/// Connections that ended with an error (the first few are printed).
static CONN_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Set while a server is being stopped: its connections' errors are expected then.
static STOPPING: AtomicBool = AtomicBool::new(false);

// ---------------------------------------------------------------------------------------
// Configuration and machine description
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Config {
    secs: Duration,
    warmup: Duration,
    idle: Duration,
    repeats: usize,
    clients: usize,
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Config {
        Config {
            secs: Duration::from_secs_f64(env_f64("SPINLET_BENCH_SECS", 5.0)),
            warmup: Duration::from_secs_f64(env_f64("SPINLET_BENCH_WARMUP_SECS", 1.0)),
            idle: Duration::from_secs_f64(env_f64("SPINLET_BENCH_IDLE_SECS", 10.0)),
            repeats: env_f64("SPINLET_BENCH_REPEATS", 5.0).max(1.0) as usize,
            clients: env_f64("SPINLET_BENCH_CLIENTS", 24.0).max(1.0) as usize,
        }
    }
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    })
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(|| "?".into());
    format!("nproc {nproc}; CPU {cpu}; kernel {kernel}; MemTotal {mem}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------
// /proc sampling
// ---------------------------------------------------------------------------------------

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process (`"self"` or a pid), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // The command name may contain spaces: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')').expect("')' in /proc/<pid>/stat") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': [0] state (field 3) … [11] utime (field 14), [12] stime (field 15).
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: &str) -> f64 {
    let kb: f64 = first_line_with(&format!("/proc/{pid}/status"), "VmRSS")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    kb / 1024.0
}

/// CPU used by the server and by this bench process between two points in time.
struct CpuProbe {
    server: String,
    server_t0: u64,
    self_t0: u64,
    busy_t0: u64,
    at: Instant,
    tck: f64,
}

/// CPU used in a window, each in % of one core.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    server: f64,
    bench: f64,
    /// Every other process on the machine (busy time from /proc/stat minus the two above).
    other: f64,
}

/// Busy ticks of the whole machine (all CPUs; everything but idle and iowait).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let line = stat.lines().next().expect("cpu line in /proc/stat");
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().expect("/proc/stat number"))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    f.iter().take(8).sum::<u64>() - f[3] - f[4]
}

impl CpuProbe {
    fn start(server_pid: u32, tck: f64) -> CpuProbe {
        let server = server_pid.to_string();
        CpuProbe {
            server_t0: cpu_ticks(&server),
            self_t0: cpu_ticks("self"),
            busy_t0: machine_busy_ticks(),
            server,
            at: Instant::now(),
            tck,
        }
    }

    fn stop(&self) -> CpuUse {
        let secs = self.at.elapsed().as_secs_f64();
        let pct = |ticks: u64| 100.0 * ticks as f64 / self.tck / secs;
        let server = pct(cpu_ticks(&self.server) - self.server_t0);
        let bench = pct(cpu_ticks("self") - self.self_t0);
        let busy = pct(machine_busy_ticks() - self.busy_t0);
        CpuUse {
            server,
            bench,
            other: (busy - server - bench).max(0.0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

fn spinlet_bin() -> PathBuf {
    let bin = match std::env::var_os("SPINLET_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("bench executable path");
            // target/release/deps/api-<hash> → target/release/spinlet
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("spinlet"))
                .expect("target dir")
        }
    };
    if !bin.exists() {
        eprintln!(
            "error: {} does not exist.\n\
             The benchmark drives the real release binary: run `cargo build --release` first \
             (or set SPINLET_BIN to a spinlet binary).",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    /// Spawn → `/healthz` 200 and the `default` namespace present.
    startup: Duration,
}

impl Server {
    async fn start(bin: &Path) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(["--https-listen-port", "0", "--bind-address", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let log_of =
            |dir: &Path| std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        // Wait for the kubeconfig (it names the port).
        let (port, text) = loop {
            if let Ok(text) = std::fs::read_to_string(&kubeconfig) {
                if let Some(port) = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    break (port, text);
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "spinlet exited early with {status}; log:\n{}",
                    log_of(dir.path())
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "spinlet wrote no kubeconfig within 60 s; log:\n{}",
                log_of(dir.path())
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let tls = client_tls(&text);
        let mut server = Server {
            child,
            dir,
            port,
            tls,
            startup: Duration::ZERO,
        };
        // Wait until it serves /healthz and the bootstrap created the default namespace.
        loop {
            if let Ok(mut s) = connect(port, &server.tls).await {
                let health = request(&mut s, Method::GET, "/healthz", None).await;
                let ns = request(&mut s, Method::GET, "/api/v1/namespaces/default", None).await;
                if matches!((health, ns), (Ok((200, _)), Ok((200, _)))) {
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "spinlet exited early with {status}; log:\n{}",
                    log_of(server.dir.path())
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "spinlet not ready within 60 s; log:\n{}",
                log_of(server.dir.path())
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.startup = t0.elapsed();
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// TLS + HTTP/1.1 client
// ---------------------------------------------------------------------------------------

fn kubeconfig_pem(text: &str, key: &str) -> Vec<u8> {
    let b64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().trim_start_matches(':').trim())
        .unwrap_or_else(|| panic!("no {key} in the kubeconfig"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{key} is not base64: {e}"))
}

fn client_tls(kubeconfig: &str) -> Arc<rustls::ClientConfig> {
    let ca = kubeconfig_pem(kubeconfig, "certificate-authority-data:");
    let cert = kubeconfig_pem(kubeconfig, "client-certificate-data:");
    let key = kubeconfig_pem(kubeconfig, "client-key-data:");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_slice())
        .collect::<Result<_, _>>()
        .expect("client certificate PEM");
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_slice())
        .expect("client key PEM")
        .expect("a private key in client-key-data");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn connect(port: u16, tls: &Arc<rustls::ClientConfig>) -> std::io::Result<Sender> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            if !STOPPING.load(Ordering::Relaxed) && CONN_ERRORS.fetch_add(1, Ordering::Relaxed) < 5
            {
                eprintln!("connection ended with an error: {e:?}");
            }
        }
    });
    Ok(sender)
}

/// The negotiated TLS version, cipher suite and ALPN protocol of one connection.
async fn tls_info(port: u16, tls: &Arc<rustls::ClientConfig>) -> String {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let stream = TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let c = stream.get_ref().1;
    format!(
        "{:?}, {:?}, ALPN {}",
        c.protocol_version(),
        c.negotiated_cipher_suite().map(|s| s.suite()),
        c.alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "none".into())
    )
}

fn build(method: Method, path: &str, body: Option<String>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("accept", "application/json");
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(body.map(Bytes::from).unwrap_or_default()))
        .expect("request")
}

/// One request; returns the status and the whole body.
async fn request(
    s: &mut Sender,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Bytes), hyper::Error> {
    s.ready().await?;
    let resp = s.send_request(build(method, path, body)).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

fn configmap(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default"}},"data":{{"k":"v"}}}}"#
    )
}

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";

// ---------------------------------------------------------------------------------------
// Closed-loop load
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
enum Op {
    /// GET this path.
    Get(&'static str),
    /// Create ConfigMaps named `<prefix>-<client>-<seq>`; `pace` sleeps between creates.
    Create {
        prefix: String,
        pace: Option<Duration>,
    },
}

#[derive(Default)]
struct Load {
    /// Latencies of the requests started in the measured window, in ns.
    lat: Vec<u64>,
    errors: u64,
    /// Requests that failed below HTTP (connection closed or reset); included in `errors`.
    transport_errors: u64,
    first_error: Option<String>,
    /// Created name → when its 2xx reply was received (creates in the measured window).
    replies: Vec<(String, Instant)>,
    /// Requests per second in the measured window.
    rate: f64,
    cpu: CpuUse,
}

struct ClientOut {
    lat: Vec<u64>,
    errors: u64,
    transport_errors: u64,
    first_error: Option<String>,
    replies: Vec<(String, Instant)>,
}

#[allow(clippy::too_many_arguments)] // one client's whole setup
async fn client_loop(
    mut s: Sender,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    idx: usize,
    op: Op,
    measure_from: Instant,
    end: Instant,
) -> (Sender, ClientOut) {
    let mut out = ClientOut {
        lat: Vec::with_capacity(1 << 14),
        errors: 0,
        transport_errors: 0,
        first_error: None,
        replies: Vec::new(),
    };
    let mut seq = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let (method, path, body, name) = match &op {
            Op::Get(p) => (Method::GET, *p, None, None),
            Op::Create { prefix, .. } => {
                seq += 1;
                let name = format!("{prefix}-{idx}-{seq}");
                (Method::POST, CM_PATH, Some(configmap(&name)), Some(name))
            }
        };
        let (status, body) = match request(&mut s, method, path, body).await {
            Ok(r) => r,
            Err(e) => {
                // Count it, reconnect and go on (a create may or may not have happened).
                out.errors += 1;
                out.transport_errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(format!("transport: {e:?}"));
                }
                s = connect(port, &tls).await.expect("reconnect");
                continue;
            }
        };
        let t1 = Instant::now();
        if t0 >= measure_from {
            if (200..300).contains(&status) {
                out.lat.push((t1 - t0).as_nanos() as u64);
                if let Some(n) = name {
                    out.replies.push((n, t1));
                }
            } else {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(format!(
                        "{status} {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
        }
        if let Op::Create { pace: Some(p), .. } = &op {
            tokio::time::sleep(*p).await;
        }
    }
    (s, out)
}

/// Runs `op` on every sender in `pool` (all of them concurrently) for warm-up + `secs`.
async fn run_load(pool: &mut Vec<Sender>, op: Op, cfg: &Config, server: &Server, tck: f64) -> Load {
    let measure_from = Instant::now() + cfg.warmup;
    let end = measure_from + cfg.secs;
    let tasks: Vec<_> = pool
        .drain(..)
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(client_loop(
                s,
                server.port,
                server.tls.clone(),
                i,
                op.clone(),
                measure_from,
                end,
            ))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let probe = CpuProbe::start(server.pid(), tck);
    tokio::time::sleep_until(end.into()).await;
    let cpu = probe.stop();
    let mut load = Load {
        cpu,
        ..Load::default()
    };
    let mut n = 0u64;
    for t in tasks {
        let (s, out) = t.await.expect("client task panicked");
        pool.push(s);
        n += out.lat.len() as u64;
        load.lat.extend(out.lat);
        load.errors += out.errors;
        load.transport_errors += out.transport_errors;
        if load.first_error.is_none() {
            load.first_error = out.first_error;
        }
        load.replies.extend(out.replies);
    }
    load.rate = n as f64 / cfg.secs.as_secs_f64();
    load.lat.sort_unstable();
    load
}

// ---------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------

/// A watch on its own thread and current-thread runtime (so the load generator's tasks do
/// not delay it), recording when each ADDED event's line arrived.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(String, Instant)>>,
}

impl Watcher {
    fn start(port: u16, tls: Arc<rustls::ClientConfig>, rv: &str) -> Watcher {
        let path = format!("{CM_PATH}?watch=true&resourceVersion={rv}");
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("watcher runtime");
            rt.block_on(async move {
                let mut s = connect(port, &tls).await.expect("watch connection");
                s.ready().await.expect("watch connection ready");
                let resp = s
                    .send_request(build(Method::GET, &path, None))
                    .await
                    .expect("watch request");
                assert!(
                    resp.status().is_success(),
                    "watch returned {}",
                    resp.status()
                );
                let _ = ready_tx.send(());
                let mut body = resp.into_body();
                let mut buf: Vec<u8> = Vec::new();
                let mut seen = Vec::new();
                while !stop2.load(Ordering::Relaxed) {
                    let frame =
                        match tokio::time::timeout(Duration::from_millis(20), body.frame()).await {
                            Err(_) => continue,
                            Ok(None) => break,
                            Ok(Some(f)) => f.expect("watch stream"),
                        };
                    let at = Instant::now();
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buf.extend_from_slice(&data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let v: serde_json::Value =
                            serde_json::from_slice(&line).expect("watch event JSON");
                        if v["type"] == "ADDED" {
                            if let Some(name) = v["object"]["metadata"]["name"].as_str() {
                                seen.push((name.to_string(), at));
                            }
                        }
                    }
                }
                seen
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("watch did not start within 10 s");
        Watcher { stop, thread }
    }

    fn finish(self) -> Vec<(String, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("watcher thread panicked")
    }
}

struct WatchResult {
    /// Signed latencies (ADDED received − 2xx received), in ns, sorted.
    lat: Vec<i64>,
    missing: usize,
    creates_per_s: f64,
    errors: u64,
}

async fn run_watch(
    server: &Server,
    pool: &mut Vec<Sender>,
    op: Op,
    writers: usize,
    cfg: &Config,
    tck: f64,
) -> WatchResult {
    let (status, list) = request(
        &mut pool[0],
        Method::GET,
        &format!("{CM_PATH}?limit=1"),
        None,
    )
    .await
    .expect("list");
    assert_eq!(status, 200, "list: {}", String::from_utf8_lossy(&list));
    let list: serde_json::Value = serde_json::from_slice(&list).expect("list JSON");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string();
    let watcher = Watcher::start(server.port, server.tls.clone(), &rv);
    let mut active: Vec<Sender> = pool.drain(..writers).collect();
    let load = run_load(&mut active, op, cfg, server, tck).await;
    active.append(pool);
    *pool = active;
    if let Some(e) = &load.first_error {
        eprintln!(
            "create errors during the watch phase: {} (first: {e})",
            load.errors
        );
    }
    // Let the last events arrive.
    let want: HashMap<&str, Instant> = load.replies.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = watcher.finish();
    let mut lat = Vec::with_capacity(want.len());
    let mut found = 0usize;
    for (name, at) in &seen {
        if let Some(reply) = want.get(name.as_str()) {
            found += 1;
            lat.push(if *at >= *reply {
                (*at - *reply).as_nanos() as i64
            } else {
                -((*reply - *at).as_nanos() as i64)
            });
        }
    }
    lat.sort_unstable();
    WatchResult {
        lat,
        missing: want.len() - found,
        creates_per_s: load.rate,
        errors: load.errors,
    }
}

// ---------------------------------------------------------------------------------------
// Durable-write baseline
// ---------------------------------------------------------------------------------------

/// `write(256 B) + fdatasync` in a loop on a file in `dir`: (sorted latencies in ns, per s).
fn fsync_baseline(dir: &Path, cfg: &Config) -> (Vec<u64>, f64) {
    use std::io::Write as _;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("fsync probe file");
    let block = [b'x'; 256];
    let measure_from = Instant::now() + cfg.warmup;
    let end = measure_from + cfg.secs;
    let mut lat = Vec::new();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        if t0 >= measure_from {
            lat.push(t0.elapsed().as_nanos() as u64);
        }
    }
    let _ = std::fs::remove_file(&path);
    let rate = lat.len() as f64 / cfg.secs.as_secs_f64();
    lat.sort_unstable();
    (lat, rate)
}

// ---------------------------------------------------------------------------------------
// Statistics and the report
// ---------------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn pct<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn ms_signed(ns: i64) -> f64 {
    ns as f64 / 1e6
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[derive(Clone, Copy)]
enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
}

struct Row {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Target,
}

const fn row(key: &'static str, label: &'static str, unit: &'static str, target: Target) -> Row {
    Row {
        key,
        label,
        unit,
        target,
    }
}

const ROWS: &[Row] = &[
    row(
        "startup",
        "start-up: spawn → /healthz 200 + default ns",
        "ms",
        Target::None,
    ),
    row(
        "idle_rss",
        "idle RSS (end of idle window)",
        "MiB",
        Target::AtMost(30.0),
    ),
    row(
        "idle_cpu",
        "idle CPU (idle window)",
        "% core",
        Target::AtMost(0.5),
    ),
    row(
        "idle_ocpu",
        "  other processes' CPU during the idle window",
        "% core",
        Target::None,
    ),
    row(
        "health_p50",
        "baseline GET /healthz p50",
        "ms",
        Target::None,
    ),
    row(
        "health_p99",
        "baseline GET /healthz p99",
        "ms",
        Target::None,
    ),
    row(
        "health_rps",
        "baseline GET /healthz throughput",
        "req/s",
        Target::None,
    ),
    row("get_p50", "GET configmap p50", "ms", Target::None),
    row("get_p99", "GET configmap p99", "ms", Target::AtMost(2.0)),
    row("get_rps", "GET configmap throughput", "req/s", Target::None),
    row(
        "get_scpu",
        "  server CPU during GET",
        "% core",
        Target::None,
    ),
    row("get_ccpu", "  bench CPU during GET", "% core", Target::None),
    row(
        "get_ocpu",
        "  other processes' CPU during GET",
        "% core",
        Target::None,
    ),
    row(
        "fsync_p50",
        "baseline write+fdatasync p50",
        "ms",
        Target::None,
    ),
    row(
        "fsync_p99",
        "baseline write+fdatasync p99",
        "ms",
        Target::None,
    ),
    row(
        "fsync_rate",
        "baseline write+fdatasync rate (1 thread)",
        "/s",
        Target::None,
    ),
    row("create_p50", "durable create p50", "ms", Target::None),
    row(
        "create_p99",
        "durable create p99",
        "ms",
        Target::AtMost(10.0),
    ),
    row(
        "create_rate",
        "durable creates/s",
        "/s",
        Target::AtLeast(2000.0),
    ),
    row(
        "create_gain",
        "  creates/s ÷ fdatasyncs/s (group commit gain)",
        "x",
        Target::None,
    ),
    row(
        "create_scpu",
        "  server CPU during creates",
        "% core",
        Target::None,
    ),
    row(
        "create_ccpu",
        "  bench CPU during creates",
        "% core",
        Target::None,
    ),
    row(
        "create_ocpu",
        "  other processes' CPU during creates",
        "% core",
        Target::None,
    ),
    row("create_err", "  failed creates", "count", Target::None),
    row("widle_min", "watch, idle server: min", "ms", Target::None),
    row("widle_p50", "watch, idle server: p50", "ms", Target::None),
    row(
        "widle_p99",
        "watch, idle server: p99",
        "ms",
        Target::AtMost(5.0),
    ),
    row("widle_max", "watch, idle server: max", "ms", Target::None),
    row(
        "widle_n",
        "  events matched (1 writer, 10 ms pacing)",
        "count",
        Target::None,
    ),
    row("widle_miss", "  events missing", "count", Target::None),
    row(
        "wload_min",
        "watch, under create load: min",
        "ms",
        Target::None,
    ),
    row(
        "wload_p50",
        "watch, under create load: p50",
        "ms",
        Target::None,
    ),
    row(
        "wload_p99",
        "watch, under create load: p99",
        "ms",
        Target::AtMost(5.0),
    ),
    row(
        "wload_max",
        "watch, under create load: max",
        "ms",
        Target::None,
    ),
    row("wload_n", "  events matched", "count", Target::None),
    row("wload_miss", "  events missing", "count", Target::None),
    row(
        "wload_rate",
        "  creates/s during the watch",
        "/s",
        Target::None,
    ),
    row(
        "rss_after",
        "RSS after the load phases",
        "MiB",
        Target::None,
    ),
    row(
        "errors",
        "failed requests, all phases (non-2xx or transport)",
        "count",
        Target::None,
    ),
    row(
        "terrors",
        "  of which transport errors, GET+create phases",
        "count",
        Target::None,
    ),
];

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn print_table(results: &HashMap<&'static str, Vec<f64>>) {
    println!();
    println!(
        "| {:<56} | {:>10} | {:>21} | {:<6} | {:<9} | {:<4} |",
        "figure", "median", "min – max", "unit", "target", "met"
    );
    println!(
        "|{:-<58}|{:->12}|{:->23}|{:-<8}|{:-<11}|{:-<6}|",
        "", "", "", "", "", ""
    );
    for r in ROWS {
        let Some(v) = results.get(r.key) else {
            continue;
        };
        let med = median(v);
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (target, met) = match r.target {
            Target::None => (String::new(), ""),
            Target::AtMost(t) => (
                format!("≤ {}", fmt_num(t)),
                if med <= t { "yes" } else { "NO" },
            ),
            Target::AtLeast(t) => (
                format!("≥ {}", fmt_num(t)),
                if med >= t { "yes" } else { "NO" },
            ),
        };
        println!(
            "| {:<56} | {:>10} | {:>21} | {:<6} | {:<9} | {:<4} |",
            r.label,
            fmt_num(med),
            format!("{} – {}", fmt_num(lo), fmt_num(hi)),
            r.unit,
            target,
            met
        );
    }
    println!();
    println!("met = the median across repeats meets the target.");
}

// ---------------------------------------------------------------------------------------
// One repeat
// ---------------------------------------------------------------------------------------

async fn one_repeat(
    bin: &Path,
    cfg: &Config,
    rep: usize,
    tck: f64,
    out: &mut HashMap<&'static str, Vec<f64>>,
) {
    let mut put = |k: &'static str, v: f64| out.entry(k).or_default().push(v);
    let server = Server::start(bin).await;
    let pid = server.pid();
    let spid = pid.to_string();
    put("startup", server.startup.as_secs_f64() * 1e3);
    if rep == 1 {
        println!("TLS:      {}", tls_info(server.port, &server.tls).await);
    }
    eprintln!(
        "[repeat {rep}] server pid {pid} up on port {} in {:.0} ms (data dir {})",
        server.port,
        server.startup.as_secs_f64() * 1e3,
        server.dir.path().display()
    );

    // Idle: 3 s after start-up and bootstrap, then the idle window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let probe = CpuProbe::start(pid, tck);
    tokio::time::sleep(cfg.idle).await;
    let idle = probe.stop();
    let idle_cpu = idle.server;
    let idle_rss = rss_mib(&spid);
    put("idle_rss", idle_rss);
    put("idle_ocpu", idle.other);
    put("idle_cpu", idle_cpu);
    eprintln!("[repeat {rep}] idle: RSS {idle_rss:.1} MiB, CPU {idle_cpu:.3}% of a core");

    // Clients.
    let mut pool = Vec::with_capacity(cfg.clients);
    for _ in 0..cfg.clients {
        pool.push(
            connect(server.port, &server.tls)
                .await
                .expect("client connection"),
        );
    }
    let (status, body) = request(&mut pool[0], Method::POST, CM_PATH, Some(configmap("x")))
        .await
        .expect("create x");
    assert!(
        (200..300).contains(&status),
        "creating configmap x: {status} {}",
        String::from_utf8_lossy(&body)
    );

    // 1. GET: transport floor, then the ConfigMap.
    eprintln!("[repeat {rep}] phase: GET /healthz");
    let h = run_load(&mut pool, Op::Get("/healthz"), cfg, &server, tck).await;
    if let Some(e) = &h.first_error {
        eprintln!("[repeat {rep}] /healthz errors: {} (first: {e})", h.errors);
    }
    put("health_p50", ms(pct(&h.lat, 50.0)));
    put("health_p99", ms(pct(&h.lat, 99.0)));
    put("health_rps", h.rate);
    eprintln!("[repeat {rep}] phase: GET configmap");
    let g = run_load(
        &mut pool,
        Op::Get("/api/v1/namespaces/default/configmaps/x"),
        cfg,
        &server,
        tck,
    )
    .await;
    if let Some(e) = &g.first_error {
        eprintln!("[repeat {rep}] GET errors: {} (first: {e})", g.errors);
    }
    put("get_p50", ms(pct(&g.lat, 50.0)));
    put("get_p99", ms(pct(&g.lat, 99.0)));
    put("get_rps", g.rate);
    put("get_scpu", g.cpu.server);
    put("get_ccpu", g.cpu.bench);
    put("get_ocpu", g.cpu.other);
    eprintln!(
        "[repeat {rep}] healthz p50 {:.3} p99 {:.3} ms {:.0}/s (CPU % server {:.0} bench {:.0} \
         other {:.0}); GET p50 {:.3} p99 {:.3} ms {:.0}/s (CPU % server {:.0} bench {:.0} other {:.0})",
        ms(pct(&h.lat, 50.0)),
        ms(pct(&h.lat, 99.0)),
        h.rate,
        h.cpu.server,
        h.cpu.bench,
        h.cpu.other,
        ms(pct(&g.lat, 50.0)),
        ms(pct(&g.lat, 99.0)),
        g.rate,
        g.cpu.server,
        g.cpu.bench,
        g.cpu.other
    );

    // 2. Durable create, after the disk's raw write+fdatasync rate.
    let dir = server.dir.path().to_path_buf();
    let cfg2 = cfg.clone();
    eprintln!("[repeat {rep}] phase: write+fdatasync baseline");
    let (fs_lat, fs_rate) = tokio::task::spawn_blocking(move || fsync_baseline(&dir, &cfg2))
        .await
        .expect("fsync baseline");
    put("fsync_p50", ms(pct(&fs_lat, 50.0)));
    put("fsync_p99", ms(pct(&fs_lat, 99.0)));
    put("fsync_rate", fs_rate);
    eprintln!("[repeat {rep}] phase: create");
    let c = run_load(
        &mut pool,
        Op::Create {
            prefix: format!("c{rep}"),
            pace: None,
        },
        cfg,
        &server,
        tck,
    )
    .await;
    if let Some(e) = &c.first_error {
        eprintln!("[repeat {rep}] create errors: {} (first: {e})", c.errors);
    }
    put("create_p50", ms(pct(&c.lat, 50.0)));
    put("create_p99", ms(pct(&c.lat, 99.0)));
    put("create_rate", c.rate);
    put("create_gain", c.rate / fs_rate);
    put("create_scpu", c.cpu.server);
    put("create_ccpu", c.cpu.bench);
    put("create_ocpu", c.cpu.other);
    put("create_err", c.errors as f64);
    eprintln!(
        "[repeat {rep}] fdatasync p50 {:.3} ms {:.0}/s; create p50 {:.3} p99 {:.3} ms {:.0}/s \
         (CPU % server {:.0} bench {:.0} other {:.0})",
        ms(pct(&fs_lat, 50.0)),
        fs_rate,
        ms(pct(&c.lat, 50.0)),
        ms(pct(&c.lat, 99.0)),
        c.rate,
        c.cpu.server,
        c.cpu.bench,
        c.cpu.other
    );

    // 3. Watch delivery: one paced writer on an idle server, then under the create load.
    eprintln!("[repeat {rep}] phase: watch, idle");
    let wi = run_watch(
        &server,
        &mut pool,
        Op::Create {
            prefix: format!("wi{rep}"),
            pace: Some(Duration::from_millis(10)),
        },
        1,
        cfg,
        tck,
    )
    .await;
    put("widle_min", ms_signed(pct(&wi.lat, 0.0)));
    put("widle_p50", ms_signed(pct(&wi.lat, 50.0)));
    put("widle_p99", ms_signed(pct(&wi.lat, 99.0)));
    put("widle_max", ms_signed(pct(&wi.lat, 100.0)));
    put("widle_n", wi.lat.len() as f64);
    put("widle_miss", wi.missing as f64);
    eprintln!("[repeat {rep}] phase: watch, under load");
    let wl = run_watch(
        &server,
        &mut pool,
        Op::Create {
            prefix: format!("wl{rep}"),
            pace: None,
        },
        cfg.clients,
        cfg,
        tck,
    )
    .await;
    put("wload_min", ms_signed(pct(&wl.lat, 0.0)));
    put("wload_p50", ms_signed(pct(&wl.lat, 50.0)));
    put("wload_p99", ms_signed(pct(&wl.lat, 99.0)));
    put("wload_max", ms_signed(pct(&wl.lat, 100.0)));
    put("wload_n", wl.lat.len() as f64);
    put("wload_miss", wl.missing as f64);
    put("wload_rate", wl.creates_per_s);
    eprintln!(
        "[repeat {rep}] watch idle p50 {:.3} p99 {:.3} ms (n {}, missing {}); \
         under load p50 {:.3} p99 {:.3} ms (n {}, missing {})",
        ms_signed(pct(&wi.lat, 50.0)),
        ms_signed(pct(&wi.lat, 99.0)),
        wi.lat.len(),
        wi.missing,
        ms_signed(pct(&wl.lat, 50.0)),
        ms_signed(pct(&wl.lat, 99.0)),
        wl.lat.len(),
        wl.missing
    );

    put(
        "errors",
        (h.errors + g.errors + c.errors + wi.errors + wl.errors) as f64,
    );
    put(
        "terrors",
        (h.transport_errors + g.transport_errors + c.transport_errors) as f64,
    );
    let rss_after = rss_mib(&spid);
    put("rss_after", rss_after);
    eprintln!("[repeat {rep}] RSS after load {rss_after:.1} MiB");
    STOPPING.store(true, Ordering::Relaxed);
    drop(pool);
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    STOPPING.store(false, Ordering::Relaxed);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("api bench: skipped (run it with `cargo bench -p integration --bench api`)");
        return;
    }
    let cfg = Config::from_env();
    let bin = spinlet_bin();
    let tck = clk_tck();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("spinlet API server benchmark");
    println!("binary:   {}", bin.display());
    println!("machine:  {}", machine());
    println!(
        "config:   {} repeats × (warm-up {:.1} s + {:.1} s per phase), idle window {:.1} s, \
         {} clients, each its own TLS connection (admin client cert), HTTP/1.1 keep-alive",
        cfg.repeats,
        cfg.warmup.as_secs_f64(),
        cfg.secs.as_secs_f64(),
        cfg.idle.as_secs_f64(),
        cfg.clients
    );
    println!("loadavg at start: {}", loadavg());
    let mut results: HashMap<&'static str, Vec<f64>> = HashMap::new();
    rt.block_on(async {
        for rep in 1..=cfg.repeats {
            one_repeat(&bin, &cfg, rep, tck, &mut results).await;
        }
    });
    println!("loadavg at end:   {}", loadavg());
    print_table(&results);
}
