//! The wasmtime engine Spin apps run in: configuration, pooling limits and the epoch ticker.
//!
//! This module owns engine-wide settings, as Spin's `crates/core` sets them: component
//! model on, async support, epoch interruption with a ticker thread every
//! [`EPOCH_TICK`], and the pooling instance allocator sized by
//! `SPIN_MAX_INSTANCE_COUNT` (default 1000) with Spin's per-component limits. Pooling can
//! be turned off with `SPIN_WASMTIME_POOLING=0`. The compiled-code cache is attached here
//! (see [`crate::cache`]), which maps compiled artifacts rather than copying them.
//! [`RuntimeEngine::fast_tier`] builds the second, Winch-compiling engine of tiered
//! compilation ([`crate::tiers`]) from the same settings.
//!
//! The ticker only ticks while a store exists in the process ([`Activity`]): an idle
//! app (no request in flight, no pooled instance kept warm) costs no wake-ups. Ticking
//! every 10 ms in each of 200 idle pod sandboxes took 11.7 % of a core on the bench
//! machine; with nothing to interrupt there is nothing to tick for. Deadlines are
//! relative to the epoch when a store sets them, so a paused epoch loses nothing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::CompileCache;

/// How often the epoch advances; request deadlines are measured in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Stores alive in this process, and the ticker threads to wake when the first appears.
static LIVE_STORES: AtomicUsize = AtomicUsize::new(0);
static TICKERS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());

/// How long a ticker with nothing to tick for sleeps before checking its engine is
/// still alive (it ends when the engine is dropped).
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Held by each store's data for the store's lifetime: while any is held, epoch tickers
/// tick.
#[derive(Debug)]
pub struct Activity(());

impl Activity {
    /// Marks one more store alive, waking the tickers if it is the first.
    pub fn begin() -> Activity {
        if LIVE_STORES.fetch_add(1, Ordering::SeqCst) == 0 {
            let tickers = TICKERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for t in tickers.iter() {
                t.unpark();
            }
        }
        Activity(())
    }

    /// Stores alive in this process.
    pub fn live() -> usize {
        LIVE_STORES.load(Ordering::SeqCst)
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        LIVE_STORES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The ticker thread's loop: tick while stores exist, park otherwise; end with the
/// engine.
fn tick(engine: wasmtime::EngineWeak) {
    let me = std::thread::current();
    TICKERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(me.clone());
    loop {
        let busy = LIVE_STORES.load(Ordering::SeqCst) > 0;
        if busy {
            std::thread::sleep(EPOCH_TICK);
        } else {
            std::thread::park_timeout(IDLE_CHECK);
        }
        match engine.upgrade() {
            Some(e) if busy => e.increment_epoch(),
            Some(_) => {}
            None => break,
        }
    }
    TICKERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|t| t.id() != me.id());
}

/// Environment variable choosing [`FastTier`].
pub const FAST_TIER_ENV: &str = "SPINLET_FAST_TIER";

/// Default for `SPIN_MAX_INSTANCE_COUNT`.
pub const DEFAULT_MAX_INSTANCE_COUNT: u32 = 1000;

const MIB: usize = 1 << 20;

/// How much of a freed memory slot's written pages are reset in place rather than
/// dropped (Spin keeps 2 MiB of each slot resident too, reset by `memset`).
const KEEP_RESIDENT: usize = 2 * MIB;

/// Errors from building the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wasmtime rejected the configuration.
    #[error("cannot create the wasmtime engine: {0}")]
    Create(#[source] wasmtime::Error),
    /// The compile cache could not be set up.
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Use the pooling allocator (Spin: on unless `SPIN_WASMTIME_POOLING=0`).
    pub pooling: bool,
    /// Pool size: instances, memories and stacks (`SPIN_MAX_INSTANCE_COUNT`).
    pub max_instance_count: u32,
    /// Whether code not in the compile cache is served from the baseline compiler
    /// first (`SPINLET_FAST_TIER`, see [`crate::tiers`]).
    pub fast_tier: FastTier,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            pooling: true,
            max_instance_count: DEFAULT_MAX_INSTANCE_COUNT,
            fast_tier: FastTier::On,
        }
    }
}

/// Tiered compilation on a compile-cache miss ([`crate::tiers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastTier {
    /// Compile with Winch, serve, and swap to Cranelift's code when it is ready
    /// (`SPINLET_FAST_TIER=on`, the default).
    On,
    /// Compile with Cranelift before serving (`SPINLET_FAST_TIER=off`).
    Off,
    /// Compile with Winch with every Wasm proposal beyond the MVP's core switched off,
    /// so that real components fail the fast tier and take the fallback path
    /// (`SPINLET_FAST_TIER=mvp-only`; for tests of the fallback).
    MvpOnly,
}

impl FastTier {
    /// Parses `SPINLET_FAST_TIER`'s value.
    pub fn parse(value: &str) -> Option<FastTier> {
        match value {
            "on" | "1" | "true" | "yes" => Some(FastTier::On),
            "off" | "0" | "false" | "no" => Some(FastTier::Off),
            "mvp-only" => Some(FastTier::MvpOnly),
            _ => None,
        }
    }
}

impl EngineOptions {
    /// Defaults overridden by `SPIN_WASMTIME_POOLING` and `SPIN_MAX_INSTANCE_COUNT`.
    pub fn from_env() -> Self {
        let mut options = Self::default();
        if let Ok(v) = std::env::var("SPIN_WASMTIME_POOLING") {
            options.pooling = !matches!(v.as_str(), "0" | "false" | "no");
        }
        if let Some(n) = std::env::var("SPIN_MAX_INSTANCE_COUNT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            options.max_instance_count = n;
        }
        if let Ok(v) = std::env::var(FAST_TIER_ENV) {
            match FastTier::parse(&v) {
                Some(t) => options.fast_tier = t,
                None => tracing::warn!(
                    value = %v,
                    "{FAST_TIER_ENV}: expected on, off or mvp-only; tiered compilation stays on"
                ),
            }
        }
        options
    }
}

/// An engine with its compile cache and a running epoch ticker.
pub struct RuntimeEngine {
    /// The wasmtime engine (Cranelift, optimising): cached code is always its.
    pub engine: Engine,
    /// The compiled-code cache.
    pub cache: Arc<CompileCache>,
    /// The settings it was built with (the fast tier's engine is built from them too).
    pub options: EngineOptions,
}

impl RuntimeEngine {
    /// Builds the engine and starts the epoch ticker (it stops when the engine is dropped).
    pub fn new(options: &EngineOptions, cache_dir: &Path) -> Result<RuntimeEngine, Error> {
        let engine = Engine::new(&config(options)).map_err(Error::Create)?;
        let cache = Arc::new(CompileCache::open(&engine, cache_dir)?);
        start_ticker(&engine)?;
        Ok(RuntimeEngine {
            engine,
            cache,
            options: options.clone(),
        })
    }

    /// A second engine compiling with Winch, wasmtime's baseline compiler, with the same
    /// settings (pooling, limits, epochs) and its own epoch ticker: the fast tier
    /// ([`crate::tiers`]). With [`FastTier::MvpOnly`] it accepts only the MVP's core.
    pub fn fast_tier(&self) -> Result<Engine, Error> {
        let mut config = config(&self.options);
        config.strategy(wasmtime::Strategy::Winch);
        // Winch hands the trampolines (one per function that escapes: thousands in the
        // JS SDK's component) to Cranelift; unoptimised, they cost ~10 % less compile
        // CPU (`wasmtime compile -C compiler=winch -O opt-level=0`: 1.49–1.57 vs 1.69 s).
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        // ... and with the single-pass register allocator instead of the backtracking
        // one, the whole compile takes 6 % (JS) to 15 % (Python) less wall time
        // (`wasmtime compile -C compiler=winch -O opt-level=0 -O
        // regalloc-algorithm=single-pass`: JS 0.79 vs 0.85 s, Python 0.88 vs 1.02 s).
        config.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
        // The fast tier's code serves for seconds: without the address map (wasm offsets
        // in trap backtraces; function names stay) and native unwind tables (wasmtime
        // walks frame pointers itself), less to emit and link in the compile's serial
        // tail: JS hello cold start 858 against 920 ms, CPU 1.20 against 1.27 s (session
        // 27, 4 alternating starts each). Cranelift's code keeps both.
        config.generate_address_map(false);
        config.native_unwind_info(false);
        if self.options.fast_tier == FastTier::MvpOnly {
            config.wasm_features(
                wasmtime::WasmFeatures::all()
                    - wasmtime::WasmFeatures::WASM1
                    - wasmtime::WasmFeatures::COMPONENT_MODEL,
                false,
            );
        }
        let engine = Engine::new(&config).map_err(Error::Create)?;
        start_ticker(&engine)?;
        Ok(engine)
    }
}

/// The configuration both tiers share.
fn config(options: &EngineOptions) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // WASI 0.3 components (spin-sdk 7) use the component model's async ABI.
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    if options.pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(
            options.max_instance_count,
        )));
    }
    // Initial linear memory from copy-on-write images; with artifacts mapped from the
    // compile cache the images are the artifact file's own pages (wasmtime's default,
    // stated because the heavy apps' RSS depends on it).
    config.memory_init_cow(true);
    config
}

/// Starts `engine`'s epoch ticker thread; it ends when the engine is dropped.
fn start_ticker(engine: &Engine) -> Result<(), Error> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("spinlet-epoch".into())
        .spawn(move || tick(weak))
        .map_err(|e| Error::Create(wasmtime::Error::from(e)))?;
    Ok(())
}

fn pooling_config(n: u32) -> PoolingAllocationConfig {
    let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_memories(n)
        .total_stacks(n)
        .total_tables(2 * n)
        .total_core_instances(4 * n)
        .table_elements(100_000)
        .max_component_instance_size(10 * MIB)
        .max_core_instance_size(10 * MIB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30)
        // A freed slot's memory is put back to its initial contents in place, not
        // dropped, where the kernel can say which pages an instance wrote (the
        // PAGEMAP_SCAN ioctl, Linux 6.7+): up to KEEP_RESIDENT of written pages are
        // copied back from the image (or zeroed), the rest decommitted with madvise.
        // Dropped pages cost the next instance a page fault on each first touch, and a
        // write to a page of the copy-on-write image it has read costs a copy plus a
        // TLB flush on every CPU running the process: an inter-processor interrupt to
        // the other serving thread's core. Measured with `wrk -t2 -c8`, one instance
        // per request (docs/PERFORMANCE.md, "Memory slots reset in place"): 41 % of the
        // Python hello's CPU went to those interrupts; kept resident, CPU per request
        // fell 4.7 -> 3.1–3.7 ms (Python), 1.3 -> 0.36 ms (JS), 140 -> 59 µs (Rust).
        // The cost is memory: each slot a burst used keeps up to KEEP_RESIDENT of
        // written pages (the JS hello: +16 MB after 8 connections). Without the ioctl
        // keeping memory resident would `memset` its first bytes whether written or
        // not, so it stays 0 there (wasmtime's default: every freed slot madvised).
        .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No })
        .linear_memory_keep_resident(if pagemap { KEEP_RESIDENT } else { 0 })
        .table_keep_resident(512 * 1024)
        // Reuse a slot this component ran in before (least recently used first) rather
        // than a cold one. wasmtime's default (100) prefers cold slots until 100 warm
        // ones sit unused, so the set of slots that keep memory resident grows to ~100
        // after a burst; with 0 it stays the peak number of concurrent instances.
        .max_unused_warm_slots(0);
    pool
}
