//! `spinlet killall` and `spinlet uninstall` against a real server with running pods,
//! inside a network namespace the test creates (pod addresses live there): afterwards no
//! sandbox process, no pod cgroup and no pod address is left; killall keeps the data,
//! uninstall removes it with the pod logs, the installed binary, its kubectl symlink, the
//! wrappers, the unit and /etc/spinlet (under a scratch `--system-root`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::pods::{pod_field, wait_or_show, PodEnv};
use common::spinlet_bin;

fn pod(name: &str, resources: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: spinlet-test
  containers:
  - name: app
    image: 127.0.0.1:5000/pod-hello:v1
    ports:
    - containerPort: 8080
{resources}
"#
    )
}

const GUARANTEED: &str = r#"    resources:
      limits:
        cpu: 500m
        memory: 256Mi
"#;

/// A running pod's sandbox: pid, cgroup path, address.
struct Running {
    pid: i32,
    cgroup: String,
    ip: String,
}

fn start_pods(env: &PodEnv) -> Vec<Running> {
    let s = &env.server;
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("one", ""));
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("two", GUARANTEED));
    let mut out = Vec::new();
    for name in ["one", "two"] {
        let ip = env.wait_running(name);
        let uid = pod_field(s, name, "{.metadata.uid}");
        let spec = s.data_dir.join(format!("agent/sandboxes/{uid}/spec.json"));
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec).expect("spec")).expect("spec json");
        let cgroup = spec["cgroup"].as_str().expect("a cgroup").to_string();
        out.push(Running {
            pid: env.sandbox_pid(&uid),
            cgroup,
            ip,
        });
    }
    out
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found = Vec::new();
    if root.join(path).is_dir() {
        found.push(root.join(path));
    }
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let dir = entry.path().join(path);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found
}

fn pod_addresses(env: &PodEnv) -> String {
    let out = env.ns.run("ip", &["-o", "-4", "addr"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" 10.42."))
        .collect::<Vec<_>>()
        .join("\n")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts nothing of the pods is left running: processes, cgroups, addresses.
fn assert_nothing_left(env: &PodEnv, pods: &[Running], server_pid: Option<u32>, log: &str) {
    for p in pods {
        assert!(!alive(p.pid), "sandbox {} still runs\n{log}", p.pid);
        let dirs = cgroup_dirs(&p.cgroup);
        assert!(dirs.is_empty(), "pod cgroups left: {dirs:?}\n{log}");
    }
    if let Some(pid) = server_pid {
        assert!(!alive(pid as i32), "the server still runs\n{log}");
    }
    let addresses = pod_addresses(env);
    assert!(
        addresses.is_empty(),
        "pod addresses left:\n{addresses}\n{log}"
    );
    let link = env.ns.run("ip", &["link", "show", "spinlet0"]);
    assert!(!link.status.success(), "spinlet0 is still there\n{log}");
}

#[test]
fn killall_stops_every_sandbox_and_removes_cgroups_and_addresses_but_keeps_data() {
    let Some(env) = PodEnv::start("killall", &[]) else {
        return;
    };
    let pods = start_pods(&env);
    for p in &pods {
        let (code, _) = env.ns.curl(&format!("http://{}:8080/", p.ip));
        assert_eq!(code, 200);
        assert!(!cgroup_dirs(&p.cgroup).is_empty(), "no cgroup {}", p.cgroup);
    }
    assert!(!pod_addresses(&env).is_empty());
    let server_pid = env.server.pid();

    let data = env.server.data_dir.to_string_lossy().into_owned();
    let out = env
        .ns
        .cmd(&spinlet_bin().to_string_lossy())
        .args(["killall", "--data-dir", &data])
        .output()
        .expect("spinlet killall");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("[killall] sandboxes: stopped 2"), "{log}");
    assert!(
        log.contains("[killall] server/agent: stopped `spinlet server`"),
        "{log}"
    );
    assert!(log.contains("[killall] pod addresses: removed"), "{log}");
    assert_nothing_left(&env, &pods, server_pid, &log);
    // The data stays.
    assert!(env.server.data_dir.join("server/db").is_dir());
    assert!(env.server.data_dir.join("agent/sandboxes").is_dir());

    // A second run finds nothing to do and says so.
    let out = env
        .ns
        .cmd(&spinlet_bin().to_string_lossy())
        .args(["killall", "--data-dir", &data])
        .output()
        .expect("spinlet killall");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("[killall] sandboxes: none running"), "{log}");
    assert!(
        log.contains("[killall] server/agent: none running"),
        "{log}"
    );
}

#[test]
fn uninstall_removes_what_was_installed_and_what_spinlet_wrote() {
    let Some(env) = PodEnv::start("uninstall", &[]) else {
        return;
    };
    let pods = start_pods(&env);
    let uids: Vec<String> = ["one", "two"]
        .iter()
        .map(|p| pod_field(&env.server, p, "{.metadata.uid}"))
        .collect();
    // Its CRI logs are there.
    for uid in &uids {
        wait_or_show(
            "the pod's log directory",
            Duration::from_secs(30),
            || {
                std::fs::read_dir(&env.pod_logs)
                    .ok()?
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(uid.as_str()))
                    .then_some(())
            },
            String::new,
        );
    }
    // An unrelated pod log directory stays.
    let other = env.pod_logs.join("default_other_not-spinlets");
    std::fs::create_dir_all(&other).expect("other log dir");

    // An installation as install.sh lays it out, under a scratch root.
    let root = tempfile::tempdir().expect("root");
    let bin_dir = root.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    let bin = bin_dir.join("spinlet");
    std::fs::copy(spinlet_bin(), &bin).expect("copy spinlet");
    std::os::unix::fs::symlink("spinlet", bin_dir.join("kubectl")).expect("kubectl link");
    for wrapper in ["spinlet-killall.sh", "spinlet-uninstall.sh"] {
        std::fs::write(bin_dir.join(wrapper), "#!/bin/sh\n").expect("wrapper");
    }
    let etc = root.path().join("etc/spinlet");
    std::fs::create_dir_all(etc.join("config.yaml.d")).expect("etc");
    std::fs::write(etc.join("config.yaml"), "node-name: spinlet-test\n").expect("config");
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).expect("units");
    std::fs::write(units.join("spinlet.service"), "[Unit]\n").expect("unit");
    std::fs::write(units.join("spinlet.service.env"), "").expect("unit env");
    let unrelated_unit = units.join("other.service");
    std::fs::write(&unrelated_unit, "[Unit]\n").expect("unit");

    let server_pid = env.server.pid();
    let data = env.server.data_dir.to_string_lossy().into_owned();
    let logs = env.pod_logs.to_string_lossy().into_owned();
    let out = env
        .ns
        .cmd(&bin.to_string_lossy())
        .args(["uninstall", "--data-dir", &data, "--pod-log-dir", &logs])
        .env("SPINLET_SYSTEM_ROOT", root.path())
        .output()
        .expect("spinlet uninstall");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_nothing_left(&env, &pods, server_pid, &log);
    for gone in [
        bin.clone(),
        bin_dir.join("kubectl"),
        bin_dir.join("spinlet-killall.sh"),
        bin_dir.join("spinlet-uninstall.sh"),
        etc.clone(),
        units.join("spinlet.service"),
        units.join("spinlet.service.env"),
        env.server.data_dir.clone(),
    ] {
        assert!(
            std::fs::symlink_metadata(&gone).is_err(),
            "{} is still there\n{log}",
            gone.display()
        );
    }
    for uid in &uids {
        let left: Vec<_> = std::fs::read_dir(&env.pod_logs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(uid.as_str()))
            .collect();
        assert!(left.is_empty(), "pod logs of {uid} left\n{log}");
    }
    assert!(other.is_dir(), "another pod's log directory was removed");
    assert!(unrelated_unit.exists(), "another unit was removed");
}

#[test]
fn killall_reads_its_flags_from_the_servers_config_file_and_ignores_the_rest() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: killall's cleanup needs root in a network namespace");
        return;
    }
    let Some(ns) = common::pods::Netns::create("killcfg") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data-dir: {}\nhttps-listen-port: 7443\ntls-san: [a]\ncluster-cidr: 10.99.0.0/16\n",
            data.display()
        ),
    )
    .expect("config");
    // A pod-range address of the configured CIDR on lo, as an agent would leave it, and
    // one outside it.
    assert!(ns
        .run("ip", &["addr", "add", "10.99.0.7/32", "dev", "lo"])
        .status
        .success());
    assert!(ns
        .run("ip", &["addr", "add", "10.42.0.7/32", "dev", "lo"])
        .status
        .success());
    let out = ns
        .cmd(&spinlet_bin().to_string_lossy())
        .arg("killall")
        .env("SPINLET_CONFIG_FILE", &config)
        .output()
        .expect("spinlet killall");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("[killall] data dir {}", data.display())),
        "{log}"
    );
    let left = String::from_utf8_lossy(&ns.run("ip", &["-o", "-4", "addr"]).stdout).into_owned();
    assert!(!left.contains("10.99.0.7"), "{left}");
    assert!(
        left.contains("10.42.0.7"),
        "only the configured CIDR goes: {left}"
    );
}
