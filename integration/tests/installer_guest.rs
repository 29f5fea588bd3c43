//! The installer end to end in fresh Debian 12 machines (issue 16's "Done when"); slow, so
//! `#[ignore]`d: `make installer-test` runs it (`cargo test -p integration --test
//! installer_guest -- --ignored --test-threads 1`).
//!
//! Each machine is a Debian 12 root debootstrapped from Debian's packages (minbase plus
//! systemd, or plus `sysvinit-core` and `openrc` for the OpenRC path), cached as a tarball
//! keyed by suite, mirror and package list (`SPINLET_GUEST_CACHE`, default
//! /var/tmp/spinlet-guest-cache; the first run debootstraps, about 90 s each), unpacked
//! afresh and booted with `systemd-nspawn --boot` inside a network namespace the test
//! creates (only `lo`: no route anywhere). The release folder — the spinlet binary under
//! test as `spinlet-amd64` (`SPINLET_GUEST_BINARY`, default the debug build), the pinned
//! kubectl `dist/kubectl-amd64` (`make release` / `make installer-test` fetch it), their
//! `sha256sum-amd64.txt`, `install.sh` and an air-gap image archive that `spinlet save`
//! wrote — is served from the host by `python3 -m http.server` on that namespace's
//! loopback. Commands run in the guest through `nsenter` into all its namespaces.
//!
//! In the guest, in order: a release whose kubectl arrives truncated is refused with
//! nothing installed (the machine's snapshot unchanged); `curl -sfL …/install.sh | sh -`
//! installs the binary and the pinned kubectl (no kubectl there before), the service runs
//! (systemd: `Type=notify`, active once the node is Ready), `spinlet kubectl get nodes`
//! and the `kubectl` link show the node Ready, a SpinApp whose image exists only in an
//! archive dropped in `/var/lib/spinlet/agent/images/` serves from its pod, a re-run
//! prints "No change detected" and keeps the process, a changed `INSTALL_SPINLET_EXEC`
//! restarts it with the new flag (the API moves to port 7443), a truncated download is
//! refused by its checksum with the installed binary and process unchanged, and
//! `spinlet-uninstall.sh` leaves the machine as before the install: files, processes,
//! cgroups, addresses and links, units or services are listed before and after and
//! compared.
//!
//! Host quirks handled here, not in the installer: nspawn without a systemd host needs
//! `--register=no --keep-unit`, and `--capability=CAP_NET_ADMIN` (it drops it for a network
//! namespace it is handed, and the agent puts pod addresses on a dummy link). On this
//! host's cgroup v1 (hybrid, empty v2) nspawn mounts the v1 controllers read-only, and in
//! the OpenRC guest Debian's sysinit mounts a fresh /sys without them: the test makes cpu,
//! cpuacct, memory and pids read-write (remounted, or mounted) before installing, as a
//! device's own init has them. The guest gets cgroups of its own under the test's, so its
//! cgroup namespace hides the host's and other tests' pod cgroups.
//!
//! The figures printed (`[figure] …`: curl | sh to node Ready, server start to API ready
//! and to node Ready) go to docs/PERFORMANCE.md by hand; nothing here asserts on time.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::installer::{self, sha256, text};
use common::pods::{hello_app, wait_for, wait_or_show, Killed, Netns};
use common::spinlet_bin;

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// The image the archive names: on a registry the guest cannot reach.
const IMAGE: &str = "ghcr.io/spinlet-test/airgap-hello:v1";
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Init {
    Systemd,
    OpenRc,
}

impl Init {
    /// Packages on top of debootstrap's minbase.
    fn packages(self) -> &'static [&'static str] {
        match self {
            Init::Systemd => &[
                "systemd",
                "systemd-sysv",
                "dbus",
                "curl",
                "ca-certificates",
                "iproute2",
                "procps",
            ],
            Init::OpenRc => &["curl", "ca-certificates", "iproute2", "procps"],
        }
    }

    /// Packages installed with apt in the new root afterwards: debootstrap resolves
    /// `sysvinit-core`'s `sysv-rc | openrc` to sysv-rc, which conflicts with openrc.
    fn apt_packages(self) -> &'static [&'static str] {
        match self {
            Init::Systemd => &[],
            Init::OpenRc => &["sysvinit-core", "openrc"],
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::OpenRc => "openrc",
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn run_ok(c: &mut Command) -> String {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(out.status.success(), "{c:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: apt-get install -y {package} (make installer-test needs it)"
    );
}

/// The cached root tarball for `init`, debootstrapped when missing.
fn root_tarball(init: Init) -> PathBuf {
    let cache = std::env::var_os("SPINLET_GUEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/spinlet-guest-cache"));
    std::fs::create_dir_all(&cache).expect("guest cache dir");
    let packages = init.packages().join(",");
    let apt = init.apt_packages();
    let recipe = format!(
        "debootstrap --variant=minbase --include={packages} {SUITE} {MIRROR}; apt-get install {}",
        apt.join(" ")
    );
    let key_file = cache.join(format!("{}.recipe", init.tag()));
    let key = {
        std::fs::write(&key_file, &recipe).expect("recipe");
        sha256(&key_file)[..16].to_string()
    };
    let tarball = cache.join(format!("debian12-{}-{key}.tar", init.tag()));
    if tarball.exists() {
        return tarball;
    }
    need("debootstrap", "debootstrap");
    let build = cache.join(format!("{key}.root"));
    let _ = std::fs::remove_dir_all(&build);
    eprintln!(
        "[guest] first run: {recipe} (cached as {})",
        tarball.display()
    );
    run_ok(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={packages}"), SUITE])
            .arg(&build)
            .arg(MIRROR),
    );
    if !apt.is_empty() {
        run_ok(
            Command::new("chroot")
                .arg(&build)
                .args(["apt-get", "install", "-y", "--no-install-recommends"])
                .args(apt)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
        run_ok(
            Command::new("chroot")
                .arg(&build)
                .args(["apt-get", "clean"]),
        );
    }
    let partial = tarball.with_extension("tar.partial");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&build)
            .args(["--numeric-owner", "-cf"])
            .arg(&partial)
            .arg("."),
    );
    std::fs::rename(&partial, &tarball).expect("cache the root");
    let _ = std::fs::remove_dir_all(&build);
    tarball
}

/// The release folder served to the guest, and a corrupted one under `bad/`.
fn release(www: &Path) -> (String, String) {
    std::fs::create_dir_all(www.join("bad")).expect("www");
    let bin = std::env::var_os("SPINLET_GUEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(spinlet_bin);
    let kubectl = repo().join("dist/kubectl-amd64");
    assert!(
        kubectl.exists(),
        "{} is missing: `make dist/kubectl-amd64` (make installer-test does)",
        kubectl.display()
    );
    installer::place(&bin, www, "spinlet-amd64");
    installer::place(&kubectl, www, "kubectl-amd64");
    std::fs::copy(repo().join("installer/install.sh"), www.join("install.sh")).expect("script");
    let sums = installer::checksums(www, &["spinlet-amd64", "kubectl-amd64"]);
    std::fs::write(www.join("sha256sum-amd64.txt"), &sums).expect("sums");

    // A truncated download: the first MiB of a release whose checksum is of its first 2 MiB.
    let bytes = std::fs::read(&bin).expect("read the binary");
    let whole = www.join("bad/whole");
    std::fs::write(&whole, &bytes[..(2 << 20).min(bytes.len())]).expect("write");
    let expected = sha256(&whole);
    std::fs::remove_file(&whole).expect("rm");
    std::fs::write(
        www.join("bad/spinlet-amd64"),
        &bytes[..(1 << 20).min(bytes.len())],
    )
    .expect("write");
    std::fs::write(
        www.join("bad/sha256sum-amd64.txt"),
        format!("{expected}  spinlet-amd64\n"),
    )
    .expect("write");

    // A release whose kubectl arrives truncated (the binary is fine).
    let bad_kubectl = www.join("bad-kubectl");
    std::fs::create_dir_all(&bad_kubectl).expect("bad-kubectl");
    installer::place(&www.join("spinlet-amd64"), &bad_kubectl, "spinlet-amd64");
    let kubectl_bytes = std::fs::read(&kubectl).expect("read kubectl");
    std::fs::write(
        bad_kubectl.join("kubectl-amd64"),
        &kubectl_bytes[..(1 << 20).min(kubectl_bytes.len())],
    )
    .expect("write");
    std::fs::write(bad_kubectl.join("sha256sum-amd64.txt"), &sums).expect("sums");

    // The air-gap archive of the hello app, built from source.
    let app = hello_app(www.parent().expect("scratch"));
    let out = run_ok(
        Command::new(&bin)
            .args(["save", IMAGE, "--app"])
            .arg(&app)
            .arg("-o")
            .arg(www.join("hello.tar.zst")),
    );
    assert!(out.contains(IMAGE), "{out}");
    (sha256(&bin), sha256(&kubectl))
}

/// The cgroup hierarchies the guest gets a cgroup of its own in (under the test's own),
/// so nspawn's cgroup namespace roots the guest's view there and it sees neither the host's
/// nor other tests' pod cgroups: the v1 ones spinlet's pods use and systemd's.
const GUEST_HIERARCHIES: &[&str] = &["cpu", "cpuacct", "memory", "pids", "systemd", "unified"];

/// The guest's cgroups, removed (deepest first) on drop.
struct GuestCgroups(Vec<PathBuf>);

impl GuestCgroups {
    fn create(name: &str) -> GuestCgroups {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut dirs = Vec::new();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let hierarchy = match controllers {
                "" => "unified",
                "name=systemd" => "systemd",
                other => other,
            };
            if !GUEST_HIERARCHIES.contains(&hierarchy) {
                continue;
            }
            let parent = Path::new("/sys/fs/cgroup")
                .join(hierarchy)
                .join(path.trim_start_matches('/'));
            if !parent.join("cgroup.procs").exists() {
                continue;
            }
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("creating the guest's cgroup {}: {e}", dir.display()));
            dirs.push(dir);
        }
        GuestCgroups(dirs)
    }

    /// `sh` lines moving the shell into every one of them.
    fn join_script(&self) -> String {
        self.0
            .iter()
            .map(|d| format!("echo $$ > '{}/cgroup.procs' && ", d.display()))
            .collect()
    }
}

impl Drop for GuestCgroups {
    fn drop(&mut self) {
        for dir in &self.0 {
            let mut all: Vec<PathBuf> = Vec::new();
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                if let Ok(entries) = std::fs::read_dir(&d) {
                    for e in entries.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
                all.push(d);
            }
            // Deepest first; a cgroup empties a moment after its last process died.
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for d in all {
                for _ in 0..50 {
                    if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// A booted guest.
struct Guest {
    init: Init,
    nspawn: Option<std::process::Child>,
    leader: u32,
    _http: Killed,
    port: u16,
    ns: Option<Netns>,
    _cgroups: GuestCgroups,
    scratch: tempfile::TempDir,
}

impl Guest {
    fn boot(init: Init) -> Guest {
        need("systemd-nspawn", "systemd-container");
        need("nsenter", "util-linux");
        let tarball = root_tarball(init);
        let scratch = tempfile::Builder::new()
            .prefix("spinlet-guest-")
            .tempdir_in("/var/tmp")
            .expect("scratch");
        let root = scratch.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .args(["--numeric-owner", "-xf"])
                .arg(&tarball),
        );
        let ns = Netns::create(&format!("guest-{}", init.tag())).expect("a network namespace");

        // The release, served on the namespace's loopback.
        let www = scratch.path().join("www");
        std::fs::create_dir_all(&www).expect("www");
        let (http, port) =
            installer::serve(ns.cmd("python3"), &www).expect("python3 -m http.server");

        let log = std::fs::File::create(scratch.path().join("boot.log")).expect("boot log");
        let machine = format!("spinlet-{}-{}", init.tag(), std::process::id());
        let cgroups = GuestCgroups::create(&machine);
        let mut nspawn = Command::new("sh");
        nspawn
            .arg("-c")
            .arg(format!(
                "{}exec systemd-nspawn \"$@\"",
                cgroups.join_script()
            ))
            .arg("sh")
            .arg("--directory")
            .arg(&root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=passive",
                // Pod addresses go on a dummy interface: nspawn keeps CAP_NET_ADMIN only
                // for --private-network, not for a namespace it is given.
                "--capability=CAP_NET_ADMIN",
                &format!("--machine={machine}"),
                &format!("--network-namespace-path=/run/netns/{}", ns.0),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if init == Init::OpenRc {
            // sysvinit powers off on SIGPWR-less INT as ctrl-alt-del; it is killed instead.
            nspawn.arg("--kill-signal=SIGKILL");
        }
        let nspawn = nspawn.spawn().expect("systemd-nspawn");
        let mut guest = Guest {
            init,
            leader: 0,
            nspawn: Some(nspawn),
            _http: http,
            port,
            ns: Some(ns),
            _cgroups: cgroups,
            scratch,
        };
        let pid = guest.nspawn.as_ref().map_or(0, |c| c.id());
        // The guest's init: nspawn's child in a PID namespace of its own (its first child
        // is an intermediate that sets up the mounts and exits).
        let own_pidns = std::fs::read_link("/proc/self/ns/pid").ok();
        guest.leader = wait_for("the guest's init", Duration::from_secs(60), || {
            let children =
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
            children.split_whitespace().find_map(|c| {
                let ns = std::fs::read_link(format!("/proc/{c}/ns/pid")).ok();
                let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).ok()?;
                (ns.is_some() && ns != own_pidns && matches!(comm.trim(), "systemd" | "init"))
                    .then(|| c.parse().ok())
                    .flatten()
            })
        });
        let booted = match init {
            Init::Systemd => "systemctl is-system-running --wait",
            Init::OpenRc => "test \"$(rc-status --runlevel)\" = default",
        };
        wait_for("the guest to boot", DEADLINE, || {
            guest.sh(booted).status.success().then_some(())
        });
        // The v1 controllers spinlet's pods use, read-write, as a device's init mounts them:
        // nspawn mounts them read-only on a hybrid host (systemd guest: remounted), and
        // Debian's sysinit scripts mount a fresh /sys over nspawn's, without them (OpenRC
        // guest: mounted, as OpenRC's cgroups service does on other distributions).
        guest.ok("if mountpoint -q /sys/fs/cgroup/memory; then \
               for c in cpu cpuacct memory pids; do \
                 mount -o remount,bind,rw /sys/fs/cgroup/$c; done; \
             else \
               mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup_root /sys/fs/cgroup && \
               for c in cpu cpuacct memory pids; do mkdir -p /sys/fs/cgroup/$c && \
                 mount -t cgroup -o $c,nosuid,nodev,noexec $c /sys/fs/cgroup/$c; done; \
             fi");
        guest
    }

    fn www(&self) -> PathBuf {
        self.scratch.path().join("www")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `script` with `sh` in every namespace of the guest, with a clean environment.
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string()])
            .args(["-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--"])
            .args(["/usr/bin/env", "-i"])
            .arg(format!("PATH={GUEST_PATH}"))
            .args([
                "HOME=/root",
                "LANG=C.UTF-8",
                "timeout",
                "300",
                "/bin/sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        let t = text(&out);
        assert!(
            out.status.success(),
            "in the {:?} guest, `{script}` failed:\n{t}",
            self.init
        );
        t
    }

    /// The curl | sh install, with `env` before `sh`.
    fn install(&self, env: &str) -> Output {
        let url = self.url();
        self.sh(&format!(
            "curl -sfL {url}/install.sh | INSTALL_SPINLET_BASE_URL={url} {env} sh -"
        ))
    }

    fn install_ok(&self, env: &str) -> String {
        let out = self.install(env);
        let t = text(&out);
        assert!(out.status.success(), "install.sh failed:\n{t}");
        t
    }

    /// The pid of the running `spinlet server`.
    fn server_pid(&self) -> String {
        let pid = self.ok("pgrep -x -f '/usr/local/bin/spinlet server' || true");
        pid.trim().to_string()
    }

    /// What the uninstall must leave as it was: files, processes, cgroups, links and
    /// addresses, units or services.
    fn snapshot(&self) -> BTreeSet<String> {
        let units = match self.init {
            Init::Systemd => {
                "systemctl list-unit-files --no-legend --plain | awk '{print \"U \" $1}'; \
                 systemctl list-units --all --no-legend --plain | awk '{print \"U \" $1}'"
            }
            Init::OpenRc => {
                "rc-update show -v | awk '{print \"U \" $1 \" \" $3}'; \
                 ls /etc/init.d | sed 's/^/U init.d /'"
            }
        };
        let hierarchies = GUEST_HIERARCHIES.join(" ");
        let script = format!(
            "find / /run /tmp /var/log -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune \
               -o -print | sed 's/^/F /'; \
             procs=$(ps -eo args=); printf '%s\\n' \"$procs\" | \
               grep -v -e '^ps ' -e '^/bin/sh -c' -e '^timeout ' -e '^\\[' | sed 's/^/P /'; \
             for h in {hierarchies}; do \
               test -d /sys/fs/cgroup/$h && find /sys/fs/cgroup/$h -mindepth 1 -type d; \
             done | sed 's/^/C /'; \
             ip -o link | awk -F': ' '{{print \"L \" $2}}'; \
             ip -o addr | awk '{{print \"A \" $2 \" \" $4}}'; \
             {units}"
        );
        self.ok(&script).lines().map(str::to_string).collect()
    }

    /// The cluster's objects and the service's log's tail, for a failure's message.
    fn state(&self) -> String {
        let out = self.sh("spinlet kubectl get spinapps,deploy,rs,pods -A -o wide; \
             spinlet kubectl get events -A; spinlet kubectl describe pods -A | tail -40");
        let log = self.sh(match self.init {
            Init::Systemd => "journalctl -u spinlet --no-pager | tail -60",
            Init::OpenRc => "tail -60 /var/log/spinlet.log",
        });
        format!("{}\n--- service log ---\n{}", text(&out), text(&log))
    }

    /// A line of the service's log with `needle`, from journald or OpenRC's log file.
    fn service_log(&self) -> String {
        match self.init {
            Init::Systemd => self.ok("journalctl -u spinlet --no-pager -o short-monotonic"),
            Init::OpenRc => self.ok("cat /var/log/spinlet.log"),
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut nspawn) = self.nspawn.take() {
            if self.init == Init::Systemd && self.leader != 0 {
                // An orderly poweroff (nspawn passes SIGTERM on as SIGRTMIN+3).
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(nspawn.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline && matches!(nspawn.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            if matches!(nspawn.try_wait(), Ok(None)) && self.leader != 0 {
                // Killing the namespace's init ends every process in it.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.leader as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = nspawn.wait();
        }
        self.ns.take();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every `startup_ms=N` the server logged (start to API answering), in order.
fn startup_ms(log: &str) -> Vec<u64> {
    strip_ansi(log)
        .lines()
        .filter_map(|l| l.split("startup_ms=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Snapshot lines that change without spinlet: journald's files, systemd's and OpenRC's own
/// state, login records, agetty's reload flag (written a moment after boot), and kubectl's
/// discovery cache (kubectl's, in root's home, as with any kubectl).
fn not_spinlets(line: &str) -> bool {
    [
        "F /run/agetty.reload",
        "F /var/log/journal",
        "F /run/systemd/",
        "F /var/lib/systemd/",
        "F /run/openrc/",
        "F /root/.kube",
        "F /var/log/rc.log",
        "F /run/utmp",
        "F /var/log/wtmp",
        "F /var/log/lastlog",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

const SPINAPP: &str = r#"apiVersion: core.spinoperator.dev/v1alpha1
kind: SpinApp
metadata:
  name: hello
spec:
  image: ghcr.io/spinlet-test/airgap-hello:v1
  executor: containerd-shim-spin
  replicas: 1
  variables:
  - name: greeting
    value: hello-offline
"#;

fn scenario(init: Init) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the guest suite boots machines with systemd-nspawn: run it as root"
    );
    let guest = Guest::boot(init);
    let (bin_sha, kubectl_sha) = release(&guest.www());
    let g = &guest;

    // A fresh machine: no kubectl, no spinlet.
    assert!(!g.sh("command -v kubectl").status.success());
    let before = g.snapshot();

    // A corrupted kubectl in the release: refused before anything is installed.
    let url = g.url();
    let out = g.sh(&format!(
        "curl -sfL {url}/install.sh | INSTALL_SPINLET_BASE_URL={url}/bad-kubectl sh -"
    ));
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("Download sha256 does not match: kubectl-amd64"),
        "{log}"
    );
    let untouched = g.snapshot();
    let changed: Vec<&String> = untouched
        .symmetric_difference(&before)
        .filter(|l| !not_spinlets(l))
        .collect();
    assert!(
        changed.is_empty(),
        "a refused install changed the machine: {changed:?}\n{log}"
    );

    // curl | sh: binary and pinned kubectl verified, the service up once the node is Ready.
    let started = Instant::now();
    let log = g.install_ok("");
    let install_time = started.elapsed();
    for line in [
        "Verified the sha256 of spinlet-amd64",
        "Verified the sha256 of kubectl-amd64",
        "Linked /usr/local/bin/kubectl to spinlet",
        "spinlet is running",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert_eq!(
        g.ok("sha256sum /usr/local/bin/spinlet /usr/local/bin/spinlet-kubectl | awk '{print $1}'"),
        format!("{bin_sha}\n{kubectl_sha}\n")
    );
    match init {
        Init::Systemd => {
            let show = g.ok("systemctl show spinlet -p Type -p ActiveState -p SubState");
            for want in ["Type=notify", "ActiveState=active", "SubState=running"] {
                assert!(show.lines().any(|l| l == want), "{want} in\n{show}");
            }
        }
        Init::OpenRc => {
            let status = g.ok("rc-service spinlet status");
            assert!(status.contains("started"), "{status}");
        }
    }
    let nodes = g.ok("spinlet kubectl get nodes");
    assert!(nodes.contains(" Ready "), "{nodes}");
    let nodes = g.ok("kubectl get nodes --no-headers");
    assert!(
        nodes.contains(" Ready "),
        "through the kubectl link: {nodes}"
    );
    let pid = g.server_pid();
    assert!(!pid.is_empty(), "no spinlet server process");

    // A SpinApp from an archive in agent/images (no registry reachable from the guest).
    g.ok(&format!(
        "mkdir -p /var/lib/spinlet/agent/images && \
         curl -sf -o /var/lib/spinlet/agent/images/hello.tar.zst {url}/hello.tar.zst"
    ));
    g.ok(&format!("spinlet kubectl apply -f - <<'EOF'\n{SPINAPP}EOF"));
    let ip = wait_or_show(
        "the SpinApp's pod to be Ready",
        DEADLINE,
        || {
            let out = g.sh(
            "spinlet kubectl get pods -l core.spinoperator.dev/app-name=hello -o \
             jsonpath='{.items[0].status.podIP} {.items[0].status.conditions[?(@.type==\"Ready\")].status}'",
        );
            let t = String::from_utf8_lossy(&out.stdout).into_owned();
            let (ip, ready) = t.split_once(' ')?;
            (ready.trim() == "True" && !ip.is_empty()).then(|| ip.to_string())
        },
        || g.state(),
    );
    let body = g.ok(&format!(
        "curl -sf -m 20 'http://{ip}:80/?op=var&name=greeting'"
    ));
    assert_eq!(body, "hello-offline");

    // The same install again: nothing changes, nothing restarts.
    let log = g.install_ok("");
    assert!(log.contains("No change detected"), "{log}");
    assert_eq!(g.server_pid(), pid, "a no-op re-run restarted the server");

    // A new flag: the config changes, the service restarts with it.
    let log = g.install_ok("INSTALL_SPINLET_EXEC='server --https-listen-port 7443'");
    assert!(!log.contains("No change detected"), "{log}");
    assert!(log.contains("spinlet is running"), "{log}");
    let config = g.ok("cat /etc/spinlet/config.yaml");
    assert!(config.contains("https-listen-port: \"7443\""), "{config}");
    let new_pid = g.server_pid();
    assert!(!new_pid.is_empty() && new_pid != pid, "not restarted");
    let kubeconfig = g.ok("cat /etc/spinlet/spinlet.yaml");
    assert!(kubeconfig.contains(":7443"), "{kubeconfig}");
    let nodes = g.ok("spinlet kubectl get nodes");
    assert!(nodes.contains(" Ready "), "{nodes}");
    // The pod outlived the restart and still serves.
    let body = g.ok(&format!(
        "curl -sf -m 20 'http://{ip}:80/?op=var&name=greeting'"
    ));
    assert_eq!(body, "hello-offline");

    // A corrupted download is refused; what runs stays.
    let out = g.sh(&format!(
        "curl -sfL {url}/install.sh | INSTALL_SPINLET_BASE_URL={url}/bad sh -"
    ));
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("Download sha256 does not match"), "{log}");
    assert_eq!(
        g.ok("sha256sum /usr/local/bin/spinlet | awk '{print $1}'")
            .trim(),
        bin_sha
    );
    assert_eq!(g.server_pid(), new_pid);

    // The figures (printed, not asserted).
    let service_log = g.service_log();
    let api_ms = startup_ms(&service_log);
    let node_ready: Vec<String> = match init {
        Init::Systemd => {
            // Monotonic stamps of each start: "Starting" to "Started" (READY=1).
            let journal = g.ok("journalctl --no-pager -o short-monotonic -u spinlet");
            let stamps = |needle: &str| -> Vec<f64> {
                journal
                    .lines()
                    .filter(|l| l.contains(needle))
                    .filter_map(|l| {
                        l.trim_start_matches('[')
                            .split(']')
                            .next()?
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
                    .collect()
            };
            stamps("Starting spinlet.service")
                .iter()
                .zip(stamps("Started spinlet.service"))
                .map(|(a, b)| format!("{:.0} ms", (b - a) * 1000.0))
                .collect()
        }
        Init::OpenRc => vec!["n/a (OpenRC has no readiness protocol)".to_string()],
    };
    println!(
        "[figure] {}: curl | sh to node Ready {:.1} s; server start to API ready (ms; first \
         start, then restarts) {:?}, to node Ready {:?}; load {}",
        init.tag(),
        install_time.as_secs_f64(),
        api_ms,
        node_ready,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // Uninstall: the machine as it was before the install.
    let log = g.ok("/usr/local/bin/spinlet-uninstall.sh");
    let after = g.snapshot();
    let (tolerated, left): (Vec<&String>, Vec<&String>) =
        after.difference(&before).partition(|l| not_spinlets(l));
    let tops: Vec<&&String> = tolerated
        .iter()
        .filter(|l| l.matches('/').count() <= 3)
        .collect();
    println!(
        "[guest] {}: new after uninstall but not spinlet's ({} entries): {tops:?}",
        init.tag(),
        tolerated.len()
    );
    assert!(
        left.is_empty(),
        "left behind after uninstall:\n{}\n\nuninstall said:\n{log}",
        left.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let spinlet_traces: Vec<&String> = after.iter().filter(|l| l.contains("spinlet")).collect();
    assert!(
        spinlet_traces.is_empty(),
        "spinlet still named after uninstall:\n{spinlet_traces:?}"
    );
}

#[test]
#[ignore = "slow: boots a Debian 12 machine; make installer-test runs it"]
fn systemd_guest_install_serve_upgrade_and_uninstall() {
    scenario(Init::Systemd);
}

#[test]
#[ignore = "slow: boots a Debian 12 machine; make installer-test runs it"]
fn openrc_guest_install_serve_upgrade_and_uninstall() {
    scenario(Init::OpenRc);
}
