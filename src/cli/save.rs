//! `spinlet save`: write a Spin app image to an OCI image-layout archive, from a registry
//! or built from a local spin.toml, for air-gapped nodes (drop it in
//! `<data-dir>/agent/images/`; the node agent imports it and pods run it with no registry).
//!
//! The archive format is `spin_runtime::oci`'s (`write_archive`).

use std::path::PathBuf;

use anyhow::Context;

/// Flags of `spinlet save`.
#[derive(clap::Args)]
pub struct SaveArgs {
    /// OCI reference of the image, e.g. `ghcr.io/org/app:v1`: pulled from its registry,
    /// or with `--app` the name the archive gives the built app.
    pub reference: String,
    /// Archive to write: `.tar.gz`/`.tgz` is gzip-compressed, `.tar.zst`/`.tzst` zstd,
    /// anything else a plain tar.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Build the image from this spin.toml or app directory instead of pulling it.
    #[arg(long)]
    pub app: Option<PathBuf>,
    /// Talk plain HTTP to the registry (loopback registries always use plain HTTP).
    #[arg(long, env = "SPINLET_INSECURE_REGISTRY")]
    pub insecure: bool,
}

/// Runs `spinlet save`.
pub fn run(args: SaveArgs) -> anyhow::Result<()> {
    use spin_runtime::oci;
    let reference = oci::Reference::parse(&args.reference)?;
    let artifact = match &args.app {
        Some(app) => {
            let manifest = spin_runtime::app::manifest_path(app)
                .with_context(|| format!("cannot save {}", app.display()))?;
            oci::build(&manifest).with_context(|| format!("cannot build {}", manifest.display()))?
        }
        None => {
            let options = oci::PullOptions {
                insecure: args.insecure,
                ..oci::PullOptions::default()
            };
            oci::fetch(&reference, &options).with_context(|| format!("cannot pull {reference}"))?
        }
    };
    let compression = oci::Compression::from_path(&args.output);
    oci::write_archive(&args.output, compression, &reference.to_string(), &artifact)?;
    println!(
        "Saved {reference} ({}) to {}",
        oci::digest(&artifact.manifest),
        args.output.display()
    );
    Ok(())
}
