//! The kubelet API: an HTTPS server on the kubelet port (10250) that the API server
//! proxies `pods/log`, `pods/portforward` and `nodes/proxy` to. Routes: `GET /healthz`,
//! `GET /pods` (the pods bound to this node), `GET /containerLogs/{ns}/{pod}/{container}`
//! with the kubelet's query parameters ([`logs`]), `GET /stats/summary` and
//! `GET /metrics/resource` ([`stats`]), and `GET|POST /portForward/{ns}/{pod}[/{uid}]`
//! (SPDY and WebSocket upgrades, [`portforward`]).
//!
//! TLS as a kubelet given no serving certificate: a self-signed one made at start.
//! Clients authenticate with a certificate chaining to the cluster CA
//! ([`crate::AgentConfig::client_ca`]); any other request is a 401, and with no CA
//! configured every request is. Authorization is "authenticated means allowed" (the
//! cluster CA signs only the admin and the API server's kubelet client).
//!
//! Owns the listener and the answers. Reads pods through the kube client and logs from
//! the files the sandboxes write; never writes pod status, never touches sandboxes or
//! log files.

pub mod logs;
pub mod portforward;
pub mod stats;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::AgentConfig;
use logs::{LogOptions, OptionsError, Reader};

/// Errors starting the kubelet API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The self-signed serving certificate could not be made.
    #[error("serving certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The cluster CA given for client authentication is not usable.
    #[error("client CA: {0}")]
    ClientCa(String),
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

type Body = BoxBody<Bytes, Infallible>;

/// A bound kubelet port, ready to serve (bound before the Node is registered, so the
/// Node advertises the port actually bound).
pub struct Listener {
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

impl Listener {
    /// Binds `0.0.0.0:<kubelet_port>` (0: any free port) and prepares TLS.
    pub async fn bind(config: &AgentConfig) -> Result<Listener, Error> {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.kubelet_port);
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Listener {
            tcp,
            tls: tls_config(config)?,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.tcp.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn serve(
        self,
        client: kube::Client,
        config: Arc<AgentConfig>,
        shutdown: CancellationToken,
    ) {
        let acceptor = TlsAcceptor::from(self.tls);
        loop {
            let (tcp, _) = tokio::select! {
                r = self.tcp.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet API: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = State {
                client: client.clone(),
                config: config.clone(),
                shutdown: shutdown.clone(),
            };
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let authenticated = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let stop = state.shutdown.clone();
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(state.handle(authenticated, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }
}

/// The rustls configuration: a fresh self-signed certificate for the node's names, and
/// client certificates verified against the cluster CA.
fn tls_config(config: &AgentConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut names = vec![
        config.node_name.clone(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    if let Some(ip) = config.node_ip {
        names.push(ip.to_string());
    }
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let c = c.map_err(|e| Error::ClientCa(e.to_string()))?;
                roots.add(c).map_err(|e| Error::ClientCa(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(Error::ClientCa("no certificate in the PEM".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_reply(value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// What a request handler needs.
#[derive(Clone)]
struct State {
    client: kube::Client,
    config: Arc<AgentConfig>,
    shutdown: CancellationToken,
}

impl State {
    async fn handle(&self, authenticated: bool, req: Request<Incoming>) -> Response<Body> {
        if !authenticated {
            return text(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["portForward", ns, pod, uid @ ..] = segments.as_slice() {
            if uid.len() <= 1 && (req.method() == Method::GET || req.method() == Method::POST) {
                let uid = uid.first().copied();
                return portforward::handle(self, req, ns, pod, uid).await;
            }
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
        }
        match segments.as_slice() {
            ["healthz"] => text(StatusCode::OK, "ok"),
            ["pods"] | ["pods", ""] => self.pods().await,
            ["containerLogs", ns, pod, container] => {
                self.container_logs(ns, pod, container, query.as_deref())
                    .await
            }
            ["stats", "summary"] | ["stats", "summary", ""] => {
                match stats::summary(&self.client, &self.config).await {
                    Ok(v) => json_reply(&v),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
            ["metrics", "resource"] => match stats::summary(&self.client, &self.config).await {
                Ok(v) => {
                    let mut r = text(
                        StatusCode::OK,
                        stats::render_metrics(&v, jiff::Timestamp::now().as_millisecond()),
                    );
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    r
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            },
            _ => text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    }

    /// The pods bound to this node, as a PodList.
    async fn pods(&self) -> Response<Body> {
        match bound_pods(&self.client, &self.config.node_name).await {
            Ok(items) => json_reply(&json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            })),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    async fn container_logs(
        &self,
        ns: &str,
        name: &str,
        container: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        if name.is_empty() {
            return text(StatusCode::BAD_REQUEST, r#"{"message": "Missing podID."}"#);
        }
        if container.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Missing container name."}"#,
            );
        }
        if ns.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Missing podNamespace."}"#,
            );
        }
        let opts = match LogOptions::parse(query, jiff::Timestamp::now()) {
            Ok(o) => o,
            Err(e @ OptionsError::Decode { .. }) => {
                return text(StatusCode::BAD_REQUEST, e.to_string())
            }
            Err(e @ OptionsError::Invalid(_)) => {
                return text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
        };
        let pod = match self.pod(ns, name).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("pod {name:?} does not exist"),
                )
            }
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let file = match log_file(&self.config, &pod, container, opts.previous) {
            Ok(f) => f,
            Err(LogFileError::NoContainer) => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("container {container:?} not found in pod {name:?}"),
                )
            }
            Err(LogFileError::Bad(message)) => return text(StatusCode::BAD_REQUEST, message),
        };
        let reader = match Reader::open(&file.path, opts.clone()) {
            Ok(r) => r,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("failed to open log file {}: {e}", file.path.display()),
                )
            }
        };
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let stop = Arc::new(AtomicBool::new(false));
        if opts.follow && !opts.previous {
            tokio::spawn(watch_container(
                self.clone(),
                ns.to_string(),
                name.to_string(),
                container.to_string(),
                file.uid.clone(),
                stop.clone(),
                tx.clone(),
            ));
        }
        let shutdown = self.shutdown.clone();
        tokio::task::spawn_blocking(move || follow(reader, file, tx, stop, shutdown));
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        r
    }

    async fn pod(&self, ns: &str, name: &str) -> Result<Option<Pod>, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        Ok(api.get_opt(name).await?.filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                == Some(self.config.node_name.as_str())
        }))
    }
}

/// The pods whose `spec.nodeName` is `node`.
pub async fn bound_pods(client: &kube::Client, node: &str) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(api.list(&lp).await?.items)
}

/// The file a log request reads.
struct LogFile {
    path: PathBuf,
    /// The container's log directory.
    dir: PathBuf,
    /// The run it is.
    run: i32,
    uid: String,
}

enum LogFileError {
    NoContainer,
    /// The kubelet's 400s (`validateContainerLogStatus`).
    Bad(String),
}

/// Which run's file a request reads: the current run, or with `previous` the one before
/// it, as the kubelet picks the container or its last terminated one.
fn log_file(
    config: &AgentConfig,
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<LogFile, LogFileError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let known = spec.is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !known {
        return Err(LogFileError::NoContainer);
    }
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container));
    let dir = crate::cri_log::pod_dir(&config.pod_log_dir, &ns, &name, &uid).join(container);
    let runs = logs::runs(&dir);
    let current = status
        .map(|s| s.restart_count)
        .filter(|n| runs.contains(n))
        .or_else(|| runs.last().copied());
    let chosen = if previous {
        current.and_then(|cur| runs.iter().rev().find(|n| **n < cur).copied())
    } else {
        current
    };
    match chosen {
        Some(run) => Ok(LogFile {
            path: logs::run_file(&dir, run),
            dir,
            run,
            uid,
        }),
        None if previous => Err(LogFileError::Bad(format!(
            "previous terminated container {container:?} in pod {name:?} not found"
        ))),
        None => {
            let reason = status
                .and_then(|s| s.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .unwrap_or_else(|| "ContainerCreating".into());
            Err(LogFileError::Bad(format!(
                "container {container:?} in pod {name:?} is waiting to start: {reason}"
            )))
        }
    }
}

/// Streams the file (following it if asked) into `tx`, on a blocking thread. A follow
/// ends when the client goes away, the pod's logs are removed, the container runs again
/// (a newer run's file appears), the watcher says the container stopped, or the agent
/// stops.
fn follow(
    mut reader: Reader,
    file: LogFile,
    tx: mpsc::Sender<Bytes>,
    stop: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let out_tx = tx.clone();
    let mut out = move |b: Vec<u8>| out_tx.blocking_send(Bytes::from(b)).is_ok();
    let mut should_stop = || {
        stop.load(Ordering::Relaxed)
            || tx.is_closed()
            || shutdown.is_cancelled()
            || !file.dir.exists()
            || logs::runs(&file.dir).last().is_some_and(|n| *n > file.run)
    };
    if let Err(e) = reader.run(&mut out, &mut should_stop) {
        tracing::debug!(error = %e, file = %file.path.display(), "reading a container log");
    }
}

/// While a follow runs: checks the pod every 2 s and stops the follow once the pod is
/// gone (or replaced) or the container no longer runs, as the kubelet's follow ends
/// when its container exits.
async fn watch_container(
    state: State,
    ns: String,
    name: String,
    container: String,
    uid: String,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Bytes>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tx.closed() => return,
            _ = state.shutdown.cancelled() => return,
        }
        let running = match state.pod(&ns, &name).await {
            Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid.as_str()) => p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == container))
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some()),
            Ok(_) => false,
            Err(_) => continue,
        };
        if !running {
            stop.store(true, Ordering::Relaxed);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;

    fn ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        let pem = cert.pem();
        (
            pem.clone(),
            rcgen::Issuer::from_ca_cert_pem(&pem, key).unwrap(),
        )
    }

    fn client_cert(
        issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, issuer).unwrap();
        (
            CertificateDer::from(cert.der().to_vec()),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// GET `path` on the kubelet API with an optional client certificate: the status,
    /// or None when the TLS handshake is refused.
    async fn get(
        port: u16,
        path: &str,
        cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> Option<u16> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)));
        let config = match cert {
            Some((c, k)) => builder.with_client_auth_cert(vec![c], k).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        Some(send.send_request(req).await.ok()?.status().as_u16())
    }

    #[tokio::test]
    async fn only_clients_with_a_certificate_from_the_cluster_ca_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        let (_, other_issuer) = ca();
        let mut config = crate::node::tests::config(dir.path());
        config.kubelet_port = 0;
        config.client_ca = Some(ca_pem);
        let listener = Listener::bind(&config).await.unwrap();
        let port = listener.port();
        assert_ne!(port, 0);
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(listener.serve(client, Arc::new(config), shutdown.clone()));

        assert_eq!(
            get(port, "/healthz", Some(client_cert(&issuer))).await,
            Some(200)
        );
        assert_eq!(
            get(port, "/nope", Some(client_cert(&issuer))).await,
            Some(404)
        );
        assert_eq!(get(port, "/healthz", None).await, Some(401));
        // A certificate from another CA does not get through the handshake.
        let other = get(port, "/healthz", Some(client_cert(&other_issuer))).await;
        assert!(other.is_none() || other == Some(401), "{other:?}");
        shutdown.cancel();
        let _ = server.await;
    }

    /// An API server stand-in answering `GET pods/p` in `default` (bound to node `n1`,
    /// address 127.0.0.1) and 404 for anything else; its URL.
    async fn fake_api() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let (code, body) = if req.uri().path() == "/api/v1/namespaces/default/pods/p" {
                        (
                            200,
                            json!({
                                "apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                                "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
                                "status": {"phase": "Running", "podIP": "127.0.0.1"},
                            }),
                        )
                    } else {
                        (
                            404,
                            json!({
                                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                                "reason": "NotFound", "code": 404, "message": "not found",
                            }),
                        )
                    };
                    let mut r = json_reply(&body);
                    *r.status_mut() = StatusCode::from_u16(code).unwrap();
                    Ok::<_, Infallible>(r)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        url
    }

    /// Sends `method path` with `headers` over TLS with a cluster client certificate:
    /// the response (its upgrade still available).
    async fn send(
        port: u16,
        cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response<Incoming> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_client_auth_cert(vec![cert.0], cert.1)
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        let mut req = Request::builder().method(method).uri(path);
        req = req.header(header::HOST, "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap()
    }

    async fn body_text(r: Response<Incoming>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[tokio::test]
    async fn port_forward_handshakes_are_checked_as_the_kubelet_checks_them() {
        use portforward::frame::{Decoder, Encoder, Frame};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        let mut config = crate::node::tests::config(dir.path());
        config.kubelet_port = 0;
        config.client_ca = Some(ca_pem);
        let listener = Listener::bind(&config).await.unwrap();
        let port = listener.port();
        let client =
            kube::Client::try_from(kube::Config::new(fake_api().await.parse().unwrap())).unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(listener.serve(client, Arc::new(config), shutdown.clone()));
        let cert = || client_cert(&issuer);
        let spdy = [
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ];

        let r = send(
            port,
            cert(),
            Method::POST,
            "/portForward/default/nope",
            &spdy,
        )
        .await;
        assert_eq!(r.status(), 404);
        assert_eq!(body_text(r).await, "pod does not exist");
        let r = send(
            port,
            cert(),
            Method::POST,
            "/portForward/default/p/u2",
            &spdy,
        )
        .await;
        assert_eq!(r.status(), 404);
        assert_eq!(body_text(r).await, "pod not found");
        let r = send(port, cert(), Method::POST, "/portForward/default/p", &[]).await;
        assert_eq!(r.status(), 400);
        let r = send(
            port,
            cert(),
            Method::POST,
            "/portForward/default/p",
            &[
                spdy[0],
                spdy[1],
                ("x-stream-protocol-version", "v9.example"),
            ],
        )
        .await;
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()["x-accepted-stream-protocol-versions"],
            "portforward.k8s.io"
        );
        let ws = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let r = send(
            port,
            cert(),
            Method::GET,
            "/portForward/default/p",
            &[
                ws[0],
                ws[1],
                ws[2],
                ws[3],
                ("sec-websocket-protocol", "v4.channel.k8s.io"),
            ],
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(body_text(r).await, "query parameter \"port\" is required");
        let r = send(
            port,
            cert(),
            Method::GET,
            "/portForward/default/p?port=80",
            &[
                ws[0],
                ws[1],
                ws[2],
                ws[3],
                ("sec-websocket-protocol", "v9.example"),
            ],
        )
        .await;
        assert_eq!(r.status(), 400);
        let r = send(
            port,
            cert(),
            Method::GET,
            "/portForward/default/p?port=80",
            &[
                ws[0],
                ws[1],
                ws[2],
                ws[3],
                ("sec-websocket-protocol", "v4.channel.k8s.io"),
            ],
        )
        .await;
        assert_eq!(r.status(), 101);
        assert_eq!(r.headers()["sec-websocket-protocol"], "v4.channel.k8s.io");
        assert_eq!(
            r.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );

        // SPDY: upgraded, and the session answers a PING.
        let mut r = send(
            port,
            cert(),
            Method::POST,
            "/portForward/default/p/u1",
            &spdy,
        )
        .await;
        assert_eq!(r.status(), 101);
        assert_eq!(r.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(
            r.headers()["x-stream-protocol-version"],
            "portforward.k8s.io"
        );
        let mut io = TokioIo::new(hyper::upgrade::on(&mut r).await.unwrap());
        let mut wire = bytes::BytesMut::new();
        Encoder::new()
            .unwrap()
            .encode(&Frame::Ping(1), &mut wire)
            .unwrap();
        io.write_all(&wire).await.unwrap();
        let mut dec = Decoder::new();
        let mut buf = bytes::BytesMut::new();
        let frame = loop {
            if let Some(f) = dec.decode(&mut buf).unwrap() {
                break f;
            }
            assert!(io.read_buf(&mut buf).await.unwrap() > 0);
        };
        assert_eq!(frame, Frame::Ping(1));
        shutdown.cancel();
        let _ = server.await;
    }
}
