//! The host side of the benches that run servers out of process (`serve`, `heavy`): where
//! the binaries are (spinlet under test, the `wasmtime` peer), the machine and its load
//! printed with the figures, how much of the code layout list the binary still matches
//! (its RSS depends on it), a server's VmRSS, and stopping a server a bench spawned.
//! Owns no measurement: what is timed and how it is reported stay with each bench.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// spinlet under test: `$SPINLET_BIN`, or `spinlet` in the target profile directory this
/// bench executable runs from (`target/release/deps/<bench>-<hash>` →
/// `target/release/spinlet`); `Err` saying how to build it when it does not exist.
pub fn spinlet_bin() -> Result<PathBuf, String> {
    let bin = std::env::var_os("SPINLET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("bench executable path");
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("spinlet"))
                .expect("target dir")
        });
    if !bin.exists() {
        return Err(format!(
            "{} does not exist: run `cargo build --release -p spinlet` (or set SPINLET_BIN)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// The peer: `$WASMTIME_BIN`, else `/work/wasmtime-cli/bin/wasmtime`, else `wasmtime` on
/// `PATH`.
pub fn wasmtime_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("WASMTIME_BIN") {
        return Some(PathBuf::from(bin));
    }
    let local = PathBuf::from("/work/wasmtime-cli/bin/wasmtime");
    if local.is_file() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("wasmtime"))
            .find(|f| f.is_file())
    })
}

/// The value after `prefix…:` on the first line of `path` that starts with `prefix`.
fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    })
}

/// The machine, for the figures: CPUs, CPU model, memory.
pub fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem = first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(|| "?".into());
    format!("nproc {nproc}; CPU {cpu}; MemTotal {mem}")
}

/// How many of the functions `link-order/serving.txt` lists `bin` has (the release build
/// packs them together; stale names leave serving's code spread out and its RSS higher:
/// `make link-order` lists them again), or why it cannot tell; and whether it is a PIE.
pub fn link_order(bin: &Path) -> String {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../link-order/serving.txt");
    let Ok(text) = std::fs::read_to_string(&list) else {
        return format!("{} unreadable", list.display());
    };
    let listed: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let out = match Command::new("nm").arg("--defined-only").arg(bin).output() {
        Ok(out) if out.status.success() => out.stdout,
        Ok(_) => return format!("nm found no symbols in {} (stripped?)", bin.display()),
        Err(e) => return format!("nm: {e}"),
    };
    let symbols = String::from_utf8_lossy(&out);
    let names: std::collections::HashSet<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let have = listed.iter().filter(|n| names.contains(*n)).count();
    format!(
        "{have} of {} functions listed in link-order/serving.txt are in the binary; {}",
        listed.len(),
        elf_kind(bin)
    )
}

/// Whether `bin` is a position-independent executable, from its ELF header's `e_type`
/// (the figures of start-up and memory depend on it: `build.rs`, "Not a PIE").
fn elf_kind(bin: &Path) -> &'static str {
    let mut header = [0u8; 18];
    let read = std::fs::File::open(bin).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut header)
    });
    match (read, u16::from_le_bytes([header[16], header[17]])) {
        (Err(_), _) => "ELF header unreadable",
        (Ok(()), 2) => "not a PIE",
        (Ok(()), 3) => "a PIE",
        (Ok(()), _) => "not an executable",
    }
}

/// The 1, 5 and 15 minute load averages, or `?`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// VmRSS of a process, in MB (10^6 bytes, the unit of the targets); `None` when the
/// process is gone.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let kib: f64 = first_line_with(&format!("/proc/{pid}/status"), "VmRSS")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))?;
    Some(kib * 1024.0 / 1e6)
}

/// Stops a server a bench spawned: SIGTERM, up to 20 s for it to exit, then SIGKILL.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
