//! The `spin-*` request headers Spin adds for the guest, and the request rewrite that
//! goes with them.
//!
//! This module owns the values of `spin-full-url`, `spin-path-info`,
//! `spin-matched-route`, `spin-base-path`, `spin-raw-component-route`,
//! `spin-component-route`, `spin-client-addr` and `spin-path-match-<name>`, computed
//! exactly as Spin's `trigger-http/src/headers.rs` does, and the WASI-HTTP request
//! preparation: `Connection` dropped, a `*.spin.internal` `Host` dropped, and the URI's
//! scheme and authority rebuilt from the listener scheme and the `Host` header.

use std::net::SocketAddr;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::routing::RouteMatch;

/// The `spin-*` headers for a request that matched `route`, in Spin's order; `host` is
/// the request's `Host`, `path_and_query` its path and query as received. The names are
/// static and each value is built once, since this runs on every request.
pub fn spin_headers<T>(
    scheme: &str,
    host: &str,
    path_and_query: &str,
    route: &RouteMatch<'_, T>,
    client_addr: SocketAddr,
) -> Result<Vec<(HeaderName, HeaderValue)>, PrepareError> {
    let owned = |name: &'static str, v: String| {
        HeaderValue::try_from(v).map_err(|_| PrepareError::InvalidHeader(name.to_string()))
    };
    let copied = |name: &'static str, v: &str| {
        HeaderValue::from_str(v).map_err(|_| PrepareError::InvalidHeader(name.to_string()))
    };
    let mut headers = Vec::with_capacity(7 + route.captures.len());
    headers.push((
        HeaderName::from_static(PATH_INFO),
        copied(PATH_INFO, &route.path_info)?,
    ));
    headers.push((
        HeaderName::from_static(FULL_URL),
        owned(FULL_URL, concat(&[scheme, "://", host, path_and_query]))?,
    ));
    headers.push((
        HeaderName::from_static(MATCHED_ROUTE),
        copied(MATCHED_ROUTE, route.pattern.based())?,
    ));
    headers.push((
        HeaderName::from_static(BASE_PATH),
        HeaderValue::from_static("/"),
    ));
    headers.push((
        HeaderName::from_static(RAW_COMPONENT_ROUTE),
        copied(RAW_COMPONENT_ROUTE, route.pattern.raw())?,
    ));
    headers.push((
        HeaderName::from_static(COMPONENT_ROUTE),
        copied(COMPONENT_ROUTE, route.pattern.raw_or_prefix())?,
    ));
    headers.push((HeaderName::from_static(CLIENT_ADDR), {
        // Formatted on the stack (the longest `[v6%scope]:port` fits), copied once.
        use std::io::Write;
        let mut buf = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cursor, "{client_addr}");
        let len = cursor.position() as usize;
        HeaderValue::from_bytes(&buf[..len])
            .map_err(|_| PrepareError::InvalidHeader(CLIENT_ADDR.to_string()))?
    }));
    for (name, v) in &route.captures {
        let header = format!(
            "spin-path-match-{}",
            name.to_ascii_lowercase().replace('_', "-")
        );
        let name = HeaderName::try_from(header.as_str())
            .map_err(|_| PrepareError::InvalidHeader(header.clone()))?;
        headers.push((name, copied("spin-path-match-*", v)?));
    }
    Ok(headers)
}

/// `parts` joined into a String allocated once at its final size.
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

const PATH_INFO: &str = "spin-path-info";
const FULL_URL: &str = "spin-full-url";
const MATCHED_ROUTE: &str = "spin-matched-route";
const BASE_PATH: &str = "spin-base-path";
const RAW_COMPONENT_ROUTE: &str = "spin-raw-component-route";
const COMPONENT_ROUTE: &str = "spin-component-route";
const CLIENT_ADDR: &str = "spin-client-addr";

/// Whether `host` (a `Host` header value, maybe with a port) is a service-chaining host.
pub fn is_service_chaining_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name.ends_with(".spin.internal")
}

/// Rewrites a request's headers and URI for a WASI-HTTP guest, as Spin's `prepare_request`
/// does, inserting `extra` (the `spin-*` headers). Fails when the request has neither a
/// `Host` header nor an authority, or when they disagree.
pub fn prepare_request(
    scheme: &str,
    uri: &Uri,
    headers: &mut HeaderMap,
    extra: Vec<(HeaderName, HeaderValue)>,
) -> Result<Uri, PrepareError> {
    headers.remove(http::header::CONNECTION);
    if let Some(host) = headers.get(http::header::HOST) {
        if host.to_str().is_ok_and(is_service_chaining_host) {
            headers.remove(http::header::HOST);
        }
    }
    headers.reserve(extra.len());
    for (name, value) in extra {
        headers.insert(name, value);
    }
    // The URI keeps its path and query (shared, not copied); scheme and authority are
    // the listener's and the `Host` header's.
    let authority = match (uri.authority(), headers.get(http::header::HOST)) {
        (Some(a), Some(h)) if a.as_str().as_bytes() != h.as_bytes() => {
            return Err(PrepareError::HostMismatch)
        }
        (Some(a), _) => a.clone(),
        (None, Some(h)) => {
            Authority::try_from(h.as_bytes()).map_err(|_| PrepareError::InvalidUri)?
        }
        (None, None) => return Err(PrepareError::NoHost),
    };
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(match scheme {
        "https" => Scheme::HTTPS,
        "http" => Scheme::HTTP,
        other => Scheme::try_from(other).map_err(|_| PrepareError::InvalidUri)?,
    });
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).map_err(|_| PrepareError::InvalidUri)
}

/// The header filter of a request entering a guest.
///
/// wasmtime-wasi-http strips its default forbidden headers from every header map it
/// hands a guest, `Host` included, because the same filter guards what guests may set
/// on outgoing requests. Spin gives handlers the incoming `Host` (it is what
/// `spin-full-url` and the request URI's authority are built from), so the incoming
/// request is converted with this filter, which forbids the same hop-by-hop headers but
/// not `Host`; requests a guest sends keep the default filter.
#[derive(Debug, Default, Clone, Copy)]
pub struct IncomingHeaders;

impl wasmtime_wasi_http::WasiHttpHooks for IncomingHeaders {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        is_forbidden_incoming(name)
    }

    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        std::sync::Arc::new(is_forbidden_incoming)
    }
}

fn is_forbidden_incoming(name: &HeaderName) -> bool {
    name != http::header::HOST && wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

/// Why a request could not be prepared for the guest.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// No `Host` header and no authority in the request URI.
    #[error("request has no Host header and no authority")]
    NoHost,
    /// The `Host` header differs from the URI authority.
    #[error("Host header does not match the request URI authority")]
    HostMismatch,
    /// The rebuilt URI is invalid.
    #[error("cannot rebuild the request URI")]
    InvalidUri,
    /// A computed header is not a valid header.
    #[error("invalid header {0}")]
    InvalidHeader(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Router;

    /// The worked example from Spin's headers tests.
    #[test]
    fn worked_example() {
        let (router, _) = Router::build(vec![("/foo/...".to_string(), "c")]).unwrap();
        let m = router.route("/foo/bar").unwrap();
        let client: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let h = spin_headers(
            "https",
            "fermyon.dev",
            "/foo/bar?key1=value1&key2=value2",
            &m,
            client,
        )
        .unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(
            get("spin-full-url"),
            Some("https://fermyon.dev/foo/bar?key1=value1&key2=value2")
        );
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get("spin-component-route"), Some("/foo"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));
    }

    #[test]
    fn path_match_headers() {
        let (router, _) = Router::build(vec![("/users/:user_id".to_string(), "c")]).unwrap();
        let m = router.route("/users/9").unwrap();
        let h = spin_headers("http", "h", "/users/9", &m, "127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(h
            .iter()
            .any(|(k, v)| k == "spin-path-match-user-id" && v == "9"));
    }

    #[test]
    fn incoming_requests_keep_host_but_not_hop_by_hop_headers() {
        assert!(!is_forbidden_incoming(&http::header::HOST));
        assert!(is_forbidden_incoming(&http::header::CONNECTION));
        assert!(is_forbidden_incoming(&http::header::TRANSFER_ENCODING));
        assert!(!is_forbidden_incoming(&http::header::CONTENT_TYPE));
    }

    #[test]
    fn prepare_rebuilds_uri_and_drops_connection() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com:3000"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        let uri: Uri = "/a?b=c".parse().unwrap();
        let out = prepare_request("http", &uri, &mut headers, vec![]).unwrap();
        assert_eq!(out.to_string(), "http://example.com:3000/a?b=c");
        assert!(headers.get("connection").is_none());
        let mut no_host = HeaderMap::new();
        assert!(prepare_request("http", &uri, &mut no_host, vec![]).is_err());
    }
}
