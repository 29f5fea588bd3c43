//! Giving freed heap back to the operating system after a compile.
//!
//! A compile (Cranelift for the cache, Winch for the fast tier) allocates hundreds of
//! megabytes on wasmtime's parallel worker threads and frees them when it ends. glibc
//! keeps freed memory in each thread's arena for reuse, so a `spinlet run` that compiled
//! the JS SDK's hello held 526 MB of anonymous memory for as long as it ran, where a
//! start from the cache holds 4 MB; `malloc_trim(0)` returns the free pages of every
//! arena (measured: 558 → 133 MB RSS, the rest is live or fragmented). Called after
//! compile work, never on a request's path.
//!
//! A process whose allocator keeps freed pages per thread (mimalloc, `spinlet run`'s)
//! installs that allocator's collect call with [`collect_on_each_thread`]; `give_back`
//! then runs it on every thread of the current rayon pool, where wasmtime's compiles run,
//! and on the calling thread.
//!
//! Owns that hook and nothing else; knows nothing of wasmtime. One of the three modules
//! allowed `unsafe` code (with [`crate::cache`]'s `mapped` and [`crate::code_pages`]):
//! `malloc_trim` is a plain FFI call into the C library, which no safe crate wraps. On
//! other C libraries (musl: the static release binaries) there is no `malloc_trim`:
//! musl's allocator returns freed memory itself, and only the installed collect runs.

#![allow(unsafe_code)]

use std::sync::OnceLock;

/// The process allocator's per-thread collect, when it has one.
static COLLECT: OnceLock<fn()> = OnceLock::new();

/// Installs `collect`, run by [`give_back`] on each compile thread (the first call wins).
pub fn collect_on_each_thread(collect: fn()) {
    let _ = COLLECT.set(collect);
}

/// Returns the allocator's free memory to the operating system: the installed per-thread
/// collect on the current rayon pool's threads and this one, then glibc's `malloc_trim`.
pub fn give_back() {
    if let Some(&collect) = COLLECT.get() {
        rayon::broadcast(|_| collect());
        collect();
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes no pointers, is thread-safe (it locks each arena
        // in turn) and only releases memory no allocation refers to.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released != 0,
            "freed heap given back after a compile"
        );
    }
}
