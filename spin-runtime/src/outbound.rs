//! Outbound HTTP from guests, checked against the component's `allowed_outbound_hosts`.
//!
//! This module owns the allow-list syntax and the `wasi:http/outgoing-handler` hook.
//! Entries are `scheme://host[:port]` where the scheme, the host and the port may be `*`,
//! the host may be `*.domain` (any subdomain), and `{{ variable }}` templates are
//! rendered at start. A missing port means the scheme's default port. A request whose
//! URL matches no entry fails with `HTTP-request-denied`, as in Spin.
//!
//! Service chaining never opens a socket: a request to `http://<component>.spin.internal`
//! (allowed by an entry such as `http://*.spin.internal`) goes to that component, and a
//! relative URL or `http://self/...` (allowed by `http://self`) goes through the app's own
//! router, both through the [`LocalHandler`] the HTTP trigger registers in the app's
//! [`LocalHandlerSlot`]. (spin-sdk sends a relative URL with the authority `:80` or
//! `:443`, i.e. an empty host.)
//!
//! Not implemented yet: the deprecated `allowed_http_hosts`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// An allow-list entry that failed to parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid allowed_outbound_hosts entry `{entry}`: {reason}")]
pub struct Error {
    entry: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

#[derive(Debug, Clone)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "redis" | "rediss" => Some(6379),
        "mysql" => Some(3306),
        "postgres" => Some(5432),
        "mqtt" => Some(1883),
        "mqtts" => Some(8883),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parses rendered entries.
    pub fn parse(entries: &[String]) -> Result<AllowedHosts, Error> {
        let mut parsed = Vec::new();
        for entry in entries {
            let err = |reason: &str| Error {
                entry: entry.clone(),
                reason: reason.to_string(),
            };
            let (scheme, rest) = entry
                .split_once("://")
                .ok_or_else(|| err("expected scheme://host[:port]"))?;
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                return Err(err("paths are not allowed"));
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
            let port = match port {
                Some("*") => None,
                Some(p) => Some(p.parse::<u16>().map_err(|_| err("invalid port"))?),
                None => match &scheme {
                    Some(s) => Some(
                        default_port(s).ok_or_else(|| err("a port is required for this scheme"))?,
                    ),
                    None => return Err(err("a port is required when the scheme is `*`")),
                },
            };
            let host = match host {
                "*" => HostPattern::Any,
                h if h.starts_with("*.") => HostPattern::Subdomain(h[1..].to_ascii_lowercase()),
                "" => return Err(err("empty host")),
                h => HostPattern::Exact(h.to_ascii_lowercase()),
            };
            parsed.push(AllowedHost { scheme, host, port });
        }
        Ok(AllowedHosts { entries: parsed })
    }

    /// Whether a connection address such as `redis://host:port` (Redis, MQTT, ...) parses
    /// and its scheme, host and port are allowed.
    pub fn allows_address(&self, address: &str) -> bool {
        let Ok(url) = url::Url::parse(address) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        self.allows(url.scheme(), host, url.port())
    }

    /// Whether a request to `scheme://host:port` is allowed. `self` is allowed only by a
    /// `self` entry, never by wildcards; so is an empty host (a relative URL, whatever
    /// scheme the SDK gave it: spin-sdk makes them `https`), by one for `http` or `https`.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return self.allows_self("http") || self.allows_self("https");
        }
        if host == "self" {
            return self.allows_self(scheme);
        }
        let port = port.or_else(|| default_port(scheme));
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && e.port.is_none_or(|p| Some(p) == port)
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
                }
        })
    }

    /// Whether requests to the app itself (`http://self` entries) are allowed.
    fn allows_self(&self, scheme: &str) -> bool {
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && e.host == HostPattern::Exact("self".into())
        })
    }
}

/// Where an in-process request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTarget {
    /// The app's router (`http://self`, relative URLs).
    App,
    /// One component by id (`http://<id>.spin.internal`), private ones included.
    Component(String),
}

impl LocalTarget {
    /// The in-process target of a request to `host`, if it has one.
    pub fn for_host(host: &str) -> Option<LocalTarget> {
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host == "self" {
            return Some(LocalTarget::App);
        }
        host.strip_suffix(".spin.internal")
            .filter(|id| !id.is_empty())
            .map(|id| LocalTarget::Component(id.to_string()))
    }
}

/// A boxed response future of [`LocalHandler::handle_local`].
pub type LocalResponse =
    Pin<Box<dyn Future<Output = wasmtime_wasi_http::Result<http::Response<WasiBody>>> + Send>>;

/// Serves service-chaining requests in-process; implemented by the HTTP trigger.
pub trait LocalHandler: Send + Sync {
    /// Handles `request` (as the guest sent it) for `target`.
    fn handle_local(
        self: Arc<Self>,
        target: LocalTarget,
        request: http::Request<WasiBody>,
    ) -> LocalResponse;
}

/// The app's in-process handler, registered by the trigger once it exists (components are
/// loaded before it). Holds it weakly: the trigger owns the app, not the other way round.
#[derive(Clone, Default)]
pub struct LocalHandlerSlot(Arc<OnceLock<Weak<dyn LocalHandler>>>);

impl LocalHandlerSlot {
    /// Registers the handler; the first registration wins.
    pub fn register(&self, handler: Weak<dyn LocalHandler>) {
        let _ = self.0.set(handler);
    }

    fn get(&self) -> Option<Arc<dyn LocalHandler>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

impl std::fmt::Debug for LocalHandlerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHandlerSlot")
            .field("registered", &self.0.get().is_some())
            .finish()
    }
}

/// The `wasi:http` hooks of one instance: outbound requests checked against the allow
/// list, chained requests served in-process.
pub struct OutboundHttp {
    allowed: Arc<AllowedHosts>,
    local: LocalHandlerSlot,
}

impl OutboundHttp {
    /// Hooks enforcing `allowed`, chaining through `local`.
    pub fn new(allowed: Arc<AllowedHosts>, local: LocalHandlerSlot) -> Self {
        Self { allowed, local }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let allowed = self.allowed.allows(&scheme, &host, uri.port_u16());
        if !allowed {
            tracing::debug!(%scheme, %host, "outbound request denied by allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        if let Some(target) = LocalTarget::for_host(&host) {
            let Some(handler) = self.local.get() else {
                return Box::new(async { Err(wasmtime_wasi_http::Error::DestinationNotFound) });
            };
            return Box::new(async move {
                let response = handler.handle_local(target, request).await?;
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let a = AllowedHosts::parse(&[
            "https://example.com".to_string(),
            "http://*.test:8080".to_string(),
            "*://any.org:*".to_string(),
        ])
        .unwrap();
        assert!(a.allows("https", "example.com", None));
        assert!(a.allows("https", "EXAMPLE.com", Some(443)));
        assert!(!a.allows("http", "example.com", None));
        assert!(!a.allows("https", "example.com", Some(8443)));
        assert!(a.allows("http", "a.b.test", Some(8080)));
        assert!(!a.allows("http", "test", Some(8080)));
        assert!(a.allows("http", "any.org", Some(1)));
        assert!(!a.allows("http", "self", None));
        assert!(!a.allows("http", "", Some(80)));
        let chaining = AllowedHosts::parse(&[
            "http://self".to_string(),
            "http://*.spin.internal".to_string(),
        ])
        .unwrap();
        assert!(chaining.allows("http", "self", None));
        assert!(chaining.allows("http", "", Some(80)));
        assert!(chaining.allows("https", "", Some(443)));
        assert!(!chaining.allows("https", "self", None));
        assert!(chaining.allows("http", "backend.spin.internal", None));
        assert!(!chaining.allows("http", "example.com", None));
        let any = AllowedHosts::parse(&["*://*:*".to_string()]).unwrap();
        assert!(
            !any.allows("http", "self", None),
            "wildcards do not cover self"
        );
        assert_eq!(LocalTarget::for_host(""), Some(LocalTarget::App));
        assert_eq!(LocalTarget::for_host("self"), Some(LocalTarget::App));
        assert_eq!(
            LocalTarget::for_host("Backend.spin.internal"),
            Some(LocalTarget::Component("backend".into()))
        );
        assert_eq!(LocalTarget::for_host("example.com"), None);
        assert!(AllowedHosts::parse(&["example.com".to_string()]).is_err());
        assert!(!AllowedHosts::default().allows("https", "x", None));
    }
}
