//! Compiling pulled images ahead of their pods: after a pull or an air-gap import, every
//! Wasm component of the app is compiled into the compile cache the sandboxes load from,
//! so a pod's sandbox maps compiled code instead of compiling at start.
//!
//! The work runs on one dedicated thread, in the order asked: a burst of pods of one image
//! compiles it once (the later jobs find its artifacts by content hash and compile
//! nothing), and compiling never blocks the agent's async runtime. The engine is built as
//! the sandbox builds its own (`spin_runtime::engine::RuntimeEngine` from the same
//! environment, over `<cache dir>/compiled`), so the cache key (engine fingerprint: wasmtime
//! version, target, configuration) is the sandbox's; it is dropped whenever no job is
//! waiting, so an idle agent holds no engine. A file that cannot be compiled is logged as
//! a warning and left to the sandbox, which compiles it itself (and reports the error).
//! The files are the image cache's content-addressed blobs, which never change, so a file
//! compiled once is remembered and a later pod of its image does not queue at all (the
//! memory is forgotten whenever eviction removes anything).
//! After compiling, the cache is trimmed to its size cap
//! ([`spin_runtime::cache::evict`]), and once when the thread starts.
//!
//! Owns nothing on disk besides what the cache module writes; it knows which files make up
//! an image from the pull (`spin_runtime::oci::PulledApp`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Instant;

use spin_runtime::cache::{evict, Outcome, COMPILED_SUBDIR};
use spin_runtime::engine::{EngineOptions, RuntimeEngine};
use spin_runtime::manifest::Source;
use spin_runtime::oci::PulledApp;

/// One image to compile.
struct Job {
    /// The image, for logs.
    image: String,
    /// Its Wasm files in the image cache.
    wasm: Vec<PathBuf>,
    /// Dropped (closing the channel) once the job is done.
    _done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Files known to be in the cache: compiled (or found compiled) since the last eviction.
type Done = Arc<Mutex<HashSet<PathBuf>>>;

/// The precompile thread's handle; clones share the thread.
#[derive(Clone)]
pub struct Precompiler {
    tx: mpsc::Sender<Job>,
    done: Done,
}

impl Precompiler {
    /// Starts the thread compiling into `<cache_dir>/compiled`, which it keeps under
    /// `max_bytes`. If the thread cannot start, jobs are dropped (logged) and sandboxes
    /// compile for themselves.
    pub fn start(cache_dir: &Path, max_bytes: u64) -> Precompiler {
        let (tx, rx) = mpsc::channel();
        let compiled = cache_dir.join(COMPILED_SUBDIR);
        let done = Done::default();
        let worker_done = done.clone();
        let spawned = std::thread::Builder::new()
            .name("spinlet-precompile".into())
            .spawn(move || work(&rx, &compiled, max_bytes, &worker_done));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the precompile thread: pods compile their own code");
        }
        Precompiler { tx, done }
    }

    /// Compiles `wasm` (the files of `image`) and returns once they are in the cache (or
    /// could not be compiled, which is logged).
    pub async fn precompile(&self, image: &str, wasm: Vec<PathBuf>) {
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.send(image, wasm, Some(done)) {
            // Err only means the job ended: done or the thread is gone.
            let _ = finished.await;
        }
    }

    /// Queues `wasm` (the files of `image`) for compiling without waiting.
    pub fn submit(&self, image: &str, wasm: Vec<PathBuf>) {
        self.send(image, wasm, None);
    }

    fn send(
        &self,
        image: &str,
        wasm: Vec<PathBuf>,
        done: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> bool {
        let wasm: Vec<PathBuf> = {
            let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
            wasm.into_iter().filter(|w| !done.contains(w)).collect()
        };
        if wasm.is_empty() {
            return false;
        }
        let job = Job {
            image: image.to_string(),
            wasm,
            _done: done,
        };
        let sent = self.tx.send(job).is_ok();
        if !sent {
            tracing::warn!(
                image,
                "the precompile thread is gone: the pod compiles its own code"
            );
        }
        sent
    }
}

/// Compiles `wasm` (the files of `image`) into `<cache_dir>/compiled` on the calling
/// thread, then keeps that directory under `max_bytes`, as the precompile thread does
/// for a job (`spinlet push` compiles what it pushed this way). Failures are logged.
pub fn precompile_here(cache_dir: &Path, image: &str, wasm: Vec<PathBuf>, max_bytes: u64) {
    let compiled = cache_dir.join(COMPILED_SUBDIR);
    let job = Job {
        image: image.to_string(),
        wasm,
        _done: None,
    };
    let done = Done::default();
    if run(&mut None, &compiled, &job, &done) {
        trim(&compiled, max_bytes, &done);
    }
}

/// The Wasm files of a pulled app (each distinct file once, in component order).
pub fn wasm_files(app: &PulledApp) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for component in app.manifest.component.values() {
        if let Source::Local(path) = &component.source {
            let path = app.dir.join(path);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// The thread's loop: one job at a time until every [`Precompiler`] is dropped.
fn work(rx: &mpsc::Receiver<Job>, compiled: &Path, max_bytes: u64, done: &Done) {
    trim(compiled, max_bytes, done);
    let mut engine: Option<RuntimeEngine> = None;
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) => {
                // Nothing waiting: give the engine (and its pooled memory reservations)
                // back until the next job.
                engine = None;
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        if run(&mut engine, compiled, &job, done) {
            trim(compiled, max_bytes, done);
        }
        drop(job);
    }
}

/// Compiles the files of `job` not compiled yet; whether any was compiled now.
fn run(engine: &mut Option<RuntimeEngine>, compiled: &Path, job: &Job, done: &Done) -> bool {
    if engine.is_none() {
        match RuntimeEngine::new(&EngineOptions::from_env(), compiled) {
            Ok(e) => *engine = Some(e),
            Err(e) => {
                tracing::warn!(image = %job.image, error = %e, "cannot precompile: the pod compiles its own code");
                return false;
            }
        }
    }
    let Some(engine) = engine.as_ref() else {
        return false;
    };
    let mut compiled_any = false;
    for path in &job.wasm {
        let started = Instant::now();
        let prepare = |bytes| {
            spin_runtime::componentize::componentize_if_needed(bytes)
                .map(|(bytes, _)| bytes)
                .map_err(|e| e.to_string())
        };
        let outcome = engine.cache.precompile(&engine.engine, path, prepare);
        if outcome.is_ok() {
            done.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(path.clone());
        }
        match outcome {
            Ok(Outcome::Compiled) => {
                compiled_any = true;
                tracing::info!(
                    image = %job.image,
                    wasm = %path.display(),
                    ms = started.elapsed().as_millis() as u64,
                    "precompiled"
                );
            }
            Ok(Outcome::Hit) => {
                tracing::debug!(image = %job.image, wasm = %path.display(), "already compiled");
            }
            Err(e) => {
                tracing::warn!(
                    image = %job.image,
                    wasm = %path.display(),
                    error = %e,
                    "cannot precompile: the pod compiles its own code"
                );
            }
        }
    }
    compiled_any
}

/// Keeps the compiled-code directory under `max_bytes`, logging what it removed (and
/// forgetting what was compiled, as any of it may be gone).
fn trim(compiled: &Path, max_bytes: u64, done: &Done) {
    match evict::evict(compiled, max_bytes) {
        Ok(evicted) if evicted.removed > 0 => {
            done.lock().unwrap_or_else(PoisonError::into_inner).clear();
            tracing::info!(
                removed = evicted.removed,
                freed = evicted.freed,
                kept = evicted.kept,
                max_bytes,
                "evicted least recently used compiled code"
            )
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(dir = %compiled.display(), error = %e, "cannot trim the compile cache")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble of a layer-1 binary.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    /// Sets the artifact at `path` as last used `seconds` ago (file times have a coarse
    /// clock: two compiles in a row may get the same).
    fn used_ago(path: &Path, seconds: u64) {
        let at = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
        let times = std::fs::FileTimes::new().set_accessed(at).set_modified(at);
        std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open")
            .set_times(times)
            .expect("set times");
    }

    /// The artifacts under `<cache>/compiled`.
    fn artifacts(cache: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for engine in std::fs::read_dir(cache.join(COMPILED_SUBDIR)).expect("compiled") {
            for f in std::fs::read_dir(engine.expect("entry").path()).expect("engine") {
                let p = f.expect("entry").path();
                if p.extension().is_some_and(|e| e == "cwasm") {
                    found.push(p);
                }
            }
        }
        found
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn images_compile_once_and_a_bad_file_does_not_stop_the_rest() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = root.path().join("cache");
        let wasm = root.path().join("app.wasm");
        let bad = root.path().join("bad.wasm");
        std::fs::write(&wasm, EMPTY).expect("write");
        std::fs::write(&bad, b"not wasm").expect("write");
        let precompiler = Precompiler::start(&cache, evict::DEFAULT_MAX_BYTES);
        precompiler
            .precompile("img", vec![bad.clone(), wasm.clone()])
            .await;
        let first = artifacts(&cache);
        assert_eq!(first.len(), 1, "{first:?}");
        let written = std::fs::metadata(&first[0])
            .and_then(|m| m.modified())
            .expect("mtime");

        // The sandbox's engine finds it: same configuration, same directory.
        let sandbox = RuntimeEngine::new(&EngineOptions::from_env(), &cache.join(COMPILED_SUBDIR))
            .expect("engine");
        let (_, outcome) = sandbox
            .cache
            .load(&sandbox.engine, &wasm, Ok)
            .expect("load");
        assert_eq!(outcome, Outcome::Hit);

        // Again (a second pod of the image): nothing is compiled or rewritten.
        precompiler.precompile("img", vec![wasm.clone()]).await;
        assert_eq!(artifacts(&cache), first);
        let again = std::fs::metadata(&first[0])
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(again, written);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_the_cap_the_least_recently_used_artifact_goes_and_is_compiled_again() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = root.path().join("cache");
        let a = root.path().join("a.wasm");
        let b = root.path().join("b.wasm");
        std::fs::write(&a, EMPTY).expect("write");
        // The same component with a custom section: other bytes, another artifact.
        let mut other = EMPTY.to_vec();
        other.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']);
        std::fs::write(&b, other).expect("write");

        let roomy = Precompiler::start(&cache, evict::DEFAULT_MAX_BYTES);
        roomy.precompile("a", vec![a.clone()]).await;
        let only_a = artifacts(&cache);
        assert_eq!(only_a.len(), 1);
        let size = std::fs::metadata(&only_a[0]).expect("artifact").len();
        used_ago(&only_a[0], 60);

        // Room for one artifact and a half: compiling b pushes a out.
        let tight = Precompiler::start(&cache, size + size / 2);
        tight.precompile("b", vec![b.clone()]).await;
        let only_b = artifacts(&cache);
        assert_eq!(only_b.len(), 1, "{only_b:?}");
        assert_ne!(only_b, only_a);
        used_ago(&only_b[0], 30);
        // a is compiled again (the eviction forgot it was compiled) and b goes.
        tight.precompile("a", vec![a.clone()]).await;
        assert_eq!(artifacts(&cache), only_a);
    }
}
