//! Real database servers for the outbound PostgreSQL and MySQL tests: a PostgreSQL
//! cluster (Debian's `postgresql`) and a MariaDB server (Debian's `mariadb-server`), each
//! in its own scratch directory under the system temp dir, listening on a free loopback
//! port (Unix sockets in the scratch directory), stopped and removed on drop.
//!
//! PostgreSQL's `initdb` refuses to run as root, so as root the cluster is created and
//! run as the `postgres` user (`runuser -u postgres --`) in a directory it owns.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A fresh directory under the system temp dir (the `postgres` user must be able to
/// reach it, which a path under a root-only target dir may not allow).
fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("spinlet-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create server scratch dir");
    dir
}

/// Waits until `port` accepts TCP connections or `child` exits; panics with `log` then.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before listening:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on port {port} within 60s:\n{log}");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster with user `postgres` (trust authentication) and database
/// `postgres`.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    /// The loopback port.
    pub port: u16,
}

impl Postgres {
    /// The server binaries: `$SPINLET_TEST_PG_BIN_DIR`, else the newest
    /// `/usr/lib/postgresql/<version>/bin`.
    fn bin_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("SPINLET_TEST_PG_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        match versions.pop() {
            Some((_, bin)) => bin,
            None => panic!(
                "no PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin: \
                 install Debian's postgresql package (apt-get install postgresql)"
            ),
        }
    }

    /// `cmd` run as the `postgres` user when we are root.
    fn command(bin: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    /// Creates and starts a cluster (plain TCP only).
    pub fn start() -> Postgres {
        Self::launch(None)
    }

    /// Creates and starts a cluster accepting TLS with the certificate and key files
    /// `tls` (PEM), as well as plain TCP.
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        Self::launch(Some((cert, key)))
    }

    fn launch(tls: Option<(&Path, &Path)>) -> Postgres {
        let bin = Self::bin_dir();
        let dir = temp_dir("postgres");
        if is_root() {
            run(
                Command::new("chown").arg("postgres:").arg(&dir),
                "chown postgres (is Debian's postgresql package installed?)",
            );
        }
        let data = dir.join("data");
        run(
            Self::command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        );
        let mut ssl = "ssl=off";
        if let Some((cert, key)) = tls {
            // server.crt / server.key in the data directory, the key readable by its owner only.
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                std::fs::copy(from, data.join(to)).expect("copy TLS file");
                if is_root() {
                    run(
                        Command::new("chown").arg("postgres:").arg(data.join(to)),
                        "chown",
                    );
                }
            }
            run(
                Command::new("chmod")
                    .arg("600")
                    .arg(data.join("server.key")),
                "chmod",
            );
            ssl = "ssl=on";
        }
        let port = super::common::free_port();
        let log_path = dir.join("log");
        let log = std::fs::File::create(&log_path).expect("postgres log");
        let mut child = Self::command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "fsync=off", "-c", ssl])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        wait_for_port(&mut child, port, "postgres", &log_path);
        Postgres { child, dir, port }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The server runs under runuser as root: signal the postmaster itself.
        let pid = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A MariaDB server with user `spin` (password `spin`) owning database `spin`.
pub struct Mariadb {
    child: Child,
    dir: PathBuf,
    /// The loopback port.
    pub port: u16,
}

impl Mariadb {
    fn binary(name: &str) -> PathBuf {
        ["/usr/sbin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}`: install Debian's mariadb-server package \
                     (apt-get install mariadb-server)"
                )
            })
    }

    /// Creates a data directory and starts a server on it (plain TCP only).
    pub fn start() -> Mariadb {
        Self::launch(None)
    }

    /// Creates a data directory and starts a server accepting TLS with the certificate
    /// and key files `tls` (PEM), as well as plain TCP.
    pub fn start_tls(cert: &Path, key: &Path) -> Mariadb {
        Self::launch(Some((cert, key)))
    }

    fn launch(tls: Option<(&Path, &Path)>) -> Mariadb {
        let dir = temp_dir("mariadb");
        let data = dir.join("data");
        // Each server keeps its temporary tables in its own directory, and data
        // directories are created one at a time: two bootstraps sharing the system temp
        // dir once lost a temporary table to each other on a loaded CI run
        // ("Could not remove temporary table … Unknown table 'mysql.tmp_user_sys'").
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create mariadb tmpdir");
        let tmpdir = format!("--tmpdir={}", tmp.display());
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let installing = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        let user = if is_root() {
            vec!["--user=root"]
        } else {
            vec![]
        };
        run(
            Command::new(Self::binary("mariadb-install-db"))
                .arg("--no-defaults")
                .args(&user)
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .arg(&tmpdir),
            "mariadb-install-db",
        );
        drop(installing);
        let port = super::common::free_port();
        let socket = dir.join("sock");
        let log_path = dir.join("log");
        let log = std::fs::File::create(&log_path).expect("mariadb log");
        let mut child = Command::new(Self::binary("mariadbd"))
            .arg("--no-defaults")
            .args(&user)
            .arg(format!("--datadir={}", data.display()))
            .arg(&tmpdir)
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .args(tls.iter().flat_map(|(cert, key)| {
                [
                    format!("--ssl-cert={}", cert.display()),
                    format!("--ssl-key={}", key.display()),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn mariadbd");
        wait_for_port(&mut child, port, "mariadbd", &log_path);
        run(
            Command::new(Self::binary("mariadb"))
                .arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()))
                .args(["-u", "root", "-e"])
                .arg(
                    "CREATE USER 'spin'@'%' IDENTIFIED BY 'spin'; \
                     GRANT ALL ON spin.* TO 'spin'@'%'; CREATE DATABASE spin CHARACTER SET utf8mb4;",
                ),
            "mariadb (create user)",
        );
        Mariadb { child, dir, port }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
