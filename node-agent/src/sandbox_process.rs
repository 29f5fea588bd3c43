//! The sandbox's own side: what runs inside the re-executed `spinlet sandbox` process of
//! one pod's container. It points its stdout and stderr at the container's CRI log, loads
//! the pulled app from the shared cache through spin-runtime's serve path (the one
//! `spinlet run` uses) after moving itself into the pod's cgroup, says it is ready by writing its ready file once it listens, and
//! serves until SIGTERM. A failure to start is written to the termination-log file, which
//! the agent turns into the container's `terminated.message`. On SIGTERM it keeps
//! serving for [`LAME_DUCK`], then drains.
//!
//! Knows nothing of the API: everything it needs arrives as [`Options`].

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spin_runtime::serve::AppSource;

/// What a sandbox is started with (written by the agent as the sandbox's `spec.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// The app: an OCI reference (pinned by digest) or a path.
    pub app: String,
    /// Where to serve (the pod's address and the container's port).
    pub listen: SocketAddr,
    /// The shared image and compile cache.
    pub cache_dir: PathBuf,
    /// The container's CRI log file.
    pub log_file: PathBuf,
    /// Written once the app listens.
    pub ready_file: PathBuf,
    /// Written with the reason when the app cannot start.
    pub termination_log: PathBuf,
    /// Environment for every component.
    pub env: Vec<(String, String)>,
    /// Spin variables (`NAME=VALUE`).
    pub variables: Vec<String>,
    /// The app's state directory (its default key-value store).
    pub state_dir: PathBuf,
    /// The pod's cgroup (a path in the hierarchy) the sandbox moves itself into first.
    pub cgroup: Option<String>,
    /// The pod's volumes, preopened in every component.
    #[serde(default)]
    pub mounts: Vec<spin_runtime::app::Mount>,
    /// The app's runtime config file (the one mounted at `/runtime-config.toml`).
    #[serde(default)]
    pub runtime_config: Option<PathBuf>,
    /// The app's trust bundle (the file mounted at `/etc/ssl/certs/ca-certificates.crt`):
    /// the sandbox runs with `SSL_CERT_FILE` pointing at it, so its outbound TLS trusts
    /// those roots (plus the compiled-in Mozilla ones), as Spin in a container does.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// When the log file is rotated.
    #[serde(default)]
    pub log_rotation: crate::cri_log::Rotation,
}

/// Errors that end a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log file or a pipe could not be set up.
    #[error("cannot set up the container log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The spec file is missing or not a spec.
    #[error("cannot read the sandbox spec {path}: {message}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The sandbox could not move into its cgroup.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::Error),
    /// The app could not be loaded or served.
    #[error(transparent)]
    Serve(#[from] spin_runtime::serve::Error),
}

/// Sends this process's stdout and stderr to `path` as CRI records.
fn redirect_output(path: &Path, rotation: crate::cri_log::Rotation) -> Result<(), Error> {
    let err = |source| Error::Log {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let file = crate::cri_log::LogFile::open(path, rotation).map_err(err)?;
    let out = Arc::new(Mutex::new(file));
    for (fd, stream) in [
        (std::io::stdout().as_raw_fd(), "stdout"),
        (std::io::stderr().as_raw_fd(), "stderr"),
    ] {
        let (read, write) = nix::unistd::pipe().map_err(|e| err(e.into()))?;
        nix::unistd::dup2(write.as_raw_fd(), fd).map_err(|e| err(e.into()))?;
        drop(write);
        let out = out.clone();
        std::thread::Builder::new()
            .name(format!("log-{stream}"))
            .spawn(move || crate::cri_log::copy(File::from(read), stream, &out))
            .map_err(err)?;
    }
    Ok(())
}

/// How long a sandbox keeps accepting after SIGTERM: the pod's deletion takes it out of
/// its Services' endpoints at the same moment, and connections the proxies route to it
/// meanwhile must still be served (a built-in `preStop` sleep). Then it stops accepting
/// and finishes what it accepted (spin-runtime's drain).
const LAME_DUCK: std::time::Duration = std::time::Duration::from_secs(1);

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
            tokio::time::sleep(LAME_DUCK).await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Reads the spec the agent wrote.
pub fn read_spec(path: &Path) -> Result<Options, Error> {
    let err = |message: String| Error::Spec {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| err(e.to_string()))
}

/// Runs the sandbox until SIGTERM. Blocks.
pub fn main(options: Options) -> Result<(), Error> {
    redirect_output(&options.log_file, options.log_rotation)?;
    let result = match &options.cgroup {
        Some(path) => crate::cgroup::join(path).map_err(Error::from),
        None => Ok(()),
    }
    .and_then(|()| serve(&options));
    if let Err(e) = &result {
        let _ = std::fs::write(&options.termination_log, e.to_string());
        eprintln!("{e}");
    }
    // An agent that adopted this sandbox is not its parent: it reads the code here.
    if let Some(dir) = options.ready_file.parent() {
        let code = if result.is_ok() { 0 } else { 1 };
        let _ = std::fs::write(dir.join(crate::sandbox::EXIT_CODE_FILE), code.to_string());
    }
    result
}

/// containerd-shim-spin's selective deployment: the container's
/// `SPIN_COMPONENTS_TO_RETAIN` (comma-separated ids; spin-operator sets it from
/// `spec.components`).
fn components_to_retain(env: &[(String, String)]) -> Option<Vec<String>> {
    let (_, ids) = env
        .iter()
        .rev()
        .find(|(k, _)| k == "SPIN_COMPONENTS_TO_RETAIN")?;
    let ids: Vec<String> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// Logs how the app's code was loaded and writes it beside the ready file, where a
/// compile at start (the agent's precompile missed) can be seen. Advisory: a failure to
/// write is logged.
fn record_load(options: &Options, stats: &spin_runtime::app::LoadStats) {
    tracing::info!(
        wasm_files = stats.wasm_files,
        from_cache = stats.cache_hits,
        compiled = stats.compiled,
        elapsed_ms = stats.elapsed.as_millis() as u64,
        "app loaded"
    );
    let Some(dir) = options.ready_file.parent() else {
        return;
    };
    let text = serde_json::json!({
        "wasm_files": stats.wasm_files,
        "from_cache": stats.cache_hits,
        "compiled": stats.compiled,
    });
    let path = dir.join(crate::sandbox::LOAD_STATS_FILE);
    if let Err(e) = std::fs::write(&path, text.to_string()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot record how the app was loaded");
    }
}

fn serve(options: &Options) -> Result<(), Error> {
    let source = AppSource::parse(&options.app)?;
    let app_options = spin_runtime::app::AppOptions {
        variables: options.variables.clone(),
        env: options.env.clone(),
        state_dir: Some(options.state_dir.clone()),
        cache_dir: Some(options.cache_dir.clone()),
        mounts: options.mounts.clone(),
        runtime_config: options.runtime_config.clone(),
        components: components_to_retain(&options.env),
        engine: spin_runtime::engine::EngineOptions::from_env(),
        ..Default::default()
    };
    let app = spin_runtime::serve::load(&source, &app_options, false)?;
    record_load(options, &app.stats);
    let ready = options.ready_file.clone();
    spin_runtime::serve::serve(
        Arc::new(app),
        options.listen,
        terminated(),
        move |local, _| {
            let tmp = ready.with_extension("tmp");
            if std::fs::write(&tmp, local.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &ready);
            }
        },
    )?;
    Ok(())
}
