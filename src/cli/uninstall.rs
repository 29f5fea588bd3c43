//! `spinlet uninstall`: `spinlet killall`, then everything `installer/install.sh` put on
//! the machine and everything spinlet wrote: the systemd units (`spinlet.service`,
//! `spinlet-agent.service` and their `.env` files, disabled first) or OpenRC services
//! (`/etc/init.d/spinlet*`, their log and logrotate files), the binary with the
//! `kubectl` symlink when it points at spinlet and the `spinlet-killall.sh` /
//! `spinlet-uninstall.sh` wrappers next to it, `/etc/spinlet` (config, kubeconfig), the
//! data dir, and the pod log directories of spinlet's pods (`<ns>_<pod>_<uid>` under the
//! pod log dir, for the pods that had a sandbox). One line per step.
//!
//! The binary is removed only when it was installed (the installer's wrappers lie next to
//! it, or it sits in /usr/local/bin, /opt/bin or /usr/bin): `cargo run -- uninstall` leaves
//! the build alone. `--system-root` (hidden; env `SPINLET_SYSTEM_ROOT`, set by the
//! installer's wrapper from `INSTALL_SPINLET_ROOT`) prefixes /etc and /var/log so the
//! installer's test can install and uninstall in a scratch folder.
//!
//! Owns the removal of installed files; the stopping is [`crate::cli::killall`]'s.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::killall::{self, KillallArgs, SERVICES};

/// Flags of `spinlet uninstall` (also read from the config file, other keys ignored).
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub killall: KillallArgs,
    /// (agent) Container logs (default: /var/log/pods as root, <data-dir>/agent/pod-logs
    /// otherwise); spinlet's pods' directories are removed from it.
    #[arg(long, env = "SPINLET_POD_LOG_DIR")]
    pub pod_log_dir: Option<PathBuf>,
    /// Prefix for /etc and /var/log (the installer's INSTALL_SPINLET_ROOT; for tests).
    #[arg(long, env = "SPINLET_SYSTEM_ROOT", hide = true)]
    pub system_root: Option<PathBuf>,
}

/// The installer's wrapper scripts, next to the binary.
pub const WRAPPERS: &[&str] = &["spinlet-killall.sh", "spinlet-uninstall.sh"];

/// Runs `spinlet uninstall`.
pub fn run(args: UninstallArgs) -> anyhow::Result<()> {
    let data_dir = args.killall.data_dir()?;
    let uids = killall::pod_uids(&data_dir);
    killall::killall(&args.killall)?;
    let root = args
        .system_root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let prefixed = |p: &str| root.join(p.trim_start_matches('/'));
    let real_root = args.system_root.is_none();

    remove_services(&prefixed, real_root);
    remove_binary();
    remove("config", &prefixed("/etc/spinlet"));
    remove("data dir", &data_dir);
    let pod_logs = match &args.pod_log_dir {
        Some(d) => d.clone(),
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/log/pods"),
        None => data_dir.join("agent").join("pod-logs"),
    };
    remove_pod_logs(&pod_logs, &uids);
    println!("[uninstall] done");
    Ok(())
}

/// Removes `path` (a file, a symlink or a folder), saying so.
fn remove(what: &str, path: &Path) {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("[uninstall] {what}: {} not there", path.display());
            return;
        }
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match result {
        Ok(()) => println!("[uninstall] {what}: removed {}", path.display()),
        Err(e) => println!(
            "[uninstall] {what}: could not remove {}: {e}",
            path.display()
        ),
    }
}

fn remove_services(prefixed: &dyn Fn(&str) -> PathBuf, real_root: bool) {
    let systemd = real_root && Path::new("/run/systemd/system").is_dir();
    let openrc = real_root && Path::new("/run/openrc").is_dir();
    let mut any_unit = false;
    for name in SERVICES {
        let unit = prefixed(&format!("/etc/systemd/system/{name}.service"));
        if unit.exists() {
            any_unit = true;
            if systemd {
                let _ = Command::new("systemctl")
                    .args(["disable", &format!("{name}.service")])
                    .output();
            }
            remove("systemd unit", &unit);
            remove(
                "systemd unit",
                &prefixed(&format!("/etc/systemd/system/{name}.service.env")),
            );
        }
        let init = prefixed(&format!("/etc/init.d/{name}"));
        if init.exists() {
            any_unit = true;
            if openrc {
                let _ = Command::new("rc-update")
                    .args(["delete", name, "default"])
                    .output();
            }
            remove("OpenRC service", &init);
            remove(
                "OpenRC service",
                &prefixed(&format!("/etc/logrotate.d/{name}")),
            );
            remove("OpenRC service", &prefixed(&format!("/var/log/{name}.log")));
        }
    }
    if !any_unit {
        println!("[uninstall] services: none installed");
    } else if systemd {
        let _ = Command::new("systemctl").arg("daemon-reload").output();
        println!("[uninstall] services: systemd reloaded");
    }
}

fn remove_binary() {
    let Ok(exe) = std::env::current_exe() else {
        println!("[uninstall] binary: cannot tell where it is; left");
        return;
    };
    let Some(dir) = exe.parent() else {
        return;
    };
    let installed = WRAPPERS.iter().any(|w| dir.join(w).exists())
        || ["/usr/local/bin", "/opt/bin", "/usr/bin"]
            .iter()
            .any(|d| dir == Path::new(d));
    if !installed {
        println!(
            "[uninstall] binary: {} left (not installed by install.sh)",
            exe.display()
        );
        return;
    }
    let kubectl = dir.join("kubectl");
    let ours = std::fs::read_link(&kubectl).is_ok_and(|target| {
        let target = dir.join(target);
        target == exe
            || std::fs::canonicalize(&target).is_ok_and(|t| t == exe)
            || target.file_name() == exe.file_name()
    });
    if ours {
        remove("kubectl symlink", &kubectl);
    } else if kubectl.exists() {
        println!(
            "[uninstall] kubectl: {} is not spinlet's; left",
            kubectl.display()
        );
    }
    for wrapper in WRAPPERS {
        remove("script", &dir.join(wrapper));
    }
    // The pinned kubectl install.sh puts beside the binary where none was on PATH.
    let pinned = dir.join("spinlet-kubectl");
    if pinned.exists() {
        remove("pinned kubectl", &pinned);
    }
    remove("binary", &exe);
}

fn remove_pod_logs(dir: &Path, uids: &[String]) {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // <namespace>_<pod>_<uid>
        let Some((_, uid)) = name.rsplit_once('_') else {
            continue;
        };
        if !uids.iter().any(|u| u == uid) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => println!(
                "[uninstall] pod logs: could not remove {}: {e}",
                entry.path().display()
            ),
        }
    }
    println!(
        "[uninstall] pod logs: removed {removed} pod directories from {}",
        dir.display()
    );
    if removed > 0 && std::fs::remove_dir(dir).is_ok() {
        println!("[uninstall] pod logs: removed the empty {}", dir.display());
    }
}
