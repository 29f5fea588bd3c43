//! The rustls server configuration: the serving certificate, ALPN `h2` and `http/1.1`, and
//! optional client certificates verified against the cluster CA (a request without one
//! may still authenticate with the bearer token, see `auth.rs`). Also the one client-side
//! verifier that accepts a server's certificate unchecked ([`AnyServerCert`]), for the
//! connections that do so on purpose (`kubelet.rs`, `pki/join.rs`); what those clients
//! send and how they connect stays theirs.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Accepts any server certificate, chain and name unchecked; the handshake's signatures
/// are still verified with the provider's algorithms. For a client that trusts the peer
/// some other way or not at all: kube-apiserver's kubelet client without
/// `--kubelet-certificate-authority` (`kubelet.rs`), and the join's `GET /cacerts`, whose
/// answer is checked by hash afterwards (`pki/join.rs`).
#[derive(Debug)]
pub(crate) struct AnyServerCert(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
