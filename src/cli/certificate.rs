//! `spinlet certificate rotate|check`, as `k3s certificate`, and the two pieces of
//! `spinlet server` that belong with them: the lock that says a server runs on a data dir,
//! and the Warning event (k3s's reason, `CertificateExpirationWarning`, on the Node) that
//! reports leaf certificates renewed at start, posted through the kube API once it is up.
//!
//! How rotate knows the server is stopped: a running server holds an exclusive `flock` on
//! `<data-dir>/server/spinlet.lock` (its pid written inside) from before its certificates
//! are read until it exits, however it exits; rotate takes the same lock without waiting
//! and refuses, naming the pid, when it cannot — and, holding it, keeps a server from
//! starting half-way through a rotation. (k3s itself does not check: its rotate only
//! deletes the files and asks for a restart.)
//!
//! The certificate work is `apiserver_shim::pki`'s; this module parses flags, prints what
//! was done and rewrites the admin kubeconfig.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use apiserver_shim::pki::{self, leaf, Issued, Reason};
use nix::fcntl::{Flock, FlockArg};

/// Flags of `spinlet certificate`.
#[derive(clap::Args, Debug)]
pub struct CertificateArgs {
    #[command(subcommand)]
    pub command: CertificateCommand,
}

/// `spinlet certificate` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CertificateCommand {
    /// With the server stopped, move the leaf certificates and keys to
    /// <data-dir>/server/tls-<unix time>/ and issue new ones signed by the same CA (the
    /// kubeconfig is rewritten with the new admin certificate).
    Rotate(RotateArgs),
    /// Print each certificate's subject, usages and expiry.
    Check(CheckArgs),
}

/// Flags of `spinlet certificate rotate`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// Config file to read the flags below from, the server's (default:
    /// /etc/spinlet/config.yaml when it exists; its other keys are ignored).
    #[arg(long, short = 'c', env = "SPINLET_CONFIG_FILE")]
    #[allow(dead_code)] // read from the parsed arguments by cli::config
    pub config: Option<PathBuf>,
    /// Folder holding state (default: /var/lib/spinlet as root, ~/.spinlet otherwise).
    #[arg(long, short = 'd', env = "SPINLET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Services whose certificates to rotate: admin (the admin client certificate) and
    /// api-server (the serving certificate and the API server's kubelet client
    /// certificate); default: all.
    #[arg(long, short = 's', value_delimiter = ',')]
    pub service: Vec<String>,
    /// The admin kubeconfig to rewrite when it exists (default: /etc/spinlet/spinlet.yaml
    /// as root, ~/.kube/spinlet.yaml otherwise).
    #[arg(long, short = 'o', env = "SPINLET_KUBECONFIG_OUTPUT")]
    pub write_kubeconfig: Option<PathBuf>,
}

/// Output formats of `spinlet certificate check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One line per certificate, as k3s logs them.
    Text,
    /// A table, as `k3s certificate check -o table`.
    Table,
}

/// Flags of `spinlet certificate check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Config file to read the flags below from, the server's (default:
    /// /etc/spinlet/config.yaml when it exists; its other keys are ignored).
    #[arg(long, short = 'c', env = "SPINLET_CONFIG_FILE")]
    #[allow(dead_code)] // read from the parsed arguments by cli::config
    pub config: Option<PathBuf>,
    /// Folder holding state (default: /var/lib/spinlet as root, ~/.spinlet otherwise).
    #[arg(long, short = 'd', env = "SPINLET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

/// Runs `spinlet certificate …`.
pub fn run(args: CertificateArgs) -> anyhow::Result<()> {
    match args.command {
        CertificateCommand::Rotate(a) => rotate(a),
        CertificateCommand::Check(a) => check(a),
    }
}

fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match flag {
        Some(d) => Ok(d),
        None => crate::cli::server::default_data_dir(),
    }
}

/// The held server lock; released when dropped (or when the process ends).
pub struct ServerLock {
    _lock: Flock<File>,
}

/// The lock file of a data dir.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("spinlet.lock")
}

/// Takes `<data-dir>/server/spinlet.lock` without waiting, writing this process's pid in
/// it; fails naming the holder's pid when a server (or a rotation) holds it.
pub fn lock(data_dir: &Path) -> anyhow::Result<ServerLock> {
    let path = lock_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            bail!(
                "a spinlet server is running on {} (pid {pid} holds {})",
                data_dir.display(),
                path.display()
            );
        }
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    };
    lock.set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| writeln!(lock, "{}", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(ServerLock { _lock: lock })
}

fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let _lock = lock(&data_dir).context(
        "certificate rotate needs the server stopped (systemctl stop spinlet, or rc-service spinlet stop)",
    )?;
    let services = if args.service.is_empty() {
        "all services".to_string()
    } else {
        args.service.join(", ")
    };
    println!(
        "Rotating certificates for {services} in {}",
        data_dir.display()
    );
    let rotated = pki::rotate(&data_dir, &args.service)?;
    for path in &rotated.moved {
        println!("moved {} to {}", path.display(), rotated.backup.display());
    }
    for issued in &rotated.pki.issued {
        println!(
            "issued {} ({}) valid until {}",
            issued.file.display(),
            issued.subject,
            pki::rfc3339(issued.not_after)
        );
    }
    let kubeconfig = match args.write_kubeconfig {
        Some(k) => k,
        None => crate::cli::server::default_kubeconfig()?,
    };
    let admin_rotated = rotated
        .pki
        .issued
        .iter()
        .any(|i| i.leaf == pki::Leaf::Admin);
    if admin_rotated {
        match rewrite_kubeconfig(&kubeconfig, &rotated.pki)? {
            true => println!(
                "kubeconfig {} rewritten with the new admin certificate",
                kubeconfig.display()
            ),
            false => println!(
                "no kubeconfig at {}: the server writes one when it starts",
                kubeconfig.display()
            ),
        }
    }
    println!(
        "Certificates rotated (the CA is unchanged); the old ones are in {}. Start the server to serve with the new ones.",
        rotated.backup.display()
    );
    Ok(())
}

/// Rewrites the kubeconfig at `path`, when there is one, for `pki`'s admin certificate,
/// keeping its server URL and file mode.
fn rewrite_kubeconfig(path: &Path, pki: &pki::Pki) -> anyhow::Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config = kube::config::Kubeconfig::from_yaml(&text)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let server = config
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref().and_then(|c| c.server.clone()))
        .with_context(|| format!("kubeconfig {} names no server", path.display()))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    pki::write_private(path, pki::kubeconfig(pki, &server).as_bytes(), mode)
        .with_context(|| format!("writing kubeconfig {}", path.display()))?;
    Ok(true)
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir)?;
    let certs = pki::certificates(&data_dir)?;
    if certs.is_empty() {
        bail!(
            "no certificates in {}: the server has not run with this data dir",
            pki::tls_dir(&data_dir).display()
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let rows: Vec<[String; 6]> = certs
        .iter()
        .map(|(path, info)| {
            let left = info.not_after - now;
            let status = if info.not_before > now {
                "NOT YET VALID"
            } else if left <= 0 {
                "EXPIRED"
            } else if left < leaf::RENEW_WITHIN_DAYS * 86_400 && !info.usages.contains(&"ca") {
                "WARNING"
            } else {
                "OK"
            };
            [
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                info.subject.clone(),
                info.usages.join(","),
                pki::rfc3339(info.not_after),
                residual(left),
                status.to_string(),
            ]
        })
        .collect();
    match args.output {
        Output::Text => {
            for [file, subject, usages, expires, _, status] in &rows {
                let what = match status.as_str() {
                    "EXPIRED" => format!("expired at {expires}"),
                    "NOT YET VALID" => format!("is not valid yet (expires at {expires})"),
                    "WARNING" => format!(
                        "will expire within {} days at {expires}: it is renewed when the server starts",
                        leaf::RENEW_WITHIN_DAYS
                    ),
                    _ => format!("is ok, expires at {expires}"),
                };
                println!("{file}: certificate {subject} ({usages}) {what}");
            }
        }
        Output::Table => {
            let header = [
                "FILENAME",
                "SUBJECT",
                "USAGES",
                "EXPIRES",
                "RESIDUAL TIME",
                "STATUS",
            ];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            let line = |cells: [&str; 6]| {
                let text: Vec<String> = cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", text.join("   ").trim_end());
            };
            line(header);
            for row in &rows {
                line(row.each_ref().map(String::as_str));
            }
        }
    }
    Ok(())
}

/// A duration as `364d`, `5h`, or `expired`.
fn residual(seconds: i64) -> String {
    match seconds {
        s if s <= 0 => "expired".into(),
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

/// The message of the Warning event for leaf certificates renewed at start, or `None`
/// when none was: `CertificateExpirationWarning` as k3s words its own.
pub fn renewal_message(issued: &[Issued]) -> Option<String> {
    let parts: Vec<String> = issued
        .iter()
        .filter_map(|i| match i.reason {
            Reason::Renewed { was } => Some(format!(
                "{}: certificate {} would expire within {} days at {}, renewed until {}",
                i.file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                i.subject,
                leaf::RENEW_WITHIN_DAYS,
                pki::rfc3339(was),
                pki::rfc3339(i.not_after)
            )),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "Node certificates renewed at start (the CA is unchanged): {}",
            parts.join(", ")
        )
    })
}

/// Posts the renewal Warning event about Node `node` through the kube API (a failure is
/// logged: the renewal itself is done and logged already).
pub async fn report_renewals(client: kube::Client, node: &str, hostname: &str, message: String) {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    use kube::Resource;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Node"));
    let reference = DynamicObject::new(node, &resource).object_ref(&resource);
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "spinlet-server".into(),
            instance: Some(hostname.to_string()),
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "CertificateExpirationWarning".into(),
        note: Some(message),
        action: "RenewCertificates".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::warn!(error = %e, "could not record the certificate renewal event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_times() {
        assert_eq!(residual(400 * 86_400), "400d");
        assert_eq!(residual(5 * 3600 + 10), "5h");
        assert_eq!(residual(90), "1m");
        assert_eq!(residual(-5), "expired");
    }

    #[test]
    fn the_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let pid = std::fs::read_to_string(lock_path(dir.path())).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // flock locks belong to the open file: a second open in this process conflicts.
        let e = lock(dir.path()).err().unwrap().to_string();
        assert!(e.contains("is running") && e.contains(pid.trim()), "{e}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
