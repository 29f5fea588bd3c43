//! The on-disk cache of compiled code, so a restart or a new replica never recompiles.
//!
//! This module owns where compiled artifacts live and how hits are counted. It uses
//! wasmtime's own cache (`Config::cache`): each entry is the engine's serialized
//! artifact, keyed by a hash of the Wasm bytes together with the engine's compiler and
//! settings fingerprint (the same inputs as `Engine::precompile_compatibility_hash`), so a
//! different wasmtime version or configuration never loads a stale entry. wasmtime's
//! cache is used rather than `Component::deserialize` because deserializing is `unsafe`
//! and the workspace forbids unsafe code; wasmtime's cache performs the same
//! deserialization internally after validating the key.
//!
//! Compiled code lives in `<cache root>/compiled`; the cache root is
//! `$XDG_CACHE_HOME/spinlet` (or `~/.cache/spinlet`) unless `spinlet run --cache-dir`
//! names another (registry pulls share the root, under `registry/`).

use std::path::{Path, PathBuf};

use wasmtime::{Cache, CacheConfig, Config};

/// Errors from setting up the cache.
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
    /// wasmtime rejected the cache configuration.
    #[error("cannot configure the compile cache in {path}: {source}")]
    Configure {
        /// The directory.
        path: PathBuf,
        /// The wasmtime error.
        #[source]
        source: wasmtime::Error,
    },
}

/// The compile cache attached to an engine.
#[derive(Debug, Clone)]
pub struct CompileCache {
    cache: Cache,
}

impl CompileCache {
    /// Creates `dir` and attaches a cache stored there to `config`.
    pub fn attach(config: &mut Config, dir: &Path) -> Result<CompileCache, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut cache_config = CacheConfig::new();
        cache_config.with_directory(dir);
        let cache = Cache::new(cache_config).map_err(|source| Error::Configure {
            path: dir.to_owned(),
            source,
        })?;
        config.cache(Some(cache.clone()));
        Ok(CompileCache { cache })
    }

    /// How many compilations were served from the cache.
    pub fn hits(&self) -> usize {
        self.cache.cache_hits()
    }

    /// How many compilations missed the cache (and compiled).
    pub fn misses(&self) -> usize {
        self.cache.cache_misses()
    }

    /// The cache directory.
    pub fn directory(&self) -> &Path {
        self.cache.directory()
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
