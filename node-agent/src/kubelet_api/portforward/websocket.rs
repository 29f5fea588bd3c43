//! Port-forward over WebSocket, the two ways clients speak it:
//!
//! - **Channels** (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or no subprotocol),
//!   as the kubelet's `websocket.go` serves kube-rs's `Api::<Pod>::portforward`: the
//!   ports come in the query; port *i* has data channel 2*i* and error channel 2*i*+1;
//!   every message starts with its channel (an ASCII digit, then base64, in the base64
//!   variant), and the first message on each channel is the port (u16, little endian).
//!   All ports connect at once; the connection closes when every forward has ended.
//! - **Tunnel** (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31): binary messages carry
//!   the SPDY byte stream, in whatever pieces the client writes; it is unwrapped into
//!   [`super::spdy::serve`]. (A real kube-apiserver does this unwrapping and speaks
//!   plain SPDY to the kubelet; spinlet's API server passes the upgrade through.)
//!
//! Owns the WebSocket messages (framing itself is tokio-tungstenite's); forwarding is
//! [`super::forward`].

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::forward::{Downstream, Target};

/// The subprotocol kubectl's tunnel asks for.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// Binary channels.
pub const V4_BINARY: &str = "v4.channel.k8s.io";
/// Base64 text channels.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";

/// What a WebSocket upgrade speaks once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SPDY inside binary messages.
    Tunnel,
    /// Channels; `base64` for the text variant.
    Channels {
        /// Text messages, base64 payloads.
        base64: bool,
    },
}

/// The subprotocol chosen from the client's `Sec-WebSocket-Protocol` list (the first
/// offered that is served, as wsstream picks), with the name to echo; with none
/// offered, binary channels and no name. Err lists what was asked.
pub fn negotiate(offered: &[&str]) -> Result<(Protocol, Option<&'static str>), String> {
    if offered.is_empty() {
        return Ok((Protocol::Channels { base64: false }, None));
    }
    for p in offered {
        match *p {
            TUNNEL_PROTOCOL => return Ok((Protocol::Tunnel, Some(TUNNEL_PROTOCOL))),
            V4_BINARY => return Ok((Protocol::Channels { base64: false }, Some(V4_BINARY))),
            V4_BASE64 => return Ok((Protocol::Channels { base64: true }, Some(V4_BASE64))),
            _ => {}
        }
    }
    Err(format!(
        "requested protocol(s) are not supported: {offered:?}; supports [{V4_BINARY} {V4_BASE64} {TUNNEL_PROTOCOL}]"
    ))
}

/// One channel's outgoing messages.
struct Channel {
    out: mpsc::Sender<Message>,
    channel: u8,
    base64: bool,
}

impl Channel {
    fn message(&self, data: &[u8]) -> Message {
        if self.base64 {
            let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
            text.push(char::from(b'0' + self.channel));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
            Message::text(text)
        } else {
            let mut b = Vec::with_capacity(1 + data.len());
            b.push(self.channel);
            b.extend_from_slice(data);
            Message::binary(b)
        }
    }
}

impl Downstream for Channel {
    async fn send(&self, data: Bytes) -> bool {
        self.out.send(self.message(&data)).await.is_ok()
    }
}

/// Serves the channel protocol for `ports` until every forward has ended (or the
/// client closes).
pub async fn serve_channels<S>(
    ws: WebSocketStream<S>,
    target: Arc<Target>,
    ports: Vec<u16>,
    base64: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut inbound = Vec::with_capacity(ports.len());
    let mut forwards = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let data = Channel {
            out: out.clone(),
            channel: (2 * i) as u8,
            base64,
        };
        let error = Channel {
            out: out.clone(),
            channel: (2 * i + 1) as u8,
            base64,
        };
        for c in [&data, &error] {
            let _ = c.out.send(c.message(&port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        inbound.push(Some(tx));
        let target = target.clone();
        forwards.spawn(async move {
            if let Err(msg) = target.forward(port, rx, data).await {
                tracing::info!(pod = %target.pod, port, "port-forward: {msg}");
                let _ = error.send(Bytes::from(msg)).await;
            }
        });
    }
    drop(out);
    let read = async {
        while let Some(msg) = stream.next().await {
            let (channel, payload) = match msg {
                Ok(Message::Binary(b)) if !b.is_empty() => (b[0], b.slice(1..)),
                Ok(Message::Text(t)) if base64 && !t.is_empty() => {
                    let t = t.as_bytes();
                    let Some(channel) = t[0].checked_sub(b'0') else {
                        continue;
                    };
                    match base64::engine::general_purpose::STANDARD.decode(&t[1..]) {
                        Ok(d) => (channel, Bytes::from(d)),
                        Err(_) => continue,
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            // Only data channels carry bytes for the pod.
            if channel % 2 != 0 {
                continue;
            }
            if let Some(slot) = inbound.get_mut(usize::from(channel / 2)) {
                if let Some(tx) = slot.as_ref() {
                    if tx.send(payload).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
        // The client is gone: every forward sees its end.
        inbound.clear();
    };
    let client_left = {
        let all_done = async { while forwards.join_next().await.is_some() {} };
        tokio::select! {
            _ = read => true,
            _ = all_done => false,
        }
    };
    if client_left {
        while forwards.join_next().await.is_some() {}
    }
    let _ = writer.await;
}

/// Unwraps the tunnel: binary messages in become the SPDY session's input, its output
/// goes out as binary messages.
pub async fn serve_tunnel<S>(ws: WebSocketStream<S>, target: Arc<Target>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(super::spdy::serve(theirs, target));
    let (mut from_spdy, mut to_spdy) = tokio::io::split(ours);
    let (mut sink, mut stream) = ws.split();
    let inbound = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if to_spdy.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(Message::Text(_)) => {
                    tracing::info!("port-forward: text message in the SPDY tunnel, closing");
                    break;
                }
                Ok(_) => {}
            }
        }
        let _ = to_spdy.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_spdy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::join!(inbound, outbound);
    let _ = session.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::super::frame::{Decoder, Encoder, Frame, Headers};

    /// A TCP server on 127.0.0.1 answering each connection's first read with
    /// `echo:<bytes>`; its port.
    async fn echo_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 256];
                    let n = s.read(&mut b).await.unwrap_or(0);
                    let _ = s.write_all(&[b"echo:", &b[..n]].concat()).await;
                });
            }
        });
        port
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn target() -> Arc<Target> {
        Arc::new(Target {
            pod: "default/p".into(),
            uid: "u".into(),
            ip: "127.0.0.1".parse().unwrap(),
        })
    }

    async fn pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            WebSocketStream::from_raw_socket(b, Role::Server, None).await,
        )
    }

    async fn next(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> Option<Message> {
        tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .and_then(Result::ok)
    }

    #[tokio::test]
    async fn channels_announce_their_ports_then_carry_data_and_errors() {
        let open = echo_server().await;
        let closed = closed_port();
        let (mut client, server) = pair().await;
        tokio::spawn(serve_channels(server, target(), vec![open, closed], false));
        // Every channel first says its port.
        let mut announced = Vec::new();
        for _ in 0..4 {
            let Some(Message::Binary(b)) = next(&mut client).await else {
                panic!("no port message");
            };
            announced.push((b[0], u16::from_le_bytes([b[1], b[2]])));
        }
        announced.sort();
        assert_eq!(announced, [(0, open), (1, open), (2, closed), (3, closed)]);
        client
            .send(Message::binary(&b"\x00hello"[..]))
            .await
            .unwrap();
        let mut data = Vec::new();
        let mut error = String::new();
        while data.len() < b"echo:hello".len() || error.is_empty() {
            let Some(Message::Binary(b)) = next(&mut client).await else {
                panic!("connection ended early: {data:?} {error:?}");
            };
            match b[0] {
                0 => data.extend_from_slice(&b[1..]),
                3 => error.push_str(&String::from_utf8_lossy(&b[1..])),
                other => panic!("message on channel {other}"),
            }
        }
        assert_eq!(data, b"echo:hello");
        assert!(error.contains("connection refused"), "{error}");
        // Both forwards end: the server closes.
        client.send(Message::Close(None)).await.unwrap();
        while let Some(m) = next(&mut client).await {
            if m.is_close() {
                break;
            }
        }
    }

    #[tokio::test]
    async fn the_base64_variant_prefixes_an_ascii_channel() {
        let open = echo_server().await;
        let (mut client, server) = pair().await;
        tokio::spawn(serve_channels(server, target(), vec![open], true));
        for _ in 0..2 {
            let Some(Message::Text(t)) = next(&mut client).await else {
                panic!("no port message");
            };
            let port = base64::engine::general_purpose::STANDARD
                .decode(&t.as_bytes()[1..])
                .unwrap();
            assert_eq!(u16::from_le_bytes([port[0], port[1]]), open);
        }
        let hi = base64::engine::general_purpose::STANDARD.encode(b"hi");
        client.send(Message::text(format!("0{hi}"))).await.unwrap();
        let Some(Message::Text(t)) = next(&mut client).await else {
            panic!("no answer");
        };
        assert_eq!(t.as_bytes()[0], b'0');
        let got = base64::engine::general_purpose::STANDARD
            .decode(&t.as_bytes()[1..])
            .unwrap();
        assert_eq!(got, b"echo:hi");
    }

    /// kubectl's tunnel writes SPDY in small pieces (each field its own message): the
    /// session sees one byte stream.
    #[tokio::test]
    async fn the_tunnel_carries_spdy_in_any_pieces() {
        let open = echo_server().await;
        let (mut client, server) = pair().await;
        tokio::spawn(serve_tunnel(server, target()));
        let mut enc = Encoder::new().unwrap();
        let mut wire = BytesMut::new();
        for (id, kind) in [(1u32, "error"), (3, "data")] {
            enc.encode(
                &Frame::SynStream {
                    stream_id: id,
                    associated: 0,
                    priority: 0,
                    fin: false,
                    unidirectional: false,
                    headers: Headers(vec![
                        ("streamtype".into(), kind.into()),
                        ("port".into(), open.to_string()),
                        ("requestid".into(), "0".into()),
                    ]),
                },
                &mut wire,
            )
            .unwrap();
        }
        enc.encode(
            &Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"tunnel"),
            },
            &mut wire,
        )
        .unwrap();
        for piece in wire.chunks(3) {
            client.send(Message::binary(piece.to_vec())).await.unwrap();
        }
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut fins = 0;
        while fins < 2 {
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                if let Frame::Data {
                    stream_id,
                    fin,
                    data: d,
                } = f
                {
                    if stream_id == 3 {
                        data.extend_from_slice(&d);
                    }
                    fins += usize::from(fin);
                }
            }
            if fins >= 2 {
                break;
            }
            match next(&mut client).await {
                Some(Message::Binary(b)) => buf.put_slice(&b),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(data, b"echo:tunnel");
    }

    #[test]
    fn the_first_served_protocol_offered_wins() {
        assert_eq!(
            negotiate(&["v5.channel.k8s.io", "v4.channel.k8s.io"]).unwrap(),
            (Protocol::Channels { base64: false }, Some(V4_BINARY))
        );
        assert_eq!(
            negotiate(&[TUNNEL_PROTOCOL]).unwrap(),
            (Protocol::Tunnel, Some(TUNNEL_PROTOCOL))
        );
        assert_eq!(
            negotiate(&[V4_BASE64, V4_BINARY]).unwrap().0,
            Protocol::Channels { base64: true }
        );
        assert_eq!(
            negotiate(&[]).unwrap(),
            (Protocol::Channels { base64: false }, None)
        );
        assert!(negotiate(&["v5.channel.k8s.io"]).is_err());
    }
}
