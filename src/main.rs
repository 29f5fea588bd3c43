//! The `spinlet` binary: one process that holds the kube-compatible API server, the
//! controllers, the node agent and the Spin runtime.
//!
//! This file only parses the command line and dispatches; each subcommand's flags and
//! behaviour live in `cli/<subcommand>.rs`, and the work itself in the library crates.

mod admission;
mod allocator;
mod cli;

#[global_allocator]
static ALLOCATOR: allocator::Dispatch = allocator::Dispatch;

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
    /// Run the node agent alone against an API server (spinlet's or a cluster's).
    Agent(cli::agent::AgentArgs),
    /// One pod's sandbox process, started by the node agent.
    #[command(hide = true)]
    Sandbox(cli::sandbox::SandboxArgs),
    /// Certificate management, as `k3s certificate`: rotate (server stopped) and check.
    Certificate(cli::certificate::CertificateArgs),
    /// Run the system kubectl against this server's kubeconfig (like `k3s kubectl`).
    #[command(disable_help_flag = true)]
    Kubectl(cli::kubectl::KubectlArgs),
    /// Serve a Spin app locally, the equivalent of `spin up`.
    Run(cli::run::RunArgs),
    /// Push a Spin app to an OCI registry, the equivalent of `spin registry push`.
    Push(cli::push::PushArgs),
    /// Write a Spin app image (from a registry, or built with --app) to an OCI
    /// image-layout archive, for air-gapped nodes' `<data-dir>/agent/images/`.
    Save(cli::save::SaveArgs),
    /// Stop the server, agent and every pod sandbox; remove pod cgroups and addresses
    /// (data is kept).
    Killall(cli::killall::KillallArgs),
    /// killall, then remove the service, binary, /etc/spinlet, the data dir and pod logs.
    Uninstall(cli::uninstall::UninstallArgs),
}

fn main() -> std::process::ExitCode {
    use cli::config::{Error, Unknown};
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Run through a `kubectl` symlink (install.sh makes one when none is on PATH): as
    // `spinlet kubectl`, the way k3s's multi-call binary does.
    let called = argv.first().map(std::path::Path::new);
    if called
        .and_then(|a| a.file_name())
        .is_some_and(|n| n == "kubectl")
    {
        argv.insert(1, "kubectl".into());
    }
    let read_config = [
        ("server", Unknown::Refuse),
        ("agent", Unknown::Refuse),
        ("killall", Unknown::Ignore),
        ("uninstall", Unknown::Ignore),
        ("certificate rotate", Unknown::Ignore),
        ("certificate check", Unknown::Ignore),
    ];
    let cli: Cli = match cli::config::parse(argv, &read_config) {
        Ok(cli) => cli,
        Err(Error::Clap(e)) => e.exit(),
        Err(Error::Config(e)) => {
            eprintln!("{}", report(&e));
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Server(args) => cli::server::run(args),
        Command::Agent(args) => cli::agent::run(args),
        Command::Sandbox(args) => cli::sandbox::run(args),
        Command::Certificate(args) => cli::certificate::run(args),
        Command::Kubectl(args) => cli::kubectl::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Push(args) => cli::push::run(args),
        Command::Save(args) => cli::save::run(args),
        Command::Killall(args) => cli::killall::run(args),
        Command::Uninstall(args) => cli::uninstall::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", report(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, one per line. A cause whose text the line above already
/// contains is skipped: the library errors name their source in their own message (so
/// that `to_string()` alone says what went wrong), and printing the chain as it is would
/// show each such cause twice.
fn report(error: &anyhow::Error) -> String {
    let mut out = format!("Error: {error}");
    let mut above = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if above.contains(&text) {
            continue;
        }
        out.push_str("\n  caused by: ");
        out.push_str(&text);
        above = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("invalid manifest spin.toml: {source}")]
    struct Parse {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_shown_once() {
        let parse = Parse {
            source: std::io::Error::other("unknown field `bogus` at line 9"),
        };
        let error = anyhow::Error::new(parse).context("cannot start app");
        assert_eq!(
            report(&error),
            "Error: cannot start app\n  caused by: invalid manifest spin.toml: unknown field `bogus` at line 9"
        );
    }

    #[test]
    fn distinct_causes_are_all_shown() {
        let error = anyhow::anyhow!("connection refused").context("cannot pull app:1");
        assert_eq!(
            report(&error),
            "Error: cannot pull app:1\n  caused by: connection refused"
        );
    }
}
