//! Links the optimised `spinlet` binary for a fast start and little private memory: the
//! code a serving `spinlet run` executes packed at the start of `.text`, and no
//! position-independent executable.
//!
//! # Code layout
//! `link-order/serving.txt`, written by `link-order/generate.py`, lists that code.
//!
//! Why: the kernel maps 64 KiB of a file around every page fault on it, so a serving
//! process keeps resident far more of the binary's code than it runs when that code is
//! spread over the binary (the JS hello: 17 MB of code resident after 1,000 requests).
//! Packed, the same requests map a few MB (docs/PERFORMANCE.md, "Code layout").
//!
//! Only for optimised builds for x86_64-unknown-linux-gnu with Rust 1.90 or later, whose
//! default linker is Rust's own LLD (`--symbol-ordering-file` is LLD's), and only when no
//! other linker is configured; `SPINLET_LINK_ORDER=off` turns it off. Names the binary no
//! longer has are skipped without a warning: a stale list costs resident memory, never a
//! failed build.
//!
//! # Not a PIE
//! A position-independent executable is relocated by the dynamic loader at every start:
//! 114,000 relocations, read from 2.7 MB of `.rela.dyn`, writing 1.8 MB of `.data.rel.ro`
//! and `.got`. Those pages become private copies in every process, so each pod sandbox
//! and each `spinlet run` paid 1.8 MB of its own memory and ~440 page faults before
//! `main`. Linked at a fixed address (`-no-pie`) they stay clean pages of the file,
//! shared by all processes: a warm start of the Python hello takes 1.6 ms less CPU, the
//! JS hello's private memory after 1,000 requests is 1.8 MB smaller, and a hello pod
//! costs 2.9 MiB instead of 4.7 (docs/PERFORMANCE.md, "Not a PIE"). The cost is that the
//! binary's own code and data are not placed at a random address (shared libraries,
//! heap, stacks and compiled wasm still are), as with Go's default executables, k3s and
//! the kubelet among them. `SPINLET_PIE=on` keeps a PIE.
//! Same conditions as the code layout, except that any linker takes `-no-pie`.

use std::env;
use std::path::Path;
use std::process::Command;

/// Whether `$RUSTC` is 1.90 or later: the first whose x86_64 Linux builds link with LLD.
fn rustc_links_with_lld() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    major > 1 || (major == 1 && minor >= 90)
}

fn main() {
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link-order")
        .join("serving.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=SPINLET_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=SPINLET_PIE");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");

    let target = env::var("TARGET").unwrap_or_default();
    // The Makefile's device binaries are ordered by `link-order/dist-<arch>.txt`, passed on
    // rustc's command line, which cargo does not watch: a new list must relink them too.
    let dist_arch = match target.as_str() {
        "x86_64-unknown-linux-musl" => Some("amd64"),
        "aarch64-unknown-linux-musl" => Some("arm64"),
        _ => None,
    };
    if let Some(arch) = dist_arch {
        println!(
            "cargo:rerun-if-changed={}",
            list.with_file_name(format!("dist-{arch}.txt")).display()
        );
    }
    let optimised = env::var("PROFILE").is_ok_and(|p| p == "release");
    if target != "x86_64-unknown-linux-gnu" || !optimised {
        return;
    }
    if !env::var("SPINLET_PIE").is_ok_and(|v| v == "on") {
        // After rustc's own `-pie`: the compiler driver takes the last of the two.
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    let off = env::var("SPINLET_LINK_ORDER").is_ok_and(|v| v == "off");
    let other_linker = env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker"));
    // `-Wl,` splits its argument at commas.
    let usable = list.exists() && !list.to_string_lossy().contains(',');
    if off || other_linker || !usable {
        return;
    }
    if !rustc_links_with_lld() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
