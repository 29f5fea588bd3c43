//! `spinlet sandbox --spec FILE` (hidden): the process the node agent re-executes for each
//! running container. The work is `node_agent::sandbox_process`.

use std::path::PathBuf;

/// Flags of `spinlet sandbox`.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// The sandbox spec the agent wrote.
    #[arg(long)]
    pub spec: PathBuf,
}

/// Runs one sandbox until SIGTERM.
pub fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let options = node_agent::sandbox_process::read_spec(&args.spec)?;
    // The runtime's own messages go to the container log at warn and above only: the log
    // is the app's.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPINLET_SANDBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    node_agent::sandbox_process::main(options)?;
    Ok(())
}
