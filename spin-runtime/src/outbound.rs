//! Outbound HTTP from guests, checked against the component's `allowed_outbound_hosts`.
//!
//! This module owns the `wasi:http/outgoing-handler` hook. The rule grammar and matching
//! are [`crate::outbound_rules`] (re-exported here as [`AllowedHosts`] and [`Error`]),
//! shared by every outbound interface. A request whose URL matches no rule fails with
//! `HTTP-request-denied`, as in Spin.
//!
//! Service chaining never opens a socket: a request to `http://<component>.spin.internal`
//! (allowed by an entry such as `http://*.spin.internal`) goes to that component, and a
//! relative URL, `http://self/...` or Spin's `http://self.alt/...` (allowed by
//! `http://self`) goes through the app's own router, all through the [`LocalHandler`] the
//! HTTP trigger registers in the app's [`LocalHandlerSlot`]. (spin-sdk sends a relative URL with the authority `:80` or
//! `:443`, i.e. an empty host.)
//!
//! Requests that leave the process go through [`crate::http_client`] (TLS with the shared
//! trust roots of [`crate::tls`]).
//!
//! Not implemented yet: the deprecated `allowed_http_hosts`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

pub use crate::outbound_rules::{AllowedHosts, Error};

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
        if host.is_empty() || host == "self" || host == "self.alt" {
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

    /// The component's rules (also what its `wasi:sockets` name lookups are checked
    /// against).
    pub fn allowed(&self) -> &AllowedHosts {
        &self.allowed
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
            let (res, io) = crate::http_client::send(request, options).await?;
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
    fn local_targets() {
        assert_eq!(LocalTarget::for_host(""), Some(LocalTarget::App));
        assert_eq!(LocalTarget::for_host("self"), Some(LocalTarget::App));
        assert_eq!(LocalTarget::for_host("self.alt"), Some(LocalTarget::App));
        assert_eq!(
            LocalTarget::for_host("Backend.spin.internal"),
            Some(LocalTarget::Component("backend".into()))
        );
        assert_eq!(LocalTarget::for_host("example.com"), None);
    }
}
