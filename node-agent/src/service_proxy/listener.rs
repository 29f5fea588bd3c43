//! One service port's socket: accepts connections and joins each to an endpoint, round
//! robin, skipping endpoints that refuse (the next one is tried, each at most once).
//! The endpoint list is swapped in place when the Service's endpoints change; open
//! connections are left alone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::plan::Listen;

/// How long a connection to an endpoint may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A running listener.
pub struct Listener {
    backends: Arc<RwLock<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Binds `listen` and starts accepting.
    pub async fn start(
        listen: Listen,
        backends: Vec<SocketAddr>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Listener> {
        let socket = TcpListener::bind(SocketAddr::new(listen.ip, listen.port)).await?;
        let backends = Arc::new(RwLock::new(backends));
        let shared = backends.clone();
        let task = tokio::spawn(async move {
            let next = Arc::new(AtomicUsize::new(0));
            loop {
                let accepted = tokio::select! {
                    () = shutdown.cancelled() => return,
                    a = socket.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let backends = shared.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let list = backends.read().map(|b| b.clone()).unwrap_or_default();
                    if let Some(upstream) = connect(&list, &next).await {
                        join(client, upstream).await;
                    }
                });
            }
        });
        Ok(Listener { backends, task })
    }

    /// Replaces the endpoints new connections go to.
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        if let Ok(mut b) = self.backends.write() {
            *b = backends;
        }
    }

    /// Stops accepting.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// A connection to the next endpoint that accepts one.
async fn connect(list: &[SocketAddr], next: &AtomicUsize) -> Option<TcpStream> {
    if list.is_empty() {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..list.len() {
        let addr = list[(start + i) % list.len()];
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "endpoint refused; trying the next"),
            Err(_) => tracing::debug!(%addr, "endpoint did not answer; trying the next"),
        }
    }
    None
}

async fn join(mut client: TcpStream, mut upstream: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(tag: u8) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(&[tag]).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn connections_go_round_robin_and_skip_refusing_endpoints() {
        let a = echo_server(b'a').await;
        let b = echo_server(b'b').await;
        // A closed port: bound once, then dropped.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let shutdown = CancellationToken::new();
        let listen = Listen {
            ip: "127.0.0.1".parse().unwrap(),
            port: 0,
        };
        // Port 0 cannot be known from outside; bind a free port first.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = Listen { port, ..listen };
        let l = Listener::start(listen.clone(), vec![dead, a, b], shutdown.clone())
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        assert!(seen.contains(&b'a') && seen.contains(&b'b'), "{seen:?}");
        // New endpoints apply to new connections.
        l.set_backends(vec![b]);
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], b'b');
        l.stop();
        shutdown.cancel();
    }
}
