//! Test harness for end-to-end tests: builds the test apps and the real `spinlet`
//! binary, starts `spinlet run` on loopback and talks HTTP/1.1 to it.
//!
//! - Test apps live as source under `tests/apps/<name>/` and are built with
//!   `cargo build --target <wasm32-wasip2|wasm32-wasip1> --release`; the `.wasm` is cached under
//!   `<target dir>/spin-test-apps/` by a hash of the app's sources, so each app is built
//!   once per change.
//! - The `spinlet` binary is `$SPINLET_BIN` when set, else it is built once per test
//!   process with `cargo build --bin spinlet` (the executable path is read from cargo's
//!   JSON messages, so any `CARGO_TARGET_DIR` works).

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the harness"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod sdk_apps;
pub mod servers;
pub mod toolchains;
pub mod wit_components;

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate has a parent directory")
        .to_owned()
}

/// The cargo target directory tests write into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where test-run scratch files go.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static CLEANED: OnceLock<()> = OnceLock::new();
    let root = target_dir().join("spin-test-scratch");
    // Scratch dirs of earlier runs are removed once per test process; those of test
    // processes still running (`<name>-<pid>-<n>`, the pid alive) are theirs to keep.
    CLEANED.get_or_init(|| {
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = root.join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The compile cache shared by the tests of one run (the compile-cache test uses its own).
pub fn shared_cache_dir() -> PathBuf {
    target_dir().join("spin-test-apps").join("compile-cache")
}

use test_apps::clean_cargo_env;

/// The `spinlet` binary.
pub fn spinlet_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SPINLET_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        clean_cargo_env(&mut cmd);
        cmd.current_dir(workspace_root()).args([
            "build",
            "--package",
            "spinlet",
            "--bin",
            "spinlet",
            "--message-format=json-render-diagnostics",
        ]);
        // Match the test run's profile so `cargo test --release` reuses its build.
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let output = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build --bin spinlet");
        assert!(output.status.success(), "cargo build --bin spinlet failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let exe = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "spinlet")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the spinlet executable");
        exe
    })
    .clone()
}

/// Builds the test app `tests/apps/<name>` for wasm32-wasip2 (see [`build_app_for`]).
pub fn build_app(name: &str) -> PathBuf {
    build_app_for(name, "wasm32-wasip2")
}

/// Builds the test app `tests/apps/<name>` for `target` (once per content hash) and
/// returns its `.wasm`.
pub fn build_app_for(name: &str, target: &str) -> PathBuf {
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
        .join(name);
    build_app_in(&app_dir, target)
}

/// Builds the app crate in `app_dir` (its directory name is the crate name) for `target`,
/// once per content hash (of the app and of `tests/apps/app-support`), and returns its
/// `.wasm`.
pub fn build_app_in(app_dir: &Path, target: &str) -> PathBuf {
    // The Rust apps' shared path dependency is part of what they are built from.
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/app-support");
    test_apps::build(app_dir, &[&support], target)
}

pub use test_apps::hex;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running `spinlet run`.
pub struct Spinlet {
    child: Option<Child>,
    /// The listen address.
    pub addr: SocketAddr,
    /// The scratch directory holding its logs.
    pub dir: PathBuf,
}

/// How to start `spinlet run`.
#[derive(Default, Clone)]
pub struct Start {
    /// Extra arguments after `run <app>`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Compile cache directory (default: the shared one).
    pub cache_dir: Option<PathBuf>,
}

impl Spinlet {
    /// Starts `spinlet run <app>` (a directory or an OCI reference) and waits until it
    /// is healthy.
    pub fn start(app_dir: &Path, start: Start) -> Spinlet {
        match Self::try_start(app_dir, start) {
            Ok(s) => s,
            Err(log) => panic!("spinlet did not start:\n{log}"),
        }
    }

    /// Starts `spinlet run`; on failure returns its stderr.
    pub fn try_start(app_dir: &Path, start: Start) -> Result<Spinlet, String> {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log_dir = if app_dir.is_dir() {
            app_dir.join(format!("logs-{port}"))
        } else {
            scratch_dir("oci-run")
        };
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let stdout = std::fs::File::create(log_dir.join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(log_dir.join("stderr")).expect("stderr file");
        let cache = start.cache_dir.clone().unwrap_or_else(shared_cache_dir);
        let mut cmd = Command::new(spinlet_bin());
        cmd.arg("run")
            .arg(app_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--cache-dir")
            .arg(&cache)
            .args(&start.args)
            .env_remove("SPIN_HTTP_LISTEN_ADDR")
            .env_remove("SPINLET_ALLOCATOR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") || k == "SPIN_MAX_INSTANCE_MEMORY" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &start.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn spinlet");
        let mut s = Spinlet {
            child: Some(child),
            addr,
            dir: log_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(child) = s.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    s.child = None;
                    return Err(format!("exited with {status}\n{}", s.stderr()));
                }
            }
            if let Ok(r) = s.try_get("/.well-known/spin/health") {
                if r.status == 200 {
                    return Ok(s);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not healthy after 120s\n{}", s.stderr()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.stderr()))
    }

    fn try_get(&self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// Sends one request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        http_request(self.addr, method, path, headers, body)
    }

    /// Stops with SIGTERM (graceful) and waits.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Spinlet {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `spinlet run` expecting it to fail at start; returns (exit success, stderr).
pub fn run_expecting_failure(app_dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(spinlet_bin())
        .arg("run")
        .arg(app_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--cache-dir")
        .arg(shared_cache_dir())
        .args(args)
        .env_remove("SPIN_HTTP_LISTEN_ADDR")
        .stdin(Stdio::null())
        .output()
        .expect("run spinlet");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The local address the request was sent from.
    pub local_addr: SocketAddr,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// For the test app's echo: the `name: value` lines of the body.
    pub fn echoed(&self) -> HashMap<String, String> {
        self.text()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(
                self.text()
                    .lines()
                    .filter(|l| l.ends_with(':'))
                    .map(|l| (l.trim_end_matches(':').to_string(), String::new())),
            )
            .collect()
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let local_addr = stream.local_addr()?;
    write_request(&mut stream, addr, method, path, headers, body, false)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header terminator"))?;
    let (status, headers) = parse_head(&raw[..split])?;
    let mut rest = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        rest = dechunk(&rest)?;
    }
    Ok(Response {
        status,
        headers,
        body: rest,
        local_addr,
    })
}

/// One kept-alive HTTP/1.1 connection: its requests are served in order by the same
/// serving thread of spinlet (and so by the same WASI 0.3 instance pool).
pub struct Connection {
    addr: SocketAddr,
    reader: std::io::BufReader<TcpStream>,
    local_addr: SocketAddr,
}

impl Connection {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let local_addr = stream.local_addr()?;
        Ok(Connection {
            addr,
            reader: std::io::BufReader::new(stream),
            local_addr,
        })
    }

    /// GET `path` on this connection (the response framed by `Content-Length` or chunked).
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        use std::io::BufRead;
        write_request(
            self.reader.get_mut(),
            self.addr,
            "GET",
            path,
            &[],
            b"",
            true,
        )?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if self.reader.read_until(b'\n', &mut head)? == 0 {
                return Err(std::io::Error::other(
                    "connection closed before the response",
                ));
            }
        }
        let (status, headers) = parse_head(&head[..head.len() - 4])?;
        let mut body = Vec::new();
        if let Some(length) = headers.get("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| std::io::Error::other(format!("bad Content-Length {length}")))?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            // Chunked: size line, data, CRLF; a zero size ends it (no trailers expected).
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line)?;
                let size =
                    usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Ok(Response {
            status,
            headers,
            body,
            local_addr: self.local_addr,
        })
    }
}

fn write_request(
    stream: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    ));
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)
}

/// The status and the (lower-cased) headers of a response head.
fn parse_head(head: &[u8]) -> std::io::Result<(u16, HashMap<String, String>)> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_str = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(std::io::Error::other("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A manifest serving one component, `hello`, on every path (`{wasm}`: its Wasm file), for
/// [`app_with_manifest`].
pub const ONE_COMPONENT_MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "hello"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "{wasm}"
"#;

/// Writes `spin.toml` into a fresh scratch dir, with `{wasm}` replaced by the app's path.
pub fn app_with_manifest(name: &str, wasm: &Path, manifest: &str) -> PathBuf {
    let dir = scratch_dir(name);
    let text = manifest.replace("{wasm}", &wasm.to_string_lossy());
    std::fs::write(dir.join("spin.toml"), text).expect("write spin.toml");
    dir
}

/// A `docker-registry` (Debian's distribution registry) on a loopback port, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
}

impl Registry {
    /// Starts a registry storing into a scratch directory.
    pub fn start() -> Registry {
        let dir = scratch_dir("registry");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("write registry config");
        let bin =
            std::env::var("SPINLET_TEST_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into());
        let log = std::fs::File::create(dir.join("log")).expect("registry log");
        let child = Command::new(&bin)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}): install Debian's docker-registry package (see spin-runtime/CI-SETUP.md)")
            });
        let registry = Registry { child, host };
        let addr: SocketAddr = registry.host.parse().expect("registry addr");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http_request(addr, "GET", "/v2/", &[], b"") {
                if r.status == 200 {
                    return registry;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not come up on {}", registry.host);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `spinlet push <app_dir> <reference>`; returns the pushed digest.
pub fn push(app_dir: &Path, reference: &str) -> String {
    let output = Command::new(spinlet_bin())
        .arg("push")
        .arg(app_dir)
        .arg(reference)
        .stdin(Stdio::null())
        .output()
        .expect("run spinlet push");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "spinlet push failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("push prints the digest")
        .to_string()
}

/// A loopback HTTP server answering every request with 200 `upstream says hi`; serves
/// at most `max` connections.
pub fn upstream(max: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\nconnection: close\r\n\r\nupstream says hi",
            );
        }
    });
    port
}

/// The limits the failure tests run under: a 1 s request deadline and a 64 MiB memory cap.
pub fn failure_limits() -> Start {
    Start {
        args: vec![
            "--request-timeout".into(),
            "1s".into(),
            "--max-instance-memory".into(),
            (64u64 << 20).to_string(),
        ],
        ..Default::default()
    }
}

/// The failure modes every test app implements (`op=trap`, `op=loop`, `op=bomb`), served
/// under [`failure_limits`]: each is a 500 with an empty body, and the server keeps
/// serving `/` meanwhile and after.
pub fn failures_give_500(s: &Spinlet) {
    let r = s.get("/?op=trap");
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty(), "500 bodies are empty: {}", r.text());
    assert_eq!(s.get("/").status, 200);

    // An infinite loop hits the deadline; meanwhile other requests are served.
    let addr = s.addr;
    let looping = std::thread::spawn(move || {
        let started = Instant::now();
        let r = http_request(addr, "GET", "/?op=loop", &[], b"").expect("loop request");
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let during = Instant::now();
    assert_eq!(s.get("/").status, 200);
    assert!(
        during.elapsed() < Duration::from_millis(900),
        "served while a guest loops"
    );
    let (r, took) = looping.join().expect("loop thread");
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty());
    assert!(
        took >= Duration::from_millis(900),
        "deadline is 1s, took {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "deadline is 1s, took {took:?}"
    );
    assert_eq!(s.get("/").status, 200);

    // A memory bomb hits the 64 MiB cap.
    let r = s.get("/?op=bomb");
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty());
    assert_eq!(s.get("/").status, 200);
}
