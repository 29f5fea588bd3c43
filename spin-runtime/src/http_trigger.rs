//! The HTTP trigger: the listener, the reserved endpoints and per-request execution.
//!
//! This module owns what happens to a request, as Spin's `trigger-http` does it:
//!
//! - `/.well-known/spin/health` → 200 `OK`; `/.well-known/spin/info` → JSON
//!   `{name, version?, oci_image_digest?}`; anything else under the prefix → 404. These
//!   take priority over app routes.
//! - No matching route → 404 with an empty body.
//! - A component route: the `spin-*` headers are added ([`crate::headers`]); for a
//!   WASI 0.2 handler a fresh instance is created from the component's `ProxyPre` and
//!   `wasi:http/incoming-handler.handle` runs in its own task so the guest can keep
//!   streaming the body after sending headers; a WASI 0.3 handler gets the request
//!   through its instance pool ([`crate::http_p3`]).
//! - The response goes to hyper with what the guest has already produced read ahead
//!   ([`crate::response_body`]), so that a small response leaves in one write.
//! - Connections are served on the caller's runtime ([`HttpServer::serve`]) or handed
//!   round-robin to serving threads ([`HttpServer::serve_on`], [`crate::workers`]).
//! - Service-chaining requests from guests come in through [`HttpServer::handle`] and
//!   `serve_component` too, without a socket ([`crate::chaining`]).
//! - A trap, an exceeded deadline, an instantiation failure, a guest that never sets the
//!   response, or an error response → 500 with an empty body (the cause is logged).
//!
//! On shutdown the listener closes at once and open connections are drained: each is
//! told to finish (hyper's graceful shutdown: the request in flight completes, keep-alive
//! ends) and the server returns once all have, or after [`DRAIN_TIMEOUT`] — so a pod
//! stopped during a rollout answers what it had accepted, as Spin does on SIGTERM.
//!
//! The deadline uses epoch interruption: the store yields to the executor every epoch
//! tick (so a busy guest never starves other requests) and traps once the request
//! deadline has passed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::{App, AppComponent, ComponentHandler, Target};
use crate::outbound::LocalHandler;
use crate::routing::{RouteMatch, WELL_KNOWN_PREFIX};
use crate::workers::Workers;

/// Default listen address of `spinlet run` (as `spin up`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Environment variable overriding the listen address.
pub const LISTEN_ENV: &str = "SPIN_HTTP_LISTEN_ADDR";

/// Errors from serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Accepting a connection failed.
    #[error("accept failed on {addr}: {source}")]
    Accept {
        /// The listen address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Longest a shutdown waits for open connections to finish.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves an app over HTTP.
pub struct HttpServer {
    pub(crate) app: Arc<App>,
    scheme: &'static str,
    /// The listener's `host:port`, the origin of `http://self` requests.
    pub(crate) origin: OnceLock<String>,
    /// Set once the server stops accepting: connections finish and close.
    draining: tokio::sync::watch::Sender<bool>,
    /// Connections being served, for the drain.
    open: std::sync::atomic::AtomicUsize,
    /// Requests answered, for the serve path's idle release ([`crate::idle`]).
    pub(crate) activity: crate::idle::Activity,
}

/// Counts one open connection while it lives.
struct OpenConnection<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> OpenConnection<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OpenConnection(count)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl HttpServer {
    /// A server for `app` over plain HTTP; it also serves the app's service chaining.
    pub fn new(app: Arc<App>) -> Arc<Self> {
        let server = Arc::new(Self {
            app,
            scheme: "http",
            origin: OnceLock::new(),
            draining: tokio::sync::watch::Sender::new(false),
            open: std::sync::atomic::AtomicUsize::new(0),
            activity: crate::idle::Activity::default(),
        });
        let local: Weak<dyn LocalHandler> = Arc::downgrade(&server) as Weak<HttpServer>;
        server.app.local.register(local);
        server
    }

    /// Accepts connections on `listener` until `shutdown` completes and serves them on
    /// the caller's runtime.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.accept_loop(listener, shutdown, |server, stream, client| {
            tokio::spawn(server.serve_connection(stream, client));
        })
        .await
    }

    /// Accepts connections on `listener` until `shutdown` completes and hands each to
    /// the next of `workers`' serving threads, where its requests and the instances
    /// serving them run ([`crate::workers`]).
    pub async fn serve_on(
        self: Arc<Self>,
        workers: &Workers,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.accept_loop(listener, shutdown, |server, stream, client| {
            // The socket moves to the serving thread's own reactor.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, %client, "cannot hand the connection over");
                    return;
                }
            };
            let dispatched = workers.dispatch(move || async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => server.serve_connection(stream, client).await,
                    Err(e) => {
                        tracing::warn!(error = %e, %client, "cannot register the connection")
                    }
                }
            });
            if !dispatched {
                tracing::warn!(%client, "serving thread stopped; connection dropped");
            }
        })
        .await
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        mut start: impl FnMut(Arc<Self>, tokio::net::TcpStream, SocketAddr),
    ) -> Result<(), Error> {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let _ = self.origin.set(addr.to_string());
        tokio::pin!(shutdown);
        loop {
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(source) => {
                        // Transient errors (EMFILE, ECONNABORTED) must not stop the server.
                        tracing::warn!(error = %source, %addr, "accept failed");
                        if matches!(source.kind(), std::io::ErrorKind::InvalidInput) {
                            return Err(Error::Accept { addr, source });
                        }
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            start(self.clone(), stream, client);
        }
        drop(listener);
        self.drain().await;
        Ok(())
    }

    /// Tells open connections to finish and waits until they have (or the timeout).
    async fn drain(&self) {
        self.draining.send_replace(true);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.open.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Serves one connection, HTTP/1 or HTTP/2, until the client closes it.
    async fn serve_connection(self: Arc<Self>, stream: tokio::net::TcpStream, client: SocketAddr) {
        let service_owner = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = self.clone();
            async move { Ok::<_, Infallible>(server.handle(req, client).await) }
        });
        let _open = OpenConnection::new(&service_owner.open);
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut draining = service_owner.draining.subscribe();
        let mut told = *draining.borrow_and_update();
        if told {
            conn.as_mut().graceful_shutdown();
        }
        let result = loop {
            tokio::select! {
                r = conn.as_mut() => break r,
                changed = draining.changed(), if !told => {
                    told = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, %client, "connection ended with an error");
        }
    }

    /// Handles one request.
    pub async fn handle<B>(
        &self,
        req: Request<B>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // A clone of the URI shares its bytes, so routing borrows no copy of the path.
        let uri = req.uri().clone();
        let path = uri.path();
        if path.starts_with(WELL_KNOWN_PREFIX) {
            return self.well_known(path);
        }
        let Some(route) = self.app.router.route(path) else {
            return empty(StatusCode::NOT_FOUND);
        };
        match route.target {
            Target::Static(r) => static_response(r),
            Target::Component(component) => {
                let component = component.clone();
                let response = self.serve_component(&component, &route, req, client).await;
                self.activity.answered();
                response
            }
        }
    }

    /// Runs `component` for a request that matched `route`: the `spin-*` headers, then
    /// [`Self::execute`]; any failure is a 500 with an empty body.
    pub(crate) async fn serve_component<B>(
        &self,
        component: &Arc<AppComponent>,
        route: &RouteMatch<'_, Target>,
        req: Request<B>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // Clones share the request's bytes; the request itself moves on below.
        let host = req.headers().get(http::header::HOST).cloned();
        let uri = req.uri().clone();
        let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let result = match crate::headers::spin_headers(
            self.scheme,
            host.as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost"),
            path_and_query,
            route,
            client,
        ) {
            Ok(extra) => self.execute(component, req, extra).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let body = crate::response_body::Prefetched::new(body).await;
                Response::from_parts(parts, body.boxed_unsync())
            }
            Err(e) => {
                tracing::error!(component = %component.id, error = %format!("{e:#}"), "request failed");
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    async fn execute<B>(
        &self,
        component: &Arc<AppComponent>,
        req: Request<B>,
        extra: Vec<(http::HeaderName, http::HeaderValue)>,
    ) -> wasmtime::Result<Response<HyperOutgoingBody>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let (mut parts, body) = req.into_parts();
        parts.uri =
            crate::headers::prepare_request(self.scheme, &parts.uri, &mut parts.headers, extra)?;
        let req = Request::from_parts(parts, body);

        let handler = component.handler();
        let pre = match &*handler {
            ComponentHandler::P2(pre) => pre.clone(),
            ComponentHandler::P3(handler) => {
                let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
                return handler.handle(req).await;
            }
        };
        drop(handler);
        // The engine that compiled the code (the fast tier's until it is replaced).
        let mut store = Store::new(pre.engine(), component.new_state()?);
        store.limiter(|s| &mut s.limits);
        let deadline = self.app.request_timeout.map(|t| Instant::now() + t);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match deadline {
            Some(d) if Instant::now() >= d => {
                Err(wasmtime::format_err!("request deadline exceeded"))
            }
            _ => Ok(UpdateDeadline::Yield(1)),
        });

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let scheme = if self.scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let wasi_req = store
            .data_mut()
            .incoming_http()
            .new_incoming_request(scheme, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let id = component.id.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, wasi_req, out)
                .await
        });

        // The epoch deadline stops guest code; this bounds time spent in host calls too.
        let received = match self.app.request_timeout {
            Some(timeout) => match tokio::time::timeout(timeout, receiver).await {
                Ok(r) => r,
                Err(_) => {
                    task.abort();
                    return Err(wasmtime::format_err!("request deadline exceeded"));
                }
            },
            None => receiver.await,
        };
        match received {
            Ok(Ok(resp)) => {
                // The guest may still be streaming the body; log a late failure.
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(component = %id, error = %format!("{e:#}"), "guest failed after sending the response headers")
                        }
                        Err(e) => {
                            tracing::error!(component = %id, error = %e, "guest task panicked")
                        }
                    }
                });
                Ok(resp)
            }
            Ok(Err(code)) => Err(wasmtime::format_err!(
                "guest returned an error response: {code:?}"
            )),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(wasmtime::format_err!(
                    "guest returned without setting the response-outparam"
                )),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(wasmtime::format_err!("guest task panicked: {e}")),
            },
        }
    }

    fn well_known(&self, path: &str) -> Response<HyperOutgoingBody> {
        match &path[WELL_KNOWN_PREFIX.len()..] {
            "health" => full(StatusCode::OK, "text/plain", Bytes::from_static(b"OK")),
            "info" => {
                let mut info = serde_json::Map::new();
                info.insert("name".into(), self.app.name.clone().into());
                if let Some(v) = &self.app.version {
                    info.insert("version".into(), v.clone().into());
                }
                if let Some(d) = &self.app.oci_image_digest {
                    info.insert("oci_image_digest".into(), d.clone().into());
                }
                let body = serde_json::Value::Object(info).to_string();
                full(StatusCode::OK, "application/json", Bytes::from(body))
            }
            _ => empty(StatusCode::NOT_FOUND),
        }
    }
}

fn body(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes)
        .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
        .boxed_unsync()
}

fn empty(status: StatusCode) -> Response<HyperOutgoingBody> {
    let mut resp = Response::new(body(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    bytes: Bytes,
) -> Response<HyperOutgoingBody> {
    let mut resp = Response::new(body(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

fn static_response(r: &crate::manifest::StaticResponse) -> Response<HyperOutgoingBody> {
    let status = r
        .status_code
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut resp = Response::new(body(Bytes::from(r.body.clone().unwrap_or_default())));
    *resp.status_mut() = status;
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
