//! The process's memory allocator: mimalloc for `spinlet run`, the C library's for every
//! other subcommand. Chosen once per process, at its first allocation, from its command
//! line.
//!
//! Why two: `spinlet run` (`spin up`'s equivalent) compiles an app's Wasm on a cold start,
//! and wasmtime's compilers allocate and free hundreds of megabytes on every core at once.
//! On mimalloc that start is 19–43 % shorter than on glibc's allocator (the JS and Python
//! SDK hellos, same session: 1.02 against 1.26 s and 0.96 against 1.69 s in session 27,
//! 1.15 against 1.58 s and 1.11 against 1.65 s in session 26). The server and the pod sandboxes compile nothing on a request's path
//! and are many or long-lived: there mimalloc's per-thread pages cost memory (server PSS
//! 72 against 28 MiB with 50 pods; a sandbox 5.5 against 3.7 MiB; API idle RSS 33.8
//! against 25.1 MiB, over its 30 MB target). docs/PERFORMANCE.md, "Allocator", has the
//! runs, all on glibc builds. The static musl release binaries link mimalloc the same way
//! (checked in a scratch crate: built for both targets with `cargo zigbuild`, run on
//! amd64); not measured there.
//!
//! How: [`Dispatch`] is the `#[global_allocator]`. Its first call reads
//! `/proc/self/cmdline` (with plain system calls, no allocation) and fixes the choice for
//! the process's life, so every block is freed by the allocator that gave it out: nothing
//! allocates through the global allocator before that first call. Without `/proc` it
//! stays on the C library's allocator. `SPINLET_ALLOCATOR=system` or `=mimalloc`
//! overrides the choice for any subcommand. The `spinlet run` process also gives
//! mimalloc's freed pages back after a compile ([`collect`], installed as the Spin
//! runtime's per-thread give-back).
//!
//! Owns the choice and nothing else. One of the modules allowed `unsafe` code: a global
//! allocator's methods are `unsafe` by definition, and reading the command line without
//! allocating takes raw `open`/`read` calls; each call is annotated.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// Which allocator serves this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The C library's (`std::alloc::System`).
    System,
    /// mimalloc, linked in statically.
    Mimalloc,
}

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The global allocator: mimalloc or the C library's, as [`choice`] says.
pub struct Dispatch;

/// This process's allocator, decided on the first call.
pub fn choice() -> Choice {
    match CHOICE.load(Ordering::Relaxed) {
        SYSTEM => Choice::System,
        MIMALLOC => Choice::Mimalloc,
        _ => decide(),
    }
}

/// Reads the command line and records the choice; the first thread to record wins (all
/// decide the same).
#[cold]
fn decide() -> Choice {
    let mut buf = [0u8; 256];
    let chosen = match (from_env(), read_cmdline(&mut buf)) {
        (Some(chosen), _) => chosen,
        (None, Some(n)) => for_command_line(&buf[..n]),
        (None, None) => Choice::System,
    };
    let code = match chosen {
        Choice::System => SYSTEM,
        Choice::Mimalloc => MIMALLOC,
    };
    match CHOICE.compare_exchange(UNDECIDED, code, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => chosen,
        Err(MIMALLOC) => Choice::Mimalloc,
        Err(_) => Choice::System,
    }
}

/// The allocator for a process started with `cmdline` (`/proc/self/cmdline`: arguments
/// separated by NULs, possibly cut short): mimalloc when the subcommand, the first
/// argument after the program name, is `run`, and the program is not called through
/// its `kubectl` symlink (whose `run` is kubectl's).
pub fn for_command_line(cmdline: &[u8]) -> Choice {
    let mut args = cmdline.split(|&b| b == 0);
    let program = args.next().unwrap_or_default();
    let name = program.rsplit(|&b| b == b'/').next().unwrap_or_default();
    match args.next() {
        Some(b"run") if name != b"kubectl" => Choice::Mimalloc,
        _ => Choice::System,
    }
}

/// `SPINLET_ALLOCATOR=system` or `=mimalloc`, which overrides the command line's choice
/// (to compare the two, or to leave mimalloc out); any other value is ignored.
fn from_env() -> Option<Choice> {
    const NAME: &std::ffi::CStr = c"SPINLET_ALLOCATOR";
    // SAFETY: `NAME` is NUL-terminated; the first allocation, where this runs, comes
    // before any thread could change the environment.
    let value = unsafe { libc::getenv(NAME.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: `getenv` returned a NUL-terminated string of the environment.
    match unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() {
        b"system" => Some(Choice::System),
        b"mimalloc" => Some(Choice::Mimalloc),
        _ => None,
    }
}

/// Reads the start of `/proc/self/cmdline` into `buf` without allocating; the number of
/// bytes read, or `None` when it cannot be read.
fn read_cmdline(buf: &mut [u8]) -> Option<usize> {
    const PATH: &std::ffi::CStr = c"/proc/self/cmdline";
    // SAFETY: `PATH` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(PATH.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes; `fd` is open.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        filled += n as usize;
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    Some(filled)
}

/// Gives the calling thread's freed mimalloc pages back to the operating system (after a
/// compile; a no-op on the C library's allocator, which `malloc_trim` serves).
pub fn collect() {
    if choice() == Choice::Mimalloc {
        // SAFETY: takes no pointers; collects the calling thread's heap and purges freed
        // memory, which no allocation refers to.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

// SAFETY: every method forwards to the allocator `choice()` names, which never changes
// once decided, so a block is freed or resized by the allocator that gave it out; both
// allocators uphold `GlobalAlloc`'s contract.
unsafe impl GlobalAlloc for Dispatch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match choice() {
            // SAFETY: the caller's contract, forwarded.
            Choice::Mimalloc => unsafe { MiMalloc.alloc(layout) },
            // SAFETY: as above.
            Choice::System => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match choice() {
            // SAFETY: the caller's contract, forwarded.
            Choice::Mimalloc => unsafe { MiMalloc.alloc_zeroed(layout) },
            // SAFETY: as above.
            Choice::System => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match choice() {
            // SAFETY: `ptr` came from this allocator (the choice never changes).
            Choice::Mimalloc => unsafe { MiMalloc.dealloc(ptr, layout) },
            // SAFETY: as above.
            Choice::System => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match choice() {
            // SAFETY: `ptr` came from this allocator (the choice never changes).
            Choice::Mimalloc => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            // SAFETY: as above.
            Choice::System => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spinlet_run_gets_mimalloc() {
        for run in [
            &b"spinlet\0run\0--from\0spin.toml\0"[..],
            b"/usr/local/bin/spinlet\0run",
            b"./target/release/spinlet\0run\0oci://x",
        ] {
            let shown = String::from_utf8_lossy(run);
            assert_eq!(for_command_line(run), Choice::Mimalloc, "{shown}");
        }
        for other in [
            &b"spinlet\0server\0"[..],
            b"spinlet\0sandbox\0--pod\0run\0",
            b"spinlet\0agent\0",
            b"/usr/local/bin/kubectl\0run\0nginx\0",
            b"kubectl\0run\0",
            b"spinlet\0runner\0",
            b"spinlet\0ru",
            b"spinlet\0",
            b"",
        ] {
            let shown = String::from_utf8_lossy(other);
            assert_eq!(for_command_line(other), Choice::System, "{shown}");
        }
    }
}
