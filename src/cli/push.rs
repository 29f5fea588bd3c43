//! `spinlet push`: push a Spin app to an OCI registry (owned by the spin-runtime work).

/// Flags of `spinlet push`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// spin.toml or app directory.
    pub app: String,
    /// OCI reference to push to.
    pub reference: String,
}

/// Runs `spinlet push`.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "spinlet push {} {}: not built yet",
        args.app,
        args.reference
    )
}
