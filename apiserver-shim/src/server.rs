//! The HTTPS listener: TLS handshake (rustls), HTTP/1.1 (with connection upgrades) and
//! HTTP/2 (hyper), authentication (`GET /cacerts`, the CA a joining agent checks against
//! its token, is the one unauthenticated route), and the translation between HTTP and the
//! API's [`Call`]/[`Reply`]. Upgrade requests bound for a kubelet (`pods/portforward`,
//! `nodes/{name}/proxy`) skip the body and go to `handlers::upgrade` with the request
//! itself, which hyper needs to hand the connection over. One task per connection; no
//! logging on the request path unless `debug` is enabled.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, Call, Reply};
use crate::auth;
use crate::decode::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::handlers;
use crate::request::Query;

type Body = BoxBody<Bytes, Infallible>;

fn full(code: u16, content_type: &str, bytes: Vec<u8>, warnings: &[String]) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type);
    for w in warnings {
        b = b.header(header::WARNING, format!("299 - {:?}", w));
    }
    b.body(Full::new(Bytes::from(bytes)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn render(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json {
            code,
            body,
            content_type,
            warnings,
        } => full(
            code,
            content_type,
            serde_json::to_vec(&body).unwrap_or_default(),
            &warnings,
        ),
        Reply::Text(code, text) => full(code, "text/plain; charset=utf-8", text.into_bytes(), &[]),
        Reply::RawJson(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes).boxed())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())),
        Reply::Proxied {
            code,
            content_type,
            body,
        } => {
            let stream = futures::stream::unfold(body, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY))
                .header(header::CONTENT_TYPE, content_type)
                .body(StreamBody::new(stream).boxed())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
        }
        Reply::Stream(rx) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache, private")
                .body(StreamBody::new(stream).boxed())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
        }
    }
}

/// What the listener authenticates requests with and what it hands out without.
pub struct Credentials {
    /// Bearer tokens accepted for the admin: the join token's secret, and the whole join
    /// token (`K10…::server:<secret>`, what `server/token` holds) for clients that send the
    /// file as it is.
    pub tokens: Vec<String>,
    /// The CA bundle `GET /cacerts` answers with.
    pub cacerts: String,
}

async fn handle(
    api: Arc<Api>,
    credentials: Arc<Credentials>,
    has_cert: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // The cluster CA, unauthenticated, as k3s serves it: a joining agent checks it against
    // its token's hash before trusting it (`pki::join`).
    if req.uri().path() == "/cacerts" && req.method() == http::Method::GET {
        let ca = credentials.cacerts.as_bytes().to_vec();
        return Ok(full(200, "text/plain; charset=utf-8", ca, &[]));
    }
    let authenticated = credentials
        .tokens
        .iter()
        .any(|t| auth::authenticate(has_cert, req.headers(), t).is_some());
    if !authenticated {
        return Ok(render(ApiError::unauthorized().into()));
    }
    if let Some(route) = handlers::upgrade_route(req.headers(), req.uri().path()) {
        tracing::debug!(method = %req.method(), path = %req.uri().path(), "upgrade");
        return Ok(match handlers::upgrade(&api, route, req).await {
            Ok(head) => head.map(|()| Empty::new().boxed()),
            Err(reply) => render(reply),
        });
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(render(ApiError::too_large(MAX_BODY_BYTES).into()));
        }
        Err(e) => {
            return Ok(render(
                ApiError::bad_request(format!("reading body: {e}")).into(),
            ))
        }
    };
    if body.len() > MAX_BODY_BYTES {
        return Ok(render(ApiError::too_large(MAX_BODY_BYTES).into()));
    }
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        body,
    };
    tracing::debug!(method = %call.method, path = %call.path, "request");
    Ok(render(api.handle(call).await))
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    credentials: Credentials,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let credentials = Arc::new(credentials);
    loop {
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let credentials = credentials.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let has_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let service = hyper::service::service_fn(move |req| {
                handle(api.clone(), credentials.clone(), has_cert, req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
