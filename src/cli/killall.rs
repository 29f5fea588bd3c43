//! `spinlet killall`: stops everything spinlet runs on this node and leaves its data, as
//! `k3s-killall.sh` does (k3s-io/k3s#841 asked for it in the binary): the installed
//! service (systemd or OpenRC) when this is its data dir, the `spinlet server` and
//! `spinlet agent` processes of the data dir, every sandbox whose spec lies under
//! `<data-dir>/agent/sandboxes/*/` (SIGTERM, SIGKILL after a grace period), the pods'
//! cgroups (`kubepods/…/pod<uid>` in every v1 hierarchy and in v2), and the pod addresses
//! (the cluster CIDR's /32s on the pod interface and on `lo`) with the pod interface
//! itself. One line is printed per step.
//!
//! Processes are found through /proc, by what they run: a server or agent by its
//! subcommand and the data dir its arguments, environment or config file give; a sandbox
//! by the spec file on its command line. Nothing is found by name alone, so other
//! spinlet instances (other data dirs) are left running.
//!
//! Owns the stopping; reads the data dir but writes nothing in it. [`crate::cli::uninstall`]
//! runs it first.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long processes get after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// The systemd units and OpenRC services the installer writes.
pub const SERVICES: &[&str] = &["spinlet", "spinlet-agent"];

/// Flags of `spinlet killall` (also read from the config file, other keys ignored).
#[derive(clap::Args, Debug, Clone)]
pub struct KillallArgs {
    /// Config file to read the flags below from (default: /etc/spinlet/config.yaml when
    /// it exists).
    #[arg(long, short = 'c', env = "SPINLET_CONFIG_FILE")]
    #[allow(dead_code)] // read from the parsed arguments by cli::config
    pub config: Option<PathBuf>,
    /// The data dir whose processes to stop (default: /var/lib/spinlet as root,
    /// ~/.spinlet otherwise).
    #[arg(long, short = 'd', env = "SPINLET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// (networking) The pod CIDR whose /32 addresses are removed.
    #[arg(long, env = "SPINLET_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// (networking) The service CIDR whose cluster IPs (put on the pod interface by the
    /// agent's service proxy) are removed.
    #[arg(long, env = "SPINLET_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// (networking) The interface carrying pod addresses (deleted).
    #[arg(long, env = "SPINLET_POD_INTERFACE", default_value = "spinlet0")]
    pub pod_interface: String,
}

impl KillallArgs {
    /// The data dir these flags name.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => crate::cli::server::default_data_dir(),
        }
    }
}

/// Runs `spinlet killall`.
pub fn run(args: KillallArgs) -> anyhow::Result<()> {
    killall(&args)
}

/// Stops everything of `args`' data dir; shared with `spinlet uninstall`.
pub fn killall(args: &KillallArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir()?;
    let cidr = crate::cli::agent::parse_cidr("cluster-cidr", &args.cluster_cidr)?;
    let data_dir = absolute(&data_dir);
    println!("[killall] data dir {}", data_dir.display());
    stop_services(&data_dir);
    stop_daemons(&data_dir)?;
    let uids = pod_uids(&data_dir);
    stop_sandboxes(&data_dir)?;
    remove_cgroups(&data_dir, &uids);
    remove_addresses("pod addresses", cidr, &args.pod_interface);
    let services = crate::cli::agent::parse_cidr("service-cidr", &args.service_cidr)?;
    remove_addresses("service addresses", services, &args.pod_interface);
    println!("[killall] done; data left in {}", data_dir.display());
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.to_path_buf()))
}

/// The data dir the installed service uses: the default config file's `data-dir`, or
/// the default.
fn service_data_dir() -> Option<PathBuf> {
    let settings =
        crate::cli::config::load(Path::new(crate::cli::config::DEFAULT_FILE), false).ok()?;
    let configured = settings
        .iter()
        .find(|s| s.key == "data-dir")
        .and_then(|s| s.values.last())
        .map(|v| match v {
            crate::cli::config::Scalar::Text(t) => PathBuf::from(t),
            crate::cli::config::Scalar::Bool(b) => PathBuf::from(b.to_string()),
        });
    configured.or_else(|| crate::cli::server::default_data_dir().ok())
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn openrc_running() -> bool {
    Path::new("/run/openrc").is_dir()
}

/// Stops the installed services, when `data_dir` is theirs (a killall for another data
/// dir, as the tests run, leaves an installed spinlet alone).
fn stop_services(data_dir: &Path) {
    let theirs = service_data_dir().is_some_and(|d| absolute(&d) == data_dir);
    if !theirs {
        println!("[killall] services: skipped (the installed service does not use this data dir)");
        return;
    }
    let mut stopped = Vec::new();
    for name in SERVICES {
        let unit = format!("/etc/systemd/system/{name}.service");
        let init = format!("/etc/init.d/{name}");
        let out = if systemd_running() && Path::new(&unit).exists() {
            Command::new("systemctl")
                .args(["stop", &format!("{name}.service")])
                .output()
        } else if openrc_running() && Path::new(&init).exists() {
            Command::new("rc-service").args([*name, "stop"]).output()
        } else {
            continue;
        };
        match out {
            Ok(o) if o.status.success() => stopped.push(*name),
            Ok(o) => println!(
                "[killall] services: stopping {name} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => println!("[killall] services: stopping {name} failed: {e}"),
        }
    }
    if stopped.is_empty() {
        println!("[killall] services: none installed or running");
    } else {
        println!("[killall] services: stopped {}", stopped.join(", "));
    }
}

/// A process seen in /proc.
struct Proc {
    pid: i32,
    args: Vec<String>,
}

fn processes() -> Vec<Proc> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push(Proc { pid, args });
    }
    out
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    !stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

fn environ(pid: i32, key: &str) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{key}=");
    bytes.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&prefix).map(str::to_string)
    })
}

/// The value of flag `long` (or `-short`) in `args`.
fn flag(args: &[String], long: &str, short: Option<char>) -> Option<String> {
    let eq = format!("--{long}=");
    let bare = format!("--{long}");
    let short_bare = short.map(|c| format!("-{c}"));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v.to_string());
        }
        if *a == bare || Some(a) == short_bare.as_ref() {
            return it.next().cloned();
        }
        if let Some(s) = &short_bare {
            if let Some(v) = a.strip_prefix(s.as_str()).filter(|v| !v.is_empty()) {
                return Some(v.trim_start_matches('=').to_string());
            }
        }
    }
    None
}

/// The data dir a `spinlet server|agent` process uses, as it would resolve it.
fn daemon_data_dir(p: &Proc) -> Option<PathBuf> {
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", p.pid)).unwrap_or_else(|_| "/".into());
    let found = flag(&p.args, "data-dir", Some('d'))
        .or_else(|| environ(p.pid, "SPINLET_DATA_DIR"))
        .map(PathBuf::from)
        .or_else(|| {
            let config = flag(&p.args, "config", Some('c'))
                .or_else(|| environ(p.pid, "SPINLET_CONFIG_FILE"))
                .unwrap_or_else(|| crate::cli::config::DEFAULT_FILE.to_string());
            let settings = crate::cli::config::load(&cwd.join(config), false).ok()?;
            settings
                .iter()
                .find(|s| s.key == "data-dir")
                .and_then(|s| s.values.last())
                .map(|v| match v {
                    crate::cli::config::Scalar::Text(t) => PathBuf::from(t),
                    crate::cli::config::Scalar::Bool(b) => PathBuf::from(b.to_string()),
                })
        })
        .or_else(|| {
            let uid = std::fs::read_to_string(format!("/proc/{}/status", p.pid))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))?;
            if uid == "0" {
                Some(PathBuf::from("/var/lib/spinlet"))
            } else {
                environ(p.pid, "HOME").map(|h| PathBuf::from(h).join(".spinlet"))
            }
        })?;
    Some(absolute(&cwd.join(found)))
}

/// Whether `p` is a `spinlet server` or `spinlet agent` process.
fn is_daemon(p: &Proc) -> bool {
    let program = p.args.first().map(|a| {
        Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    if !program.is_some_and(|n| n.starts_with("spinlet")) {
        return false;
    }
    matches!(p.args.get(1).map(String::as_str), Some("server" | "agent"))
}

/// SIGTERMs `pids`, waits up to the grace period, SIGKILLs what is left and waits for it
/// to go. Returns how many needed SIGKILL.
fn terminate(pids: &[i32]) -> usize {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + GRACE;
    while left.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    left.len()
}

fn stop_daemons(data_dir: &Path) -> anyhow::Result<()> {
    let daemons: Vec<Proc> = processes()
        .into_iter()
        .filter(|p| is_daemon(p) && daemon_data_dir(p).as_deref() == Some(data_dir))
        .collect();
    if daemons.is_empty() {
        println!("[killall] server/agent: none running");
        return Ok(());
    }
    let pids: Vec<i32> = daemons.iter().map(|p| p.pid).collect();
    let killed = terminate(&pids);
    for p in &daemons {
        println!(
            "[killall] server/agent: stopped `spinlet {}` (pid {})",
            p.args.get(1).map_or("", String::as_str),
            p.pid
        );
    }
    if killed > 0 {
        println!("[killall] server/agent: {killed} needed SIGKILL");
    }
    Ok(())
}

/// The pods that have a sandbox directory under the data dir.
pub fn pod_uids(data_dir: &Path) -> Vec<String> {
    let mut uids: Vec<String> = std::fs::read_dir(data_dir.join("agent").join("sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    uids.sort();
    uids
}

/// The sandbox's spec file named on `p`'s command line, if under `sandboxes`.
fn sandbox_spec(p: &Proc, sandboxes: &Path) -> Option<PathBuf> {
    let spec = flag(&p.args, "spec", None)?;
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", p.pid)).unwrap_or_else(|_| "/".into());
    let spec = absolute(&cwd.join(spec));
    let dir = spec.parent()?.parent()?;
    (dir == sandboxes).then_some(spec)
}

fn stop_sandboxes(data_dir: &Path) -> anyhow::Result<()> {
    let sandboxes = absolute(&data_dir.join("agent").join("sandboxes"));
    let pids: Vec<i32> = processes()
        .iter()
        .filter(|p| sandbox_spec(p, &sandboxes).is_some())
        .map(|p| p.pid)
        .collect();
    if pids.is_empty() {
        println!("[killall] sandboxes: none running");
        return Ok(());
    }
    let killed = terminate(&pids);
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    if !left.is_empty() {
        anyhow::bail!("sandboxes {left:?} did not end after SIGKILL");
    }
    println!(
        "[killall] sandboxes: stopped {} ({killed} needed SIGKILL)",
        pids.len()
    );
    Ok(())
}

/// The cgroup hierarchies: the v2 root, or each v1 hierarchy's mount point.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect()
}

/// The cgroup paths a pod may have, whatever its QoS class.
fn pod_cgroups(data_dir: &Path, uid: &str) -> Vec<String> {
    let mut paths: Vec<String> = ["Guaranteed", "Burstable", "BestEffort"]
        .iter()
        .map(|q| node_agent::cgroup::path_for(q, uid))
        .collect();
    let spec = data_dir
        .join("agent")
        .join("sandboxes")
        .join(uid)
        .join("spec.json");
    if let Some(cgroup) = std::fs::read(spec)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["cgroup"].as_str().map(str::to_string))
    {
        if !paths.contains(&cgroup) {
            paths.push(cgroup);
        }
    }
    paths
}

fn remove_cgroups(data_dir: &Path, uids: &[String]) {
    let mut removed = 0;
    let mut failed = Vec::new();
    for hierarchy in hierarchies() {
        for uid in uids {
            for path in pod_cgroups(data_dir, uid) {
                let dir = hierarchy.join(&path);
                if !dir.is_dir() {
                    continue;
                }
                // A cgroup whose last process just ended may still be busy a moment.
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match std::fs::remove_dir(&dir) {
                        Ok(()) => {
                            removed += 1;
                            break;
                        }
                        Err(e) if Instant::now() >= deadline => {
                            failed.push(format!("{}: {e}", dir.display()));
                            break;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            }
        }
        // The QoS parents go when nothing else (another agent) uses them.
        for parent in ["kubepods/burstable", "kubepods/besteffort", "kubepods"] {
            let _ = std::fs::remove_dir(hierarchy.join(parent));
        }
    }
    println!("[killall] cgroups: removed {removed} pod cgroup directories");
    for f in failed {
        println!("[killall] cgroups: could not remove {f}");
    }
}

/// The IPv4 addresses on `device`: (address, prefix length).
fn addresses(device: &str) -> Vec<(Ipv4Addr, u8)> {
    let Ok(out) = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", device])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            let (ip, bits) = words.next()?.split_once('/')?;
            Some((ip.parse().ok()?, bits.parse().ok()?))
        })
        .collect()
}

fn in_cidr(ip: Ipv4Addr, (net, bits): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn remove_addresses(what: &str, cidr: (Ipv4Addr, u8), interface: &str) {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let mut devices = vec![interface.to_string()];
    if interface != "lo" {
        devices.push("lo".to_string());
    }
    for device in &devices {
        for (ip, bits) in addresses(device) {
            if bits != 32 || !in_cidr(ip, cidr) {
                continue;
            }
            let cidr = format!("{ip}/32");
            match Command::new("ip")
                .args(["addr", "del", &cidr, "dev", device])
                .output()
            {
                Ok(o) if o.status.success() => removed.push(format!("{cidr} ({device})")),
                Ok(o) => failed.push(format!(
                    "{cidr} on {device}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => failed.push(format!("{cidr} on {device}: {e}")),
            }
        }
    }
    if removed.is_empty() {
        println!("[killall] {what}: none in {}/{}", cidr.0, cidr.1);
    } else {
        println!("[killall] {what}: removed {}", removed.join(", "));
    }
    for f in failed {
        println!("[killall] {what}: could not remove {f}");
    }
    if interface != "lo" {
        let exists = Command::new("ip")
            .args(["link", "show", "dev", interface])
            .output()
            .is_ok_and(|o| o.status.success());
        if exists {
            match Command::new("ip")
                .args(["link", "del", "dev", interface])
                .output()
            {
                Ok(o) if o.status.success() => {
                    println!("[killall] pod interface: deleted {interface}")
                }
                Ok(o) => println!(
                    "[killall] pod interface: could not delete {interface}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => println!("[killall] pod interface: could not delete {interface}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_are_read_in_every_spelling() {
        let a = args(&["spinlet", "server", "--data-dir", "/x"]);
        assert_eq!(flag(&a, "data-dir", Some('d')).as_deref(), Some("/x"));
        let a = args(&["spinlet", "server", "--data-dir=/y"]);
        assert_eq!(flag(&a, "data-dir", Some('d')).as_deref(), Some("/y"));
        let a = args(&["spinlet", "agent", "-d", "/z"]);
        assert_eq!(flag(&a, "data-dir", Some('d')).as_deref(), Some("/z"));
        let a = args(&["spinlet", "agent", "-d/w"]);
        assert_eq!(flag(&a, "data-dir", Some('d')).as_deref(), Some("/w"));
        let a = args(&["spinlet", "sandbox", "--spec", "/s/spec.json"]);
        assert_eq!(flag(&a, "spec", None).as_deref(), Some("/s/spec.json"));
        assert_eq!(flag(&a, "data-dir", Some('d')), None);
    }

    #[test]
    fn daemons_are_told_by_program_and_subcommand() {
        let p = |a: &[&str]| Proc {
            pid: 0,
            args: args(a),
        };
        assert!(is_daemon(&p(&["/usr/local/bin/spinlet", "server"])));
        assert!(is_daemon(&p(&["spinlet", "agent", "-s", "x"])));
        assert!(!is_daemon(&p(&["spinlet", "sandbox", "--spec", "x"])));
        assert!(!is_daemon(&p(&["kubectl", "server"])));
    }

    #[test]
    fn only_the_cluster_cidr_counts() {
        let cidr = (Ipv4Addr::new(10, 42, 0, 0), 16);
        assert!(in_cidr(Ipv4Addr::new(10, 42, 7, 9), cidr));
        assert!(!in_cidr(Ipv4Addr::new(10, 43, 0, 1), cidr));
        assert!(!in_cidr(Ipv4Addr::new(127, 0, 0, 1), cidr));
    }
}
