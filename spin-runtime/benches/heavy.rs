//! Heavy apps (the JS SDK hello, 12 MB, and the Python SDK hello, 37 MB): how fast they
//! start, cold and warm, what they hold in memory and what they serve, against `wasmtime
//! serve` on the same component in the same run.
//!
//! Run it with
//!
//! ```text
//! cargo build --release -p spinlet && cargo bench -p spin-runtime --bench heavy
//! ```
//!
//! The apps are the tests' `tests/apps/js-hello` and `tests/apps/python-hello` (built by
//! the tests' builders, cached by content hash), served as one component `hello` on
//! `/...`; `GET /` answers the SDK's greeting. Both import Spin interfaces, which `wasmtime
//! serve` cannot link, so `js-bare` (`tests/apps/js-bare`: the JS hello without Spin
//! imports) and `py-bare` (`tests/apps/python-bare`: a Python hello of the
//! `wasi:http/proxy` world) are the apps both servers run. `SPINLET_HEAVY_APPS` picks them
//! (`js,js-bare,py,py-bare`).
//!
//! Part 1, in process (this crate's API, release build), per app: where a warm load's
//! time goes, each step timed with `Instant`, median and min–max of
//! `SPINLET_HEAVY_LOADS` (default 5) loads:
//!
//! - `engine`: `RuntimeEngine::new` (pooling allocator, 1000 slots, the cache directory);
//! - `read+sha256`: reading and hashing the Wasm file, which a content-keyed cache must do
//!   when it has no index (wasmtime's `Config::cache` does it on every load);
//! - `map`: `CompileCache::load` on a warm cache (index lookup, `deserialize_file`);
//! - `linker`: `app::base_linker`; `link`: `app::link_http_component` (stubs for the
//!   imports spinlet lacks, type-check, `InstancePre`);
//! - before them, one cold load on the fast tier (timed, and waited for until the
//!   optimised code has replaced it), and one that compiles with Cranelift and fills the
//!   cache;
//! - `load`: the whole `app::load`; `first`: its first request in process
//!   (`HttpServer::handle`: instantiation, the guest's handler, the body).
//!
//! Part 2, out of process, per app and server (`target/release/spinlet run --cache-dir D`
//! against `wasmtime serve -C cache=y` with a cache config naming its own directory; the
//! peer imports it cannot provide trap, `-W unknown-imports-trap=y`… see `peer_args`):
//!
//! 1. cold: spawn → first 200 on `GET /` with an empty cache directory
//!    (`SPINLET_HEAVY_COLD`, default 2 starts; each compiles: spinlet with Winch, the
//!    fast tier, see `spin_runtime::tiers`); each spinlet cold start then runs `wrk -t2
//!    -c8` for `SPINLET_HEAVY_FAST_SECS` (default 2) seconds on the fast tier, while
//!    Cranelift compiles in the background, and stays up until its log says the
//!    optimised code serves (spawn → swap);
//! 2. warm: spawn → first 200 with that cache (`SPINLET_HEAVY_WARM`, default 7 starts);
//! 3. on the last warm start: VmRSS after 1,000 sequential requests on one connection
//!    each, then `wrk -t2 -c8` for `SPINLET_HEAVY_SECS` (default 5) seconds: req/s.
//!
//! The report's head says how many of the functions `link-order/serving.txt` lists the
//! binary has: RSS after 1,000 requests depends on that code layout (`build.rs`).
//!
//! Medians with min–max; the load average is printed with each app. spinlet is
//! `$SPINLET_BIN` or `target/release/spinlet`; the peer `$WASMTIME_BIN`, else
//! `/work/wasmtime-cli/bin/wasmtime`, else `wasmtime` on `PATH` (none: part 2 measures
//! spinlet alone and says so).

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "shared/host.rs"]
mod host;

#[path = "shared/stats.rs"]
mod stats;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use spin_runtime::app::AppOptions;
use spin_runtime::engine::{EngineOptions, RuntimeEngine};
use spin_runtime::http_trigger::HttpServer;

use host::loadavg;
use stats::median;

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct HeavyApp {
    key: &'static str,
    what: &'static str,
    build: fn() -> PathBuf,
    greeting: &'static str,
}

const APPS: &[HeavyApp] = &[
    HeavyApp {
        key: "js",
        what: "JS SDK hello (componentize-js, wasi:http 0.2)",
        build: || common::toolchains::build_js_app("js-hello"),
        greeting: "Hello from the JS SDK",
    },
    HeavyApp {
        key: "js-bare",
        what:
            "JS SDK hello without Spin imports (tests/apps/js-bare), which `wasmtime serve` links",
        build: || common::toolchains::build_js_app("js-bare"),
        greeting: "Hello from the JS SDK",
    },
    HeavyApp {
        key: "py",
        what: "Python SDK hello (componentize-py, world spin-http)",
        build: || common::toolchains::build_python_app("python-hello"),
        greeting: "Hello from the Python SDK",
    },
    HeavyApp {
        key: "py-bare",
        what: "Python hello without Spin imports (tests/apps/python-bare, world wasi:http/proxy), which `wasmtime serve` links",
        build: || common::toolchains::build_python_proxy_app("python-bare"),
        greeting: "Hello from the Python SDK",
    },
];

fn manifest(wasm: &Path) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "heavy"
[variables]
greeting = {{ default = "hi" }}
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "{}"
variables = {{ message = "{{{{ greeting }}}}!" }}
"#,
        wasm.display()
    )
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

fn fmt(v: &[f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let p = |x: f64| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    format!("{} ({}–{})", p(median(v)), p(min), p(max))
}

// ---------------------------------------------------------------------------------------
// Part 1: a warm load, step by step, in process
// ---------------------------------------------------------------------------------------

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn in_process(app: &HeavyApp, wasm: &Path, scratch: &Path, rt: &tokio::runtime::Runtime) {
    let cache_root = scratch.join("cache-inproc");
    let app_dir = scratch.join("app-inproc");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(app_dir.join("spin.toml"), manifest(wasm)).expect("manifest");
    let options = AppOptions {
        app: app_dir.clone(),
        cache_dir: Some(cache_root.clone()),
        ..Default::default()
    };
    // A cold load on the fast tier (Winch; Cranelift's compile in the background is
    // waited for), then one that compiles with Cranelift and fills the cache.
    let fast_options = AppOptions {
        cache_dir: Some(scratch.join("cache-inproc-fast")),
        ..options.clone()
    };
    let t = Instant::now();
    let fast = spin_runtime::app::load(&fast_options).unwrap_or_else(|e| fail(&format!("{e}")));
    println!(
        "in process: cold load on the fast tier {:.0} ms; fast-tier files {}, compiled {}",
        ms(t),
        fast.stats.fast_tier,
        fast.stats.compiled
    );
    // Its background compile must not run into the timings below.
    let t = Instant::now();
    while fast
        .components
        .values()
        .any(|c| c.tier() != spin_runtime::tiers::Tier::Optimized)
    {
        if t.elapsed() > Duration::from_secs(600) {
            fail("the fast tier was not replaced within 600 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "in process: optimised code swapped in {:.0} ms after the load",
        ms(t)
    );
    drop(fast);
    let fill = AppOptions {
        engine: EngineOptions {
            fast_tier: spin_runtime::engine::FastTier::Off,
            ..Default::default()
        },
        ..options.clone()
    };
    let t = Instant::now();
    let first = spin_runtime::app::load(&fill).unwrap_or_else(|e| fail(&format!("{e}")));
    println!(
        "in process: first load with Cranelift (compiles) {:.0} ms; compiled {}, hits {}",
        ms(t),
        first.stats.compiled,
        first.stats.cache_hits
    );
    drop(first);

    let loads = env_usize("SPINLET_HEAVY_LOADS", 5);
    let names = [
        "engine",
        "read+sha256",
        "map",
        "linker",
        "link",
        "load",
        "first",
    ];
    let mut laps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..loads {
        let t = Instant::now();
        let engine = RuntimeEngine::new(
            &EngineOptions::default(),
            &cache_root.join(spin_runtime::cache::COMPILED_SUBDIR),
        )
        .unwrap_or_else(|e| fail(&format!("engine: {e}")));
        laps[0].push(ms(t));
        let t = Instant::now();
        let bytes = std::fs::read(wasm).expect("read wasm");
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
        std::hint::black_box(digest);
        drop(bytes);
        laps[1].push(ms(t));
        let t = Instant::now();
        let (component, outcome) = engine
            .cache
            .load(&engine.engine, wasm, Ok)
            .unwrap_or_else(|e| fail(&format!("cache: {e}")));
        laps[2].push(ms(t));
        assert_eq!(outcome, spin_runtime::cache::Outcome::Hit, "warm cache");
        let t = Instant::now();
        let base = spin_runtime::app::base_linker(&engine.engine)
            .unwrap_or_else(|e| fail(&format!("linker: {e:#}")));
        laps[3].push(ms(t));
        let t = Instant::now();
        let pre = spin_runtime::app::link_http_component(&engine.engine, &base, &component)
            .unwrap_or_else(|e| fail(&format!("link: {e:#}")));
        laps[4].push(ms(t));
        drop((pre, base, component, engine));

        let t = Instant::now();
        let loaded =
            Arc::new(spin_runtime::app::load(&options).unwrap_or_else(|e| fail(&format!("{e}"))));
        laps[5].push(ms(t));
        let server = HttpServer::new(loaded);
        let t = Instant::now();
        let body = rt.block_on(async {
            let req = http::Request::builder()
                .uri("/")
                .header("host", "127.0.0.1:3000")
                .body(
                    Full::new(Bytes::new())
                        .map_err(|never: Infallible| -> wasmtime_wasi_http::Error {
                            match never {}
                        })
                        .boxed_unsync(),
                )
                .expect("request");
            let client: SocketAddr = ([127, 0, 0, 1], 1).into();
            let resp = server.handle(req, client).await;
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            (status, body)
        });
        laps[6].push(ms(t));
        match body {
            (s, Ok(b)) if s == 200 && String::from_utf8_lossy(&b).contains(app.greeting) => {}
            (s, b) => fail(&format!("first request: {s} {b:?}")),
        }
    }
    println!("warm load, in process, ms, median (min–max) of {loads}:");
    for (name, v) in names.iter().zip(&laps) {
        println!("  {name:<12} {}", fmt(v));
    }
}

// ---------------------------------------------------------------------------------------
// Part 2: the servers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Peer {
    Spinlet,
    Wasmtime,
}

struct Servers {
    spinlet: PathBuf,
    wasmtime: Option<PathBuf>,
}

/// `wasmtime serve`'s options: its compile cache in `cache_config`'s directory, the
/// pooling allocator, WASI CLI, and traps for the Spin imports it does not have (the
/// hello path calls none of them).
fn peer_args(cache_config: &Path) -> Vec<String> {
    [
        "-C",
        "cache=y",
        "-C",
        &format!("cache-config={}", cache_config.display()),
        "-O",
        "pooling-allocator=y",
        "-S",
        "cli=y",
        "-S",
        "inherit-network=n",
        "-W",
        "unknown-imports-trap=y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

struct Server {
    child: Child,
    addr: SocketAddr,
    first_200: Duration,
    started: Instant,
    log: PathBuf,
}

impl Server {
    /// Spawns `cmd` and waits for its first 200; an exit before it is an error carrying
    /// the server's output (`wasmtime serve` cannot link a component that imports Spin
    /// interfaces, for example).
    fn start(
        cmd: &mut Command,
        log_path: &Path,
        addr: SocketAddr,
        greeting: &str,
    ) -> Result<Server, String> {
        let log = std::fs::File::create(log_path).expect("log file");
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| fail(&format!("spawning {cmd:?}: {e}")));
        loop {
            if let Ok(r) = common::http_request(addr, "GET", "/", &[], b"") {
                if r.status == 200 && r.text().contains(greeting) {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let out = std::fs::read_to_string(log_path).unwrap_or_default();
                let first = out.lines().next().unwrap_or("").to_string();
                return Err(format!("exited with {status}: {first}"));
            }
            if t0.elapsed() > Duration::from_secs(300) {
                fail(&format!("{cmd:?} not serving after 300 s"));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(Server {
            child,
            addr,
            first_200: t0.elapsed(),
            started: t0,
            log: log_path.to_owned(),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        host::stop(&mut self.child);
    }
}

fn wrk_rps(addr: SocketAddr, secs: usize) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{secs}s")])
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run wrk ({e})")));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| fail(&format!("no Requests/sec from wrk: {text}")))
}

/// On a cold spinlet start: req/s on the fast tier (`wrk` for `secs` seconds right after
/// the first 200, while Cranelift compiles at a lower priority), then the wait for the
/// log line saying the optimised code serves (spawn → swap).
fn fast_tier_then_swap(s: &Server, f: &mut Figures, secs: usize) {
    let swapped = |s: &Server| {
        std::fs::read_to_string(&s.log)
            .unwrap_or_default()
            .contains("optimised code (Cranelift) now serves")
    };
    if secs > 0 {
        let rps = wrk_rps(s.addr, secs);
        if swapped(s) {
            println!("(fast-tier req/s {rps:.0} dropped: the swap came during wrk)");
        } else {
            f.fast_rps.push(rps);
        }
    }
    while !swapped(s) {
        if s.started.elapsed() > Duration::from_secs(600) {
            fail("the optimised code did not replace the fast tier's within 600 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f.swap.push(s.started.elapsed().as_secs_f64() * 1e3);
}

#[derive(Default)]
struct Figures {
    fast_rps: Vec<f64>,
    swap: Vec<f64>,
    cold: Vec<f64>,
    warm: Vec<f64>,
    rss: Vec<f64>,
    rps: Vec<f64>,
}

fn out_of_process(app: &HeavyApp, wasm: &Path, scratch: &Path, servers: &Servers) {
    let app_dir = scratch.join("app");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(app_dir.join("spin.toml"), manifest(wasm)).expect("manifest");
    let cold = env_usize("SPINLET_HEAVY_COLD", 2);
    let warm = env_usize("SPINLET_HEAVY_WARM", 7);
    let secs = env_usize("SPINLET_HEAVY_SECS", 5);
    let fast_secs = env_usize("SPINLET_HEAVY_FAST_SECS", 2);
    let mut peers = vec![Peer::Spinlet];
    if servers.wasmtime.is_some() {
        peers.push(Peer::Wasmtime);
    }
    let mut results: Vec<(&str, Figures)> = Vec::new();
    for &peer in &peers {
        let mut f = Figures::default();
        let cache = scratch.join(format!("cache-{}", peer as u8));
        let command = |cache: &Path, addr: SocketAddr| -> Command {
            match peer {
                Peer::Spinlet => {
                    let mut cmd = Command::new(&servers.spinlet);
                    cmd.arg("run")
                        .arg(&app_dir)
                        .arg("--listen")
                        .arg(addr.to_string())
                        .arg("--cache-dir")
                        .arg(cache)
                        .env_remove("RUST_LOG");
                    cmd
                }
                Peer::Wasmtime => {
                    std::fs::create_dir_all(cache).expect("cache dir");
                    let config = cache.join("config.toml");
                    std::fs::write(
                        &config,
                        format!(
                            "[cache]\ndirectory = \"{}\"\n",
                            cache.join("data").display()
                        ),
                    )
                    .expect("cache config");
                    let mut cmd = Command::new(servers.wasmtime.as_ref().expect("peer"));
                    cmd.arg("serve")
                        .args(peer_args(&config))
                        .arg("--addr")
                        .arg(addr.to_string())
                        .arg(wasm);
                    cmd
                }
            }
        };
        let start = |cache: &Path| {
            let addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
            let log = scratch.join(format!("server-{}.log", addr.port()));
            Server::start(&mut command(cache, addr), &log, addr, app.greeting)
        };
        let name = match peer {
            Peer::Spinlet => "spinlet run",
            Peer::Wasmtime => "wasmtime serve",
        };
        let started = (|| -> Result<Server, String> {
            for _ in 0..cold {
                let _ = std::fs::remove_dir_all(&cache);
                let s = start(&cache)?;
                f.cold.push(s.first_200.as_secs_f64() * 1e3);
                if peer == Peer::Spinlet {
                    // A cold start stays up until the background compile has swapped
                    // Cranelift's code in (and stored it: the warm starts map it).
                    fast_tier_then_swap(&s, &mut f, fast_secs);
                }
            }
            let mut last = None;
            for _ in 0..warm.max(1) {
                drop(last.take());
                let s = start(&cache)?;
                f.warm.push(s.first_200.as_secs_f64() * 1e3);
                last = Some(s);
            }
            Ok(last.expect("a warm start"))
        })();
        let s = match started {
            Ok(s) => s,
            Err(e) => {
                println!("{name}: cannot serve this component: {e}");
                continue;
            }
        };
        for i in 0..1000 {
            match common::http_request(s.addr, "GET", "/", &[], b"") {
                Ok(r) if r.status == 200 => {}
                other => fail(&format!("request {i}: {:?}", other.map(|r| r.status))),
            }
        }
        f.rss.push(host::rss_mb(s.child.id()).unwrap_or(f64::NAN));
        f.rps.push(wrk_rps(s.addr, secs));
        drop(s);
        results.push((name, f));
    }
    println!("out of process (loadavg after: {}):", loadavg());
    println!(
        "| server | cold first 200 (ms) | warm first 200 (ms) | RSS after 1,000 requests (MB) | req/s (wrk -t2 -c8, {secs} s) |"
    );
    println!("|---|---|---|---|---|");
    for (name, f) in &results {
        println!(
            "| {} | {} | {} | {} | {} |",
            name,
            fmt(&f.cold),
            fmt(&f.warm),
            fmt(&f.rss),
            fmt(&f.rps)
        );
    }
    for (name, f) in &results {
        if !f.swap.is_empty() {
            println!(
                "{name}, cold starts: spawn → optimised code serving {} ms; req/s on the fast tier (wrk -t2 -c8, {fast_secs} s, while Cranelift compiles) {}",
                fmt(&f.swap),
                if f.fast_rps.is_empty() { "not measured".to_string() } else { fmt(&f.fast_rps) }
            );
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let keys =
        std::env::var("SPINLET_HEAVY_APPS").unwrap_or_else(|_| "js,js-bare,py,py-bare".into());
    let parts = std::env::var("SPINLET_HEAVY_PARTS").unwrap_or_else(|_| "1,2".into());
    let servers = Servers {
        spinlet: host::spinlet_bin().unwrap_or_else(|e| fail(&e)),
        wasmtime: host::wasmtime_bin(),
    };
    println!("# Heavy apps: start-up, memory and throughput");
    println!("machine: {}", host::machine());
    println!("code layout: {}", host::link_order(&servers.spinlet));
    println!("loadavg at start: {}", loadavg());
    match &servers.wasmtime {
        Some(w) => println!("peer: {}", w.display()),
        None => println!("peer: none found (spinlet alone)"),
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let app = APPS
            .iter()
            .find(|a| a.key == key)
            .unwrap_or_else(|| fail(&format!("SPINLET_HEAVY_APPS: unknown app {key:?}")));
        let wasm = (app.build)();
        println!();
        println!(
            "## {} — {} ({} bytes); loadavg {}",
            app.key,
            app.what,
            std::fs::metadata(&wasm).map_or(0, |m| m.len()),
            loadavg()
        );
        let dir = scratch.path().join(app.key);
        if parts.contains('1') {
            in_process(app, &wasm, &dir, &rt);
        }
        if parts.contains('2') {
            out_of_process(app, &wasm, &dir, &servers);
        }
    }
}
