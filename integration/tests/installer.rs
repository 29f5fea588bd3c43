//! `installer/install.sh` run for real, as `sh`, against a scratch root
//! (`INSTALL_SPINLET_ROOT` prefixes /etc; `INSTALL_SPINLET_BIN_DIR` a scratch bin dir) with
//! the service neither enabled nor started (no systemd as PID 1 here): the release folder
//! is served as `file://` and over HTTP by `python3 -m http.server` on 127.0.0.1, holding
//! the debug binary as `spinlet-<arch>` and its `sha256sum-<arch>.txt`.
//!
//! Checked: the binary installed and verified, the systemd unit (k3s's settings), the
//! OpenRC service, /etc/spinlet/config.yaml from INSTALL_SPINLET_EXEC (and valid for the
//! binary), re-runs reporting no change and keeping options, a changed option detected, a
//! corrupted checksum refused with nothing installed, the agent install
//! (SPINLET_URL/SPINLET_TOKEN), the kubectl link, and the uninstall wrapper removing it all
//! (run in a network namespace of its own, so killall touches no address of the host).
//! shellcheck runs on the script when it is installed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::installer::{self, sha256, text};
use common::pods::Netns;
use common::spinlet_bin;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../installer/install.sh")
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// A release folder: `spinlet-<arch>` and its checksum file (corrupted when asked).
fn release(dir: &Path, corrupt: bool) -> PathBuf {
    let www = dir.join(if corrupt { "bad-www" } else { "www" });
    std::fs::create_dir_all(&www).expect("www");
    let asset = format!("spinlet-{}", arch());
    installer::place(&spinlet_bin(), &www, &asset);
    let mut line = installer::checksums(&www, &[&asset]);
    if corrupt {
        line = format!("{}{}", "0".repeat(64), &line[64..]);
    }
    std::fs::write(www.join(format!("sha256sum-{}.txt", arch())), line).expect("checksum");
    www
}

struct Install {
    root: PathBuf,
    bin_dir: PathBuf,
}

impl Install {
    fn new(dir: &Path, name: &str) -> Install {
        Install {
            root: dir.join(name).join("root"),
            bin_dir: dir.join(name).join("bin"),
        }
    }

    fn run(&self, base_url: &str, env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("sh");
        c.arg(script()).stdin(Stdio::null());
        for (key, _) in std::env::vars() {
            if key.starts_with("SPINLET_") || key.starts_with("INSTALL_SPINLET_") {
                c.env_remove(key);
            }
        }
        c.env("INSTALL_SPINLET_ROOT", &self.root)
            .env("INSTALL_SPINLET_BIN_DIR", &self.bin_dir)
            .env("INSTALL_SPINLET_BASE_URL", base_url)
            .env("INSTALL_SPINLET_SKIP_START", "true")
            .env("INSTALL_SPINLET_SKIP_ENABLE", "true")
            .env("INSTALL_SPINLET_INIT", "systemd");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run install.sh")
    }

    fn ok(&self, base_url: &str, env: &[(&str, &str)]) -> String {
        let out = self.run(base_url, env);
        let text = text(&out);
        assert!(out.status.success(), "install.sh failed:\n{text}");
        text
    }

    fn etc(&self, path: &str) -> PathBuf {
        self.root.join("etc").join(path)
    }

    fn read(&self, path: &str) -> String {
        let file = self.etc(path);
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }
}

#[test]
fn the_script_is_shellcheck_clean() {
    let out = match Command::new("shellcheck").arg(script()).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping: shellcheck is not installed ({e}); apt-get install shellcheck");
            return;
        }
    };
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

#[test]
fn a_server_install_writes_binary_unit_and_config_and_reruns_are_no_ops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let www = release(dir.path(), false);
    let url = format!("file://{}", www.display());
    let i = Install::new(dir.path(), "server");
    let data = dir.path().join("data");
    let exec = format!(
        "server --data-dir {} --tls-san edge.local --tls-san=10.0.0.9 --disable-agent --https-listen-port 7443",
        data.display()
    );
    let log = i.ok(&url, &[("INSTALL_SPINLET_EXEC", &exec)]);
    assert!(log.contains("Verified the sha256"), "{log}");

    // The binary, verified.
    let bin = i.bin_dir.join("spinlet");
    assert_eq!(sha256(&bin), sha256(&spinlet_bin()));
    let mode = std::fs::metadata(&bin).expect("bin").permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "executable");

    // The unit, with k3s's settings.
    let unit = i.read("systemd/system/spinlet.service");
    for line in [
        "Type=notify",
        "Restart=always",
        "Delegate=yes",
        "KillMode=process",
        "LimitNOFILE=1048576",
        "LimitNPROC=infinity",
        "LimitCORE=infinity",
        "TasksMax=infinity",
        "TimeoutStartSec=0",
        "EnvironmentFile=-/etc/systemd/system/spinlet.service.env",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line} in:\n{unit}");
    }
    assert!(
        unit.contains(&format!("ExecStart={} server", bin.display())),
        "{unit}"
    );

    // The config: the flags as keys, lists for repeated ones; the binary accepts it.
    let config = i.read("spinlet/config.yaml");
    assert!(
        config.contains(&format!("data-dir: \"{}\"", data.display())),
        "{config}"
    );
    assert!(
        config.contains("tls-san:\n  - \"edge.local\"\n  - \"10.0.0.9\""),
        "{config}"
    );
    assert!(config.contains("disable-agent: true"), "{config}");
    assert!(config.contains("https-listen-port: \"7443\""), "{config}");
    let config_path = i.etc("spinlet/config.yaml");
    let check = Command::new(&bin)
        .args(["server", "--config"])
        .arg(&config_path)
        .args(["--write-kubeconfig-mode", "not-octal"])
        .output()
        .expect("run the installed spinlet");
    assert!(
        text(&check).contains("\"not-octal\" is not an octal mode"),
        "the installed binary did not take the config:\n{}",
        text(&check)
    );

    // kubectl is on this machine's PATH: no link. The wrappers are there.
    assert!(std::fs::symlink_metadata(i.bin_dir.join("kubectl")).is_err());
    for wrapper in ["spinlet-killall.sh", "spinlet-uninstall.sh"] {
        let w = std::fs::read_to_string(i.bin_dir.join(wrapper)).expect("wrapper");
        assert!(w.starts_with("#!/bin/sh"), "{w}");
    }

    // The same run again, then one without options: nothing changes.
    let log = i.ok(&url, &[("INSTALL_SPINLET_EXEC", &exec)]);
    assert!(log.contains("No change detected"), "{log}");
    assert!(log.contains("is up to date"), "{log}");
    assert!(log.contains("spinlet.service unchanged"), "{log}");
    assert!(log.contains("config.yaml unchanged"), "{log}");
    let log = i.ok(&url, &[]);
    assert!(
        log.contains("Keeping the options of the previous install"),
        "{log}"
    );
    assert!(log.contains("No change detected"), "{log}");
    assert_eq!(i.read("spinlet/config.yaml"), config);

    // A changed option is a change.
    let changed = exec.replace("7443", "8443");
    let log = i.ok(&url, &[("INSTALL_SPINLET_EXEC", &changed)]);
    assert!(!log.contains("No change detected"), "{log}");
    assert!(log.contains("Changes made"), "{log}");
    assert!(i
        .read("spinlet/config.yaml")
        .contains("https-listen-port: \"8443\""));

    // INSTALL_SPINLET_SKIP_DOWNLOAD uses the binary in place.
    let log = i.ok(
        "file:///nonexistent",
        &[("INSTALL_SPINLET_SKIP_DOWNLOAD", "true")],
    );
    assert!(log.contains("Skipping download"), "{log}");

    // The uninstall wrapper removes it all (in a namespace of its own: killall removes the
    // pod addresses of the namespace it runs in).
    let Some(ns) = Netns::create("installer") else {
        return;
    };
    let out = ns
        .cmd("sh")
        .arg(i.bin_dir.join("spinlet-uninstall.sh"))
        .output()
        .expect("uninstall");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for gone in [
        bin.clone(),
        i.bin_dir.join("spinlet-killall.sh"),
        i.bin_dir.join("spinlet-uninstall.sh"),
        i.etc("spinlet"),
        i.etc("systemd/system/spinlet.service"),
        i.etc("systemd/system/spinlet.service.env"),
    ] {
        assert!(
            std::fs::symlink_metadata(&gone).is_err(),
            "{} left:\n{log}",
            gone.display()
        );
    }
}

#[test]
fn a_corrupted_checksum_is_refused_and_nothing_is_installed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = release(dir.path(), true);
    let i = Install::new(dir.path(), "bad");
    let out = i.run(&format!("file://{}", bad.display()), &[]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("Download sha256 does not match"), "{log}");
    assert!(log.contains(&"0".repeat(64)), "{log}");
    assert!(!i.bin_dir.join("spinlet").exists());
    assert!(!i.etc("spinlet/config.yaml").exists());
    assert!(!i.etc("systemd/system/spinlet.service").exists());
}

#[test]
fn over_http_an_agent_install_and_an_openrc_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let www = release(dir.path(), false);
    // python3's http.server on loopback, port chosen by the kernel.
    let (_server, port) = match installer::serve(Command::new("python3"), &www) {
        Ok(served) => served,
        Err(e) => {
            eprintln!("skipping: python3 is not available ({e})");
            return;
        }
    };
    let url = format!("http://127.0.0.1:{port}");

    // An agent joining a server.
    let ca = dir.path().join("server-ca.crt");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("ca");
    let ca = ca.to_string_lossy().into_owned();
    let i = Install::new(dir.path(), "agent");
    let refused = i.run(
        &url,
        &[
            ("SPINLET_URL", "http://192.0.2.1:6443"),
            ("SPINLET_TOKEN", "t"),
            ("SPINLET_CA_FILE", &ca),
        ],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("SPINLET_URL must be an https:// URL"));
    let log = i.ok(
        &url,
        &[
            ("SPINLET_URL", "https://192.0.2.1:6443"),
            ("SPINLET_TOKEN", "secret-token"),
            ("SPINLET_CA_FILE", &ca),
            ("INSTALL_SPINLET_SYMLINK", "force"),
        ],
    );
    assert!(log.contains("Verified the sha256"), "{log}");
    let unit = i.read("systemd/system/spinlet-agent.service");
    assert!(unit.contains("spinlet agent"), "{unit}");
    let config = i.read("spinlet/config.yaml");
    assert!(
        config.contains("server: \"https://192.0.2.1:6443\""),
        "{config}"
    );
    assert!(
        config.contains("token-file: \"/etc/spinlet/agent-token\""),
        "{config}"
    );
    assert!(
        config.contains("ca-file: \"/etc/spinlet/server-ca.crt\""),
        "{config}"
    );
    assert_eq!(i.read("spinlet/agent-token").trim(), "secret-token");
    let mode = std::fs::metadata(i.etc("spinlet/agent-token"))
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let unit_env = i.read("systemd/system/spinlet-agent.service.env");
    assert!(!unit_env.contains("secret-token"), "{unit_env}");
    // INSTALL_SPINLET_SYMLINK=force links kubectl to spinlet.
    let link = std::fs::read_link(i.bin_dir.join("kubectl")).expect("kubectl link");
    assert_eq!(link, Path::new("spinlet"));
    // The agent's config is valid for `spinlet agent` (it gets as far as reading the CA).
    let check = Command::new(i.bin_dir.join("spinlet"))
        .args(["agent", "--config"])
        .arg(i.etc("spinlet/config.yaml"))
        .args(["--token-file", "/nonexistent/token"])
        .output()
        .expect("run the agent");
    assert!(
        text(&check).contains("--token-file: reading /nonexistent/token"),
        "{}",
        text(&check)
    );

    // A K10 token carries the CA's hash: no CA file needed (the agent fetches and checks
    // the CA); a bare token without one is refused before anything is written.
    let k = Install::new(dir.path(), "agent-k10");
    let bare = k.run(
        &url,
        &[
            ("SPINLET_URL", "https://192.0.2.1:6443"),
            ("SPINLET_TOKEN", "secret-token"),
        ],
    );
    assert!(!bare.status.success());
    assert!(
        text(&bare).contains("SPINLET_CA_FILE is required"),
        "{}",
        text(&bare)
    );
    assert!(!k.etc("spinlet/config.yaml").exists());
    let k10 = format!("K10{}::server:secret-token", "ab".repeat(32));
    k.ok(
        &url,
        &[
            ("SPINLET_URL", "https://192.0.2.1:6443"),
            ("SPINLET_TOKEN", &k10),
        ],
    );
    let config = k.read("spinlet/config.yaml");
    assert!(
        config.contains("token-file: \"/etc/spinlet/agent-token\""),
        "{config}"
    );
    assert!(!config.contains("ca-file"), "{config}");
    assert_eq!(k.read("spinlet/agent-token").trim(), k10);

    // The OpenRC service.
    let o = Install::new(dir.path(), "openrc");
    let log = o.ok(&url, &[("INSTALL_SPINLET_INIT", "openrc")]);
    assert!(log.contains("OpenRC service"), "{log}");
    let service = o.read("init.d/spinlet");
    assert!(service.starts_with("#!/sbin/openrc-run"), "{service}");
    assert!(service.contains("supervisor=supervise-daemon"), "{service}");
    assert!(service.contains("command_args=\"server\""), "{service}");
    assert!(service.contains("respawn_max=0"), "{service}");
}
