//! SPDY/3.1 framing, as kubectl's and client-go's `moby/spdystream` speak it: the frame
//! layouts (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE, DATA) and the header blocks, zlib-compressed with SPDY/3's fixed
//! dictionary in one compression context per direction for the whole connection.
//!
//! Written by hand: SPDY was withdrawn in favour of HTTP/2 and no maintained Rust crate
//! implements it (the old `spdy`/`solicit` crates are unmaintained and speak other
//! drafts), yet it is still the protocol every kubelet, `kubectl port-forward` and
//! `kubectl exec` use. The codec is small and pure: bytes in, frames out and back, with
//! `flate2` (zlib-rs backend, which has `set_dictionary`) for the header blocks.
//!
//! Owns the wire format only. Which frames to send and what streams mean belongs to
//! the session ([`super::spdy`]); this module does no I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The SPDY version spoken.
pub const VERSION: u16 = 3;

/// FLAG_FIN on SYN_STREAM, SYN_REPLY, HEADERS and DATA.
const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status PROTOCOL_ERROR.
pub const PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status INVALID_STREAM.
pub const INVALID_STREAM: u32 = 2;
/// RST_STREAM status CANCEL (what spdystream's `Reset` sends).
pub const CANCEL: u32 = 5;

/// The largest payload a frame's 24-bit length can carry.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// The most a header block may inflate to: far above what port-forward sends, low
/// enough that a hostile block cannot exhaust memory.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// What went wrong decoding or encoding a frame. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame whose payload does not match its type's layout.
    #[error("malformed {kind} frame: {why}")]
    Malformed {
        /// The frame type.
        kind: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The header block did not inflate (wrong dictionary, corrupt stream).
    #[error("header block: {0}")]
    Inflate(String),
    /// The header block inflated past [`MAX_HEADER_BLOCK`].
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge,
    /// Compressing a header block failed.
    #[error("compressing a header block: {0}")]
    Deflate(String),
    /// A DATA payload too large for one frame.
    #[error("frame payload of {0} bytes exceeds 2^24-1")]
    TooLarge(usize),
}

/// A header block's name/value pairs, names lowercase as SPDY/3 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive; values joined with NUL count as
    /// several, as Go's `http.Header` reads them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream (odd ids from the client).
    SynStream {
        /// The new stream.
        stream_id: u32,
        /// The stream it is associated with (0: none).
        associated: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The receiver may not send on it.
        unidirectional: bool,
        /// Its headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (e.g. [`CANCEL`]).
        status: u32,
    },
    /// Connection settings: (flags, id, value) entries.
    Settings(Vec<(u8, u32, u32)>),
    /// A ping, echoed unchanged by the receiver.
    Ping(u32),
    /// The sender ends the session.
    GoAway {
        /// The last stream the sender acted on.
        last_good: u32,
        /// Why.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Flow control credit.
    WindowUpdate {
        /// The stream (0: the connection).
        stream_id: u32,
        /// Bytes granted.
        delta: u32,
    },
    /// A control frame of a type SPDY/3.1 does not define; ignored as the spec says.
    Unknown(u16),
    /// Stream data.
    Data {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00,
/// 2.6.10.1): these length-prefixed words followed by [`DICTIONARY_TAIL`], 1423 bytes,
/// Adler-32 0xe3c6a7c2.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's unprefixed tail.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The dictionary's bytes.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1423);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// Reads frames from a byte buffer, inflating header blocks in the connection's one
/// receive context.
pub struct Decoder {
    inflate: Decompress,
    dictionary: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for a new connection.
    pub fn new() -> Decoder {
        Decoder {
            inflate: Decompress::new(true),
            dictionary: dictionary(),
        }
    }

    /// The next whole frame in `buf` (consumed from it), or None until more bytes come.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        let head = buf.split_to(8);
        let mut payload = buf.split_to(length).freeze();
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                fin,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |kind: &'static str, n: usize, p: &Bytes| {
            if p.len() < n {
                Err(FrameError::Malformed {
                    kind,
                    why: "payload too short",
                })
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            1 => {
                need("SYN_STREAM", 10, &payload)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let associated = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                Frame::SynStream {
                    stream_id,
                    associated,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.headers(&payload)?,
                }
            }
            2 => {
                need("SYN_REPLY", 4, &payload)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.headers(&payload)?,
                }
            }
            3 => {
                need("RST_STREAM", 8, &payload)?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            4 => {
                need("SETTINGS", 4, &payload)?;
                let n = payload.get_u32() as usize;
                if payload.len() != n.saturating_mul(8) {
                    return Err(FrameError::Malformed {
                        kind: "SETTINGS",
                        why: "entry count does not match the length",
                    });
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let word = payload.get_u32();
                    entries.push(((word >> 24) as u8, word & 0x00ff_ffff, payload.get_u32()));
                }
                Frame::Settings(entries)
            }
            6 => {
                need("PING", 4, &payload)?;
                Frame::Ping(payload.get_u32())
            }
            7 => {
                need("GOAWAY", 8, &payload)?;
                Frame::GoAway {
                    last_good: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            8 => {
                need("HEADERS", 4, &payload)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                Frame::Headers {
                    stream_id,
                    fin,
                    headers: self.headers(&payload)?,
                }
            }
            9 => {
                need("WINDOW_UPDATE", 8, &payload)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown(other),
        };
        Ok(Some(frame))
    }

    /// Inflates one header block (continuing the connection's zlib stream) and parses it.
    fn headers(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let raw = self.inflate(block)?;
        parse_block(&raw)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() * 4 + 256);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlockTooLarge);
                }
                out.reserve(out.len().max(256));
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let result =
                self.inflate
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - in_before) as usize;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| FrameError::Inflate(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(FrameError::Inflate(e.to_string())),
            }
            let progressed = self.inflate.total_in() != in_before || out.len() != out_before;
            if (consumed >= input.len() && out.len() < out.capacity()) || !progressed {
                break;
            }
        }
        if consumed < input.len() {
            return Err(FrameError::Inflate("trailing bytes after the block".into()));
        }
        Ok(out)
    }
}

/// Parses an inflated header block: a u32 count, then per pair u32 length + name and
/// u32 length + value.
fn parse_block(raw: &[u8]) -> Result<Headers, FrameError> {
    let bad = |why| FrameError::Malformed {
        kind: "header block",
        why,
    };
    let mut b = raw;
    if b.remaining() < 4 {
        return Err(bad("no pair count"));
    }
    let n = b.get_u32() as usize;
    let mut pairs = Vec::with_capacity(n.min(64));
    let string = |b: &mut &[u8]| -> Result<String, FrameError> {
        if b.remaining() < 4 {
            return Err(bad("truncated length"));
        }
        let len = b.get_u32() as usize;
        if b.remaining() < len {
            return Err(bad("truncated string"));
        }
        let s = String::from_utf8_lossy(&b[..len]).into_owned();
        b.advance(len);
        Ok(s)
    };
    for _ in 0..n {
        let name = string(&mut b)?.to_ascii_lowercase();
        let value = string(&mut b)?;
        pairs.push((name, value));
    }
    Ok(Headers(pairs))
}

/// Writes frames, deflating header blocks in the connection's one send context.
pub struct Encoder {
    deflate: Compress,
}

impl Encoder {
    /// An encoder for a new connection.
    pub fn new() -> Result<Encoder, FrameError> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(&dictionary())
            .map_err(|e| FrameError::Deflate(e.to_string()))?;
        Ok(Encoder { deflate })
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match frame {
            Frame::Data {
                stream_id,
                fin: f,
                data,
            } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(FrameError::TooLarge(data.len()));
                }
                out.reserve(8 + data.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u8(fin(*f));
                put_u24(out, data.len());
                out.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                fin: f,
                unidirectional,
                headers,
            } => {
                let block = self.block(headers)?;
                let flags = fin(*f)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(out, 1, flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated & 0x7fff_ffff);
                out.put_u8((priority & 0x7) << 5);
                out.put_u8(0);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin: f,
                headers,
            } => {
                let block = self.block(headers)?;
                control(out, 2, fin(*f), 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, 3, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings(entries) => {
                control(out, 4, 0, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    out.put_u32(((*flags as u32) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping(id) => {
                control(out, 6, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                control(out, 7, 0, 8)?;
                out.put_u32(last_good & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Headers {
                stream_id,
                fin: f,
                headers,
            } => {
                let block = self.block(headers)?;
                control(out, 8, fin(*f), 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, 9, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown(kind) => control(out, *kind, 0, 0)?,
        }
        Ok(())
    }

    /// Serialises and deflates a header block, ending with a sync flush so the peer can
    /// inflate it whole.
    fn block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.0.len() as u32);
        for (name, value) in &headers.0 {
            let name = name.to_ascii_lowercase();
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Deflate(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // Done once every byte went in and the flush fitted (room left over).
            if consumed >= raw.len() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(out)
    }
}

fn put_u24(out: &mut BytesMut, n: usize) {
    out.put_u8((n >> 16) as u8);
    out.put_u8((n >> 8) as u8);
    out.put_u8(n as u8);
}

/// A control frame's 8-byte head.
fn control(out: &mut BytesMut, kind: u16, flags: u8, length: usize) -> Result<(), FrameError> {
    if length > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(length));
    }
    out.reserve(8 + length);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    put_u24(out, length);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // set_dictionary answers the dictionary's Adler-32.
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&d).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 3,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::default(),
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::new(),
            },
            Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: CANCEL,
            },
            Frame::Settings(vec![(0, 7, 65536), (1, 4, 100)]),
            Frame::Ping(7),
            Frame::GoAway {
                last_good: 5,
                status: 0,
            },
            Frame::Headers {
                stream_id: 5,
                fin: true,
                headers: headers(&[("a", "b")]),
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 20,
            },
            Frame::Unknown(42),
        ];
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        // Fed a byte at a time, the decoder waits for whole frames.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn header_blocks_share_one_context_per_direction_across_streams() {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for i in 0..50u32 {
            for kind in ["error", "data"] {
                let f = Frame::SynStream {
                    stream_id: 2 * (2 * i + u32::from(kind == "data")) + 1,
                    associated: 0,
                    priority: 0,
                    fin: false,
                    unidirectional: false,
                    headers: headers(&[
                        ("streamtype", kind),
                        ("port", "8080"),
                        ("requestid", &i.to_string()),
                    ]),
                };
                enc.encode(&f, &mut wire).unwrap();
                sent.push(f);
            }
        }
        let mut got = Vec::new();
        while let Some(f) = dec.decode(&mut wire).unwrap() {
            got.push(f);
        }
        assert_eq!(got, sent);
        // Later blocks reuse the context: they are much smaller than the first.
        let mut again = BytesMut::new();
        enc.encode(&sent[0], &mut again).unwrap();
        let mut fresh = BytesMut::new();
        Encoder::new()
            .unwrap()
            .encode(&sent[0], &mut fresh)
            .unwrap();
        assert!(
            again.len() < fresh.len(),
            "{} vs {}",
            again.len(),
            fresh.len()
        );
    }

    /// Header blocks compressed by another implementation (CPython's zlib, level 9,
    /// the SPDY/3 dictionary, a sync flush after each block), as a client sends two
    /// SYN_STREAMs: the dictionary and the shared context match.
    #[test]
    fn a_foreign_clients_header_blocks_inflate() {
        let mut dec = Decoder::new();
        for (block, kind) in [(FIXTURE_BLOCK_1, "error"), (FIXTURE_BLOCK_2, "data")] {
            let block = hex(block);
            let mut wire = BytesMut::new();
            wire.put_u16(0x8003);
            wire.put_u16(1);
            wire.put_u8(0);
            put_u24(&mut wire, 10 + block.len());
            wire.put_u32(if kind == "error" { 1 } else { 3 });
            wire.put_u32(0);
            wire.put_u16(0);
            wire.put_slice(&block);
            let Some(Frame::SynStream { headers, .. }) = dec.decode(&mut wire).unwrap() else {
                panic!("not a SYN_STREAM");
            };
            assert_eq!(headers.get("streamType"), Some(kind));
            assert_eq!(headers.get("PORT"), Some("80"));
            assert_eq!(headers.get("requestid"), Some("0"));
        }
    }

    const FIXTURE_BLOCK_1: &str = "78f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc68004e872545a989b9d0a2863515141100000000ffff";
    const FIXTURE_BLOCK_2: &str = "224b2ba8944a04000000ffff";

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut dec = Decoder::new();
        // SPDY/2 control frame.
        let mut b = BytesMut::from(&[0x80, 0x02, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(dec.decode(&mut b), Err(FrameError::Version(2))));
        // A SYN_STREAM too short for its fields.
        let mut b = BytesMut::from(&[0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0][..]);
        assert!(dec.decode(&mut b).is_err());
        // A header block that is not zlib.
        let mut dec = Decoder::new();
        let mut b = BytesMut::from(&[0x80, 0x03, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4][..]);
        assert!(dec.decode(&mut b).is_err());
        // SETTINGS whose count does not match.
        let mut b = BytesMut::from(&[0x80, 0x03, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9][..]);
        assert!(Decoder::new().decode(&mut b).is_err());
    }
}
