//! The joining side of the secure join token, as k3s's agent does it: `GET /cacerts` from
//! the server without trusting its certificate yet, then the bundle's sha256 compared with
//! the token's hash before anything trusts it. Only the CA comes over this connection; no
//! credential is sent on it.
//!
//! Owns that one request; the token format is `token.rs`, the route the server answers it
//! with is `server.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::token::{HashMismatch, JoinToken};
use crate::tls::AnyServerCert;

/// How long the whole fetch may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest CA bundle accepted.
const MAX_BUNDLE: usize = 1 << 20;

/// Why the server's CA could not be had or trusted.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The server URL is not an `https://host[:port]` URL.
    #[error("--server: {url:?} {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The token has no CA hash to check the fetched CA with.
    #[error("the join token carries no CA hash (K10<sha256>::…), so the server's CA cannot be verified: give --ca-file, or the token from the server's <data-dir>/server/token")]
    NoHash,
    /// Connecting, the TLS handshake or the request failed.
    #[error("fetching the cluster CA from {url}: {message}")]
    Fetch {
        /// The `/cacerts` URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server's CA is not the one the token names.
    #[error("refusing to trust the CA served at {url}: {mismatch}")]
    Mismatch {
        /// The `/cacerts` URL.
        url: String,
        /// The two hashes.
        #[source]
        mismatch: HashMismatch,
    },
}

/// The server's CA bundle (PEM) from `GET <server>/cacerts`, returned only when its sha256
/// is the token's hash.
pub async fn trusted_ca(server: &str, token: &JoinToken) -> Result<String, JoinError> {
    if token.ca_hash.is_none() {
        return Err(JoinError::NoHash);
    }
    let (host, port) = host_port(server)?;
    let url = format!("https://{}/cacerts", authority(&host, port));
    let fetched = tokio::time::timeout(TIMEOUT, fetch(&host, port))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", TIMEOUT.as_secs())))
        .map_err(|message| JoinError::Fetch {
            url: url.clone(),
            message,
        })?;
    token
        .verify_ca(&fetched)
        .map_err(|mismatch| JoinError::Mismatch {
            url: url.clone(),
            mismatch,
        })?;
    String::from_utf8(fetched).map_err(|_| JoinError::Fetch {
        url,
        message: "the CA bundle is not text".into(),
    })
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host (IPv6 without brackets) and port of an `https://` URL.
fn host_port(server: &str) -> Result<(String, u16), JoinError> {
    let bad = |reason| JoinError::Url {
        url: server.to_string(),
        reason,
    };
    let uri: http::Uri = server
        .parse()
        .map_err(|_| bad("is not a URL like https://192.0.2.10:6443"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("must be an https:// URL"));
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), uri.port_u16().unwrap_or(443)))
}

async fn fetch(host: &str, port: u16) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        // The server's certificate is not trusted yet: what it sends is checked by hash
        // afterwards, and nothing secret is sent on this connection.
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = http::Request::get("/cacerts")
        .header(http::header::HOST, authority(host, port))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BUNDLE)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            host_port("https://[::1]:7443/").unwrap(),
            ("::1".into(), 7443)
        );
        assert_eq!(host_port("https://edge").unwrap(), ("edge".into(), 443));
        let e = host_port("http://10.0.0.1:6443").unwrap_err().to_string();
        assert!(
            e.contains("https://") && e.contains("http://10.0.0.1:6443"),
            "{e}"
        );
        assert!(host_port("not a url").is_err());
    }
}
