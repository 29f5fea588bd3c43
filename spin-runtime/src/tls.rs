//! TLS for outbound connections: HTTPS ([`crate::http_client`]), Redis (`rediss://`, also
//! key-value stores) and MQTT (`mqtts://`), and the trusted roots of PostgreSQL and MySQL.
//!
//! This module owns the one rustls client configuration those connections share, and how
//! a TLS stream is opened with it; MySQL's client (`mysql_async`) builds its own rustls
//! configuration from root certificates, so it takes [`platform_roots`] (the compiled-in
//! Mozilla roots it adds itself). It does not decide whether an address is allowed (that
//! is [`crate::outbound`]) nor speak any protocol over the stream.
//!
//! The trusted roots are the Mozilla roots compiled in (`webpki-roots`, so a host without
//! a system store still reaches public servers) plus the platform's store as
//! `rustls-native-certs` reads it: on Linux the system bundle, or, when `SSL_CERT_FILE`
//! (or `SSL_CERT_DIR`) is set, the certificates of that file (or directory) instead, which
//! is how a deployment or a test trusts its own CA. The store is read once per process,
//! on the first TLS connection. The crypto provider is rustls' `ring` one, as everywhere
//! in the workspace. Client certificates (mutual TLS) are not supported: Spin's outbound
//! Redis and MQTT have no way to name them either.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long a TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure to open a TLS connection.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration (it never does with the `ring` provider).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// The host is neither a DNS name nor an IP address rustls accepts.
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
    /// The TCP connection or the handshake failed (an untrusted certificate is one).
    #[error("TLS connection to {host}:{port} failed: {source}")]
    Connect {
        /// The host connected to.
        host: String,
        /// The port connected to.
        port: u16,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Connecting and the handshake took longer than [`CONNECT_TIMEOUT`].
    #[error("TLS connection to {host}:{port} timed out")]
    Timeout {
        /// The host connected to.
        host: String,
        /// The port connected to.
        port: u16,
    },
}

/// The shared client configuration (built on first use).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, rustls::Error>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots())
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(TlsError::Config)
}

/// The trusted roots: the compiled-in Mozilla set plus [`platform_roots`].
fn roots() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let (added, ignored) = roots.add_parsable_certificates(platform_roots().iter().cloned());
    tracing::debug!(added, ignored, "platform root certificates loaded");
    roots
}

/// The platform's root certificates (or `SSL_CERT_FILE`'s / `SSL_CERT_DIR`'s), read once
/// per process. Unreadable or unparsable entries are logged and skipped.
pub fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "could not load some platform root certificates");
        }
        native.certs
    })
}

/// Opens a TCP connection to `host:port` and completes a TLS handshake with the shared
/// configuration, verifying the server's certificate for `host`.
pub async fn connect(host: &str, port: u16) -> Result<TlsStream<TcpStream>, TlsError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| TlsError::ServerName(host.to_string()))?;
    let connector = TlsConnector::from(client_config()?);
    let connect = async {
        let tcp = TcpStream::connect((host, port)).await?;
        connector.connect(name, tcp).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(TlsError::Connect {
            host: host.to_string(),
            port,
            source,
        }),
        Err(_) => Err(TlsError::Timeout {
            host: host.to_string(),
            port,
        }),
    }
}
