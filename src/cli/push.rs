//! `spinlet push`: push a Spin app to an OCI registry, the equivalent of `spin registry push`.
//!
//! The artifact layout is described in `spin_runtime::oci`.

use std::path::PathBuf;

use anyhow::Context;

/// Flags of `spinlet push`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// spin.toml or app directory.
    pub app: String,
    /// OCI reference to push to, e.g. `localhost:5000/apps/hello:v1`.
    pub reference: String,
    /// Talk plain HTTP to the registry (loopback registries always use plain HTTP).
    #[arg(long, env = "SPINLET_INSECURE_REGISTRY")]
    pub insecure: bool,
}

/// Runs `spinlet push`.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let manifest = spin_runtime::app::manifest_path(&PathBuf::from(&args.app))
        .with_context(|| format!("cannot push {}", args.app))?;
    let reference = spin_runtime::oci::Reference::parse(&args.reference)?;
    let digest = spin_runtime::oci::push(&manifest, &reference, args.insecure)
        .with_context(|| format!("cannot push {} to {reference}", manifest.display()))?;
    println!("Pushed with digest {digest}");
    Ok(())
}
