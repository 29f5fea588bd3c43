//! One forwarded connection, as the container runtime's `PortForward` does it: a TCP
//! connection to `<podIP>:<port>` (the address the pod's sandbox serves on; a port the
//! pod does not declare still connects if something listens there), bytes from the
//! client written to it and bytes read from it handed back, until one direction ends
//! and the other has had a second to finish (containerd's grace).
//!
//! Owns the TCP connection and the copying, whatever protocol carries the client's
//! bytes ([`super::spdy`], [`super::websocket`]); knows nothing of frames.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long connecting to the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the other direction may go on once one has ended (containerd's 1 s).
const LINGER: Duration = Duration::from_secs(1);

/// The most read from the pod at once (one DATA frame or WebSocket message).
const READ_CHUNK: usize = 32 * 1024;

/// The pod a port-forward reaches.
#[derive(Debug, Clone)]
pub struct Target {
    /// `namespace/name`.
    pub pod: String,
    /// Its uid.
    pub uid: String,
    /// Its address (`status.podIP`).
    pub ip: IpAddr,
}

/// Where the pod's bytes go: a stream of the client's protocol.
pub trait Downstream: Send + 'static {
    /// Sends bytes from the pod to the client; false once the client is gone.
    fn send(&self, data: Bytes) -> impl Future<Output = bool> + Send;
}

impl Target {
    /// Forwards one connection to `port`: the client's bytes arrive on `upstream` (its
    /// end: the client will send nothing more), the pod's go to `downstream`. Err is the
    /// message for the client's error stream, in the kubelet's words.
    pub async fn forward(
        &self,
        port: u16,
        mut upstream: mpsc::Receiver<Bytes>,
        downstream: impl Downstream,
    ) -> Result<(), String> {
        let tcp = self.connect(port).await.map_err(|e| self.error(port, &e))?;
        let _ = tcp.set_nodelay(true);
        let (mut read, mut write) = tcp.into_split();
        let to_pod = async move {
            while let Some(chunk) = upstream.recv().await {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // The client is done sending: let the app see the end, as a closed socket.
            let _ = write.shutdown().await;
        };
        let from_pod = async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if !downstream.send(Bytes::copy_from_slice(&buf[..n])).await {
                            return;
                        }
                    }
                }
            }
        };
        tokio::pin!(to_pod, from_pod);
        tokio::select! {
            _ = &mut to_pod => { let _ = tokio::time::timeout(LINGER, from_pod).await; }
            _ = &mut from_pod => { let _ = tokio::time::timeout(LINGER, to_pod).await; }
        }
        Ok(())
    }

    async fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let addr = SocketAddr::new(self.ip, port);
        let net = if self.ip.is_ipv4() { "tcp4" } else { "tcp6" };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => Ok(tcp),
            Ok(Err(e)) => Err(format!("dial {net} {addr}: connect: {}", go_errno(&e))),
            Err(_) => Err(format!("dial {net} {addr}: i/o timeout")),
        }
    }

    /// The kubelet's message for a failed forward (`error forwarding port …`), around
    /// the runtime's (`failed to connect to … inside namespace …`).
    fn error(&self, port: u16, dial: &str) -> String {
        format!(
            "error forwarding port {port} to pod {}, uid : failed to connect to {}:{port} for pod {}: {dial}",
            self.uid, self.ip, self.pod
        )
    }
}

/// An I/O error as Go's net package words it.
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "connection timed out".into(),
        std::io::ErrorKind::HostUnreachable => "no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(mpsc::Sender<Bytes>);

    impl Downstream for Collect {
        async fn send(&self, data: Bytes) -> bool {
            self.0.send(data).await.is_ok()
        }
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_a_refused_port_says_so() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
        });
        let target = Target {
            pod: "default/p".into(),
            uid: "u1".into(),
            ip: "127.0.0.1".parse().unwrap(),
        };
        let (up_tx, up_rx) = mpsc::channel(4);
        let (down_tx, mut down_rx) = mpsc::channel(4);
        up_tx.send(Bytes::from_static(b"ping")).await.unwrap();
        drop(up_tx);
        target.forward(port, up_rx, Collect(down_tx)).await.unwrap();
        let mut echoed = Vec::new();
        while let Some(b) = down_rx.recv().await {
            echoed.extend_from_slice(&b);
        }
        assert_eq!(echoed, b"ping");

        // Nothing listens on the port now.
        let (_tx, rx) = mpsc::channel(1);
        let (dtx, _drx) = mpsc::channel(1);
        let e = target.forward(port, rx, Collect(dtx)).await.unwrap_err();
        assert_eq!(
            e,
            format!(
                "error forwarding port {port} to pod u1, uid : failed to connect to 127.0.0.1:{port} for pod default/p: dial tcp4 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
