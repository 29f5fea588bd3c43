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
    let err = std::process::Command::new("kubectl")
        .args(&args.args)
        .env("KUBECONFIG", &kubeconfig)
        .exec();
    Err(err).context("running kubectl (is it installed and on PATH?)")
}
