//! The rustls server configuration: the serving certificate, ALPN `h2` and `http/1.1`, and
//! optional client certificates verified against the cluster CA (a request without one
//! may still authenticate with the bearer token, see `auth.rs`).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::pki::Pki;

/// Errors building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM block could not be read.
    #[error("reading {what}: {source}")]
    Pem {
        /// Which PEM.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM held no key.
    #[error("no private key in the serving key file")]
    NoKey,
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })
}

/// Builds the server configuration.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.ca_cert, "CA certificate")? {
        roots.add(c)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pki.serving_key.as_bytes())
        .map_err(|source| TlsError::Pem {
            what: "serving key",
            source,
        })?
        .ok_or(TlsError::NoKey)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&pki.serving_cert, "serving certificate")?, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
