//! Where a request's time goes inside spinlet's Spin runtime, phase by phase, in-process
//! (no socket, no hyper connection): the library API `spinlet run` is built on, timed with
//! `Instant` around each step.
//!
//! Run it with
//!
//! ```text
//! cargo bench -p spin-runtime --bench phases
//! ```
//!
//! The apps are loaded with [`spin_runtime::app::load`] (pooling allocator, 1000 slots, the
//! engine and per-instance settings of `spinlet run`):
//!
//! - `p2`: `benches/apps/hello-bare` built for wasm32-wasip2 (a component);
//! - `p1`: the same crate built for wasm32-wasip1, a core module that the loader wraps with
//!   the WASI preview1 reactor adapter (`componentize.rs`), so the adapter's per-instance
//!   cost (its extra core instances, and its state set up on the guest's first preview1
//!   call) shows as the difference between the two;
//! - `p3`: `benches/apps/hello-p3` (spin-sdk 7, WASI 0.3).
//!
//! For `p2` and `p1`, each iteration does what `HttpServer::execute` does for a WASI 0.2
//! handler, in one task, timing each step:
//!
//! 1. `route`: route match, the seven `spin-*` headers and the request rewrite
//!    (`headers::prepare_request`);
//! 2. `state`: `AppComponent::new_state` (WASI context, WASI-HTTP context, host contexts);
//! 3. `store`: `Store::new` with the limiter and the epoch-yield callback;
//! 4. `request`: the request and response-outparam resources (`new_incoming_request`:
//!    the header copy into a `wasi:http` fields resource);
//! 5. `instantiate`: `ProxyPre::instantiate_async` from the pool;
//! 6. `handler`: `wasi:http/incoming-handler.handle`: the guest's own code plus every host
//!    call it makes (reading the request's headers, building the response's, writing the
//!    body) and the canonical-ABI lifting and lowering;
//! 7. `response`: receiving the response and collecting its body on the host side;
//! 8. `drop`: dropping the store, which returns the instance's slot to the pool (memory
//!    reset with `memset`/`madvise`, tables cleared).
//!
//! For `p3` (whose instances are reused, so there is no per-request instantiation in the
//! steady state), the fresh-instance steps `state`, `store`, `instantiate` and `drop` are
//! timed the same way on the component's `ServicePre`, as `http_p3::Pool::instantiate`
//! does them.
//!
//! Then, for every app, the whole in-process path `HttpServer::handle` + body collection
//! (what a request costs minus TCP and hyper): its latency one request at a time, and the
//! throughput of `SPINLET_PHASES_CONCURRENCY` (default 8) concurrent callers on a 2-worker
//! tokio runtime.
//!
//! Knobs: `SPINLET_PHASES_APPS` (default `p2,p1,p3`), `SPINLET_PHASES_ITERS` (iterations per
//! repeat, default 4000), `SPINLET_PHASES_REPEATS` (default 5), `SPINLET_PHASES_WARMUP`
//! (untimed iterations first, default 500). Each figure is the median over all iterations,
//! with the p10–p90 of those iterations and the min–max of the per-repeat medians.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "shared/apps.rs"]
mod bench_apps;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use spin_runtime::app::{App, AppOptions, ComponentHandler, Target};
use spin_runtime::http_trigger::HttpServer;
use spin_runtime::state::InstanceState;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::handler::ProxyPre as AnyProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

const HELLO: &[u8] = b"Hello, Fermyon!\n";

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a number"))),
        Err(_) => default,
    }
}

struct Config {
    iters: usize,
    repeats: usize,
    warmup: usize,
    concurrency: usize,
}

impl Config {
    fn from_env() -> Config {
        Config {
            iters: env_usize("SPINLET_PHASES_ITERS", 4000).max(1),
            repeats: env_usize("SPINLET_PHASES_REPEATS", 5).max(1),
            warmup: env_usize("SPINLET_PHASES_WARMUP", 500),
            concurrency: env_usize("SPINLET_PHASES_CONCURRENCY", 8).max(1),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------

/// Durations in µs by phase, one list per repeat.
#[derive(Default)]
struct Samples {
    order: Vec<&'static str>,
    by_phase: BTreeMap<&'static str, Vec<Vec<f64>>>,
}

impl Samples {
    fn new_repeat(&mut self) {
        for v in self.by_phase.values_mut() {
            v.push(Vec::new());
        }
    }

    fn push(&mut self, phase: &'static str, us: f64) {
        if !self.by_phase.contains_key(phase) {
            self.order.push(phase);
            self.by_phase.insert(phase, vec![Vec::new()]);
        }
        let repeats = self.by_phase.get_mut(phase).expect("inserted above");
        if repeats.is_empty() {
            repeats.push(Vec::new());
        }
        repeats.last_mut().expect("not empty").push(us);
    }

    fn print(&self, title: &str) {
        let total_median = self
            .by_phase
            .get("total")
            .map(|r| percentile(&r.concat(), 0.5));
        println!();
        println!("{title}");
        println!();
        println!(
            "| {:<12} | {:>10} | {:>17} | {:>21} | {:>7} |",
            "phase", "median µs", "p10 – p90 µs", "repeat medians, µs", "share"
        );
        println!(
            "|{:-<14}|{:->12}|{:->19}|{:->23}|{:->9}|",
            "", "", "", "", ""
        );
        for phase in &self.order {
            let repeats = &self.by_phase[phase];
            let all = repeats.concat();
            let medians: Vec<f64> = repeats
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| percentile(r, 0.5))
                .collect();
            let (lo, hi) = min_max(&medians);
            let m = percentile(&all, 0.5);
            let share = match total_median {
                Some(t) if *phase != "total" && t > 0.0 => format!("{:.0} %", 100.0 * m / t),
                _ => String::new(),
            };
            println!(
                "| {phase:<12} | {:>10} | {:>17} | {:>21} | {share:>7} |",
                num(m),
                format!(
                    "{} – {}",
                    num(percentile(&all, 0.1)),
                    num(percentile(&all, 0.9))
                ),
                format!("{} – {}", num(lo), num(hi)),
            );
        }
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 10.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// Lap timer: each `lap` records the time since the previous one under a phase name.
struct Laps {
    start: Instant,
    mark: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Laps {
    fn start() -> Laps {
        let now = Instant::now();
        Laps {
            start: now,
            mark: now,
            laps: Vec::with_capacity(10),
        }
    }

    fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.laps
            .push((phase, (now - self.mark).as_secs_f64() * 1e6));
        self.mark = now;
    }

    fn finish(mut self, into: Option<&mut Samples>) {
        let total = (self.mark - self.start).as_secs_f64() * 1e6;
        self.laps.push(("total", total));
        if let Some(samples) = into {
            for (phase, us) in self.laps {
                samples.push(phase, us);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One request, phase by phase
// ---------------------------------------------------------------------------------------

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// `GET /` as wrk sends it.
fn request() -> http::Request<WasiBody> {
    let body = Full::new(Bytes::new())
        .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
        .boxed_unsync();
    http::Request::builder()
        .method("GET")
        .uri("/")
        .header("host", "127.0.0.1:3000")
        .body(body)
        .unwrap_or_else(|e| fail(&format!("building the request: {e}")))
}

fn check(status: http::StatusCode, body: &[u8]) -> Result<(), String> {
    if status != 200 || body != HELLO {
        return Err(format!(
            "unexpected response {status}: {:?}",
            String::from_utf8_lossy(body)
        ));
    }
    Ok(())
}

fn err(what: &str) -> impl FnOnce(wasmtime::Error) -> String + '_ {
    move |e| format!("{what}: {e:#}")
}

/// One WASI 0.2 request as `HttpServer::execute` serves it, in one task, with laps.
async fn p2_request(app: &App, samples: Option<&mut Samples>) -> Result<(), String> {
    let mut laps = Laps::start();
    let req = request();
    let path = req.uri().path().to_string();
    let route = app.router.route(&path).ok_or("no route for /")?;
    let Target::Component(component) = route.target else {
        return Err("/ is not routed to a component".into());
    };
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let extra = spin_runtime::headers::spin_headers("http", &host, &path_and_query, &route, CLIENT)
        .map_err(|e| format!("spin_headers: {e}"))?;
    let (mut parts, body) = req.into_parts();
    parts.uri =
        spin_runtime::headers::prepare_request("http", &parts.uri, &mut parts.headers, extra)
            .map_err(|e| format!("prepare_request: {e}"))?;
    let req = http::Request::from_parts(parts, body);
    let handler = component.handler();
    let ComponentHandler::P2(pre) = &*handler else {
        return Err("not a WASI 0.2 component".into());
    };
    laps.lap("route");

    let state = component.new_state().map_err(err("new_state"))?;
    laps.lap("state");

    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    laps.lap("store");

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let wasi_req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .map_err(err("new_incoming_request"))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(err("new_response_outparam"))?;
    laps.lap("request");

    let proxy = pre
        .instantiate_async(&mut store)
        .await
        .map_err(err("instantiate"))?;
    laps.lap("instantiate");

    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut store, wasi_req, out)
        .await
        .map_err(err("handle"))?;
    laps.lap("handler");

    let resp = receiver
        .await
        .map_err(|_| "no response".to_string())?
        .map_err(|code| format!("error response: {code:?}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e:?}"))?
        .to_bytes();
    laps.lap("response");

    drop(store);
    laps.lap("drop");
    check(status, &body)?;
    laps.finish(samples);
    Ok(())
}

/// A fresh WASI 0.3 instance as `http_p3::Pool::instantiate` makes one, then dropped.
async fn p3_instance(
    app: &App,
    pre: &ServicePre<InstanceState>,
    samples: Option<&mut Samples>,
) -> Result<(), String> {
    let Some(component) = app.components.get("hello") else {
        return Err("no component `hello`".into());
    };
    let mut laps = Laps::start();
    let state = component.new_state().map_err(err("new_state"))?;
    laps.lap("state");
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    laps.lap("store");
    let _service = pre
        .instantiate_async(&mut store)
        .await
        .map_err(err("instantiate"))?;
    laps.lap("instantiate");
    drop(store);
    laps.lap("drop");
    laps.finish(samples);
    Ok(())
}

/// The component's `ServicePre`, linked again from the loaded app's engine (mapped from
/// the compile cache the load filled).
fn p3_pre(app: &App, wasm: &Path) -> ServicePre<InstanceState> {
    let engine = &app.engine.engine;
    let (component, _) = app
        .engine
        .cache
        .load(engine, wasm, Ok)
        .unwrap_or_else(|e| fail(&format!("compiling {}: {e}", wasm.display())));
    let base = spin_runtime::app::base_linker(engine)
        .unwrap_or_else(|e| fail(&format!("base linker: {e:#}")));
    match spin_runtime::app::link_http_component(engine, &base, &component) {
        Ok(AnyProxyPre::P3(pre)) => pre,
        Ok(AnyProxyPre::P2(_)) => fail("hello-p3 is not a WASI 0.3 component"),
        Err(e) => fail(&format!("linking hello-p3: {e:#}")),
    }
}

/// One request through `HttpServer::handle`, body collected.
async fn whole_request(server: &HttpServer) -> Result<(), String> {
    let resp = server.handle(request(), CLIENT).await;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e:?}"))?
        .to_bytes();
    check(status, &body)
}

// ---------------------------------------------------------------------------------------
// Per app
// ---------------------------------------------------------------------------------------

struct PhasesApp {
    key: &'static str,
    dir: &'static str,
    target: &'static str,
    what: &'static str,
}

const APPS: &[PhasesApp] = &[
    PhasesApp {
        key: "p2",
        dir: "hello-bare",
        target: "wasm32-wasip2",
        what: "hello-bare, spin-sdk 5, wasm32-wasip2 component (WASI 0.2)",
    },
    PhasesApp {
        key: "p1",
        dir: "hello-bare",
        target: "wasm32-wasip1",
        what: "hello-bare, spin-sdk 5, wasm32-wasip1 core module + preview1 reactor adapter",
    },
    PhasesApp {
        key: "p3",
        dir: "hello-p3",
        target: "wasm32-wasip2",
        what: "hello-p3, spin-sdk 7, wasm32-wasip2 component (WASI 0.3)",
    },
];

fn selected_apps() -> Vec<&'static PhasesApp> {
    let Ok(list) = std::env::var("SPINLET_PHASES_APPS") else {
        return APPS.iter().collect();
    };
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            APPS.iter().find(|a| a.key == k).unwrap_or_else(|| {
                fail(&format!(
                    "SPINLET_PHASES_APPS: unknown app {k:?} (known: p2, p1, p3)"
                ))
            })
        })
        .collect()
}

fn load(app: &PhasesApp) -> (App, PathBuf) {
    let (wasm, dir) = bench_apps::hello_app(app.dir, app.target, &format!("phases-{}", app.key));
    let options = AppOptions {
        app: dir.clone(),
        cache_dir: Some(dir.join("compile-cache")),
        engine: spin_runtime::engine::EngineOptions::from_env(),
        ..Default::default()
    };
    let loaded = spin_runtime::app::load(&options)
        .unwrap_or_else(|e| fail(&format!("loading {}: {e}", dir.display())));
    (loaded, wasm)
}

fn bench_app(app: &PhasesApp, cfg: &Config, rt: &tokio::runtime::Runtime) {
    let t0 = Instant::now();
    let (loaded, wasm) = load(app);
    println!();
    println!("## {} — {}", app.key, app.what);
    println!(
        "wasm: {} ({} bytes); loaded in {:.0} ms (compile-cache hits {}, compiled {})",
        wasm.display(),
        std::fs::metadata(&wasm).map_or(0, |m| m.len()),
        t0.elapsed().as_secs_f64() * 1e3,
        loaded.stats.cache_hits,
        loaded.stats.compiled
    );
    println!("loadavg at start: {}", loadavg());
    let loaded = Arc::new(loaded);
    let handler = loaded.components.get("hello").map(|c| c.handler());
    let p3 = match handler.as_deref() {
        Some(ComponentHandler::P2(_)) => None,
        Some(ComponentHandler::P3(_)) => Some(p3_pre(&loaded, &wasm)),
        None => fail("no component `hello`"),
    };

    // The phases of a fresh instance.
    let mut phases = Samples::default();
    rt.block_on(async {
        for rep in 0..=cfg.repeats {
            // Repeat 0 is the untimed warm-up.
            let n = if rep == 0 { cfg.warmup } else { cfg.iters };
            if rep > 0 {
                phases.new_repeat();
            }
            for _ in 0..n {
                let into = (rep > 0).then_some(&mut phases);
                let done = match &p3 {
                    None => p2_request(&loaded, into).await,
                    Some(pre) => p3_instance(&loaded, pre, into).await,
                };
                if let Err(e) = done {
                    fail(&format!("{}: {e}", app.key));
                }
            }
        }
    });
    phases.print(&if p3.is_some() {
        format!(
            "{}: a fresh instance (state, store, instantiate, drop), {} repeats × {} iterations",
            app.key, cfg.repeats, cfg.iters
        )
    } else {
        format!(
            "{}: one request, phase by phase, {} repeats × {} iterations",
            app.key, cfg.repeats, cfg.iters
        )
    });

    // The whole in-process path, sequential then concurrent.
    let server = HttpServer::new(loaded.clone());
    let mut whole = Samples::default();
    let mut rates = Vec::new();
    rt.block_on(async {
        for _ in 0..cfg.warmup {
            if let Err(e) = whole_request(&server).await {
                fail(&format!("{}: {e}", app.key));
            }
        }
        for _ in 0..cfg.repeats {
            whole.new_repeat();
            for _ in 0..cfg.iters {
                let t = Instant::now();
                if let Err(e) = whole_request(&server).await {
                    fail(&format!("{}: {e}", app.key));
                }
                whole.push("handle", t.elapsed().as_secs_f64() * 1e6);
            }
            let per_task = cfg.iters.div_ceil(cfg.concurrency);
            let t = Instant::now();
            let tasks: Vec<_> = (0..cfg.concurrency)
                .map(|_| {
                    let server = server.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            whole_request(&server).await?;
                        }
                        Ok::<(), String>(())
                    })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => fail(&format!("{}: {e}", app.key)),
                    Err(e) => fail(&format!("{}: task failed: {e}", app.key)),
                }
            }
            rates.push((per_task * cfg.concurrency) as f64 / t.elapsed().as_secs_f64());
        }
    });
    whole.print(&format!(
        "{}: HttpServer::handle + body, one request at a time, {} repeats × {} iterations",
        app.key, cfg.repeats, cfg.iters
    ));
    let (lo, hi) = min_max(&rates);
    println!();
    println!(
        "{}: in-process throughput, {} concurrent callers on 2 tokio workers: {} req/s \
         (repeats {} – {})",
        app.key,
        cfg.concurrency,
        num(percentile(&rates, 0.5)),
        num(lo),
        num(hi)
    );
    println!("loadavg at end: {}", loadavg());
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "phases bench: skipped (run it with `cargo bench -p spin-runtime --bench phases`)"
        );
        return;
    }
    let cfg = Config::from_env();
    let apps = selected_apps();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    println!("Spin runtime, in-process breakdown of a request's time (µs)");
    println!(
        "machine: nproc {}; config: {} repeats × {} iterations after {} warm-up, {} concurrent \
         callers",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cfg.repeats,
        cfg.iters,
        cfg.warmup,
        cfg.concurrency
    );
    for app in apps {
        bench_app(app, &cfg, &rt);
    }
}
