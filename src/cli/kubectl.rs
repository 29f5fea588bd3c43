//! `spinlet kubectl …`: runs kubectl with this server's kubeconfig, as `k3s kubectl` does
//! (`$KUBECONFIG` wins when set). The kubectl is the release's pinned one when the
//! installer put it next to the binary (`spinlet-kubectl`, installed only where no kubectl
//! was on PATH), otherwise the first `kubectl` on PATH that is not spinlet itself.
//!
//! Owns only finding and exec'ing kubectl; the kubeconfig's path is the server's.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The pinned kubectl's file name, next to the installed spinlet binary
/// (`installer/install.sh` downloads the release's `kubectl-<arch>` under this name).
pub const PINNED: &str = "spinlet-kubectl";

/// Arguments passed through to kubectl.
#[derive(clap::Args, Debug)]
pub struct KubectlArgs {
    /// Everything after `kubectl`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Replaces this process with kubectl.
pub fn run(args: KubectlArgs) -> anyhow::Result<()> {
    let kubeconfig = match std::env::var_os("KUBECONFIG") {
        Some(k) if !k.is_empty() => PathBuf::from(k),
        _ => super::server::default_kubeconfig()?,
    };
    let me = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kubectl = find(me.as_deref(), &path).with_context(|| {
        format!(
            "no kubectl: neither the release's {PINNED} next to spinlet nor a kubectl on PATH \
             (a `kubectl` link to spinlet itself does not count); re-run install.sh or install kubectl"
        )
    })?;
    let err = std::process::Command::new(&kubectl)
        .args(&args.args)
        .env("KUBECONFIG", &kubeconfig)
        .exec();
    Err(err).with_context(|| format!("running {}", kubectl.display()))
}

/// The kubectl to run: `spinlet-kubectl` beside the binary `me` (after resolving links),
/// else the first `kubectl` in `path` that is not `me` (install.sh may link `kubectl` to
/// spinlet, which would otherwise run itself forever).
fn find(me: Option<&Path>, path: &std::ffi::OsStr) -> Option<PathBuf> {
    if let Some(pinned) = me.and_then(Path::parent).map(|d| d.join(PINNED)) {
        if is_executable(&pinned) {
            return Some(pinned);
        }
    }
    std::env::split_paths(path)
        .map(|dir| dir.join("kubectl"))
        .find(|k| is_executable(k) && k.canonicalize().ok().as_deref() != me)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn the_pinned_kubectl_beside_the_binary_comes_first_then_path_but_never_spinlet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        let other = dir.path().join("other");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&other).expect("other");
        let me = bin.join("spinlet");
        exe(&me);
        std::os::unix::fs::symlink("spinlet", bin.join("kubectl")).expect("link");
        let path = std::env::join_paths([&bin, &other]).expect("path");

        // Only the link to spinlet on PATH: nothing to run.
        assert_eq!(find(Some(&me), &path), None);

        // A kubectl further down PATH.
        exe(&other.join("kubectl"));
        assert_eq!(find(Some(&me), &path), Some(other.join("kubectl")));

        // The pinned one beside spinlet wins; not when it is not executable.
        let pinned = bin.join(PINNED);
        std::fs::write(&pinned, "").expect("write");
        assert_eq!(find(Some(&me), &path), Some(other.join("kubectl")));
        exe(&pinned);
        assert_eq!(find(Some(&me), &path), Some(pinned));
    }
}
