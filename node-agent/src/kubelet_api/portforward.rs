//! `/portForward/{ns}/{pod}[/{uid}]` (GET or POST), as the kubelet serves it: the
//! request is upgraded to one of the protocols port-forward clients speak, and each
//! forwarded connection reaches `<podIP>:<port>`, where the pod's sandbox serves.
//!
//! - plain **SPDY/3.1** (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
//!   portforward.k8s.io`): what kube-apiserver sends a kubelet, and kubectl's fallback
//!   ([`spdy`], framing in [`frame`]);
//! - **WebSocket**: kubectl's SPDY tunnel (`SPDY/3.1+portforward.k8s.io`) or the
//!   channel protocol of kube-rs and other clients (`v4.channel.k8s.io`, ports in the
//!   `port` query) ([`websocket`]).
//!
//! Checks (in the kubelet's order): the WebSocket ports, the pod (404 when it is not
//! bound to this node, or its uid differs), the handshake; errors are plain text.
//! Owns the handshake and hands the upgraded connection over; reads the pod through
//! the kube client, never touches sandboxes.

pub mod forward;
pub mod frame;
pub mod spdy;
pub mod websocket;

use std::net::IpAddr;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::{text, Body, State};
use forward::Target;
use websocket::Protocol;

/// The port-forward protocol version header and its one version.
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const PORT_FORWARD_V1: &str = "portforward.k8s.io";

/// Whether `name`'s comma-separated values include `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Every value of `name`, split on commas.
fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A WebSocket upgrade request (the kubelet's `wsstream.IsWebSocketRequest`).
fn is_websocket(headers: &HeaderMap) -> bool {
    has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
}

/// The most ports one channel-protocol connection forwards: two channels each, and a
/// channel is one byte.
const MAX_CHANNEL_PORTS: usize = 128;

/// The ports of a channel-protocol request (`NewV4Options`): every `port` parameter,
/// each a comma-separated list of ports 1–65535, at most [`MAX_CHANNEL_PORTS`].
pub fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let values: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "port")
        .map(|(_, v)| v.into_owned())
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    let mut ports = Vec::new();
    for value in &values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port: u16 = p.parse().map_err(|_| {
                format!("unable to parse {value:?} as a port: strconv.ParseUint: parsing {p:?}: invalid syntax")
            })?;
            if port < 1 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.len() > MAX_CHANNEL_PORTS {
        return Err(format!(
            "at most {MAX_CHANNEL_PORTS} ports can be forwarded over one connection"
        ));
    }
    Ok(ports)
}

fn switching(headers: &[(header::HeaderName, &str)]) -> Response<Body> {
    let mut r = Response::new(Empty::new().boxed());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().append(name.clone(), v);
        }
    }
    r
}

/// Answers a port-forward request; on success the connection is served in the
/// background once hyper hands it over.
pub(super) async fn handle(
    state: &State,
    mut req: Request<Incoming>,
    ns: &str,
    name: &str,
    uid: Option<&str>,
) -> Response<Body> {
    let headers = req.headers();
    let websocket = if is_websocket(headers) {
        let offered = values(headers, "sec-websocket-protocol");
        let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
        match websocket::negotiate(&offered) {
            Ok((Protocol::Tunnel, name)) => Some((Protocol::Tunnel, name, Vec::new())),
            Ok((p, name)) => match query_ports(req.uri().query()) {
                Ok(ports) => Some((p, name, ports)),
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            },
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        }
    } else {
        None
    };
    let pod = match state.pod(ns, name).await {
        Ok(Some(p)) => p,
        Ok(None) => return text(StatusCode::NOT_FOUND, "pod does not exist"),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| !u.is_empty() && u != pod_uid) {
        return text(StatusCode::NOT_FOUND, "pod not found");
    }
    let ip: Option<IpAddr> = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let Some(ip) = ip else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pod {ns}/{name} has no IP address: its sandbox is not running"),
        );
    };
    let target = Arc::new(Target {
        pod: format!("{ns}/{name}"),
        uid: pod_uid,
        ip,
    });
    let upgrade = hyper::upgrade::on(&mut req);
    let headers = req.headers();
    match websocket {
        Some((protocol, chosen, ports)) => {
            let version_ok = headers
                .get("sec-websocket-version")
                .is_some_and(|v| v.as_bytes() == b"13");
            let Some(key) = headers.get("sec-websocket-key").filter(|_| version_ok) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "websocket: not a websocket handshake: 'Sec-WebSocket-Key' or 'Sec-WebSocket-Version' missing or wrong",
                );
            };
            let accept = derive_accept_key(key.as_bytes());
            let mut reply = vec![
                (header::UPGRADE, "websocket"),
                (header::CONNECTION, "Upgrade"),
                (header::SEC_WEBSOCKET_ACCEPT, accept.as_str()),
            ];
            if let Some(p) = chosen {
                reply.push((header::SEC_WEBSOCKET_PROTOCOL, p));
            }
            let response = switching(&reply);
            tokio::spawn(async move {
                let io = match upgrade.await {
                    Ok(io) => TokioIo::new(io),
                    Err(e) => {
                        tracing::debug!(error = %e, "port-forward: upgrade failed");
                        return;
                    }
                };
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                match protocol {
                    Protocol::Tunnel => websocket::serve_tunnel(ws, target).await,
                    Protocol::Channels { base64 } => {
                        websocket::serve_channels(ws, target, ports, base64).await
                    }
                }
            });
            response
        }
        None => {
            let is_spdy = has_token(headers, header::CONNECTION, "upgrade")
                && has_token(headers, header::UPGRADE, "spdy/3.1");
            if !is_spdy {
                return text(
                    StatusCode::BAD_REQUEST,
                    "unable to upgrade: missing upgrade headers in request",
                );
            }
            let offered = values(headers, PROTOCOL_HEADER);
            if offered.is_empty() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "unable to upgrade: X-Stream-Protocol-Version is required",
                );
            }
            if !offered.iter().any(|p| p == PORT_FORWARD_V1) {
                let mut r = text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{PORT_FORWARD_V1}]"
                    ),
                );
                r.headers_mut().insert(
                    "x-accepted-stream-protocol-versions",
                    HeaderValue::from_static(PORT_FORWARD_V1),
                );
                return r;
            }
            let response = switching(&[
                (header::CONNECTION, "Upgrade"),
                (header::UPGRADE, "SPDY/3.1"),
                (
                    header::HeaderName::from_static(PROTOCOL_HEADER),
                    PORT_FORWARD_V1,
                ),
            ]);
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(io) => spdy::serve(TokioIo::new(io), target).await,
                    Err(e) => tracing::debug!(error = %e, "port-forward: upgrade failed"),
                }
            });
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_as_the_kubelet_reads_them() {
        assert_eq!(
            query_ports(Some("port=80&port=8080,9090")).unwrap(),
            vec![80, 8080, 9090]
        );
        assert_eq!(query_ports(Some("&port=1")).unwrap(), vec![1]);
        assert!(query_ports(None).unwrap_err().contains("is required"));
        assert!(query_ports(Some("port="))
            .unwrap_err()
            .contains("cannot be empty"));
        assert!(query_ports(Some("port=0"))
            .unwrap_err()
            .contains("must be > 0"));
        assert!(query_ports(Some("port=http"))
            .unwrap_err()
            .contains("unable to parse"));
        assert!(query_ports(Some("port=70000")).is_err());
        let many = (1..=129)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(query_ports(Some(&format!("port={many}"))).is_err());
    }
}
