//! The kubelet-compatible node agent: registers its Node and keeps its Lease, and runs the
//! pods bound to it as Spin apps, each in a sandbox process of its own.
//!
//! It talks to the API only through the `kube` client, so the same agent runs in-process
//! in `spinlet server` and alone (`spinlet agent`) against spinlet's API server or a real
//! cluster's. It knows nothing of the API server's store or internals.
//!
//! One module per concept:
//! - [`machine`]: what the node is (cpu, memory, disk, kernel, OS) read from the machine;
//! - [`node`]: the Node object (labels, capacity, conditions, addresses, pod range);
//! - [`lease`]: the node's heartbeat Lease in `kube-node-lease`;
//! - [`pods`]: the watch of the pods bound to this node, one worker per pod;
//! - [`pod`]: one pod's lifecycle (pull, start, restart with back-off, terminate);
//! - [`probe`]: startup, readiness and liveness probes (httpGet, tcpSocket);
//! - [`sources`]: the ConfigMaps and Secrets env and volumes read;
//! - [`status`]: a pod's status as the kubelet writes it;
//! - [`volumes`]: a pod's volumes on the host, mounted as WASI preopens;
//! - [`env`]: a container's environment (`env`, `envFrom`, `valueFrom`, `$(VAR)`);
//! - [`events`]: Events as the kubelet records them;
//! - [`image`]: image pulls into the shared content-addressed cache, images
//!   preloaded from archives in `<data dir>/images/` for air-gapped nodes, and their code
//!   compiled into the sandboxes' compile cache before a pod starts (kept under a size
//!   cap);
//! - [`network`]: pod addresses from the node's pod range on a local interface;
//! - [`resources`]: quantities, and the cpu and memory settings requests and limits give;
//! - [`cgroup`]: each pod's cgroup (kubepods hierarchy, v1 or v2) with those settings;
//! - [`sandbox`]: the agent's side of a sandbox process (spawn, readiness, signals);
//! - [`sandbox_process`]: the sandbox's own side (logs, serve the app, stop on SIGTERM);
//! - [`cri_log`]: container logs in the CRI file format;
//! - [`kubelet_api`]: the kubelet's HTTPS API (`/containerLogs`, `/pods`, `/stats/summary`).
//!
//! # Lifecycle
//! 1. [`run`] registers the Node (creating it or taking it over), picks its pod range.
//! 2. The Lease is renewed every 10 s and the Node's conditions every minute.
//! 3. Image archives in `<data dir>/images/` are imported into the image cache (then
//!    polled for new ones), so air-gapped pods find their images.
//! 4. Pods whose `spec.nodeName` is this node are watched; each gets a worker that drives
//!    it to Running, restarts its sandbox per `restartPolicy`, and on deletion stops it
//!    within its grace period and deletes it with grace 0, as the kubelet does.
//! 5. On cancellation the workers stop their sandboxes and the agent returns.

pub mod cgroup;
pub mod cri_log;
pub mod env;
pub mod events;
pub mod image;
pub mod kubelet_api;
pub mod lease;
pub mod machine;
pub mod network;
pub mod node;
pub mod pod;
pub mod pods;
pub mod probe;
pub mod resources;
pub mod sandbox;
pub mod sandbox_process;
pub mod service_proxy;
pub mod sources;
pub mod status;
pub mod volumes;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// The kubelet port advertised in `status.daemonEndpoints`.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The runtime handler name pods select through a RuntimeClass (`handler: spin`), as
/// containerd-shim-spin registers it.
pub const SPIN_HANDLER: &str = "spin";

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// The agent's state (sandbox records, the image and compile cache).
    pub data_dir: PathBuf,
    /// Container logs (`/var/log/pods` for a root agent).
    pub pod_log_dir: PathBuf,
    /// The cluster's pod range; the node takes one /24 of it.
    pub cluster_cidr: (Ipv4Addr, u8),
    /// The program re-executed as a sandbox (the `spinlet` binary), and the arguments
    /// that select sandbox mode before the sandbox's own.
    pub sandbox_program: PathBuf,
    /// Arguments put before the sandbox's flags (`["sandbox"]`).
    pub sandbox_args: Vec<String>,
    /// The node's address, advertised as its InternalIP and used as pods' hostIP.
    pub node_ip: Option<IpAddr>,
    /// The kubelet API's port, advertised in the Node's daemon endpoints (0: any free
    /// port; the one bound is advertised).
    pub kubelet_port: u16,
    /// The cluster CA (PEM) whose client certificates the kubelet API accepts; `None`
    /// refuses every request.
    pub client_ca: Option<String>,
    /// Name of the local interface that carries the pod addresses.
    pub pod_interface: String,
    /// When container log files are rotated (kubelet's `containerLogMaxSize` and
    /// `containerLogMaxFiles`).
    pub log_rotation: cri_log::Rotation,
    /// Whether this agent serves Services' cluster IPs and node ports ([`service_proxy`]).
    pub service_proxy: bool,
    /// The most compiled code kept in the compile cache, in bytes (least recently used
    /// artifacts beyond it are removed; [`image::precompile`]).
    pub compile_cache_max_bytes: u64,
}

impl AgentConfig {
    /// Where the image and compile cache lives (shared by every sandbox).
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Registering the Node failed.
    #[error("cannot register node {node}: {source}")]
    Register {
        /// The node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Every /24 of the cluster range is taken by other nodes.
    #[error("no free /24 left in the cluster CIDR {0} for node {1}")]
    NoPodRange(String, String),
    /// The kubelet API could not start.
    #[error("kubelet API: {0}")]
    KubeletApi(#[from] kubelet_api::Error),
    /// The agent's state directory is not usable.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(
    client: kube::Client,
    mut config: AgentConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    for dir in [&config.data_dir, &config.pod_log_dir] {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let kubelet = kubelet_api::Listener::bind(&config).await?;
    config.kubelet_port = kubelet.port();
    let machine = machine::Machine::read(&config);
    let registered = node::register(&client, &config, &machine).await?;
    tracing::info!(node = %config.node_name, pod_cidr = %registered.pod_cidr, "node registered");
    let network = Arc::new(network::PodNetwork::new(
        &config.pod_interface,
        registered.pod_range,
    ));
    let heartbeat = tokio::spawn(lease::keep(
        client.clone(),
        config.node_name.clone(),
        registered.uid.clone(),
        shutdown.clone(),
    ));
    let node_status = tokio::spawn(node::keep_status(
        client.clone(),
        config.clone(),
        machine.clone(),
        shutdown.clone(),
    ));
    let kubelet =
        tokio::spawn(kubelet.serve(client.clone(), Arc::new(config.clone()), shutdown.clone()));
    let services = config.service_proxy.then(|| {
        tokio::spawn(service_proxy::run(
            client.clone(),
            network.clone(),
            shutdown.clone(),
        ))
    });
    // Images' code is compiled here, once per content, before their pods start.
    let precompiler =
        image::precompile::Precompiler::start(&config.cache_dir(), config.compile_cache_max_bytes);
    // Preloaded (air-gapped) images go in the cache before any pod looks for its image.
    let recorder = events::Recorder::new(client.clone(), &config.node_name);
    let importer = image::airgap::Importer::new(
        image::airgap::images_dir(&config.data_dir),
        &config.cache_dir(),
    );
    let images = image::airgap::import_present(importer, &recorder, &precompiler)
        .await
        .map(|importer| {
            tokio::spawn(image::airgap::run(
                importer,
                recorder,
                precompiler.clone(),
                shutdown.clone(),
            ))
        });
    let host_ip = machine.internal_ip;
    let allocatable = (machine.cpus as u64 * 1000, machine.memory_bytes);
    pods::run(
        client,
        Arc::new(config),
        network,
        host_ip,
        allocatable,
        precompiler,
        shutdown.clone(),
    )
    .await;
    let _ = heartbeat.await;
    let _ = node_status.await;
    let _ = kubelet.await;
    if let Some(services) = services {
        let _ = services.await;
    }
    if let Some(images) = images {
        let _ = images.await;
    }
    Ok(())
}
