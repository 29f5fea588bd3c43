//! The config file with the real binary: `/etc/spinlet/config.yaml`'s stand-in given with
//! `--config` (or `SPINLET_CONFIG_FILE`), its drop-ins, and the precedence
//! default < file < `SPINLET_*` environment < command line.
//!
//! Which value won is read from what the server does with it: a bad
//! `write-kubeconfig-mode` is refused before anything starts, with the value in the
//! message, so each layer gets its own bad value and the message names the winner; a
//! good configuration is started for real and its kubeconfig's mode and port checked.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::spinlet_bin;

fn spinlet(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(spinlet_bin());
    c.args(args).stdin(Stdio::null());
    // The environment of the test run must not leak a layer in.
    for (key, _) in std::env::vars() {
        if key.starts_with("SPINLET_") && key != "SPINLET_BIN" {
            c.env_remove(key);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    spinlet(args, env).output().expect("run spinlet")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("config dir");
    }
    std::fs::write(path, text).expect("config file");
}

#[test]
fn precedence_is_default_then_file_then_environment_then_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    let config_flag = config.to_string_lossy().into_owned();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    write(&config, "write-kubeconfig-mode: from-file\n");
    let base = [
        "server",
        "--config",
        &config_flag,
        "--data-dir",
        &data,
        "--disable-agent",
    ];

    let out = run(&base, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("\"from-file\" is not an octal mode"),
        "{}",
        stderr(&out)
    );

    let env = [("SPINLET_KUBECONFIG_MODE", "from-env")];
    let out = run(&base, &env);
    assert!(
        stderr(&out).contains("\"from-env\" is not an octal mode"),
        "{}",
        stderr(&out)
    );

    let mut with_flag = base.to_vec();
    with_flag.extend(["--write-kubeconfig-mode", "from-flag"]);
    let out = run(&with_flag, &env);
    assert!(
        stderr(&out).contains("\"from-flag\" is not an octal mode"),
        "{}",
        stderr(&out)
    );

    // A drop-in replaces the main file's value.
    write(
        &dir.path().join("config.yaml.d/50-mode.yaml"),
        "write-kubeconfig-mode: from-drop-in\n",
    );
    let out = run(&base, &[]);
    assert!(
        stderr(&out).contains("\"from-drop-in\" is not an octal mode"),
        "{}",
        stderr(&out)
    );

    // SPINLET_CONFIG_FILE names the file as --config does.
    let out = run(
        &["server", "--data-dir", &data],
        &[("SPINLET_CONFIG_FILE", &config_flag)],
    );
    assert!(
        stderr(&out).contains("\"from-drop-in\" is not an octal mode"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    let config_flag = config.to_string_lossy().into_owned();
    write(&config, "node-name: edge\n");
    write(
        &dir.path().join("config.yaml.d/10-typo.yaml"),
        "tls-sans: [a]\n",
    );
    for sub in ["server", "agent"] {
        let out = run(&[sub, "--config", &config_flag], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains("unknown key \"tls-sans\""), "{text}");
        assert!(text.contains("config.yaml.d/10-typo.yaml"), "{text}");
    }

    std::fs::remove_file(dir.path().join("config.yaml.d/10-typo.yaml")).expect("rm");
    write(&config, "https-listen-port: 99999\n");
    let out = run(&["server", "--config", &config_flag], &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("key https-listen-port: value 99999"),
        "{text}"
    );
    assert!(text.contains(&config_flag), "{text}");

    // A --config that does not exist is an error (the default path is read only when
    // it exists).
    let missing = dir.path().join("nope.yaml").to_string_lossy().into_owned();
    let out = run(&["server", "--config", &missing], &[]);
    assert!(
        stderr(&out).contains("reading config file"),
        "{}",
        stderr(&out)
    );

    // The agent reads its own flags from the file.
    write(&config, "kubeconfig: /nonexistent/agent.kubeconfig\n");
    let data = dir.path().join("agent-data").to_string_lossy().into_owned();
    let out = run(
        &["agent", "--config", &config_flag, "--data-dir", &data],
        &[],
    );
    let text = stderr(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("--kubeconfig: reading /nonexistent/agent.kubeconfig"),
        "{text}"
    );
}

#[test]
fn a_server_configured_by_file_alone_starts_with_its_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    write(
        &config,
        &format!(
            "data-dir: {}\nwrite-kubeconfig: {}\nwrite-kubeconfig-mode: \"640\"\nhttps-listen-port: 0\nbind-address: 127.0.0.1\ndisable-agent: true\ntls-san: [edge.example]\n",
            dir.path().join("data").display(),
            kubeconfig.display()
        ),
    );
    write(
        &dir.path().join("config.yaml.d/10-san.yaml"),
        "tls-san+: [edge2.example]\n",
    );
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
    let mut child = spinlet(&["server", "--config", &config.to_string_lossy()], &[])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn spinlet");
    let start = Instant::now();
    let port: u16 = loop {
        let found = std::fs::read_to_string(&kubeconfig).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
                .and_then(|p| p.trim().parse().ok())
        });
        if let Some(port) = found {
            break port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "spinlet exited with {status}: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no kubeconfig written"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mode = std::fs::metadata(&kubeconfig)
        .expect("kubeconfig")
        .permissions()
        .mode();
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(
        port, 6443,
        "https-listen-port: 0 from the file picks a free port"
    );
    assert_eq!(mode & 0o777, 0o640);
    // The serving certificate carries both files' tls-san entries.
    let cert = std::fs::read_to_string(dir.path().join("data/server/tls/serving.crt"))
        .expect("serving certificate");
    if !cert.is_empty() {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                if let Some(mut i) = c.stdin.take() {
                    let _ = i.write_all(cert.as_bytes());
                }
                c.wait_with_output()
            });
        if let Ok(out) = out {
            let sans = String::from_utf8_lossy(&out.stdout);
            assert!(sans.contains("edge.example"), "{sans}");
            assert!(sans.contains("edge2.example"), "{sans}");
        }
    }
}
