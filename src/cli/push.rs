//! `spinlet push`: push a Spin app to an OCI registry, the equivalent of `spin registry push`.
//!
//! The artifact layout is described in `spin_runtime::oci`. After a push the app's Wasm
//! files are compiled into this machine's compile cache (the default cache root
//! `spinlet run` uses), so `spinlet run` of the source, or of the pushed reference when
//! its sources are components (a core module is pushed componentized: other bytes), starts
//! without compiling; `--no-precompile` skips that. A failure to compile is a warning:
//! the push has succeeded.

use std::path::{Path, PathBuf};

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
    /// Do not compile the app's Wasm into the local compile cache after pushing.
    #[arg(long)]
    pub no_precompile: bool,
}

/// Runs `spinlet push`.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let manifest = spin_runtime::app::manifest_path(&PathBuf::from(&args.app))
        .with_context(|| format!("cannot push {}", args.app))?;
    let reference = spin_runtime::oci::Reference::parse(&args.reference)?;
    let digest = spin_runtime::oci::push(&manifest, &reference, args.insecure)
        .with_context(|| format!("cannot push {} to {reference}", manifest.display()))?;
    println!("Pushed with digest {digest}");
    if !args.no_precompile {
        precompile(&manifest, &reference.to_string());
    }
    Ok(())
}

/// Compiles the Wasm files `manifest` names into the default cache root's compile cache.
fn precompile(manifest: &Path, image: &str) {
    super::init_logging();
    let parsed = match spin_runtime::manifest::Manifest::from_file(manifest) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "not precompiling the pushed app");
            return;
        }
    };
    let app_dir = manifest.parent().unwrap_or(Path::new("."));
    let mut wasm: Vec<PathBuf> = Vec::new();
    for component in parsed.component.values() {
        if let spin_runtime::manifest::Source::Local(p) = &component.source {
            let path = app_dir.join(p);
            if !wasm.contains(&path) {
                wasm.push(path);
            }
        }
    }
    // The root `spinlet run` defaults to (its registry pulls go under it too).
    let root = spin_runtime::cache::default_root(&std::env::temp_dir().join("spinlet"));
    node_agent::image::precompile::precompile_here(
        &root,
        image,
        wasm,
        spin_runtime::cache::evict::DEFAULT_MAX_BYTES,
    );
}
