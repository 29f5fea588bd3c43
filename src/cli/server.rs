//! `spinlet server`: flags named as k3s names them, the data-dir and kubeconfig defaults
//! (root: `/var/lib/spinlet`, `/etc/spinlet/spinlet.yaml`; others: `~/.spinlet`,
//! `~/.kube/spinlet.yaml`), and the composition, in k3s's order under one cancellation
//! token: the API server (`apiserver_shim::launch`, which returns once it answers), the
//! controllers (after the docs' built-in objects exist), the kubeconfig (the sign the
//! server is up), the node agent; then serve until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use apiserver_shim::admission::Hooks;
use apiserver_shim::api::ApiOptions;
use apiserver_shim::store::{StoreConfig, DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_EVENTS};
use apiserver_shim::{launch, pki};

use crate::cli::agent::{parse_cidr, AgentFlags};
use tokio_util::sync::CancellationToken;

/// How long after the node is Ready start-up counts as over (the controllers' and the
/// agent's first syncs).
const START_UP_SETTLES: Duration = Duration::from_secs(3);

/// Flags of `spinlet server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Config file, YAML with the long flag names as keys (default:
    /// /etc/spinlet/config.yaml when it exists; then <file>.d/*.yaml).
    #[arg(long, short = 'c', env = "SPINLET_CONFIG_FILE")]
    #[allow(dead_code)] // read from the parsed arguments by cli::config
    pub config: Option<PathBuf>,
    /// Folder to hold state (default: /var/lib/spinlet as root, ~/.spinlet otherwise).
    #[arg(long, short = 'd', env = "SPINLET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// (listener) HTTPS listen port; 0 picks a free port.
    #[arg(long, env = "SPINLET_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    pub https_listen_port: u16,
    /// (listener) Address to listen on.
    #[arg(long, env = "SPINLET_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// (listener) Extra hostnames or IPs for the serving certificate.
    #[arg(long = "tls-san", env = "SPINLET_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// (client) Write the admin kubeconfig to this file (default:
    /// /etc/spinlet/spinlet.yaml as root, ~/.kube/spinlet.yaml otherwise).
    #[arg(long, short = 'o', env = "SPINLET_KUBECONFIG_OUTPUT")]
    pub write_kubeconfig: Option<PathBuf>,
    /// (client) Mode of the kubeconfig file, in octal (default 600).
    #[arg(long, env = "SPINLET_KUBECONFIG_MODE", default_value = "600")]
    pub write_kubeconfig_mode: String,
    /// (agent) Do not run the node agent in this process.
    #[arg(long, env = "SPINLET_DISABLE_AGENT")]
    pub disable_agent: bool,
    /// (components) Do not run the scheduler in this process (pods then wait for
    /// another scheduler to set their node).
    #[arg(long, env = "SPINLET_DISABLE_SCHEDULER")]
    pub disable_scheduler: bool,
    #[command(flatten)]
    pub agent: AgentFlags,
    /// (networking) IPv4 CIDR for service cluster IPs.
    #[arg(long, env = "SPINLET_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// (networking) Port range reserved for services with NodePort visibility.
    #[arg(long, env = "SPINLET_SERVICE_NODE_PORT_RANGE", default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: (u16, u16),
    /// (storage) How long Events are kept after they were last seen, as kube-apiserver's
    /// `--event-ttl` (e.g. 1h0m0s, 30m; 0 keeps them).
    #[arg(long, env = "SPINLET_EVENT_TTL", default_value = "1h0m0s", value_parser = parse_go_duration)]
    pub event_ttl: Duration,
    /// (storage) Events kept for watch resumption; older resourceVersions get 410 Expired.
    #[arg(long, env = "SPINLET_WATCH_HISTORY_EVENTS", default_value_t = DEFAULT_HISTORY_EVENTS)]
    pub watch_history_events: u64,
    /// (storage) Bytes of history records kept in memory at most; fewer events are kept
    /// when they are large.
    #[arg(long, env = "SPINLET_WATCH_HISTORY_BYTES", default_value_t = DEFAULT_HISTORY_BYTES)]
    pub watch_history_bytes: u64,
    /// (listener) Longest a single watch request lasts, in seconds.
    #[arg(long, env = "SPINLET_MAX_WATCH_SECONDS", default_value_t = 1800)]
    pub max_watch_seconds: u64,
}

/// Parses `LOW-HIGH` (inclusive), as kube-apiserver's `--service-node-port-range`.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{text:?} is not a port range like 30000-32767");
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Parses a Go duration (`1h0m0s`, `90s`, `1.5h`, `0`), as kube-apiserver's flags take.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 1h0m0s, 30m or 90s");
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut total = 0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(split);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set; pass --data-dir and --write-kubeconfig")
}

/// The default data dir for this user.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    Ok(if is_root() {
        PathBuf::from("/var/lib/spinlet")
    } else {
        home()?.join(".spinlet")
    })
}

/// The default kubeconfig path for this user.
pub fn default_kubeconfig() -> anyhow::Result<PathBuf> {
    Ok(if is_root() {
        PathBuf::from("/etc/spinlet/spinlet.yaml")
    } else {
        home()?.join(".kube").join("spinlet.yaml")
    })
}

/// Runs the server until a signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    crate::cli::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mode = u32::from_str_radix(&args.write_kubeconfig_mode, 8).with_context(|| {
        format!(
            "--write-kubeconfig-mode: {:?} is not an octal mode such as 600",
            args.write_kubeconfig_mode
        )
    })?;
    if mode > 0o777 {
        bail!("--write-kubeconfig-mode: {:o} is not a file mode", mode);
    }
    let service_cidr = parse_cidr("service-cidr", &args.service_cidr)?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let mut agent_config = args.agent.config(&data_dir)?;
    let kubeconfig = match args.write_kubeconfig {
        Some(k) => k,
        None => default_kubeconfig()?,
    };
    let hostname = crate::cli::agent::hostname();
    let node_name = agent_config.node_name.clone();

    let mut sans = args.tls_san.clone();
    sans.push(hostname.clone());
    sans.push(node_name.clone());
    sans.extend(node_agent::machine::outbound_ip().map(|ip| ip.to_string()));
    if !args.bind_address.is_unspecified() {
        sans.push(args.bind_address.to_string());
    }
    // Where in-cluster clients reach the API (the `kubernetes` Service's Endpoints).
    let advertise = if args.bind_address.is_unspecified() {
        node_agent::machine::outbound_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        args.bind_address
    };
    // The data dir's lock, held until exit: `certificate rotate` refuses while it is held.
    let _lock = crate::cli::certificate::lock(&data_dir)?;
    // spin-operator's webhooks, in process; they get their client once the API listens.
    let admission = crate::admission::SpinAdmission::new();
    let shutdown = CancellationToken::new();
    // The API server first; the call returns once it answers.
    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let launched = launch::launch(
        launch::Config {
            data_dir: data_dir.clone(),
            listen: addr,
            tls_sans: sans,
            advertise,
            store: StoreConfig {
                history_events: args.watch_history_events,
                history_bytes: args.watch_history_bytes,
                ..StoreConfig::default()
            },
            options: ApiOptions {
                service_cidr,
                node_port_range: args.service_node_port_range,
                event_ttl: args.event_ttl,
                max_watch: Duration::from_secs(args.max_watch_seconds.max(1)),
                crds: spinlet_types::crds(),
                admission: Hooks(vec![admission.clone()]),
                ..ApiOptions::default()
            },
        },
        shutdown.clone(),
    )
    .await?;
    agent_config.client_ca = Some(launched.pki.ca_cert.clone());
    let renewed = crate::cli::certificate::renewal_message(&launched.pki.issued);
    let port = launched.addr.port();
    let admin = launched.admin_kubeconfig.clone();
    let (store, server) = (launched.store, launched.serving);
    // The controllers (the scheduler today) start before the agent, as k3s starts them,
    // with a kube client of their own; `--disable-scheduler` leaves the scheduler out.
    let controllers = {
        let client = crate::cli::agent::client_from_kubeconfig(&admin)
            .await
            .context("creating the controllers' API client")?;
        admission.connect(client.clone());
        // Leaf certificates renewed at start: a Warning event on the Node, now the API is up.
        if let Some(message) = renewed {
            crate::cli::certificate::report_renewals(
                client.clone(),
                &node_name,
                &hostname,
                message,
            )
            .await;
        }
        // The docs' RuntimeClass and executor exist before the kubeconfig tells anyone
        // the server is up: the docs' first `kubectl apply` of a SpinApp names them.
        if let Err(e) = controllers::executor::ensure_builtins(&client).await {
            tracing::warn!(error = %e, "the built-in RuntimeClass and executor are not created yet; the executor controller retries");
        }
        pki::write_private(&kubeconfig, admin.as_bytes(), mode)
            .with_context(|| format!("writing kubeconfig {}", kubeconfig.display()))?;
        let config = controllers::Config {
            scheduler: (!args.disable_scheduler)
                .then(|| controllers::scheduler::Config::new(&hostname)),
            replica_sets: Some(controllers::replicaset::Config::new(&hostname)),
            deployments: Some(controllers::deployment::Config::new(&hostname)),
            spinapps: Some(controllers::spinapp::Config::new(&hostname)),
            executors: Some(controllers::executor::Config::new(&hostname)),
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let result = controllers::run(client, config, stop).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "the controllers stopped");
            }
            result
        })
    };
    // The API is ready (bootstrapped and listening): the agent starts, talking to it
    // only through the kube client, as it would to any API server.
    let agent = if args.disable_agent {
        None
    } else {
        let client = crate::cli::agent::client_from_kubeconfig(&admin)
            .await
            .context("creating the node agent's API client")?;
        let stop = shutdown.clone();
        Some(tokio::spawn(async move {
            let result = node_agent::run(client, agent_config, stop).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "the node agent stopped");
            }
            result
        }))
    };
    // Once the API answers and the node is Ready, the server is ready: systemd
    // (Type=notify) is told. Start-up is over a moment later, once the controllers and
    // the agent have had their first syncs: the code that only start-up ran need not stay
    // in the server's resident set (spin_runtime::code_pages). One API client and one
    // wait on the Node serve both.
    {
        let client = crate::cli::agent::client_from_kubeconfig(&admin)
            .await
            .context("creating the start-up check's API client")?;
        let node = (!args.disable_agent).then(|| node_name.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let settled = async {
                if let Some(node) = node {
                    crate::cli::notify::node_ready(client, &node).await;
                }
                crate::cli::notify::ready();
                tokio::time::sleep(START_UP_SETTLES).await;
            };
            tokio::select! {
                () = settled => {
                    let _ = tokio::task::spawn_blocking(spin_runtime::code_pages::release).await;
                }
                () = stop.cancelled() => {}
            }
        });
    }
    tracing::info!(
        listen = %addr,
        port,
        node = %node_name,
        data_dir = %data_dir.display(),
        kubeconfig = %kubeconfig.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "spinlet is up and running; kubeconfig written to {}",
        kubeconfig.display()
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    crate::cli::notify::stopping();
    shutdown.cancel();
    if let Some(agent) = agent {
        match agent.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {} // logged when it happened
            Err(e) => tracing::error!(error = %e, "the node agent task failed"),
        }
    }
    match controllers.await {
        Ok(Ok(())) | Ok(Err(_)) => {} // an error was logged when it happened
        Err(e) => tracing::error!(error = %e, "the controllers task failed"),
    }
    let _ = server.await;
    store.flush().await.context("flushing the store")?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h0m0s"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("1 hour").is_err());
        assert!(parse_go_duration("h").is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-32767"), Ok((30000, 32767)));
        assert!(parse_port_range("5-2").is_err());
        assert!(parse_port_range("80").is_err());
    }
}
