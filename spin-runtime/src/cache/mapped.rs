//! Mapping compiled artifacts: one of the workspace's two modules allowed `unsafe` code
//! (the other, [`crate::heap`], calls `malloc_trim`).
//!
//! This module owns the single call to `Component::deserialize_file`, which maps a
//! precompiled artifact instead of reading and copying it (code pages and copy-on-write
//! memory images then come from the page cache on first touch). wasmtime marks it
//! `unsafe` because it trusts the file to be an artifact wasmtime produced, unmodified
//! while mapped: native code in it runs as is. The only caller is [`super::CompileCache`],
//! whose artifacts satisfy that (see the SAFETY comment below). It may not be used for
//! any file the cache did not write. The mapping is then advised `MADV_NOHUGEPAGE`
//! (below) so that only the code pages a guest runs become resident.

#![allow(unsafe_code)]

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::Engine;

/// Maps the artifact at `artifact`, which [`super::CompileCache`] wrote.
pub(super) fn component(engine: &Engine, artifact: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` is a file of the compile cache's engine directory, which only
    // `CompileCache::load` writes: the bytes are the output of
    // `Engine::precompile_component` by an engine whose `precompile_compatibility_hash`
    // (and this crate's version) names the directory, written to a temporary file and
    // renamed into place (never written in place), so the file is complete and is not
    // modified while mapped; a replacement by another process is a new inode and leaves
    // this mapping intact. wasmtime still checks the artifact's header, version and engine
    // settings before using it. The cache directory is this process's own (the cache
    // root of `spinlet run` or the node agent); whoever can write there can already
    // replace the binary's inputs, so it is trusted like them.
    let component = unsafe { Component::deserialize_file(engine, artifact) }?;
    no_huge_pages(&component);
    Ok(component)
}

/// Asks the kernel to back the artifact's mapping page by page. On a file system with
/// large folios (ext4 since Linux 6.16) a fault maps the whole folio it hits, up to 2 MiB,
/// and readahead builds such folios: the JS hello's first request made all 16.7 MB of its
/// code resident (every 2 MiB of the text fully mapped). `MADV_RANDOM` turns readahead off
/// for the mapping, so a fault reads one page; `MADV_NOHUGEPAGE` keeps it from being
/// mapped by PMD. (Folios already in the page cache stay as large as they are:
/// [`super::CompileCache`] drops a freshly written artifact from the page cache.)
/// Advisory: a failure only costs memory, so it is logged.
fn no_huge_pages(component: &Component) {
    let range = component.image_range();
    let len = (range.end as usize).saturating_sub(range.start as usize);
    if len == 0 {
        return;
    }
    // SAFETY: the range is the component's own mapping of the artifact (wasmtime maps it
    // page-aligned and keeps it for the component's lifetime); MADV_NOHUGEPAGE and MADV_RANDOM
    // change only how the kernel backs the pages, never their contents or protection.
    let result = unsafe {
        rustix::mm::madvise(
            range.start as *mut core::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxNoHugepage,
        )
        .and_then(|()| {
            rustix::mm::madvise(
                range.start as *mut core::ffi::c_void,
                len,
                rustix::mm::Advice::Random,
            )
        })
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "madvise on a compiled artifact failed");
    }
}
