//! The on-disk cache of compiled code: each Wasm file is compiled at most once per
//! content hash and engine, and a warm start maps the compiled artifact instead of
//! reading, decompressing and copying it.
//!
//! This module owns where compiled artifacts live, how they are keyed, written and found,
//! and how hits are counted. It does not compile by itself (the caller passes the bytes
//! to compile, e.g. componentized) and does not link or instantiate.
//!
//! Layout under the compiled-code directory (`<cache root>/compiled`):
//!
//! - `<engine>/` — one directory per engine fingerprint: a SHA-256 over
//!   `Engine::precompile_compatibility_hash` (compiler, target, flags, tunables, wasm
//!   features, wasmtime version) and this crate's version (the componentize adapter). A
//!   different wasmtime, configuration or spinlet never sees another's artifacts.
//! - `<engine>/<sha256 of the Wasm file>.cwasm` — the artifact
//!   (`Engine::precompile_component`), written to a temporary file in the same directory
//!   and renamed into place, never modified after.
//! - `<engine>/sources/<key>` — a small index from a file's identity (canonical path,
//!   length, modification time, inode, device) to its content hash, so a warm start does
//!   not read or hash a 12–37 MB file. A stale entry can only point at another artifact of
//!   this cache, never at foreign bytes: the index affects which of our artifacts is
//!   loaded, not whether it is one.
//!
//! Loading an artifact goes through [`mapped`], a module allowed `unsafe` code: the
//! artifact is mapped (`Component::deserialize_file`), so its code pages and the initial
//! linear-memory images (copy-on-write, `Config::memory_init_cow`) come from the page
//! cache on first touch instead of being copied at load.
//!
//! Compiled code lives in `<cache root>/compiled`; the cache root is
//! `$XDG_CACHE_HOME/spinlet` (or `~/.cache/spinlet`) unless `spinlet run --cache-dir`
//! names another (registry pulls share the root, under `registry/`). [`evict`] keeps the
//! directory under a size cap.

pub mod evict;
mod mapped;

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Errors from the cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache directory could not be created.
    #[error("cannot create compile cache directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Wasm file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes could not be prepared for compilation (e.g. componentized).
    #[error("{0}")]
    Prepare(String),
    /// Compilation failed.
    #[error("{0:#}")]
    Compile(#[source] wasmtime::Error),
    /// The artifact could not be written.
    #[error("cannot write compiled code to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The artifact just written could not be loaded.
    #[error("cannot load compiled code from {path}: {source:#}")]
    Load {
        /// The artifact.
        path: PathBuf,
        /// The wasmtime error.
        #[source]
        source: wasmtime::Error,
    },
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Mapped from an existing artifact; nothing was compiled.
    Hit,
    /// Compiled now and stored.
    Compiled,
}

/// What [`CompileCache::lookup`] found.
pub enum Lookup {
    /// This engine's artifact, mapped.
    Hit(Component),
    /// No artifact: the file's bytes, to compile.
    Miss(Missing),
}

/// A Wasm file with no artifact yet.
pub struct Missing {
    /// The file's bytes, as read.
    pub bytes: Vec<u8>,
    /// Where its artifact goes.
    pub key: SourceKey,
}

/// A Wasm file's content hash and identity: the artifact's name and index entry.
#[derive(Debug, Clone)]
pub struct SourceKey {
    hash: String,
    identity: Option<String>,
}

/// The compiled-code cache of one engine.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

/// Subdirectory of the engine directory holding the file-identity index.
const SOURCES: &str = "sources";

impl CompileCache {
    /// The cache of `engine` under `compiled_dir` (created if missing).
    pub fn open(engine: &Engine, compiled_dir: &Path) -> Result<CompileCache, Error> {
        let dir = compiled_dir.join(engine_fingerprint(engine));
        let sources = dir.join(SOURCES);
        std::fs::create_dir_all(&sources).map_err(|source| Error::CreateDir {
            path: sources,
            source,
        })?;
        Ok(CompileCache {
            dir,
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        })
    }

    /// The component in `path`: mapped from its artifact when this engine compiled the
    /// same bytes before, else read, passed through `prepare` (e.g. componentize),
    /// compiled, stored and mapped.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
        prepare: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, String>,
    ) -> Result<(Component, Outcome), Error> {
        match self.lookup(engine, path)? {
            Lookup::Hit(c) => Ok((c, Outcome::Hit)),
            Lookup::Miss(missing) => {
                let bytes = prepare(missing.bytes).map_err(Error::Prepare)?;
                let c = self.compile(engine, path, &missing.key, &bytes)?;
                Ok((c, Outcome::Compiled))
            }
        }
    }

    /// The component in `path` mapped from its artifact when this engine compiled the
    /// same bytes before; else the file's bytes, to be compiled by [`Self::compile`]
    /// (now or later, e.g. in the background while a faster tier serves).
    pub fn lookup(&self, engine: &Engine, path: &Path) -> Result<Lookup, Error> {
        let identity = identity_key(path);
        if let Some(id) = &identity {
            if let Some(hash) = self.indexed(id) {
                if let Some(c) = self.try_map(engine, &self.artifact(&hash)) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Lookup::Hit(c));
                }
            }
        }
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = SourceKey {
            hash: hex(&Sha256::digest(&bytes)),
            identity,
        };
        if let Some(c) = self.try_map(engine, &self.artifact(&key.hash)) {
            self.remember(&key);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Lookup::Hit(c));
        }
        Ok(Lookup::Miss(Missing { bytes, key }))
    }

    /// Compiles `bytes` (the file [`Self::lookup`] missed, prepared), stores the
    /// artifact under `key` and maps it.
    pub fn compile(
        &self,
        engine: &Engine,
        path: &Path,
        key: &SourceKey,
        bytes: &[u8],
    ) -> Result<Component, Error> {
        let artifact = self.artifact(&key.hash);
        let started = std::time::Instant::now();
        let code = compile_only(engine)
            .and_then(|compiler| compiler.precompile_component(bytes))
            .map_err(Error::Compile)?;
        tracing::debug!(
            path = %path.display(),
            ms = started.elapsed().as_millis() as u64,
            "compiled"
        );
        put_artifact(&artifact, code)?;
        let c = mapped::component(engine, &artifact).map_err(|source| Error::Load {
            path: artifact.clone(),
            source,
        })?;
        self.remember(key);
        self.misses.fetch_add(1, Ordering::Relaxed);
        Ok(c)
    }

    fn remember(&self, key: &SourceKey) {
        if let Some(id) = &key.identity {
            self.index(id, &key.hash);
        }
    }

    /// Compiles `path` ahead of time (at pull or push) so that a later start maps it.
    pub fn precompile(
        &self,
        engine: &Engine,
        path: &Path,
        prepare: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, String>,
    ) -> Result<Outcome, Error> {
        self.load(engine, path, prepare).map(|(_, outcome)| outcome)
    }

    /// Maps an artifact if it exists; a damaged one is logged and treated as missing.
    fn try_map(&self, engine: &Engine, artifact: &Path) -> Option<Component> {
        if !artifact.is_file() {
            return None;
        }
        match mapped::component(engine, artifact) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(artifact = %artifact.display(), error = %format!("{e:#}"), "unusable compiled artifact: compiling again");
                None
            }
        }
    }

    fn artifact(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.cwasm"))
    }

    fn indexed(&self, identity: &str) -> Option<String> {
        let s = std::fs::read_to_string(self.dir.join(SOURCES).join(identity)).ok()?;
        let s = s.trim();
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_owned())
    }

    fn index(&self, identity: &str, hash: &str) {
        let path = self.dir.join(SOURCES).join(identity);
        if let Err(e) = write_atomic(&path, hash.as_bytes()) {
            tracing::debug!(path = %path.display(), error = %e, "cannot index the source file");
        }
    }

    /// The cache of another engine (e.g. the fast tier's, [`crate::tiers`]) beside this
    /// one, under the same compiled-code directory.
    pub fn beside(&self, engine: &Engine) -> Result<CompileCache, Error> {
        let compiled = self.dir.parent().unwrap_or(Path::new("."));
        CompileCache::open(engine, compiled)
    }

    /// `key`'s artifact of this engine, mapped, if one was stored.
    pub fn find(&self, engine: &Engine, key: &SourceKey) -> Option<Component> {
        let c = self.try_map(engine, &self.artifact(&key.hash))?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(c)
    }

    /// Stores `component`, compiled in memory by this cache's engine, as `key`'s
    /// artifact, so that a later start maps it instead of compiling.
    pub fn store(&self, key: &SourceKey, component: &Component) -> Result<(), Error> {
        let artifact = self.artifact(&key.hash);
        let code = component.serialize().map_err(Error::Compile)?;
        put_artifact(&artifact, code)
    }

    /// Removes `key`'s artifact of this engine, once another engine's supersedes it. A
    /// process that has it mapped keeps its pages. Advisory: failures are logged.
    pub fn forget(&self, key: &SourceKey) {
        let artifact = self.artifact(&key.hash);
        match std::fs::remove_file(&artifact) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!(artifact = %artifact.display(), error = %e, "cannot remove a superseded artifact")
            }
        }
    }

    /// Components mapped from an existing artifact.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Components compiled (and stored).
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// This engine's artifact directory.
    pub fn directory(&self) -> &Path {
        &self.dir
    }
}

/// A SHA-256 fed by `Hash` implementations.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The directory name of `engine`'s artifacts.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    hex(&h.0.finalize()[..16])
}

/// The index key of the file at `path` as it is now, if it can be stat'ed.
fn identity_key(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let canonical = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&canonical).ok()?;
    let mut h = Sha256::new();
    h.update(canonical.as_os_str().as_encoded_bytes());
    for n in [
        m.len() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ino() as i64,
        m.dev() as i64,
    ] {
        h.update(n.to_le_bytes());
    }
    Some(hex(&h.finalize()))
}

/// An engine for one compile, configured as `engine` (so its artifacts load in
/// `engine`: the compatibility check compares compiler settings, tunables and features,
/// none of which the allocation strategy changes) but without an instance pool.
///
/// Why not `engine` itself: wasmtime's Cranelift compiler keeps the working context of
/// every thread that compiled, each as large as the largest function it compiled, for
/// the engine's life, and a `spinlet run` or a server held them for as long as it ran:
/// after a cold start of the JS hello, 113 MB RSS on glibc and 139 MB on mimalloc, where
/// with this engine it is 72 and 60 MB (session 27). This engine, and its contexts, go
/// when the compile ends, before [`put_artifact`] gives the heap back.
fn compile_only(engine: &Engine) -> wasmtime::Result<Engine> {
    let mut config = engine.config().clone();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
    Engine::new(&config)
}

/// Writes compiled `code` to `artifact` (atomically), frees it and gives the heap back
/// (without this the process keeps a compile's working memory), and drops the written
/// pages from the page cache.
fn put_artifact(artifact: &Path, code: Vec<u8>) -> Result<(), Error> {
    let written = write_atomic(artifact, &code);
    drop(code);
    crate::heap::give_back();
    written.map_err(|source| Error::Write {
        path: artifact.to_owned(),
        source,
    })?;
    evict_from_page_cache(artifact);
    Ok(())
}

/// Drops a just-written artifact's pages from the page cache: written through `write`,
/// they sit in large folios that a mapping would make resident 2 MiB at a time; read back
/// by faults (the mapping is `MADV_RANDOM`, see [`mapped`]) they come one page at a time,
/// only those the guest touches. Advisory: failures are ignored.
fn evict_from_page_cache(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to a temporary file next to `path` and renames it into place, so a
/// reader sees the whole file or none.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_data()?;
    std::fs::rename(&tmp.0, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp.0);
    })
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    loop {
        let name = format!(
            ".tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Subdirectory of the cache root holding compiled code.
pub const COMPILED_SUBDIR: &str = "compiled";

/// Subdirectory of the cache root holding registry pulls.
pub const REGISTRY_SUBDIR: &str = "registry";

/// The default cache root: `$XDG_CACHE_HOME/spinlet`, else `$HOME/.cache/spinlet`, else
/// `fallback`.
pub fn default_root(fallback: &Path) -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("spinlet");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("spinlet");
    }
    fallback.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble of a layer-1 binary.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    /// The same component with a custom section: other bytes, still valid.
    fn with_custom_section() -> Vec<u8> {
        let mut b = EMPTY.to_vec();
        b.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']);
        b
    }

    fn load(cache: &CompileCache, engine: &Engine, path: &Path) -> Outcome {
        cache.load(engine, path, Ok).expect("load").1
    }

    #[test]
    fn compiles_once_per_content_and_recompiles_what_changed_or_broke() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::default();
        let cache = CompileCache::open(&engine, &dir.path().join("compiled")).expect("open");
        let wasm = dir.path().join("app.wasm");
        std::fs::write(&wasm, EMPTY).expect("write");

        assert_eq!(load(&cache, &engine, &wasm), Outcome::Compiled);
        assert_eq!(load(&cache, &engine, &wasm), Outcome::Hit);
        let copy = dir.path().join("copy.wasm");
        std::fs::write(&copy, EMPTY).expect("write");
        assert_eq!(load(&cache, &engine, &copy), Outcome::Hit, "same bytes");
        assert_eq!((cache.hits(), cache.misses()), (2, 1));

        // New bytes at the same path: the index no longer matches the file.
        std::fs::write(&wasm, with_custom_section()).expect("rewrite");
        assert_eq!(load(&cache, &engine, &wasm), Outcome::Compiled);
        assert_eq!(load(&cache, &engine, &wasm), Outcome::Hit);

        // A damaged artifact is compiled again, not an error.
        let artifact = cache.artifact(&hex(&Sha256::digest(EMPTY)));
        std::fs::write(&artifact, b"not an artifact").expect("damage");
        assert_eq!(load(&cache, &engine, &copy), Outcome::Compiled);
        assert_eq!(load(&cache, &engine, &copy), Outcome::Hit);
    }

    #[test]
    fn another_engine_configuration_has_its_own_artifacts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let compiled = dir.path().join("compiled");
        let wasm = dir.path().join("app.wasm");
        std::fs::write(&wasm, EMPTY).expect("write");
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let epochs = Engine::new(&config).expect("engine");
        let a = CompileCache::open(&plain, &compiled).expect("open");
        let b = CompileCache::open(&epochs, &compiled).expect("open");
        assert_ne!(a.directory(), b.directory());
        assert_eq!(load(&a, &plain, &wasm), Outcome::Compiled);
        assert_eq!(load(&b, &epochs, &wasm), Outcome::Compiled);
        assert_eq!(load(&b, &epochs, &wasm), Outcome::Hit);
    }
}
