//! The SPDY/3.1 port-forward session, as the kubelet's `httpstream` handler runs it: the
//! client opens streams in pairs (`streamtype: error|data`, the same `port` and
//! `requestid`), each accepted with a SYN_REPLY; once a pair is whole its data stream is
//! forwarded to the pod ([`super::forward`]) and a failure is written to its error
//! stream; both are then closed (an empty DATA with FIN). Many pairs share one
//! connection: kubectl opens one per accepted local connection. A pair still missing a
//! stream after 30 s gets "timed out waiting for streams". PINGs are echoed, GOAWAY ends
//! the session, SETTINGS and WINDOW_UPDATE are ignored (spdystream does no flow
//! control either).
//!
//! Frames are read in order, and each data stream queues up to 32 chunks for its pod:
//! a pod that stops reading holds the connection's reader once its queue is full (no
//! frame is dropped, and memory stays bounded).
//!
//! Owns the streams of one connection; the wire format is [`super::frame`]. A malformed
//! frame ends the connection with a log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::forward::{Downstream, Target};
use super::frame::{Decoder, Encoder, Frame, Headers, CANCEL};

/// How long a pair may wait for its second stream (the kubelet's
/// `streamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Chunks of client data queued per stream before the connection waits for the pod.
const STREAM_QUEUE: usize = 32;

/// Bytes of frames written in one go.
const WRITE_BATCH: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

/// The streams of one request id.
struct Pair {
    created: Instant,
    port: u16,
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
}

/// The pod's bytes as DATA frames on one stream.
struct DataStream {
    out: mpsc::Sender<Frame>,
    stream_id: u32,
}

impl Downstream for DataStream {
    async fn send(&self, data: Bytes) -> bool {
        self.out
            .send(Frame::Data {
                stream_id: self.stream_id,
                fin: false,
                data,
            })
            .await
            .is_ok()
    }
}

/// Runs one upgraded connection until the client goes away (or says GOAWAY) and every
/// forward it started has ended.
pub async fn serve<S>(io: S, target: Arc<Target>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    serve_with(io, target, STREAM_CREATION_TIMEOUT).await
}

/// [`serve`] with another stream creation timeout.
async fn serve_with<S>(io: S, target: Arc<Target>, creation_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, write) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel::<Frame>(256);
    let writer = tokio::spawn(write_frames(write, out_rx));
    let mut session = Session {
        target,
        out,
        inbound: HashMap::new(),
        pairs: HashMap::new(),
        creation_timeout,
    };
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    'conn: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if !session.handle(frame).await {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(pod = %session.target.pod, error = %e, "port-forward: bad SPDY frame, closing the connection");
                    break 'conn;
                }
            }
        }
        tokio::select! {
            r = read.read_buf(&mut buf) => match r {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: connection read failed");
                    break;
                }
            },
            _ = tick.tick() => session.expire().await,
        }
    }
    // Forwards still running see their client end; the writer ends with the last one.
    drop(session);
    let _ = writer.await;
}

/// Writes queued frames, several to a write, until every sender is gone or the
/// connection fails.
async fn write_frames<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Frame>) {
    let mut encoder = match Encoder::new() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "port-forward: SPDY header compression");
            return;
        }
    };
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(f) = next.take() {
            if let Err(e) = encoder.encode(&f, &mut buf) {
                tracing::warn!(error = %e, "port-forward: encoding a SPDY frame");
                return;
            }
            if buf.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = w.shutdown().await;
}

struct Session {
    target: Arc<Target>,
    out: mpsc::Sender<Frame>,
    /// Where each open data stream's bytes go (until the client's FIN or RST).
    inbound: HashMap<u32, mpsc::Sender<Bytes>>,
    /// Pairs still waiting for a stream.
    pairs: HashMap<String, Pair>,
    /// How long a pair may wait for its second stream.
    creation_timeout: Duration,
}

impl Session {
    async fn send(&self, frame: Frame) {
        let _ = self.out.send(frame).await;
    }

    async fn data(&self, stream_id: u32, data: Bytes, fin: bool) {
        self.send(Frame::Data {
            stream_id,
            fin,
            data,
        })
        .await;
    }

    /// Acts on one frame; false ends the session.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
                ..
            } => self.open(stream_id, fin, &headers).await,
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if let Some(tx) = self.inbound.get(&stream_id) {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        self.inbound.remove(&stream_id);
                    }
                }
                if fin {
                    self.inbound.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                self.inbound.remove(&stream_id);
                self.pairs.retain(|_, p| {
                    p.error != Some(stream_id)
                        && p.data.as_ref().map(|(id, _)| *id) != Some(stream_id)
                });
            }
            // Echo the client's pings (odd ids); even ones would answer ours.
            Frame::Ping(id) if id % 2 == 1 => self.send(Frame::Ping(id)).await,
            Frame::GoAway { .. } => return false,
            Frame::Ping(_)
            | Frame::Settings(_)
            | Frame::WindowUpdate { .. }
            | Frame::Headers { .. }
            | Frame::SynReply { .. }
            | Frame::Unknown(_) => {}
        }
        true
    }

    /// A new stream: checked as the kubelet's `httpStreamReceived` does (refused with
    /// RST_STREAM otherwise), accepted, and added to its request's pair.
    async fn open(&mut self, stream_id: u32, fin: bool, headers: &Headers) {
        let checked = check(headers);
        let (kind, port) = match checked {
            Ok(v) => v,
            Err(why) => {
                tracing::info!(pod = %self.target.pod, stream_id, why, "port-forward: stream rejected");
                self.send(Frame::RstStream {
                    stream_id,
                    status: CANCEL,
                })
                .await;
                return;
            }
        };
        self.send(Frame::SynReply {
            stream_id,
            fin: false,
            headers: Headers::default(),
        })
        .await;
        let request_id = match headers.get("requestid").filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            // Clients older than request ids: streams come as (error, data) with
            // consecutive odd ids.
            None => match kind {
                Kind::Error => stream_id.to_string(),
                Kind::Data => stream_id.saturating_sub(2).to_string(),
            },
        };
        let pair = self.pairs.entry(request_id.clone()).or_insert(Pair {
            created: Instant::now(),
            port,
            error: None,
            data: None,
        });
        let duplicate = match kind {
            Kind::Error if pair.error.is_some() => Some("error stream already assigned"),
            Kind::Data if pair.data.is_some() => Some("data stream already assigned"),
            Kind::Error => {
                pair.error = Some(stream_id);
                None
            }
            Kind::Data => {
                let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                if !fin {
                    self.inbound.insert(stream_id, tx);
                }
                pair.data = Some((stream_id, rx));
                // The data stream's port is the one forwarded, as the kubelet reads it.
                pair.port = port;
                None
            }
        };
        if let Some(why) = duplicate {
            let msg = format!("error processing stream for request {request_id}: {why}");
            tracing::info!(pod = %self.target.pod, "port-forward: {msg}");
            if let Some(error) = pair.error {
                self.data(error, Bytes::from(msg), false).await;
            }
            return;
        }
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(Pair {
                port,
                error: Some(error),
                data: Some((data, rx)),
                ..
            }) = self.pairs.remove(&request_id)
            {
                tokio::spawn(forward(
                    self.target.clone(),
                    self.out.clone(),
                    port,
                    error,
                    data,
                    rx,
                ));
            }
        }
    }

    /// Pairs that waited too long for their second stream get an error and are dropped.
    async fn expire(&mut self) {
        let stale: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.created.elapsed() >= self.creation_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            let Some(pair) = self.pairs.remove(&id) else {
                continue;
            };
            let msg = format!(
                "(conn={}, request={id}) timed out waiting for streams",
                self.target.pod
            );
            tracing::info!("port-forward: {msg}");
            if let Some(error) = pair.error {
                self.data(error, Bytes::from(msg), false).await;
                self.data(error, Bytes::new(), true).await;
            }
            if let Some((data, _)) = pair.data {
                self.inbound.remove(&data);
                self.data(data, Bytes::new(), true).await;
            }
        }
    }
}

/// A stream's kind and port, or why it is refused.
fn check(headers: &Headers) -> Result<(Kind, u16), String> {
    let port = headers.get("port").unwrap_or("");
    if port.is_empty() {
        return Err("\"port\" header is required".into());
    }
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    match headers.get("streamtype").unwrap_or("") {
        "" => Err("\"streamType\" header is required".into()),
        "error" => Ok((Kind::Error, port)),
        "data" => Ok((Kind::Data, port)),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// Forwards one whole pair, then closes both streams (error first, as the kubelet's
/// deferred closes run).
async fn forward(
    target: Arc<Target>,
    out: mpsc::Sender<Frame>,
    port: u16,
    error: u32,
    data: u32,
    rx: mpsc::Receiver<Bytes>,
) {
    let down = DataStream {
        out: out.clone(),
        stream_id: data,
    };
    if let Err(msg) = target.forward(port, rx, down).await {
        tracing::info!(pod = %target.pod, port, "port-forward: {msg}");
        let _ = out
            .send(Frame::Data {
                stream_id: error,
                fin: false,
                data: Bytes::from(msg),
            })
            .await;
    }
    for stream_id in [error, data] {
        let _ = out
            .send(Frame::Data {
                stream_id,
                fin: true,
                data: Bytes::new(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A SPDY client over an in-memory pipe, with its own codec.
    struct Client {
        io: tokio::io::DuplexStream,
        enc: Encoder,
        dec: Decoder,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, f: Frame) {
            let mut b = BytesMut::new();
            self.enc.encode(&f, &mut b).unwrap();
            self.io.write_all(&b).await.unwrap();
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                let n =
                    tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                        .await
                        .expect("a frame in time")
                        .unwrap();
                if n == 0 {
                    return None;
                }
            }
        }

        async fn open(&mut self, id: u32, kind: &str, port: u16, request: &str) {
            self.send(Frame::SynStream {
                stream_id: id,
                associated: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: Headers(vec![
                    ("streamtype".into(), kind.into()),
                    ("port".into(), port.to_string()),
                    ("requestid".into(), request.into()),
                ]),
            })
            .await;
        }
    }

    fn start(port_ip: &str) -> Client {
        start_with(port_ip, STREAM_CREATION_TIMEOUT)
    }

    fn start_with(port_ip: &str, creation_timeout: Duration) -> Client {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let target = Arc::new(Target {
            pod: "default/p".into(),
            uid: "u".into(),
            ip: port_ip.parse().unwrap(),
        });
        tokio::spawn(serve_with(b, target, creation_timeout));
        Client {
            io: a,
            enc: Encoder::new().unwrap(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
        }
    }

    #[tokio::test]
    async fn pairs_forward_on_one_connection_and_errors_reach_the_error_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    let n = s.read(&mut b).await.unwrap();
                    s.write_all(&[b"echo:", &b[..n]].concat()).await.unwrap();
                });
            }
        });
        let mut c = start("127.0.0.1");
        c.send(Frame::Ping(1)).await;
        assert_eq!(c.next().await, Some(Frame::Ping(1)));
        // Two requests, their streams interleaved.
        c.open(1, "error", port, "0").await;
        c.open(3, "error", port, "1").await;
        c.open(5, "data", port, "1").await;
        c.open(7, "data", port, "0").await;
        for (id, text) in [(5u32, "one"), (7, "zero")] {
            c.send(Frame::Data {
                stream_id: id,
                fin: false,
                data: Bytes::from(text),
            })
            .await;
        }
        let mut replies = 0;
        let mut got: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut fins = Vec::new();
        while fins.len() < 4 {
            match c.next().await.unwrap() {
                Frame::SynReply { .. } => replies += 1,
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    got.entry(stream_id).or_default().extend_from_slice(&data);
                    if fin {
                        fins.push(stream_id);
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(replies, 4);
        assert_eq!(got[&5], b"echo:one");
        assert_eq!(got[&7], b"echo:zero");
        assert!(got.get(&1).is_none_or(|e| e.is_empty()));

        // A port nothing listens on: the message, then FINs.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        c.open(9, "error", closed, "2").await;
        c.open(11, "data", closed, "2").await;
        let mut error = Vec::new();
        let mut fins = 0;
        while fins < 2 {
            if let Frame::Data {
                stream_id,
                fin,
                data,
            } = c.next().await.unwrap()
            {
                if stream_id == 9 {
                    error.extend_from_slice(&data);
                }
                fins += usize::from(fin);
            }
        }
        let error = String::from_utf8(error).unwrap();
        assert!(error.contains("connection refused"), "{error}");

        // A stream without a port is refused; the session goes on.
        c.send(Frame::SynStream {
            stream_id: 13,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: Headers(vec![("streamtype".into(), "data".into())]),
        })
        .await;
        assert_eq!(
            c.next().await,
            Some(Frame::RstStream {
                stream_id: 13,
                status: CANCEL
            })
        );
        c.send(Frame::Ping(3)).await;
        assert_eq!(c.next().await, Some(Frame::Ping(3)));
    }

    #[tokio::test]
    async fn a_megabyte_goes_through_and_back_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = s.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let c = start("127.0.0.1");
        let (mut rd, mut wr) = tokio::io::split(c.io);
        let mut enc = c.enc;
        let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            let mut b = BytesMut::new();
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
                            ("port".into(), port.to_string()),
                            ("requestid".into(), "0".into()),
                        ]),
                    },
                    &mut b,
                )
                .unwrap();
            }
            wr.write_all(&b).await.unwrap();
            for chunk in sent.chunks(16 * 1024) {
                b.clear();
                enc.encode(
                    &Frame::Data {
                        stream_id: 3,
                        fin: false,
                        data: Bytes::copy_from_slice(chunk),
                    },
                    &mut b,
                )
                .unwrap();
                wr.write_all(&b).await.unwrap();
            }
            b.clear();
            enc.encode(
                &Frame::Data {
                    stream_id: 3,
                    fin: true,
                    data: Bytes::new(),
                },
                &mut b,
            )
            .unwrap();
            wr.write_all(&b).await.unwrap();
            wr
        });
        let mut dec = c.dec;
        let mut buf = BytesMut::new();
        let mut echoed = Vec::new();
        'read: loop {
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                if let Frame::Data {
                    stream_id: 3,
                    fin,
                    data,
                } = f
                {
                    echoed.extend_from_slice(&data);
                    if fin {
                        break 'read;
                    }
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(20), rd.read_buf(&mut buf))
                .await
                .expect("data in time")
                .unwrap();
            assert!(n > 0, "connection closed after {} bytes", echoed.len());
        }
        let _wr = writer.await.unwrap();
        assert_eq!(echoed.len(), payload.len());
        assert!(echoed == payload);
    }

    #[tokio::test]
    async fn a_pair_missing_its_data_stream_times_out_on_its_error_stream() {
        let mut c = start_with("127.0.0.1", Duration::from_millis(100));
        c.open(1, "error", 80, "7").await;
        assert!(matches!(
            c.next().await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        let mut error = Vec::new();
        loop {
            match c.next().await {
                Some(Frame::Data {
                    stream_id: 1,
                    fin,
                    data,
                }) => {
                    error.extend_from_slice(&data);
                    if fin {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let error = String::from_utf8(error).unwrap();
        assert!(
            error.contains("request=7) timed out waiting for streams"),
            "{error}"
        );
        // A second error stream for one request is reported on the first.
        c.open(3, "error", 80, "8").await;
        c.open(5, "error", 80, "8").await;
        let mut msg = Vec::new();
        while !String::from_utf8_lossy(&msg).contains("already assigned") {
            if let Some(Frame::Data {
                stream_id: 3, data, ..
            }) = c.next().await
            {
                msg.extend_from_slice(&data);
            }
        }
        assert!(String::from_utf8_lossy(&msg)
            .starts_with("error processing stream for request 8: error stream already assigned"));
    }

    #[tokio::test]
    async fn a_malformed_frame_ends_the_connection() {
        let mut c = start("127.0.0.1");
        c.io.write_all(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
            .await
            .unwrap();
        assert_eq!(c.next().await, None);
    }
}
