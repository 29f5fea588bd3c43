//! The `spinlet` command line: bad flags are refused with the flag named, and
//! `spinlet kubectl` runs the system kubectl. (Being a test of the root package, this
//! file also makes `cargo test --workspace` build the `spinlet` binary the end-to-end
//! tests in `integration/` start.)

use std::process::Command;

fn spinlet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spinlet"))
}

fn server_fails_with(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = spinlet()
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--write-kubeconfig")
        .arg(dir.path().join("kc.yaml"))
        .args(["--https-listen-port", "0"])
        .args(args)
        .output()
        .expect("run spinlet");
    assert!(!out.status.success(), "spinlet server {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !dir.path().join("kc.yaml").exists(),
        "no kubeconfig on a refused start"
    );
}

#[test]
fn bad_flags_are_named() {
    server_fails_with(
        &["--write-kubeconfig-mode", "999"],
        "--write-kubeconfig-mode",
    );
    server_fails_with(&["--service-cidr", "10.43.0.0"], "--service-cidr");
    server_fails_with(&["--cluster-cidr", "banana/16"], "--cluster-cidr");
}

#[test]
fn kubectl_passthrough_runs_the_system_kubectl() {
    let out = spinlet()
        .args(["kubectl", "version", "--client"])
        .output()
        .expect("run spinlet kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Client Version"));
}
