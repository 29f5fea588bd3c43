//! Tiered compilation: a component not in the compile cache is served at once from code
//! compiled by Winch, wasmtime's baseline compiler, while Cranelift compiles it again in
//! the background; new requests then go to the optimised code.
//!
//! This module owns the choice of tier at load and the background swap. It does not
//! keep artifacts (that is [`crate::cache`]: only Cranelift's code is ever stored, so a
//! warm start maps optimised code and never sees this module's fast tier) and does not
//! configure engines beyond asking [`crate::engine`] for the fast one.
//!
//! On a cache miss, with [`FastTier::On`] (the default, `SPINLET_FAST_TIER`):
//!
//! 1. a second engine is built with `Strategy::Winch` and the same settings as the main
//!    one (pooling allocator and its limits, epoch interruption, copy-on-write memory
//!    images), with its own epoch ticker and its own linker (a linker belongs to one
//!    engine);
//! 2. the prepared bytes are compiled in memory (`Component::new`: nothing is written on
//!    the way to the first response) and served ([`Tier::Fast`]);
//! 3. a background thread, at a lower scheduling priority so that serving comes first,
//!    compiles the same bytes with the main engine into the cache
//!    ([`CompileCache::compile`]), links them with the main engine's linker and replaces
//!    the handler of every component served from that file
//!    ([`AppComponent::replace`]). Requests in flight, and WASI 0.3 instances already
//!    pooled, finish on the code they started on; the Winch engine goes when the last of
//!    them does.
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
//! that every real component takes the fallback path (for tests).

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
    served: Vec<Weak<AppComponent>>,
}

/// The tiering state of one app load.
pub(crate) struct Tiering<'a> {
    runtime: &'a RuntimeEngine,
    /// The Winch engine and its linker, once a miss needed them; `Err` once building
    /// them failed (no fast tier for this load).
    fast: Option<Result<(Engine, Linker<InstanceState>), ()>>,
    jobs: Vec<Job>,
}

impl<'a> Tiering<'a> {
    /// Tiering for a load on `runtime`.
    pub(crate) fn new(runtime: &'a RuntimeEngine) -> Self {
        Self {
            runtime,
            fast: None,
            jobs: Vec::new(),
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
            if let Some(c) = self.compile_fast(path, &bytes) {
                self.jobs.push(Job {
                    path: path.to_owned(),
                    key: missing.key,
                    bytes,
                    served: Vec::new(),
                });
                return Ok((c, Tier::Fast));
            }
        }
        let c = rt.cache.compile(&rt.engine, path, &missing.key, &bytes)?;
        Ok((c, Tier::Optimized))
    }

    /// Compiles `bytes` with Winch; `None` (logged) if it cannot.
    fn compile_fast(&mut self, path: &Path, bytes: &[u8]) -> Option<Component> {
        let engine = self.fast_engine()?.0.clone();
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

    fn fast_engine(&mut self) -> Option<&(Engine, Linker<InstanceState>)> {
        let runtime = self.runtime;
        self.fast
            .get_or_insert_with(|| {
                let engine = runtime.fast_tier().map_err(|e| {
                    tracing::info!(error = %e, "no fast tier (Winch) on this machine: compiling with Cranelift before serving");
                })?;
                let linker = crate::app::base_linker(&engine).map_err(|e| {
                    tracing::info!(error = %format!("{e:#}"), "no fast tier (Winch): its linker failed; compiling with Cranelift before serving");
                })?;
                Ok((engine, linker))
            })
            .as_ref()
            .ok()
    }

    /// The fast engine's linker (built by the load that returned [`Tier::Fast`]).
    pub(crate) fn fast_linker(&self) -> wasmtime::Result<&Linker<InstanceState>> {
        match &self.fast {
            Some(Ok((_, linker))) => Ok(linker),
            _ => Err(wasmtime::format_err!("the fast tier has no linker")),
        }
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
        let jobs = self.jobs;
        let spawned = std::thread::Builder::new()
            .name("spinlet-optimise".into())
            .spawn(move || optimise(&engine, &cache, &base, jobs));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the background compile: the fast tier keeps serving");
        }
    }
}

/// The background thread: Cranelift code for each job, then the swap.
fn optimise(engine: &Engine, cache: &CompileCache, base: &Linker<InstanceState>, jobs: Vec<Job>) {
    lower_priority();
    // wasmtime compiles functions in parallel on the current rayon pool: a pool of
    // lower-priority threads keeps the background compile behind serving.
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("spinlet-optimise-{i}"))
        .start_handler(|_| lower_priority())
        .build();
    for job in jobs {
        if job.served.iter().all(|w| w.strong_count() == 0) {
            continue; // the app is gone
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
    // code pages, which serving does not run.
    crate::heap::give_back();
    crate::code_pages::release();
}

/// Lowers the calling thread's scheduling priority (Linux: per thread). Advisory.
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::debug!(error = %e, "cannot lower the background compile's priority");
    }
}
