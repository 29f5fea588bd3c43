//! One module per subcommand: its clap flags and the glue from flags to library calls.

pub mod agent;
pub mod certificate;
pub mod config;
pub mod killall;
pub mod kubectl;
pub mod notify;
pub mod push;
pub mod run;
pub mod sandbox;
pub mod save;
pub mod server;
pub mod uninstall;

/// Logs to stderr; `RUST_LOG` (default `info`) filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
