//! Response bodies on their way to hyper: what the guest has already produced leaves in
//! the same write as the response head.
//!
//! This module owns one adapter, [`Prefetched`], applied by [`crate::http_trigger`] to
//! every component response before it is returned to hyper; it does not change what is
//! sent (the framing stays the one the body's size hint gives: chunked for a guest
//! stream, `Content-Length` for a known size), only how many writes it takes.
//!
//! Why: hyper flushes whatever it has each time the body is not ready. A guest closes its
//! body stream a moment after its last write, in its own task; on a serving thread
//! ([`crate::workers`]) that task runs only once the connection task yields. So hyper saw
//! the head and the data, found the body `Pending`, wrote them, and wrote the terminating
//! chunk in a second syscall: 1.75 writes per request on a WASI 0.3 hello (strace),
//! against 1.23 for `wasmtime serve`, each extra write also waking the client once more.
//! [`Prefetched::new`] reads ahead before the head goes out: the first frame and then the
//! end, each given one turn of the executor to arrive. A body that is not ready by then
//! (a guest streaming slowly) is not waited for: the head leaves after at most two
//! turns, and the frames follow as they come.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use hyper::body::{Body, Frame, SizeHint};

/// One result of polling a body.
type FrameResult<B> = Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>;

/// A body with up to two frames read ahead of hyper.
pub struct Prefetched<B: Body> {
    inner: B,
    /// The first frame read ahead.
    first: Option<Result<Frame<B::Data>, B::Error>>,
    /// The frame read after `first`, if it was a data frame.
    second: Option<Result<Frame<B::Data>, B::Error>>,
    /// The inner body has ended.
    ended: bool,
}

impl<B: Body + Unpin> Prefetched<B> {
    /// Reads ahead what `inner` produces within a turn of the executor: its first frame
    /// and, after a data frame, the next frame or the end.
    pub async fn new(inner: B) -> Prefetched<B> {
        let mut body = Prefetched {
            inner,
            first: None,
            second: None,
            ended: false,
        };
        match body.frame_within_a_turn().await {
            Poll::Pending => return body,
            Poll::Ready(None) => {
                body.ended = true;
                return body;
            }
            Poll::Ready(Some(frame)) => {
                let data = matches!(&frame, Ok(f) if f.is_data());
                body.first = Some(frame);
                if !data {
                    return body;
                }
            }
        }
        match body.frame_within_a_turn().await {
            Poll::Pending => {}
            Poll::Ready(None) => body.ended = true,
            Poll::Ready(Some(frame)) => body.second = Some(frame),
        }
        body
    }

    /// The inner body's next frame if it is ready now or after one yield to the executor.
    async fn frame_within_a_turn(&mut self) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let now = self.poll_once().await;
        if now.is_ready() {
            return now;
        }
        tokio::task::yield_now().await;
        self.poll_once().await
    }

    /// Polls the inner body once, with the calling task's waker.
    fn poll_once(&mut self) -> impl std::future::Future<Output = Poll<FrameResult<B>>> + '_ {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut self.inner).poll_frame(cx)))
    }

    fn held_len(&self) -> u64 {
        [&self.first, &self.second]
            .into_iter()
            .filter_map(|f| f.as_ref()?.as_ref().ok()?.data_ref())
            .map(|d| d.remaining() as u64)
            .sum()
    }
}

// The held frames are never pinned: only `inner` is polled through a pin.
impl<B: Body + Unpin> Unpin for Prefetched<B> {}

impl<B: Body + Unpin> Body for Prefetched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take().or_else(|| this.second.take()) {
            return Poll::Ready(Some(frame));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.second.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // The inner body's hint no longer counts the frames held here.
        let inner = self.inner.size_hint();
        let held = self.held_len();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;

    type Item = Result<Frame<Bytes>, Infallible>;

    /// A body fed through a channel, as a guest's stream is.
    struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Item>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel_body() -> (tokio::sync::mpsc::UnboundedSender<Item>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, ChannelBody(rx))
    }

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn data_and_end_written_a_turn_later_are_both_held() {
        let (tx, inner) = channel_body();
        tx.send(data("hello")).unwrap();
        // The "guest" closes its stream only after the connection task has yielded.
        tokio::spawn(async move {
            drop(tx);
        });
        let mut body = Prefetched::new(inner).await;
        assert!(body.first.is_some());
        assert!(body.ended, "the end arrived within the turn");
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.is_end_stream(), "hyper writes the data with the end");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_body_is_not_waited_for() {
        let (tx, inner) = channel_body();
        let body = Prefetched::new(inner).await;
        assert!(
            body.first.is_none() && !body.ended,
            "nothing ready: nothing held"
        );
        assert!(!body.is_end_stream());
        tx.send(data("late")).unwrap();
        drop(tx);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "late");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn two_data_frames_keep_their_order_and_the_rest_streams() {
        let (tx, inner) = channel_body();
        tx.send(data("a")).unwrap();
        tx.send(data("b")).unwrap();
        let body = Prefetched::new(inner).await;
        assert!(body.second.is_some());
        assert_eq!(body.size_hint().lower(), 2);
        tx.send(data("c")).unwrap();
        drop(tx);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_known_size_stays_exact() {
        let full = Full::new(Bytes::from_static(b"Hello"));
        assert_eq!(full.size_hint().exact(), Some(5));
        let body = Prefetched::new(full).await;
        assert_eq!(
            body.size_hint().exact(),
            Some(5),
            "Content-Length framing is kept"
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "Hello");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn trailers_and_errors_pass_through() {
        let (tx, inner) = channel_body();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("t", http::HeaderValue::from_static("1"));
        tx.send(data("x")).unwrap();
        tx.send(Ok(Frame::trailers(trailers))).unwrap();
        drop(tx);
        let collected = Prefetched::new(inner).await.collect().await.unwrap();
        assert_eq!(collected.trailers().and_then(|t| t.get("t")).unwrap(), "1");
        assert_eq!(collected.to_bytes(), "x");
    }
}
