//! `spinlet kubectl …`: runs the system `kubectl` with this server's kubeconfig, as
//! `k3s kubectl` does (`$KUBECONFIG` wins when set).

use std::os::unix::process::CommandExt;

use anyhow::Context;

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
        Some(k) if !k.is_empty() => std::path::PathBuf::from(k),
        _ => super::server::default_kubeconfig()?,
    };
    let kubectl = system_kubectl().context(
        "no kubectl on PATH (a `kubectl` link to spinlet itself does not count): install kubectl",
    )?;
    let err = std::process::Command::new(&kubectl)
        .args(&args.args)
        .env("KUBECONFIG", &kubeconfig)
        .exec();
    Err(err).with_context(|| format!("running {}", kubectl.display()))
}

/// The first `kubectl` on PATH that is not this binary (install.sh may link `kubectl` to
/// spinlet, which would otherwise run itself forever).
fn system_kubectl() -> Option<std::path::PathBuf> {
    let me = std::env::current_exe().ok()?.canonicalize().ok();
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("kubectl"))
        .find(|k| k.is_file() && k.canonicalize().ok() != me)
}
