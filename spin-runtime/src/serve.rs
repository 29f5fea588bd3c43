//! The one serve path: an app given as a path or an OCI reference → pulled (when it is a
//! reference) → loaded → served on the serving threads until a shutdown signal.
//!
//! `spinlet run` and the node agent's pod sandbox both start apps through this module, so
//! a pod serves exactly as `spinlet run` does. It owns the choice between a local manifest
//! and a registry pull and the threads an app is served on; it knows nothing of the
//! command line or of Kubernetes (flags and pod specs are mapped to [`AppOptions`] by
//! their callers).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::app::{App, AppOptions};
use crate::oci::{PulledApp, Reference};
use crate::workers::Workers;

/// Errors of the serve path, each naming the app or address it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The argument is neither an existing path nor a valid OCI reference.
    #[error("{0} is neither a file, a directory nor an OCI reference")]
    Source(String),
    /// Pulling the app from its registry failed.
    #[error("cannot pull {reference}: {source}")]
    Pull {
        /// The reference.
        reference: String,
        /// What the registry or the cache said.
        #[source]
        source: Box<crate::oci::Error>,
    },
    /// Loading the app failed (manifest, variables, compilation, linking).
    #[error("cannot start {app}: {source}")]
    Load {
        /// The app as given.
        app: String,
        /// Why.
        #[source]
        source: Box<crate::app::Error>,
    },
    /// The serving threads or their runtime could not start.
    #[error("cannot start the serving threads: {0}")]
    Threads(#[source] std::io::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(#[from] crate::http_trigger::Error),
    /// Flushing the key-value stores at shutdown failed.
    #[error("cannot flush the key-value store: {0}")]
    Flush(#[source] sled::Error),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an app comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// A `spin.toml` or a directory holding one.
    Local(PathBuf),
    /// An OCI reference.
    Registry(Reference),
}

impl AppSource {
    /// An existing path is local; anything else must parse as an OCI reference.
    pub fn parse(app: &str) -> Result<AppSource> {
        if Path::new(app).exists() {
            return Ok(AppSource::Local(PathBuf::from(app)));
        }
        Reference::parse(app)
            .map(AppSource::Registry)
            .map_err(|_| Error::Source(app.to_string()))
    }
}

/// The registry pull cache under `options.cache_dir` (or the default cache root).
pub fn registry_cache(options: &AppOptions) -> PathBuf {
    let root = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| crate::cache::default_root(&std::env::temp_dir().join("spinlet")));
    root.join(crate::cache::REGISTRY_SUBDIR)
}

/// Pulls `reference` into the registry cache of `options`.
pub fn pull(reference: &Reference, options: &AppOptions, insecure: bool) -> Result<PulledApp> {
    crate::oci::pull(reference, &registry_cache(options), insecure).map_err(|source| Error::Pull {
        reference: reference.to_string(),
        source: Box::new(source),
    })
}

/// Loads the app from `source` (pulling it first when it is a reference).
pub fn load(source: &AppSource, options: &AppOptions, insecure: bool) -> Result<App> {
    match source {
        AppSource::Local(path) => {
            let options = AppOptions {
                app: path.clone(),
                ..options.clone()
            };
            crate::app::load(&options).map_err(|source| Error::Load {
                app: path.display().to_string(),
                source: Box::new(source),
            })
        }
        AppSource::Registry(reference) => {
            let started = Instant::now();
            let pulled = pull(reference, options, insecure)?;
            tracing::info!(%reference, digest = %pulled.digest, "pulled");
            let mut app =
                crate::app::load_manifest(pulled.manifest, &pulled.dir, None, options, started)
                    .map_err(|source| Error::Load {
                        app: reference.to_string(),
                        source: Box::new(source),
                    })?;
            app.oci_image_digest = Some(pulled.digest);
            Ok(app)
        }
    }
}

/// Serves `app` on `listen` with one serving thread per core until `shutdown` completes,
/// then flushes its key-value stores. `on_listening` is called once the socket is bound,
/// with its address. Blocks the calling thread.
pub fn serve(
    app: Arc<App>,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(SocketAddr, &App),
) -> Result<()> {
    let workers = Workers::per_core().map_err(|e| match e {
        crate::workers::Error::Start { source, .. } => Error::Threads(source),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Threads)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Listen {
                addr: listen,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Listen {
            addr: listen,
            source,
        })?;
        on_listening(local, &app);
        // Start-up's code leaves this process's resident set at the first answer (or
        // after a quiet period without one), and the code requests ran once they stop
        // ([`crate::idle`]); not here, on the way to the first request.
        let server = crate::http_trigger::HttpServer::new(app.clone());
        let watched = server.clone();
        let releaser = tokio::spawn(async move {
            watched
                .activity
                .release_when_idle(crate::idle::QUIET, || {
                    crate::code_pages::release();
                })
                .await
        });
        let served = server.serve_on(&workers, listener, shutdown).await;
        releaser.abort();
        served?;
        Ok::<(), Error>(())
    })?;
    drop(workers);
    app.key_value.flush().map_err(Error::Flush)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_local_and_a_reference_is_a_registry() {
        let dir = std::env::temp_dir();
        let dir_str = dir.to_string_lossy().into_owned();
        assert_eq!(AppSource::parse(&dir_str).unwrap(), AppSource::Local(dir));
        match AppSource::parse("localhost:5000/apps/hello:v1").unwrap() {
            AppSource::Registry(r) => assert_eq!(r.repository, "apps/hello"),
            other => panic!("{other:?}"),
        }
        let err = AppSource::parse("/nonexistent/app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/app is neither a file, a directory nor an OCI reference"
        );
    }
}
