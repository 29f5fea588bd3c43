//! The API server as one library call: [`launch`] prepares the credentials, opens the
//! store, bootstraps it, binds the listener, publishes the `kubernetes` Service's
//! endpoints and starts serving; it returns once the API answers — that return is the
//! readiness signal — with what a client needs to reach it ([`Launched`]). Serving ends
//! when the caller's cancellation token fires, the same token the caller hands the
//! controllers and the agent, as k3s composes its parts.
//!
//! Owns the order of those steps and nothing else: each step is its own module's (`pki`,
//! `store`, `bootstrap`, `server`, `apiserver_endpoints`). Writes no kubeconfig file and
//! starts no client: that is the composer's.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, ApiOptions};
use crate::store::{Store, StoreConfig};
use crate::{pki, tls};

/// What the API server is started with.
pub struct Config {
    /// Folder holding `server/` (credentials, store).
    pub data_dir: PathBuf,
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// The address advertised in the `kubernetes` Service's endpoints.
    pub advertise: IpAddr,
    /// Store tunables.
    pub store: StoreConfig,
    /// API tunables; `kubelet_client` is filled in from the credentials when `None`.
    pub options: ApiOptions,
}

/// A started API server.
pub struct Launched {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>`, for clients on this machine.
    pub url: String,
    /// The credentials (CA, admin client, token).
    pub pki: pki::Pki,
    /// The admin kubeconfig's contents, pointing at `url`.
    pub admin_kubeconfig: String,
    /// The API state (for in-process composition and tests).
    pub api: Arc<Api>,
    /// The store, to flush after serving ends.
    pub store: Arc<Store>,
    /// Serving; ends once the shutdown token fires.
    pub serving: JoinHandle<()>,
}

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The data dir could not be created.
    #[error("creating data dir {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Credentials could not be created or read.
    #[error("preparing certificates: {0}")]
    Pki(#[from] pki::PkiError),
    /// TLS could not be configured.
    #[error("configuring TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The store could not be opened.
    #[error("opening the store in {path}: {source}")]
    Store {
        /// Its folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::store::StoreError,
    },
    /// Bootstrapping (system namespaces, CRDs, `kubernetes` Service) failed.
    #[error("bootstrapping the API: {0}")]
    Bootstrap(String),
    /// The listener could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Starts the API server; returns once it answers.
pub async fn launch(config: Config, shutdown: CancellationToken) -> Result<Launched, LaunchError> {
    let Config {
        data_dir,
        listen,
        tls_sans,
        advertise,
        store,
        mut options,
    } = config;
    std::fs::create_dir_all(&data_dir).map_err(|source| LaunchError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let pki = pki::ensure(&data_dir, &tls_sans)?;
    let tls = tls::server_config(&pki)?;
    if options.kubelet_client.is_none() {
        options.kubelet_client = Some(crate::kubelet::client_config(&pki)?);
    }
    let db = data_dir.join("server").join("db");
    let store =
        Store::open(&db, store).map_err(|source| LaunchError::Store { path: db, source })?;
    let api = Api::new(store.clone(), options);
    crate::bootstrap(&api)
        .await
        .map_err(|e| LaunchError::Bootstrap(e.message))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| LaunchError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| LaunchError::Listen {
            addr: listen,
            source,
        })?;
    crate::apiserver_endpoints::publish(&api, SocketAddr::new(advertise, addr.port()))
        .await
        .map_err(|e| LaunchError::Bootstrap(e.message))?;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let admin_kubeconfig = pki::kubeconfig(&pki, &url);
    let serving = tokio::spawn(crate::server::serve(
        api.clone(),
        listener,
        tls,
        crate::server::Credentials {
            tokens: vec![pki.token.clone(), pki.join_token.clone()],
            cacerts: pki.ca_cert.clone(),
        },
        shutdown,
    ));
    Ok(Launched {
        addr,
        url,
        pki,
        admin_kubeconfig,
        api,
        store,
        serving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn launch_returns_serving_and_the_token_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let launched = launch(
            Config {
                data_dir: dir.path().to_owned(),
                listen: "127.0.0.1:0".parse().unwrap(),
                tls_sans: vec!["test-host".into()],
                advertise: "127.0.0.1".parse().unwrap(),
                store: StoreConfig::default(),
                options: ApiOptions::default(),
            },
            shutdown.clone(),
        )
        .await
        .unwrap();
        assert_ne!(launched.addr.port(), 0);
        assert!(launched.admin_kubeconfig.contains(&launched.url));
        assert!(launched.api.options.kubelet_client.is_some());
        tokio::net::TcpStream::connect(launched.addr).await.unwrap();
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(30), launched.serving)
            .await
            .expect("serving ends with the token")
            .unwrap();
    }
}
