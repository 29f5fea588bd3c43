//! Spin runtime benchmark: `spinlet run` against the bare engine, `wasmtime serve`, serving
//! the same hello component, measured in the same run, for a WASI 0.2 and a WASI 0.3 app.
//!
//! Run it with
//!
//! ```text
//! cargo build --release && cargo bench -p spin-runtime --bench serve
//! ```
//!
//! The apps (`SPINLET_BENCH_APPS`, default `p2,p3`), each built by the test harness's
//! builder for wasm32-wasip2 and importing only `wasi:*` interfaces so that `wasmtime serve`
//! can link it:
//!
//! - `p2`: `benches/apps/hello-bare` (spin-sdk 5, `wasi:http/incoming-handler@0.2`), against
//!   `wasmtime serve -O pooling-allocator=y -S cli=y`;
//! - `p3`: `benches/apps/hello-p3` (spin-sdk 7, `wasi:http/handler@0.3`), against
//!   `wasmtime serve -O pooling-allocator=y -S cli=y -S p3=y -W component-model-async=y`.
//!
//! The peer is wasmtime-cli 48: `$WASMTIME_BIN`, else `/work/wasmtime-cli/bin/wasmtime`, else
//! `wasmtime` on `PATH`. spinlet is `$SPINLET_BIN` or `target/release/spinlet` next to this
//! bench executable. The load generator is `wrk`.
//!
//! For each app, each repeat starts each server once (order A B, then B A, … so that drift
//! cancels) and measures, for each:
//!
//! 1. spawn → first 200 on `GET /` (polled with raw HTTP/1.1 requests every 0.5 ms), with
//!    the compile cache warm (one untimed start of each server precedes the repeats;
//!    spinlet's with `SPINLET_FAST_TIER=off`, so it stores Cranelift's code); a
//!    repeat's figure is the median of `SPINLET_BENCH_STARTS` (default 6) extra starts
//!    plus the start of the server measured next, since one start is a noisy sample;
//! 2. VmRSS after `SPINLET_BENCH_IDLE_SECS` (default 2) idle;
//! 3. `wrk -t2 -c8` for `SPINLET_BENCH_SECS` (default 5) after a `SPINLET_BENCH_WARMUP_SECS`
//!    (default 1) warm-up: requests/s, and the CPU of the server, of wrk and of every other
//!    process on the machine;
//! 4. `wrk -t1 -c1 --latency`: mean, p50 and p99 latency;
//! 5. VmRSS after the load and another idle window.
//!
//! `SPINLET_BENCH_REPEATS` (default 5) sets the repeats; each app's table shows the median
//! and the min–max across repeats, and the same-run comparisons (req/s ratio, added mean
//! latency) are computed per repeat before taking the median.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "shared/apps.rs"]
mod bench_apps;

#[path = "shared/host.rs"]
mod host;

#[path = "shared/stats.rs"]
mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host::{loadavg, machine};
use stats::median;

// ---------------------------------------------------------------------------------------
// Configuration and tools
// ---------------------------------------------------------------------------------------

struct Config {
    secs: f64,
    warmup: f64,
    idle: f64,
    repeats: usize,
    /// Extra starts per peer and repeat whose spawn → first 200 times are sampled.
    starts: usize,
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
            secs: env_f64("SPINLET_BENCH_SECS", 5.0),
            warmup: env_f64("SPINLET_BENCH_WARMUP_SECS", 1.0),
            idle: env_f64("SPINLET_BENCH_IDLE_SECS", 2.0),
            repeats: env_f64("SPINLET_BENCH_REPEATS", 5.0).max(1.0) as usize,
            starts: env_f64("SPINLET_BENCH_STARTS", 6.0).max(0.0) as usize,
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}

fn tool_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    let rest = &stat[stat.rfind(')').expect("')' in stat") + 1..];
    // [0] is the state letter; numbers from there on (field 4 of stat(5) is [1]).
    rest.split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let f = stat_fields(&pid.to_string());
    f[10] + f[11]
}

/// cutime + cstime of this process: the CPU of the children it has waited for (wrk).
fn children_ticks() -> u64 {
    let f = stat_fields("self");
    f[12] + f[13]
}

/// Busy ticks of the whole machine (everything but idle and iowait).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let f: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.iter().take(8).sum::<u64>() - f[3] - f[4]
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------
// The two servers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    Spinlet,
    Wasmtime,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Spinlet => "spinlet",
            Peer::Wasmtime => "wasmtime",
        }
    }
}

/// One benchmarked app and how the peer serves it.
struct BenchApp {
    /// `SPINLET_BENCH_APPS` key.
    key: &'static str,
    /// Crate directory under `benches/apps`.
    dir: &'static str,
    /// What it is, for the report.
    what: &'static str,
    /// `wasmtime serve` options before `--addr`.
    wasmtime_args: &'static [&'static str],
}

const APPS: &[BenchApp] = &[
    BenchApp {
        key: "p2",
        dir: "hello-bare",
        what: "spin-sdk 5, WASI 0.2 (wasi:http/incoming-handler@0.2)",
        // hello-bare imports wasi:cli (std's environment and stdio), as Spin links it.
        wasmtime_args: &["-O", "pooling-allocator=y", "-S", "cli=y"],
    },
    BenchApp {
        key: "p3",
        dir: "hello-p3",
        what: "spin-sdk 7, WASI 0.3 (wasi:http/handler@0.3)",
        // The WASI 0.3 interfaces and the component model's async ABI, plus wasi:cli 0.2
        // for std, as for hello-bare.
        wasmtime_args: &[
            "-O",
            "pooling-allocator=y",
            "-S",
            "cli=y",
            "-S",
            "p3=y",
            "-W",
            "component-model-async=y",
        ],
    },
];

/// The apps `SPINLET_BENCH_APPS` (comma-separated keys, default all) selects.
fn selected_apps() -> Vec<&'static BenchApp> {
    let Ok(list) = std::env::var("SPINLET_BENCH_APPS") else {
        return APPS.iter().collect();
    };
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            APPS.iter().find(|a| a.key == k).unwrap_or_else(|| {
                fail(&format!(
                    "SPINLET_BENCH_APPS: unknown app {k:?} (known: {})",
                    APPS.iter().map(|a| a.key).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

struct Setup {
    spinlet: PathBuf,
    wasmtime: PathBuf,
    wasmtime_args: &'static [&'static str],
    wasm: PathBuf,
    app_dir: PathBuf,
    cache_dir: PathBuf,
    scratch: PathBuf,
}

impl Setup {
    /// The server's command line.
    fn command(&self, peer: Peer, addr: SocketAddr) -> Command {
        match peer {
            Peer::Spinlet => {
                let mut cmd = Command::new(&self.spinlet);
                cmd.arg("run")
                    .arg(&self.app_dir)
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--cache-dir")
                    .arg(&self.cache_dir)
                    .env_remove("SPIN_HTTP_LISTEN_ADDR")
                    .env_remove("RUST_LOG");
                cmd
            }
            Peer::Wasmtime => {
                let mut cmd = Command::new(&self.wasmtime);
                cmd.arg("serve")
                    .args(self.wasmtime_args)
                    .arg("--addr")
                    .arg(addr.to_string())
                    .arg(&self.wasm);
                cmd
            }
        }
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
    /// Spawn → first 200 on `GET /`.
    first_200: Duration,
}

impl Server {
    fn start(setup: &Setup, peer: Peer, timeout: Duration) -> Server {
        Self::start_with(setup, peer, timeout, &[])
    }

    fn start_with(setup: &Setup, peer: Peer, timeout: Duration, env: &[(&str, &str)]) -> Server {
        let addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
        let log = setup
            .scratch
            .join(format!("{}-{}.log", peer.name(), addr.port()));
        let log = std::fs::File::create(&log).expect("log file");
        let mut cmd = setup.command(peer, addr);
        cmd.envs(env.iter().copied());
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", peer.name()));
        loop {
            if common::http_request(addr, "GET", "/", &[], b"").is_ok_and(|r| r.status == 200) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited with {status}; see {}",
                    peer.name(),
                    setup.scratch.display()
                );
            }
            assert!(
                t0.elapsed() < timeout,
                "{} not serving after {timeout:?}",
                peer.name()
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        Server {
            child,
            addr,
            first_200: t0.elapsed(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its VmRSS in MB.
    fn rss_mb(&self) -> f64 {
        host::rss_mb(self.pid()).unwrap_or_else(|| panic!("no VmRSS for {}", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        host::stop(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------------------

/// Prints exact figures (µs) at the end of a wrk run.
const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d mean_us=%.3f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency.mean, latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

#[derive(Default)]
struct Wrk {
    rps: f64,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    failed: f64,
    server_cpu: f64,
    wrk_cpu: f64,
    other_cpu: f64,
}

fn wrk(setup: &Setup, server: &Server, threads: u32, conns: u32, secs: f64, tck: f64) -> Wrk {
    let script = setup.scratch.join("report.lua");
    let (s0, c0, b0, t0) = (
        cpu_ticks(server.pid()),
        children_ticks(),
        machine_busy_ticks(),
        Instant::now(),
    );
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{}/", server.addr))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run wrk ({e}): install Debian's wrk package"
            ))
        });
    let wall = t0.elapsed().as_secs_f64();
    let pct = |ticks: u64| 100.0 * ticks as f64 / tck / wall;
    let server_cpu = pct(cpu_ticks(server.pid()) - s0);
    let wrk_cpu = pct(children_ticks() - c0);
    let busy = pct(machine_busy_ticks() - b0);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .unwrap_or_else(|| panic!("no report from wrk: {text}"));
    let kv: HashMap<&str, f64> = line
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap_or(f64::NAN)))
        .collect();
    Wrk {
        rps: kv["requests"] / kv["duration_us"] * 1e6,
        mean_us: kv["mean_us"],
        p50_us: kv["p50_us"],
        p99_us: kv["p99_us"],
        failed: kv["non2xx"] + kv["errors"],
        server_cpu,
        wrk_cpu,
        other_cpu: (busy - server_cpu - wrk_cpu).max(0.0),
    }
}

// ---------------------------------------------------------------------------------------
// One repeat and the report
// ---------------------------------------------------------------------------------------

type Results = HashMap<(Peer, &'static str), Vec<f64>>;

fn measure(setup: &Setup, peer: Peer, cfg: &Config, tck: f64, out: &mut Results) {
    let mut put = |k: &'static str, v: f64| out.entry((peer, k)).or_default().push(v);
    // Start-up is one sample per start: take the median of several starts per repeat.
    let mut starts: Vec<f64> = (0..cfg.starts)
        .map(|_| {
            Server::start(setup, peer, Duration::from_secs(60))
                .first_200
                .as_secs_f64()
                * 1e3
        })
        .collect();
    let server = Server::start(setup, peer, Duration::from_secs(60));
    starts.push(server.first_200.as_secs_f64() * 1e3);
    starts.sort_by(f64::total_cmp);
    put("first_200", starts[starts.len() / 2]);
    std::thread::sleep(Duration::from_secs_f64(cfg.idle));
    put("rss_start", server.rss_mb());
    wrk(setup, &server, 2, 8, cfg.warmup, tck);
    let w = wrk(setup, &server, 2, 8, cfg.secs, tck);
    put("rps8", w.rps);
    put("cpu8", w.server_cpu);
    put("wrkcpu8", w.wrk_cpu);
    put("othercpu8", w.other_cpu);
    let l = wrk(setup, &server, 1, 1, cfg.secs, tck);
    put("mean1", l.mean_us);
    put("p50_1", l.p50_us);
    put("p99_1", l.p99_us);
    put("rps1", l.rps);
    put("othercpu1", l.other_cpu);
    put("failed", w.failed + l.failed);
    std::thread::sleep(Duration::from_secs_f64(cfg.idle));
    put("rss_after", server.rss_mb());
    eprintln!(
        "  {:<8} first 200 {:>6.1} ms | {:>7.0} req/s @8 (server {:>3.0} %, other {:>3.0} %) | \
         mean {:>6.1} µs @1 | RSS {:.1}/{:.1} MB | load {}",
        peer.name(),
        server.first_200.as_secs_f64() * 1e3,
        w.rps,
        w.server_cpu,
        w.other_cpu,
        l.mean_us,
        out[&(peer, "rss_start")].last().copied().unwrap_or(0.0),
        out[&(peer, "rss_after")].last().copied().unwrap_or(0.0),
        loadavg()
    );
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} – {}", num(lo), num(hi))
}

fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 10.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

const ROWS: &[(&str, &str, &str)] = &[
    ("first_200", "spawn → first 200 (warm cache)", "ms"),
    ("rss_start", "idle RSS after start", "MB"),
    ("rps8", "throughput, wrk -t2 -c8", "req/s"),
    ("cpu8", "  server CPU at 8 connections", "% core"),
    ("wrkcpu8", "  wrk CPU at 8 connections", "% core"),
    (
        "othercpu8",
        "  other processes' CPU at 8 connections",
        "% core",
    ),
    ("mean1", "latency at 1 connection: mean", "µs"),
    ("p50_1", "latency at 1 connection: p50", "µs"),
    ("p99_1", "latency at 1 connection: p99", "µs"),
    ("rps1", "throughput at 1 connection", "req/s"),
    (
        "othercpu1",
        "  other processes' CPU at 1 connection",
        "% core",
    ),
    ("rss_after", "idle RSS after the load", "MB"),
    (
        "failed",
        "failed requests (non-2xx + socket errors)",
        "count",
    ),
];

fn print_table(r: &Results) {
    println!();
    println!(
        "| {:<42} | {:>24} | {:>24} | {:<6} |",
        "figure", "spinlet median (min – max)", "wasmtime median (min – max)", "unit"
    );
    println!("|{:-<44}|{:->26}|{:->26}|{:-<8}|", "", "", "", "");
    for (key, label, unit) in ROWS {
        let cell = |p: Peer| {
            r.get(&(p, *key)).map_or(String::new(), |v| {
                format!("{} ({})", num(median(v)), spread(v))
            })
        };
        println!(
            "| {label:<42} | {:>24} | {:>24} | {unit:<6} |",
            cell(Peer::Spinlet),
            cell(Peer::Wasmtime)
        );
    }
    // Same-run comparisons, per repeat.
    let pair = |k: &str, f: fn(f64, f64) -> f64| -> Vec<f64> {
        let a = &r[&(Peer::Spinlet, k)];
        let b = &r[&(Peer::Wasmtime, k)];
        a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
    };
    let ratio = pair("rps8", |a, b| a / b);
    let added = pair("mean1", |a, b| a - b);
    let checks: [(&str, Vec<f64>, &str, bool); 5] = [
        (
            "req/s ratio spinlet ÷ wasmtime, 8 conns",
            ratio.clone(),
            "≥ 1.0",
            median(&ratio) >= 1.0,
        ),
        (
            "added mean latency at 1 conn",
            added.clone(),
            "≤ 100 µs",
            median(&added) <= 100.0,
        ),
        (
            "spinlet spawn → first 200",
            r[&(Peer::Spinlet, "first_200")].clone(),
            "≤ 20 ms",
            median(&r[&(Peer::Spinlet, "first_200")]) <= 20.0,
        ),
        (
            "spinlet idle RSS after start",
            r[&(Peer::Spinlet, "rss_start")].clone(),
            "≤ 25 MB",
            median(&r[&(Peer::Spinlet, "rss_start")]) <= 25.0,
        ),
        (
            "spinlet idle RSS after load",
            r[&(Peer::Spinlet, "rss_after")].clone(),
            "≤ 25 MB",
            median(&r[&(Peer::Spinlet, "rss_after")]) <= 25.0,
        ),
    ];
    println!();
    println!(
        "| {:<42} | {:>24} | {:<9} | {:<4} |",
        "target", "median (min – max)", "target", "met"
    );
    println!("|{:-<44}|{:->26}|{:-<11}|{:-<6}|", "", "", "", "");
    for (label, v, target, met) in checks {
        println!(
            "| {label:<42} | {:>24} | {target:<9} | {:<4} |",
            format!("{} ({})", num(median(&v)), spread(&v)),
            if met { "yes" } else { "NO" }
        );
    }
    println!(
        "\nmet = the median across repeats meets the target (ratios and differences per repeat)."
    );
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

/// The whole comparison for one app: build, warm-up starts, the repeats, the table.
fn bench_app(app: &BenchApp, spinlet: &Path, wasmtime: &Path, cfg: &Config, tck: f64) {
    let (wasm, app_dir) = bench_apps::hello_app(
        app.dir,
        "wasm32-wasip2",
        &format!("serve-bench-{}", app.key),
    );
    let setup = Setup {
        spinlet: spinlet.to_owned(),
        wasmtime: wasmtime.to_owned(),
        wasmtime_args: app.wasmtime_args,
        wasm,
        cache_dir: app_dir.join("compile-cache"),
        scratch: app_dir.clone(),
        app_dir,
    };
    std::fs::write(setup.scratch.join("report.lua"), WRK_SCRIPT).expect("write wrk script");
    println!();
    println!("## {} — {} ({})", app.key, app.dir, app.what);
    println!("app:      {}", setup.wasm.display());
    println!(
        "peer:     {} serve {} --addr <addr> <app>",
        setup.wasmtime.display(),
        app.wasmtime_args.join(" ")
    );
    println!("loadavg at start: {}", loadavg());
    // Untimed starts fill both compile caches and the page cache. spinlet's compiles with
    // Cranelift before serving: a cold start on the fast tier (Winch) would be stopped
    // before its background compile stored the optimised code, and every timed start
    // would be cold again.
    drop(Server::start_with(
        &setup,
        Peer::Spinlet,
        Duration::from_secs(300),
        &[("SPINLET_FAST_TIER", "off")],
    ));
    drop(Server::start(
        &setup,
        Peer::Wasmtime,
        Duration::from_secs(300),
    ));
    let mut results = Results::new();
    for rep in 1..=cfg.repeats {
        eprintln!("[{} repeat {rep}]", app.key);
        let order = if rep % 2 == 1 {
            [Peer::Spinlet, Peer::Wasmtime]
        } else {
            [Peer::Wasmtime, Peer::Spinlet]
        };
        for peer in order {
            measure(&setup, peer, cfg, tck, &mut results);
        }
    }
    println!("loadavg at end:   {}", loadavg());
    print_table(&results);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("serve bench: skipped (run it with `cargo bench -p spin-runtime --bench serve`)");
        return;
    }
    let cfg = Config::from_env();
    let apps = selected_apps();
    let spinlet = host::spinlet_bin().unwrap_or_else(|e| fail(&e));
    let wasmtime = host::wasmtime_bin().unwrap_or_else(|| {
        fail(
            "wasmtime not found: set WASMTIME_BIN, or install the peer with \
             `cargo install wasmtime-cli --version 48.0.8 --locked --root /work/wasmtime-cli`",
        )
    });
    println!("Spin runtime benchmark: spinlet run vs wasmtime serve, same component, same run");
    println!("spinlet:  {}", spinlet.display());
    println!(
        "wasmtime: {} ({})",
        wasmtime.display(),
        tool_version(&wasmtime)
    );
    println!(
        "apps:     {}",
        apps.iter().map(|a| a.key).collect::<Vec<_>>().join(", ")
    );
    println!("machine:  {}", machine());
    println!("layout:   {}", host::link_order(&spinlet));
    println!(
        "config:   {} repeats, alternating order; wrk -t2 -c8 and -t1 -c1 for {:.1} s each \
         (warm-up {:.1} s), idle windows {:.1} s",
        cfg.repeats, cfg.secs, cfg.warmup, cfg.idle
    );
    let tck = clk_tck();
    for app in apps {
        bench_app(app, &spinlet, &wasmtime, &cfg, tck);
    }
}
