//! `spinlet agent`: the node agent alone, against spinlet's API server or a real cluster's
//! (the scale-out path), joining with k3s's secure token (the server's CA fetched and
//! checked against the token's hash when no CA file is given), and the agent flags
//! `spinlet server` shares. Flags map onto
//! `node_agent::AgentConfig`; the work is in the `node-agent` crate.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

/// Agent flags shared by `spinlet server` and `spinlet agent`.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentFlags {
    /// (agent) Node name (default: the hostname).
    #[arg(long, env = "SPINLET_NODE_NAME")]
    pub node_name: Option<String>,
    /// (agent) The node's address, advertised as its InternalIP (default: the address of
    /// the default route's interface).
    #[arg(long, env = "SPINLET_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// (agent) Container logs (default: /var/log/pods as root, <data-dir>/agent/pod-logs
    /// otherwise).
    #[arg(long, env = "SPINLET_POD_LOG_DIR")]
    pub pod_log_dir: Option<PathBuf>,
    /// (networking) IPv4 CIDR for pod IPs; each node takes one /24 of it.
    #[arg(long, env = "SPINLET_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// (networking) The local interface that carries pod addresses.
    #[arg(long, env = "SPINLET_POD_INTERFACE", default_value = "spinlet0")]
    pub pod_interface: String,
    /// (agent) The kubelet API's port (0: any free port; the Node advertises the one
    /// bound).
    #[arg(long, env = "SPINLET_KUBELET_PORT", default_value_t = node_agent::DEFAULT_KUBELET_PORT)]
    pub kubelet_port: u16,
    /// (agent) Size at which a container's log file is rotated, as a quantity (the
    /// kubelet's containerLogMaxSize).
    #[arg(long, env = "SPINLET_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi")]
    pub container_log_max_size: String,
    /// (agent) Log files kept per container, the current one included (the kubelet's
    /// containerLogMaxFiles; at least 2).
    #[arg(long, env = "SPINLET_CONTAINER_LOG_MAX_FILES", default_value_t = 5)]
    pub container_log_max_files: u32,
    /// (components) Do not serve Services' cluster IPs and node ports on this node (the
    /// agent's kube-proxy).
    #[arg(long, env = "SPINLET_DISABLE_KUBE_PROXY")]
    pub disable_kube_proxy: bool,
    /// (agent) The most compiled code the node keeps, as a quantity; the least recently
    /// used beyond it is removed (pods' images are compiled when pulled).
    #[arg(long, env = "SPINLET_COMPILE_CACHE_MAX_SIZE", default_value = "2Gi")]
    pub compile_cache_max_size: String,
}

/// Parses an IPv4 CIDR flag, naming the flag in errors.
pub fn parse_cidr(flag: &str, s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, bits) = s
        .split_once('/')
        .with_context(|| format!("--{flag}: {s:?} is not a CIDR such as 10.43.0.0/16"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("--{flag}: {ip:?} is not an IPv4 address"))?;
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| (8..=30).contains(b))
        .with_context(|| format!("--{flag}: prefix length {bits:?} must be between 8 and 30"))?;
    Ok((ip, bits))
}

/// The host name, or `localhost`.
pub fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

impl AgentFlags {
    /// The node name these flags give.
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }

    /// The agent's configuration with its state under `<data_dir>/agent`.
    pub fn config(&self, data_dir: &Path) -> anyhow::Result<node_agent::AgentConfig> {
        let agent_dir = data_dir.join("agent");
        let pod_log_dir = match &self.pod_log_dir {
            Some(d) => d.clone(),
            None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/log/pods"),
            None => agent_dir.join("pod-logs"),
        };
        Ok(node_agent::AgentConfig {
            node_name: self.node_name(),
            data_dir: agent_dir,
            pod_log_dir,
            cluster_cidr: parse_cidr("cluster-cidr", &self.cluster_cidr)?,
            sandbox_program: std::env::current_exe()
                .context("finding the spinlet binary to run sandboxes with")?,
            sandbox_args: vec!["sandbox".into()],
            node_ip: self.node_ip,
            kubelet_port: self.kubelet_port,
            client_ca: None,
            pod_interface: self.pod_interface.clone(),
            log_rotation: self.log_rotation()?,
            service_proxy: !self.disable_kube_proxy,
            compile_cache_max_bytes: self.compile_cache_max_bytes()?,
        })
    }

    fn compile_cache_max_bytes(&self) -> anyhow::Result<u64> {
        let size = &self.compile_cache_max_size;
        node_agent::resources::bytes(size).with_context(|| {
            format!("--compile-cache-max-size: {size:?} is not a size such as 2Gi")
        })
    }

    fn log_rotation(&self) -> anyhow::Result<node_agent::cri_log::Rotation> {
        let size = &self.container_log_max_size;
        let max_size = node_agent::resources::bytes(size)
            .filter(|b| *b > 0)
            .with_context(|| {
                format!("--container-log-max-size: {size:?} is not a size such as 10Mi")
            })?;
        if self.container_log_max_files < 2 {
            anyhow::bail!(
                "--container-log-max-files: {} must be at least 2",
                self.container_log_max_files
            );
        }
        Ok(node_agent::cri_log::Rotation {
            max_size,
            max_files: self.container_log_max_files,
        })
    }
}

/// Flags of `spinlet agent`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Config file, YAML with the long flag names as keys (default:
    /// /etc/spinlet/config.yaml when it exists; then <file>.d/*.yaml).
    #[arg(long, short = 'c', env = "SPINLET_CONFIG_FILE")]
    #[allow(dead_code)] // read from the parsed arguments by cli::config
    pub config: Option<PathBuf>,
    /// The API server's URL, e.g. https://192.0.2.10:6443.
    #[arg(long, short = 's', env = "SPINLET_URL")]
    pub server: Option<String>,
    /// The join token: the server's <data-dir>/server/token, K10<sha256 of the CA>::server:<secret>
    /// (or, from older servers, the bare secret).
    #[arg(long, short = 't', env = "SPINLET_TOKEN")]
    pub token: Option<String>,
    /// File holding the join token.
    #[arg(long, env = "SPINLET_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM) to trust the API server with. Optional with a K10
    /// token: the CA is then fetched from the server's /cacerts and trusted only when its
    /// sha256 is the token's (given both, the file must match the token's hash too).
    #[arg(long, env = "SPINLET_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A kubeconfig to use instead of --server/--token-file/--ca-file.
    #[arg(long, env = "SPINLET_AGENT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Folder to hold state (default: /var/lib/spinlet as root, ~/.spinlet otherwise).
    #[arg(long, short = 'd', env = "SPINLET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub agent: AgentFlags,
}

/// The cluster CA (PEM) of kubeconfig text's current cluster: what the kubelet API
/// verifies client certificates with.
pub fn kubeconfig_ca(text: &str) -> anyhow::Result<Option<String>> {
    use base64::Engine;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text).context("reading the kubeconfig")?;
    let current = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kubeconfig.current_context.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| current.is_none() || Some(&c.name) == current.as_ref())
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("the kubeconfig's certificate-authority-data is not base64")?;
        return Ok(Some(String::from_utf8_lossy(&pem).into_owned()));
    }
    if let Some(file) = &cluster.certificate_authority {
        return std::fs::read_to_string(file)
            .map(Some)
            .with_context(|| format!("reading the kubeconfig's certificate-authority {file}"));
    }
    Ok(None)
}

/// A kube client from kubeconfig text.
pub async fn client_from_kubeconfig(text: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text).context("reading the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("using the kubeconfig")?;
    kube::Client::try_from(config).context("creating the API client")
}

/// The kubeconfig the agent runs with: `--kubeconfig`'s, or one built from `--server`, the
/// join token and the CA — the CA from `--ca-file`, or fetched from the server and checked
/// against the token's hash before it is trusted (k3s's secure join).
async fn kubeconfig_text(args: &AgentArgs) -> anyhow::Result<String> {
    use apiserver_shim::pki::{join, token::JoinToken};
    use base64::Engine;
    if let Some(path) = &args.kubeconfig {
        if args.server.is_some() || args.token.is_some() || args.token_file.is_some() {
            bail!("--kubeconfig cannot be combined with --server, --token or --token-file");
        }
        return std::fs::read_to_string(path)
            .with_context(|| format!("--kubeconfig: reading {}", path.display()));
    }
    let Some(server) = &args.server else {
        bail!("spinlet agent needs --server and --token (or --token-file), or --kubeconfig");
    };
    let token = match (&args.token, &args.token_file) {
        (Some(_), Some(_)) => bail!("give --token or --token-file, not both"),
        (Some(t), None) => JoinToken::parse(t).context("--token")?,
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--token-file: reading {}", file.display()))?;
            JoinToken::parse(&text).with_context(|| format!("--token-file {}", file.display()))?
        }
        (None, None) => bail!("spinlet agent needs --token or --token-file with --server"),
    };
    let ca = match &args.ca_file {
        Some(ca_file) => {
            let ca = std::fs::read(ca_file)
                .with_context(|| format!("--ca-file: reading {}", ca_file.display()))?;
            token
                .verify_ca(&ca)
                .with_context(|| format!("--ca-file {}", ca_file.display()))?;
            ca
        }
        None if token.ca_hash.is_none() => bail!(
            "spinlet agent needs --ca-file, or a K10 join token (the server's <data-dir>/server/token) to fetch and verify the CA with"
        ),
        None => {
            let ca = join::trusted_ca(server, &token).await?;
            tracing::info!(server = %server, "the server's CA matches the join token's hash");
            ca.into_bytes()
        }
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: default\n  context: {{cluster: default, user: default}}\ncurrent-context: default\nusers:\n- name: default\n  user:\n    token: {}\n",
        serde_json::to_string(&token.secret).context("encoding the token")?
    ))
}

/// Runs `spinlet agent` until SIGINT/SIGTERM.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    crate::cli::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let data_dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => crate::cli::server::default_data_dir()?,
        };
        let mut config = args.agent.config(&data_dir)?;
        let kubeconfig = kubeconfig_text(&args).await?;
        config.client_ca = kubeconfig_ca(&kubeconfig)?;
        let client = client_from_kubeconfig(&kubeconfig).await?;
        let shutdown = CancellationToken::new();
        let node = Some(config.node_name.clone());
        crate::cli::notify::spawn_ready(client.clone(), node, shutdown.clone());
        let mut agent = tokio::spawn(node_agent::run(client, config, shutdown.clone()));
        tokio::select! {
            () = crate::cli::server::wait_for_signal() => {}
            done = &mut agent => {
                return done.context("the agent task failed")?.context("the node agent stopped");
            }
        }
        tracing::info!("shutting down");
        crate::cli::notify::stopping();
        shutdown.cancel();
        agent
            .await
            .context("the agent task failed")?
            .context("the node agent stopped")
    })
}
