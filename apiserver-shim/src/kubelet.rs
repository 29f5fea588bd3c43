//! The API server's client for kubelets, as kube-apiserver's `KubeletClientConfig`:
//! HTTPS with the API server's kubelet-client certificate ([`crate::pki`]), the kubelet's
//! serving certificate not verified (kube-apiserver's default without
//! `--kubelet-certificate-authority`; a kubelet self-signs when given none), and the
//! node's address picked from its `status.addresses` (InternalIP, ExternalIP, Hostname,
//! as k3s sets `--kubelet-preferred-address-types`) with the port from
//! `status.daemonEndpoints.kubeletEndpoint.Port`.
//!
//! Owns connecting to a kubelet and sending one request: a GET, or an upgrade request
//! (port-forward's SPDY or WebSocket handshake) whose connection hyper hands back after
//! a 101. What is asked and how the answer is relayed belong to the handlers
//! (`handlers::proxy`). Never reads the store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::pki::Pki;
use crate::tls::{AnyServerCert, TlsError};

/// How long connecting to a kubelet (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request to a kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// TCP connect, TLS handshake or HTTP failed.
    #[error("Get \"{url}\": {message}")]
    Transport {
        /// The URL asked for.
        url: String,
        /// What failed.
        message: String,
    },
}

/// The TLS client configuration for kubelets: the kubelet-client certificate, HTTP/1.1.
pub fn client_config(pki: &Pki) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = rustls_pemfile::certs(&mut pki.kubelet_client_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "kubelet client certificate",
            source,
        })?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.kubelet_client_key.as_bytes())
            .map_err(|source| TlsError::Pem {
                what: "kubelet client key",
                source,
            })?
            .ok_or(TlsError::NoKey)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A node's kubelet endpoint: (address, port), or why there is none.
pub fn endpoint(node: &Value) -> Result<(String, u16), String> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x.get("type")?.as_str()?, x.get("address")?.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| addresses.iter().find(|(k, _)| k == t).map(|(_, a)| *a))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            format!(
                "no preferred addresses found; known addresses: {:?} (node {name})",
                addresses
            )
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("node {name} has no kubelet port in its daemonEndpoints"))?;
    Ok((host.to_string(), port))
}

/// `host:port` with brackets around an IPv6 address.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends `GET https://host:port<path_and_query>` and returns the response head and its
/// streaming body.
pub async fn get(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    path_and_query: &str,
) -> Result<Response<Incoming>, KubeletError> {
    send(
        tls,
        host,
        port,
        Method::GET,
        path_and_query,
        HeaderMap::new(),
    )
    .await
}

/// Sends an upgrade request (`method`, `path_and_query`, the client's `headers`, no
/// body) and returns the kubelet's answer; after a 101, `hyper::upgrade::on` on it
/// gives the kubelet's side of the upgraded connection.
pub async fn upgrade(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    method: Method,
    path_and_query: &str,
    headers: HeaderMap,
) -> Result<Response<Incoming>, KubeletError> {
    send(tls, host, port, method, path_and_query, headers).await
}

async fn send(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    method: Method,
    path_and_query: &str,
    headers: HeaderMap,
) -> Result<Response<Incoming>, KubeletError> {
    let authority = join_host_port(host, port);
    let url = format!("https://{authority}{path_and_query}");
    let fail = |message: String| KubeletError::Transport {
        url: url.clone(),
        message,
    };
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| fail(format!("bad kubelet host: {e}")))?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("dial tcp {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| fail(format!("dial tcp {authority}: i/o timeout")))?
        .map_err(fail)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    *req.headers_mut() = headers;
    req.headers_mut().insert(
        header::HOST,
        header::HeaderValue::from_str(&authority).map_err(|e| fail(e.to_string()))?,
    );
    if !req.headers().contains_key(header::USER_AGENT) {
        req.headers_mut().insert(
            header::USER_AGENT,
            header::HeaderValue::from_static("spinlet-apiserver"),
        );
    }
    sender
        .send_request(req)
        .await
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_prefers_internal_ip_and_needs_a_port() {
        let node = json!({
            "metadata": {"name": "n"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "n"},
                    {"type": "InternalIP", "address": "10.0.0.5"},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        });
        assert_eq!(endpoint(&node), Ok(("10.0.0.5".into(), 10250)));
        let mut no_port = node.clone();
        no_port["status"]["daemonEndpoints"] = json!({});
        assert!(endpoint(&no_port).unwrap_err().contains("kubelet port"));
        let mut no_addr = node;
        no_addr["status"]["addresses"] = json!([]);
        assert!(endpoint(&no_addr)
            .unwrap_err()
            .contains("no preferred addresses"));
        assert_eq!(join_host_port("::1", 1), "[::1]:1");
    }
}
