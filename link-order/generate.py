#!/usr/bin/env python3
"""Writes link-order/serving.txt: the functions a serving `spinlet run` executes, for the
linker to place together at the start of the binary's code (build.rs passes the file
to LLD as `--symbol-ordering-file`). With `--bin` and `--out` it lists another build's
functions: `make link-order-dist-<arch>` probes an unstripped `dist` build into
link-order/dist-<arch>.txt, which the Makefile hands to LLD for dist/spinlet-<arch> (one
LTO unit at `opt-level = "z"`: its names differ from the release build's).

Why: a serving process's resident set counts every page of the binary's code it maps,
and the kernel maps 64 KiB around each fault on a file (fault-around). The code a
request runs is under 1 MB spread over 58 MB of `.text`, so the JS hello held 17 MB of
the binary's code after 1,000 requests; packed by this list, 2.2 MB.

How, without instrumenting the binary: it runs under qemu-user (`--qemu x86_64` or
`aarch64`, so an arm64 build is probed on an amd64 machine) with a plugin
(link-order/tbprobe.c, built with `cc`) that records every block of code executed once
start-up is over; the list is exactly the functions those blocks lie in, the ones most
workloads ran first, then by address. The pooling allocator runs with 8 slots
(`SPIN_MAX_INSTANCE_COUNT`): qemu-user keeps flags for every page a process reserves,
and 1,000 slots' reservations exhaust memory. `--footprint` only reports the binary's
code each workload ran, as 4 KiB pages and as the 64 KiB windows the kernel maps around
a fault (what a resident set follows): how an ordering is measured without the
hardware.

The release list until session 30, and the amd64 dist list until session 31, came from
a page probe instead (the binary's file pages the page cache held again after serving,
`mincore`; root): every function on such a page, a superset 3-6 times the functions
run, which packed the serving code less tightly (docs/PERFORMANCE.md, "Code layout of the dist build", session 31).

Needs `nm` and `readelf` (binutils), `wrk`, Debian's qemu-user, a C compiler, the binary,
and the test apps built (`cargo bench -p spin-runtime --bench heavy` and `--bench serve`
build them into target/spin-test-apps). `--check` only reports how many of the listed
functions the binary still has. Linux only.
"""

import argparse
import bisect
import collections
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PAGE = 4096
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link-order", "serving.txt")
# The workloads: (name, glob of the built app under target/spin-test-apps). The JS and
# Python hellos are the heavy bench's; p2 and p3 the serve bench's WASI 0.2 and 0.3 apps.
APPS = [
    ("js", "js-hello-*.wasm"),
    ("python", "python-hello-*.wasm"),
    ("p2", "hello-bare-wasm32-wasip2-*.wasm"),
    ("p3", "hello-p3-wasm32-wasip2-*.wasm"),
]

def fail(msg):
    sys.exit(f"link-order: {msg}")


def get(port, n):
    """n requests on one keep-alive connection, each read to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        # With nothing listening yet, a connect from an ephemeral port equal to `port`
        # reaches itself (TCP simultaneous open) and reads back its own request.
        if s.getsockname() == s.getpeername():
            raise OSError("connected to itself: nothing listens yet")
        for _ in range(n):
            s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200"):
                fail(f"unexpected answer {head[:40]!r}")
            length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if length:
                want = int(length[0].split(b":")[1])
                while len(body) < want:
                    body += s.recv(65536)


def start(binary, manifest, port, cache, log, env, prefix=()):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        fail(f"port {port} is in use")
    except OSError:
        pass
    return subprocess.Popen(
        [*prefix, binary, "run", manifest, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache],
        stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_serving(proc, port, logpath, timeout=60):
    for _ in range(timeout * 50):
        try:
            get(port, 1)
            return
        except OSError:
            if proc.poll() is not None:
                with open(logpath) as f:
                    fail(f"spinlet run exited ({proc.returncode}) before answering:\n{f.read()}")
            time.sleep(0.02)
    fail(f"spinlet run did not answer within {timeout} s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_manifest(work, app):
    manifest = os.path.join(work, "spin.toml")
    with open(manifest, "w") as f:
        f.write('spin_manifest_version = 2\n[application]\nname = "probe"\n'
                '[[trigger.http]]\nroute = "/..."\ncomponent = "hello"\n'
                f'[component.hello]\nsource = "{app}"\n')
    return manifest


def serve_load(port, wrk_conns):
    """The workload whose code is listed: sequential requests, a burst, an idle moment."""
    get(port, 1000)
    subprocess.run(["wrk", "-t2", f"-c{wrk_conns}", "-d2", f"http://127.0.0.1:{port}/"],
                   stdout=subprocess.DEVNULL, check=True)
    time.sleep(1.0)  # an idle release, then a new burst
    get(port, 200)


def check_from_cache(logpath, app):
    with open(logpath) as f:
        if "from_cache=1" not in f.read():
            fail(f"the probe of {app} did not start from the compile cache (log: {logpath})")


def warm_up(binary, app, work, port, env, prefix=(), timeout=60):
    """Writes `app`'s manifest in `work` and fills a compile cache there (Cranelift before
    serving, stored before the first answer); returns (manifest, cache, log path)."""
    manifest = write_manifest(work, app)
    cache = os.path.join(work, "cache")
    logpath = os.path.join(work, "log")
    with open(logpath, "w") as log:
        proc = start(binary, manifest, port, cache, log, dict(env, SPINLET_FAST_TIER="off"),
                     prefix)
        wait_serving(proc, port, logpath, timeout)
        stop(proc)
    return manifest, cache, logpath


# qemu-user keeps flags for every page a process reserves: 8 pooling slots, not 1,000.
QEMU_ENV = {"SPIN_MAX_INSTANCE_COUNT": "8"}


def probe_qemu(binary, emulator, plugin, app, work, port):
    """(address, length) of the code blocks a warm `spinlet run` of `app` executes while
    serving, `binary` run by `emulator` (qemu-user) with the tbprobe plugin."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPINLET_", "RUST_LOG", "SPIN_"))}
    env.update(QEMU_ENV)
    # Emulated, Cranelift takes minutes for the heavy apps.
    manifest, cache, logpath = warm_up(binary, app, work, port, env, [emulator], timeout=1800)
    phase, out = os.path.join(work, "serving"), os.path.join(work, "blocks")
    qemu = [emulator, "-plugin", f"{plugin},phase={phase},out={out}"]
    with open(logpath, "w") as log:
        proc = start(binary, manifest, port, cache, log, dict(env, RUST_LOG="info"), qemu)
        try:
            wait_serving(proc, port, logpath, timeout=600)
            time.sleep(1.5)  # start-up is over, and the idle release has run
            open(phase, "w").close()
            time.sleep(0.5)  # the plugin looks for the file every 65,536 blocks
            serve_load(port, 4)
        finally:
            stop(proc)
    check_from_cache(logpath, app)
    if not os.path.exists(out):
        fail(f"the qemu plugin wrote no {out} (log: {logpath})")
    with open(out) as f:
        return [(int(a, 16), int(n)) for a, n in (l.split() for l in f if l.strip())]


def footprint(blocks, segs):
    """The 4 KiB pages of the binary's own segments (not compiled Wasm) the blocks lie on."""
    pages = set()
    for lo, n in blocks:
        if any(v <= lo < v + size for _, v, size in segs):
            pages.update(range(lo // PAGE, (lo + n - 1) // PAGE + 1))
    return pages


def functions_in(ranges, syms):
    """The functions (name: address) that overlap the (address, length) ranges."""
    starts = [a for a, _, _ in syms]
    found = {}
    for lo, length in ranges:
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(syms) and syms[i][0] < lo + length:
            a, s, name = syms[i]
            if a + s > lo:
                found[name] = a
            i += 1
    return found


def load_segments(binary):
    """(file offset, virtual address, size) of each PT_LOAD segment."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    segs = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    return segs


def functions(binary):
    """(address, size, name) of the binary's functions, by address."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True,
                         check=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split(" ", 3)
        if len(f) == 4 and f[2] in "tTwW" and int(f[1], 16) > 0:
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    return sorted(syms)


def write_list(path, order):
    with open(path, "w") as f:
        f.write("# Generated by link-order/generate.py (make link-order, make\n"
                "# link-order-dist-<arch>); the linker's --symbol-ordering-file (build.rs: the\n"
                "# release build; the Makefile: the dist binaries). The functions a serving\n"
                "# `spinlet run` executes, most shared first.\n")
        for n in order:
            f.write(n + "\n")
    print(f"wrote {len(order)} functions to {path}")


def listed(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                    help="cargo's target dir: the release binary and the built test apps")
    ap.add_argument("--bin", help="the binary to probe (default: TARGET_DIR/release/spinlet)")
    # Below Linux's ephemeral ports (32768-60999), which a connect could take as its own.
    ap.add_argument("--port", type=int, default=23711)
    ap.add_argument("--out", default=OUT,
                    help="the list to write or check (default: link-order/serving.txt)")
    ap.add_argument("--apps", default=",".join(n for n, _ in APPS),
                    help="the workloads to probe (default: all of them)")
    ap.add_argument("--qemu", choices=["aarch64", "x86_64"], default="x86_64",
                    help="the qemu-user that runs --bin: its architecture (default x86_64)")
    ap.add_argument("--footprint", action="store_true",
                    help="only report the binary's code each workload runs "
                         "(4 KiB pages, 64 KiB fault-around windows); a stripped binary will do")
    ap.add_argument("--check", action="store_true",
                    help="only report how many listed functions the binary has")
    args = ap.parse_args()
    # The probe's manifests name the apps by path, from their own directories.
    args.target_dir = os.path.abspath(args.target_dir)
    args.bin = os.path.abspath(args.bin or os.path.join(args.target_dir, "release", "spinlet"))
    if not os.path.exists(args.bin):
        fail(f"{args.bin} does not exist: cargo build --release -p spinlet")
    syms = functions(args.bin)
    if args.check:
        names = {n for _, _, n in syms}
        have = listed(args.out)
        hit = sum(1 for n in have if n in names)
        print(f"{hit} of {len(have)} listed functions are in {args.bin}")
        return
    apps_dir = os.path.join(args.target_dir, "spin-test-apps")
    apps = []
    chosen = args.apps.split(",")
    for bad in set(chosen) - {n for n, _ in APPS}:
        fail(f"--apps: unknown workload {bad!r}; the workloads are {', '.join(n for n, _ in APPS)}")
    for name, pattern in APPS:
        if name not in chosen:
            continue
        found = sorted(glob.glob(os.path.join(apps_dir, pattern)), key=os.path.getmtime)
        if not found:
            fail(f"no {pattern} in {apps_dir}: build the test apps first "
                 "(cargo bench -p spin-runtime --bench heavy; --bench serve)")
        apps.append((name, found[-1]))
    segs = load_segments(args.bin)
    work_root = tempfile.mkdtemp(prefix="link-order-", dir=args.target_dir)
    try:
        binary = os.path.join(work_root, "spinlet")
        shutil.copy2(args.bin, binary)
        plugin = os.path.join(work_root, "libtbprobe.so")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", plugin,
                        os.path.join(ROOT, "link-order", "tbprobe.c")], check=True)
        counts = collections.Counter()
        address = {}
        for name, app in apps:
            work = os.path.join(work_root, name)
            os.mkdir(work)
            blocks = probe_qemu(binary, f"qemu-{args.qemu}", plugin, app, work, args.port)
            pages = footprint(blocks, segs)
            windows = {p // 16 for p in pages}
            print(f"{name}: the binary's code run while serving: "
                  f"{len(pages) * PAGE // 1024} KiB of pages, "
                  f"{len(windows) * 64} KiB of 64 KiB windows")
            if args.footprint:
                continue
            found = functions_in(blocks, syms)
            size = sum(s for a, s, n in syms if n in found)
            print(f"{name}: {len(blocks)} code blocks run, {len(found)} functions ({size // 1024} KiB)")
            counts.update(found.keys())
            address.update(found)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    if args.footprint:
        return
    write_list(args.out, sorted(counts, key=lambda n: (-counts[n], address[n])))


if __name__ == "__main__":
    main()
