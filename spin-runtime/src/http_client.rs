//! Sends a guest's outbound HTTP request over the network: one HTTP/1.1 connection per
//! request, over TCP or, for `https`, TLS with the client configuration of [`crate::tls`].
//!
//! wasmtime-wasi-http's `default_send_request` trusts only the compiled-in Mozilla roots;
//! Spin's default client configuration trusts the platform's roots as well (those of the
//! container's `/etc/ssl/certs/ca-certificates.crt`, where spin-operator mounts the
//! executor's CA bundle, or of `SSL_CERT_FILE`), which is what [`crate::tls`] gives. The
//! rest behaves as wasmtime-wasi-http's: the request options' connect, first-byte and
//! between-bytes timeouts (10 minutes each by default), the request sent in origin form,
//! and the returned future driving the connection until the response body is done.
//! This module owns only the transport; [`crate::outbound`] decides whether a request may
//! go out and serves in-app targets.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions};

/// A connection's stream, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// The timeout used when the request options give none (wasmtime-wasi-http's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The rustls server name for `authority` (`host:port`, IPv6 hosts in brackets).
fn server_name(authority: &str) -> Result<ServerName<'static>, Error> {
    if let Ok(addr) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(addr.ip()));
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid)
}

/// The response body, failing when the server pauses longer than the between-bytes
/// timeout.
struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// Connects to `authority` (`host:port`), with TLS when `tls`.
async fn connect(authority: &str, tls: bool, timeout: Duration) -> Result<Box<dyn Stream>, Error> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    if !tls {
        return Ok(Box::new(tcp));
    }
    let config = crate::tls::client_config()
        .map_err(|e| Error::Tls(std::io::Error::other(e.to_string())))?;
    let name = server_name(authority)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(stream) => Ok(Box::new(stream.map_err(Error::Tls)?)),
        Err(_) => Err(Error::ConnectionTimeout),
    }
}

/// Sends `req` (absolute URI) and returns the response with the future that drives the
/// connection to its end.
pub async fn send<B>(
    mut req: Request<B>,
    options: Option<RequestOptions>,
) -> Result<
    (
        Response<impl Body<Data = Bytes, Error = Error>>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
>
where
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let uri = req.uri();
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let authority = match authority.port() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:{}", if tls { 443 } else { 80 }),
    };
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    // tokio's interval panics on zero; 1 ns is as good as zero.
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(Duration::from_nanos(1));

    let stream = connect(&authority, tls, connect_timeout).await?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // Origin form: scheme and authority go only to a proxy.
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, Error>(res.map(|incoming| IncomingBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    Ok((res, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(e) => Err(e.into()),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_authorities() {
        assert_eq!(
            server_name("example.com:443").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        assert!(matches!(
            server_name("127.0.0.1:8443").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:8443").unwrap(),
            ServerName::IpAddress(_)
        ));
    }
}
