//! Tiered compilation ([`spin_runtime::tiers`]) with the JS and Python SDK hellos and a
//! spin-sdk 7 (WASI 0.3) component: a cold start serves from Winch's code, the background
//! compile swaps Cranelift's in and the app keeps answering; the next start maps
//! Cranelift's artifact; a run stopped before the background compile finished starts the
//! next time from Winch's stored code; a component the fast tier cannot compile falls
//! back to Cranelift before serving; after the background compile the process gives its
//! memory back.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use spin_runtime::app::{App, AppOptions};
use spin_runtime::engine::{EngineOptions, FastTier};
use spin_runtime::http_trigger::HttpServer;
use spin_runtime::tiers::Tier;

/// Longest the background compile may take (debug build, loaded machine).
const OPTIMISE_DEADLINE: Duration = Duration::from_secs(900);

fn write_app(dir: &Path, wasm: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("spin.toml"),
        common::ONE_COMPONENT_MANIFEST.replace("{wasm}", &wasm.to_string_lossy()),
    )
    .expect("manifest");
    app
}

fn load(app: &Path, cache: &Path, fast_tier: FastTier) -> Arc<App> {
    let options = AppOptions {
        app: app.to_owned(),
        cache_dir: Some(cache.to_owned()),
        engine: EngineOptions {
            fast_tier,
            ..Default::default()
        },
        ..Default::default()
    };
    Arc::new(spin_runtime::app::load(&options).expect("load"))
}

fn tier(app: &App) -> Tier {
    app.components.get("hello").expect("component hello").tier()
}

/// `GET /` through the trigger, in process: status and body.
fn get(server: &HttpServer, rt: &tokio::runtime::Runtime) -> (u16, String) {
    rt.block_on(async {
        let req = http::Request::builder()
            .uri("/")
            .header("host", "127.0.0.1:3000")
            .body(
                Full::new(Bytes::new())
                    .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
                    .boxed_unsync(),
            )
            .expect("request");
        let client: SocketAddr = ([127, 0, 0, 1], 1).into();
        let resp = server.handle(req, client).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

fn assert_greets(server: &HttpServer, rt: &tokio::runtime::Runtime, greeting: &str, when: &str) {
    for i in 0..3 {
        let (status, body) = get(server, rt);
        assert_eq!(status, 200, "{when}, request {i}: {body}");
        assert!(body.contains(greeting), "{when}, request {i}: {body:?}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Cold start on the fast tier, the swap, then a warm start on the cached optimised code.
fn cold_start_swaps_to_optimised_code(name: &str, wasm: &Path, greeting: &str) {
    let dir = common::scratch_dir(name);
    let cache = dir.join("cache");
    let app = write_app(&dir, wasm);
    let rt = runtime();

    let cold = load(&app, &cache, FastTier::On);
    assert_eq!(
        (
            cold.stats.fast_tier,
            cold.stats.compiled,
            cold.stats.cache_hits
        ),
        (1, 0, 0),
        "an empty cache: the file is compiled by the fast tier only before serving"
    );
    let server = HttpServer::new(cold.clone());
    // The background compile may already have finished on a fast machine: either tier
    // serves; what matters is that the fast one did first and the optimised one follows.
    assert_greets(&server, &rt, greeting, "cold start");

    let started = Instant::now();
    while tier(&cold) != Tier::Optimized {
        assert!(
            started.elapsed() < OPTIMISE_DEADLINE,
            "the optimised code did not replace the fast tier's within {OPTIMISE_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_greets(&server, &rt, greeting, "after the swap to optimised code");

    // The background compile stored Cranelift's artifact: the next start maps it.
    let warm = load(&app, &cache, FastTier::On);
    assert_eq!(
        (
            warm.stats.fast_tier,
            warm.stats.compiled,
            warm.stats.cache_hits
        ),
        (0, 0, 1),
        "a warm start maps the optimised code"
    );
    assert_eq!(tier(&warm), Tier::Optimized);
    assert_greets(&HttpServer::new(warm), &rt, greeting, "warm start");
}

#[test]
fn js_cold_start_serves_from_winch_then_from_cranelift() {
    let wasm = common::toolchains::build_js_app("js-hello");
    cold_start_swaps_to_optimised_code("tiers-js", &wasm, "Hello from the JS SDK");
}

#[test]
fn python_cold_start_serves_from_winch_then_from_cranelift() {
    let wasm = common::toolchains::build_python_app("python-hello");
    cold_start_swaps_to_optimised_code("tiers-py", &wasm, "Hello from the Python SDK");
}

#[test]
fn wasi_0_3_cold_start_serves_from_winch_then_from_cranelift() {
    // spin-sdk 7: a WASI 0.3 handler, whose instances are pooled and reused
    // (spin_runtime::http_p3); the swap replaces the pool.
    let wasm = common::build_app("rust-v7-hello");
    cold_start_swaps_to_optimised_code("tiers-p3", &wasm, "Hello from spin-sdk 7");
}

/// A Winch engine that accepts no proposal beyond the MVP's core rejects the JS
/// component: the load compiles it with Cranelift before serving, and it serves. With
/// the fast tier off, the same.
#[test]
fn what_winch_cannot_compile_falls_back_to_cranelift() {
    let wasm = common::toolchains::build_js_app("js-hello");
    let rt = runtime();
    for (name, fast_tier) in [
        ("tiers-fallback", FastTier::MvpOnly),
        ("tiers-off", FastTier::Off),
    ] {
        let dir = common::scratch_dir(name);
        let app = write_app(&dir, &wasm);
        let loaded = load(&app, &dir.join("cache"), fast_tier);
        assert_eq!(
            (loaded.stats.fast_tier, loaded.stats.compiled),
            (0, 1),
            "{fast_tier:?}: compiled by Cranelift before serving"
        );
        assert_eq!(tier(&loaded), Tier::Optimized, "{fast_tier:?}");
        assert_greets(
            &HttpServer::new(loaded),
            &rt,
            "Hello from the JS SDK",
            &format!("{fast_tier:?}"),
        );
    }
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// A cold start compiles twice (Winch, then Cranelift in the background); once the
/// optimised code serves, `spinlet run` gives the compiles' freed memory back
/// (`spin_runtime::heap`, on mimalloc's every compile thread: `spinlet run`'s allocator)
/// and keeps no compiler's working memory (`cache::compile_only`). It held 584 MB of the
/// JS hello's compiles (debug build) for as long as it ran; with the heap given back,
/// 126 MB (release); with the compiler's contexts gone too, 60 MB
/// (release) and 69 MB (debug), session 27, where it was 113–139 MB before. The bound
/// sits between.
#[test]
fn after_the_background_compile_its_memory_is_given_back() {
    const BOUND_MIB: u64 = 120;
    let wasm = common::toolchains::build_js_app("js-hello");
    let dir = common::scratch_dir("tiers-memory");
    let app = write_app(&dir, &wasm);
    let spinlet = common::Spinlet::start(
        &app,
        common::Start {
            cache_dir: Some(dir.join("cache")),
            ..Default::default()
        },
    );
    let pid = spinlet.pid().expect("spinlet runs");
    let started = Instant::now();
    while !spinlet.stderr().contains("now serves new requests") {
        assert!(
            started.elapsed() < OPTIMISE_DEADLINE,
            "the optimised code did not replace the fast tier's within {OPTIMISE_DEADLINE:?}:\n{}",
            spinlet.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The heap is given back right after the swap: wait for it, generously.
    let mut rss = rss_mib(pid);
    let deadline = Instant::now() + Duration::from_secs(120);
    while rss >= BOUND_MIB && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        rss = rss_mib(pid);
    }
    let r = spinlet.get("/");
    assert_eq!(r.status, 200, "after the swap: {}", r.text());
    assert!(
        spinlet.stderr().contains("allocator=Mimalloc"),
        "`spinlet run` allocates from mimalloc (src/allocator.rs):\n{}",
        spinlet.stderr()
    );
    assert!(
        rss > 0 && rss < BOUND_MIB,
        "RSS {rss} MiB after the background compile (bound {BOUND_MIB} MiB): the compiles' memory was kept"
    );
    spinlet.stop();
}

/// The `.cwasm` artifacts under each engine directory of `cache`'s compiled code.
fn artifacts(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let engines = std::fs::read_dir(cache.join("compiled"))
        .into_iter()
        .flatten();
    for engine in engines.flatten() {
        let files = std::fs::read_dir(engine.path()).into_iter().flatten();
        for f in files.flatten() {
            if f.path().extension().is_some_and(|e| e == "cwasm") {
                out.push(f.path());
            }
        }
    }
    out
}

/// Waits until `spinlet`'s log contains `line`.
fn wait_for_log(spinlet: &common::Spinlet, line: &str) {
    let started = Instant::now();
    while !spinlet.stderr().contains(line) {
        assert!(
            started.elapsed() < OPTIMISE_DEADLINE,
            "no {line:?} in the log within {OPTIMISE_DEADLINE:?}:\n{}",
            spinlet.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `spinlet run` stopped before its background compile stored Cranelift's code (a
/// quick try, a crash) has stored Winch's: the next start maps it instead of compiling
/// again, serves, and the background compile then stores Cranelift's code and removes
/// Winch's.
#[test]
fn a_run_stopped_before_the_background_compile_leaves_winch_code_for_the_next() {
    let wasm = common::toolchains::build_js_app("js-hello");
    let dir = common::scratch_dir("tiers-stopped");
    let cache = dir.join("cache");
    let app = write_app(&dir, &wasm);
    let start = || common::Start {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };

    let first = common::Spinlet::start(&app, start());
    assert!(
        first.stderr().contains("compiled with Winch"),
        "an empty cache: Winch compiles before serving:\n{}",
        first.stderr()
    );
    wait_for_log(&first, "stored Winch's code");
    let log = first.stderr();
    first.stop();
    assert!(
        !log.contains("now serves new requests"),
        "the background compile finished before the run was stopped; nothing to test:\n{log}"
    );
    assert_eq!(
        artifacts(&cache).len(),
        1,
        "Winch's code alone is stored: {:?}",
        artifacts(&cache)
    );

    let second = common::Spinlet::start(&app, start());
    let log = second.stderr();
    assert!(
        log.contains("mapped Winch's stored code") && !log.contains("compiled with Winch"),
        "the second start maps Winch's code instead of compiling it:\n{log}"
    );
    assert!(
        log.contains("fast_tier=1") && log.contains("fast_tier_cached=1"),
        "load stats count the fast tier's cache hit:\n{log}"
    );
    let r = second.get("/");
    assert_eq!(
        r.status,
        200,
        "served from Winch's stored code: {}",
        r.text()
    );
    assert!(r.text().contains("Hello from the JS SDK"), "{}", r.text());

    wait_for_log(&second, "now serves new requests");
    let stored = artifacts(&cache);
    assert_eq!(
        stored.len(),
        1,
        "Cranelift's code replaces Winch's in the cache: {stored:?}"
    );
    let r = second.get("/");
    assert_eq!(r.status, 200, "after the swap: {}", r.text());
    second.stop();

    let third = common::Spinlet::start(&app, start());
    let log = third.stderr();
    assert!(
        log.contains("from_cache=1") && log.contains("fast_tier=0"),
        "the third start maps Cranelift's code:\n{log}"
    );
    third.stop();
}
