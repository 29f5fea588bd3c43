//! In-process service chaining: the HTTP trigger as its app's [`LocalHandler`].
//!
//! This module owns where a chained request goes once [`crate::outbound`] has checked it
//! against `allowed_outbound_hosts`. No socket is opened:
//!
//! - `http://<id>.spin.internal/...` runs component `<id>` (private components included)
//!   with Spin's synthetic route match: route `/...`, `spin-path-info` the whole path,
//!   `spin-client-addr` `127.0.0.1:0`, the `Host` dropped and the authority kept (so
//!   `spin-full-url` is `http://<id>.spin.internal/...`); an unknown id fails the request
//!   with `destination-not-found`;
//! - `http://self/...` and relative URLs go through the app's router exactly as a request
//!   arriving at the listener (well-known endpoints, static responses and 404 included),
//!   with the listener's address as authority and `Host`, as Spin's request to its own
//!   origin has them.

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::app::Target;
use crate::http_trigger::HttpServer;
use crate::outbound::{LocalHandler, LocalResponse, LocalTarget};
use crate::routing::{RouteMatch, RoutePattern};

/// `spin-client-addr` of chained requests, as in Spin.
pub const CHAINED_CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The route a component reached by `<id>.spin.internal` is treated as matching.
const SYNTHETIC_ROUTE: &str = "/...";

impl LocalHandler for HttpServer {
    fn handle_local(
        self: Arc<Self>,
        target: LocalTarget,
        request: http::Request<WasiBody>,
    ) -> LocalResponse {
        Box::pin(async move {
            match target {
                LocalTarget::App => {
                    let origin = self.origin.get().map_or("self", String::as_str);
                    let request = to_origin(request, origin)?;
                    Ok(self.handle(request, CHAINED_CLIENT_ADDR).await)
                }
                LocalTarget::Component(id) => {
                    let component = self
                        .app
                        .components
                        .get(&id)
                        .cloned()
                        .ok_or(HttpError::DestinationNotFound)?;
                    let pattern = RoutePattern::parse(SYNTHETIC_ROUTE)
                        .map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
                    let target = Target::Component(component.clone());
                    let route = RouteMatch {
                        pattern: &pattern,
                        target: &target,
                        captures: Vec::new(),
                        path_info: request.uri().path().to_string(),
                    };
                    Ok(self
                        .serve_component(&component, &route, request, CHAINED_CLIENT_ADDR)
                        .await)
                }
            }
        })
    }
}

/// Points a self request at the listener: `http://<origin><path?query>`, `Host: <origin>`.
fn to_origin(
    mut request: http::Request<WasiBody>,
    origin: &str,
) -> Result<http::Request<WasiBody>, HttpError> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .scheme("http")
        .authority(origin)
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let host = http::HeaderValue::from_str(origin).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    request.headers_mut().insert(http::header::HOST, host);
    Ok(request)
}
