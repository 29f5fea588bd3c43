//! Tiered compilation: a component not in the compile cache is served at once from code
//! compiled by Winch, wasmtime's baseline compiler, while Cranelift compiles it again in
//! the background; new requests then go to the optimised code.
//!
//! This module owns the choice of tier at load and the background swap. It does not
//! keep artifacts itself (that is [`crate::cache`], one cache per engine: a warm start
//! maps Cranelift's code and never sees this module's fast tier) and does not configure
//! engines beyond asking [`crate::engine`] for the fast one.
//!
//! On a cache miss, with [`FastTier::On`] (the default, `SPINLET_FAST_TIER`):
//!
//! 1. a second engine is built with `Strategy::Winch` and the same settings as the main
//!    one (pooling allocator and its limits, epoch interruption, copy-on-write memory
//!    images), with its own epoch ticker, its own linker (a linker belongs to one
//!    engine) and its own compile cache beside the main one;
//! 2. Winch's code is mapped from that cache when an earlier start stored it, else the
//!    prepared bytes are compiled in memory (`Component::new`: nothing is written on the
//!    way to the first response); it is served ([`Tier::Fast`]);
//! 3. a background thread, at a lower scheduling priority so that serving comes first,
//!    stores Winch's code just compiled in the fast tier's cache, then compiles the same
//!    bytes with the main engine into the main cache ([`CompileCache::compile`]), links
//!    them with the main engine's linker and replaces the handler of every component
//!    served from that file ([`AppComponent::replace`]), and removes Winch's artifact,
//!    which no start uses again. Requests in flight, and WASI 0.3 instances already
//!    pooled, finish on the code they started on; the Winch engine goes when the last of
//!    them does.
//!
//! So each tier compiles a file at most once per content hash: a `spinlet run` stopped
//! before its background compile stored Cranelift's code (a quick try, a crash loop)
//! starts the next time from Winch's stored code instead of compiling it again.
//!
//! Fallback: what Winch cannot compile is compiled by Cranelift before serving, as
//! without tiering, and logged at info. In wasmtime 48 Winch (x86_64) has no GC,
//! typed function references, tail calls, exceptions (and the legacy ones), stack
//! switching or relaxed SIMD (a component using them fails validation in the Winch
//! engine), and only part of SIMD (an instruction it lacks is a compile error), no
//! threads on aarch64, and no other architecture than x86_64 and aarch64 (the engine
//! cannot be built). All of these fall back. A background compile that fails leaves the
//! fast tier serving, with a warning. `SPINLET_FAST_TIER=off` compiles with Cranelift
//! before serving; `mvp-only` gives the Winch engine no proposal beyond the MVP's core so
//! that every real component takes the fallback path (for tests). The fast tier's code
//! has no address map (a trap's backtrace names functions, not wasm offsets) and no
//! native unwind tables (see [`crate::engine`]); Cranelift's code has both.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::app::AppComponent;
use crate::cache::{self, CompileCache, Lookup, SourceKey};
use crate::engine::{FastTier, RuntimeEngine};
use crate::state::InstanceState;

/// Which compiler the code serving new requests came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch, the baseline compiler: compiled fast, runs slower; replaced when the
    /// optimised code is ready.
    Fast,
    /// Cranelift, the optimising compiler (the compile cache's code).
    Optimized,
}

/// Nice value of the background compile's threads: serving goes first.
const BACKGROUND_NICE: i32 = 10;

/// A file served from the fast tier, to compile again in the background.
struct Job {
    path: PathBuf,
    key: SourceKey,
    bytes: Vec<u8>,
    /// Winch's code when it was compiled by this load (not mapped from the fast tier's
    /// cache): stored before the optimised compile starts.
    unstored: Option<Component>,
    served: Vec<Weak<AppComponent>>,
}

/// The Winch engine of one load, with what belongs to it.
struct FastEngine {
    engine: Engine,
    linker: Linker<InstanceState>,
    /// Its compile cache; `None` when it cannot be opened (Winch's code is then compiled
    /// on every cold start, as before the cache had it).
    cache: Option<Arc<CompileCache>>,
}

/// The tiering state of one app load.
pub(crate) struct Tiering<'a> {
    runtime: &'a RuntimeEngine,
    /// The Winch engine, once a miss needed it; `Err` once building it failed (no fast
    /// tier for this load).
    fast: Option<Result<FastEngine, ()>>,
    jobs: Vec<Job>,
    /// Files whose fast-tier code was mapped from the fast tier's cache.
    fast_hits: usize,
}

impl<'a> Tiering<'a> {
    /// Tiering for a load on `runtime`.
    pub(crate) fn new(runtime: &'a RuntimeEngine) -> Self {
        Self {
            runtime,
            fast: None,
            jobs: Vec::new(),
            fast_hits: 0,
        }
    }

    /// The component in `path`: the cache's optimised code on a hit; on a miss Winch's,
    /// when the fast tier is on and can compile it, else Cranelift's, compiled now.
    pub(crate) fn load(
        &mut self,
        path: &Path,
        prepare: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, String>,
    ) -> Result<(Component, Tier), cache::Error> {
        let rt = self.runtime;
        let missing = match rt.cache.lookup(&rt.engine, path)? {
            Lookup::Hit(c) => return Ok((c, Tier::Optimized)),
            Lookup::Miss(m) => m,
        };
        let bytes = prepare(missing.bytes).map_err(cache::Error::Prepare)?;
        if rt.options.fast_tier != FastTier::Off {
            let stored = self.fast_cached(path, &missing.key);
            let found = stored.is_some();
            let fast = stored.or_else(|| self.compile_fast(path, &bytes));
            if let Some(c) = fast {
                self.fast_hits += usize::from(found);
                self.jobs.push(Job {
                    path: path.to_owned(),
                    key: missing.key,
                    bytes,
                    unstored: (!found).then(|| c.clone()),
                    served: Vec::new(),
                });
                return Ok((c, Tier::Fast));
            }
        }
        let c = rt.cache.compile(&rt.engine, path, &missing.key, &bytes)?;
        Ok((c, Tier::Optimized))
    }

    /// Winch's code of `key` mapped from the fast tier's cache, if an earlier start
    /// stored it.
    fn fast_cached(&mut self, path: &Path, key: &SourceKey) -> Option<Component> {
        let fast = self.fast_engine()?;
        let c = fast.cache.as_ref()?.find(&fast.engine, key)?;
        tracing::info!(
            path = %path.display(),
            "mapped Winch's stored code (fast tier); Cranelift compiles it in the background"
        );
        Some(c)
    }

    /// Compiles `bytes` with Winch; `None` (logged) if it cannot.
    fn compile_fast(&mut self, path: &Path, bytes: &[u8]) -> Option<Component> {
        let engine = self.fast_engine()?.engine.clone();
        let started = Instant::now();
        // A compiler bug must not take the load down: it falls back like an error.
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Component::new(&engine, bytes)
        }));
        match compiled {
            Ok(Ok(c)) => {
                tracing::info!(
                    path = %path.display(),
                    ms = started.elapsed().as_millis() as u64,
                    "compiled with Winch (fast tier); Cranelift compiles it in the background"
                );
                Some(c)
            }
            Ok(Err(e)) => {
                tracing::info!(
                    path = %path.display(),
                    error = %format!("{e:#}"),
                    "the fast tier (Winch) cannot compile this component: compiling with Cranelift before serving"
                );
                None
            }
            Err(_) => {
                tracing::info!(
                    path = %path.display(),
                    "the fast tier (Winch) panicked on this component: compiling with Cranelift before serving"
                );
                None
            }
        }
    }

    fn fast_engine(&mut self) -> Option<&FastEngine> {
        let runtime = self.runtime;
        self.fast
            .get_or_insert_with(|| {
                let engine = runtime.fast_tier().map_err(|e| {
                    tracing::info!(error = %e, "no fast tier (Winch) on this machine: compiling with Cranelift before serving");
                })?;
                let linker = crate::app::base_linker(&engine).map_err(|e| {
                    tracing::info!(error = %format!("{e:#}"), "no fast tier (Winch): its linker failed; compiling with Cranelift before serving");
                })?;
                let cache = match runtime.cache.beside(&engine) {
                    Ok(c) => Some(Arc::new(c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "the fast tier's code cannot be cached: Winch compiles on every cold start");
                        None
                    }
                };
                Ok(FastEngine {
                    engine,
                    linker,
                    cache,
                })
            })
            .as_ref()
            .ok()
    }

    /// The fast engine's linker (built by the load that returned [`Tier::Fast`]).
    pub(crate) fn fast_linker(&self) -> wasmtime::Result<&Linker<InstanceState>> {
        match &self.fast {
            Some(Ok(fast)) => Ok(&fast.linker),
            _ => Err(wasmtime::format_err!("the fast tier has no linker")),
        }
    }

    /// Files whose fast-tier code was mapped from the fast tier's cache (counted in
    /// [`Self::fast_files`] too).
    pub(crate) fn fast_hits(&self) -> usize {
        self.fast_hits
    }

    /// Records that `component` serves the fast-tier code of `path`: it gets the
    /// optimised code when it is ready.
    pub(crate) fn serves(&mut self, path: &Path, component: &Arc<AppComponent>) {
        if let Some(job) = self.jobs.iter_mut().find(|j| j.path == path) {
            job.served.push(Arc::downgrade(component));
        }
    }

    /// Wasm files served from the fast tier.
    pub(crate) fn fast_files(&self) -> usize {
        self.jobs.len()
    }

    /// Compiles the fast tier's files with Cranelift on a background thread and swaps
    /// each component to the optimised code, linked with `base` (the main engine's
    /// linker). Nothing to do when every file came from the cache.
    pub(crate) fn optimise_in_background(self, base: Linker<InstanceState>) {
        if self.jobs.is_empty() {
            return;
        }
        let engine = self.runtime.engine.clone();
        let cache = self.runtime.cache.clone();
        let fast_cache = match self.fast {
            Some(Ok(fast)) => fast.cache,
            _ => None,
        };
        let jobs = self.jobs;
        let spawned = std::thread::Builder::new()
            .name("spinlet-optimise".into())
            .spawn(move || optimise(&engine, &cache, fast_cache.as_deref(), &base, jobs));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the background compile: the fast tier keeps serving");
        }
    }
}

/// The background thread: for each job Winch's code stored, Cranelift's compiled and
/// stored, the swap, and Winch's artifact removed.
fn optimise(
    engine: &Engine,
    cache: &CompileCache,
    fast_cache: Option<&CompileCache>,
    base: &Linker<InstanceState>,
    jobs: Vec<Job>,
) {
    lower_priority();
    // wasmtime compiles functions in parallel on the current rayon pool: a pool of
    // lower-priority threads keeps the background compile behind serving.
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("spinlet-optimise-{i}"))
        .start_handler(|_| lower_priority())
        .build();
    for mut job in jobs {
        if job.served.iter().all(|w| w.strong_count() == 0) {
            continue; // the app is gone
        }
        if let (Some(fast_cache), Some(code)) = (fast_cache, job.unstored.take()) {
            match fast_cache.store(&job.key, &code) {
                Ok(()) => {
                    tracing::info!(path = %job.path.display(), "stored Winch's code (fast tier) for the next cold start")
                }
                Err(e) => {
                    tracing::debug!(path = %job.path.display(), error = %e, "cannot store Winch's code: the next cold start compiles it again")
                }
            }
        }
        let started = Instant::now();
        let compile = || cache.compile(engine, &job.path, &job.key, &job.bytes);
        let compiled = match &pool {
            Ok(pool) => pool.install(compile),
            Err(_) => compile(),
        };
        let component = match compiled {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %job.path.display(), error = %e, "background compile with Cranelift failed: the fast tier keeps serving");
                continue;
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        if let Some(fast_cache) = fast_cache {
            fast_cache.forget(&job.key);
        }
        for served in job.served.iter().filter_map(Weak::upgrade) {
            match crate::app::link_http_component(engine, base, &component) {
                Ok(pre) => {
                    served.replace(pre, Tier::Optimized);
                    tracing::info!(component = %served.id, path = %job.path.display(), ms, "optimised code (Cranelift) now serves new requests");
                }
                Err(e) => {
                    tracing::warn!(component = %served.id, error = %format!("{e:#}"), "cannot link the optimised code: the fast tier keeps serving")
                }
            }
        }
    }
    // The fast tier's code and the compiles' working memory are free (or will be when
    // the requests still on Winch's code end): give the heap back, and the compilers'
    // code pages, which serving does not run. The pool's threads collect before they end.
    if let Ok(pool) = pool {
        pool.install(crate::heap::give_back);
    }
    crate::heap::give_back();
    crate::code_pages::release();
}

/// Lowers the calling thread's scheduling priority (Linux: per thread). Advisory.
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::debug!(error = %e, "cannot lower the background compile's priority");
    }
}
