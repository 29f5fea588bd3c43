//! The `spinlet` binary: one process that holds the kube-compatible API server, the
//! controllers, the node agent and the Spin runtime.
//!
//! This file only parses the command line and dispatches; each subcommand's flags and
//! behaviour live in `cli/<subcommand>.rs`, and the work itself in the library crates.

mod cli;

use clap::{Parser, Subcommand};

/// spinlet: a single-binary Kubernetes distribution for Spin apps.
#[derive(Parser)]
#[command(name = "spinlet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API server, controllers and node agent in one process.
    Server(cli::server::ServerArgs),
    /// Run the system kubectl against this server's kubeconfig (like `k3s kubectl`).
    #[command(disable_help_flag = true)]
    Kubectl(cli::kubectl::KubectlArgs),
    /// Serve a Spin app locally, the equivalent of `spin up`.
    Run(cli::run::RunArgs),
    /// Push a Spin app to an OCI registry, the equivalent of `spin registry push`.
    Push(cli::push::PushArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => cli::server::run(args),
        Command::Kubectl(args) => cli::kubectl::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Push(args) => cli::push::run(args),
    }
}
