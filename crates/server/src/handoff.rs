//! Taking a connection's socket away from hyper for a response that outlives its request.
//!
//! A realtime stream lasts as long as its client, often hours, and writes a few hundred bytes
//! now and then. While hyper drives such a response, the connection keeps hyper's read buffer
//! and header write buffer (8 KiB each, sizes hyper does not let a server lower) plus the
//! connection's own state: two thirds of what an idle subscriber costs. So once the response
//! head and the stream's first event are on the wire, the stream's body hands the socket over:
//!
//! 1. The body ([`HandoffBody`]) asks to be told when hyper has flushed what it wrote, gives
//!    hyper its first bytes and waits. Hyper flushes the socket only once its own buffer is
//!    empty, so the head and those bytes are then written.
//! 2. The body leaves its continuation in the [`Handoff`] and ends. From then on the socket
//!    wrapper ([`HandoffIo`]) drops what hyper writes (the end of the body), answers its reads
//!    with end-of-stream and ignores its shutdown: hyper closes the connection in its own
//!    eyes and lets go of it, freeing its buffers.
//! 3. When hyper drops the wrapper, the wrapper gives the socket, and whatever the accept loop
//!    asked it to keep (the connection's places under the connection caps), to a new task
//!    that runs the continuation: the stream goes on writing to the same socket.
//!
//! The accept loop wraps every connection's socket and puts the connection's [`Handoff`] in
//! every request's extensions; a response that never asks for it is served as usual, and a
//! server without the wrapper (tests serving the router directly) gives handlers no
//! [`Handoff`], so they stream through hyper instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Bytes;
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket a continuation can own: plain TCP or TLS over it.
pub trait Socket: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Socket for T {}

/// What runs on the socket once hyper has let go of it.
pub type Continuation =
    Box<dyn FnOnce(Box<dyn Socket>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One connection's meeting point between a response body and the socket wrapper.
pub struct Handoff {
    write_timeout: Duration,
    /// The socket is the continuation's: hyper's I/O on it goes nowhere. Read on every I/O
    /// call, so kept out of the lock.
    taken: AtomicBool,
    /// A body waits for the next completed flush; only then does a flush take the lock.
    watching: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    flushed: bool,
    waker: Option<Waker>,
    continuation: Option<Continuation>,
}

impl Handoff {
    /// `write_timeout` bounds each write of the continuation, as the accept loop bounds
    /// hyper's: a client that stops reading loses its connection.
    pub fn new(write_timeout: Duration) -> Arc<Handoff> {
        Arc::new(Handoff {
            write_timeout,
            taken: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching for a completed flush: called before giving hyper the bytes that must
    /// be on the wire before the handoff.
    fn watch_flush(&self) {
        let mut inner = self.lock();
        inner.flushed = false;
        inner.waker = None;
        self.watching.store(true, Ordering::Release);
    }

    /// Ready once the socket was flushed after [`Handoff::watch_flush`].
    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.flushed {
            return Poll::Ready(());
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn flushed(&self) {
        let waker = {
            let mut inner = self.lock();
            inner.flushed = true;
            self.watching.store(false, Ordering::Release);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the socket for `continuation`; hyper's I/O on it stops mattering at once.
    fn take(&self, continuation: Continuation) {
        self.lock().continuation = Some(continuation);
        self.taken.store(true, Ordering::Release);
    }

    /// The socket went to a continuation: whatever hyper still parses on this connection (a
    /// request the client pipelined behind the stream's) must not be served, since its answer
    /// would go nowhere.
    pub fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }
}

/// A response body that hyper writes only the start of: `first`, then the socket goes to
/// `continuation` (see the module docs). Dropped before that (a `HEAD` request, a client
/// gone before `first` was flushed), it drops the continuation unrun.
pub struct HandoffBody {
    first: Option<Bytes>,
    handoff: Arc<Handoff>,
    continuation: Option<Continuation>,
}

impl HandoffBody {
    pub fn new(handoff: Arc<Handoff>, first: Bytes, continuation: Continuation) -> HandoffBody {
        HandoffBody {
            first: Some(first),
            handoff,
            continuation: Some(continuation),
        }
    }
}

impl http_body::Body for HandoffBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.handoff.is_taken() {
            // Another response already has the socket (see `Handoff::is_taken`).
            this.continuation = None;
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            this.handoff.watch_flush();
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if this.continuation.is_none() {
            return Poll::Ready(None);
        }
        if this.handoff.poll_flushed(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(continuation) = this.continuation.take() {
            this.handoff.take(continuation);
        }
        Poll::Ready(None)
    }
}

/// A connection's socket as hyper sees it, with the way out described in the module docs.
pub struct HandoffIo<I: Socket> {
    /// Always there until the drop hands it on.
    io: Option<I>,
    handoff: Arc<Handoff>,
    /// Held for as long as the socket lives, whoever has it.
    keep: Option<Box<dyn Send>>,
}

impl<I: Socket> HandoffIo<I> {
    /// Wraps `io`; `keep` is dropped with the socket, whichever of hyper or a continuation
    /// holds it last.
    pub fn new(io: I, handoff: Arc<Handoff>, keep: Box<dyn Send>) -> HandoffIo<I> {
        HandoffIo {
            io: Some(io),
            handoff,
            keep: Some(keep),
        }
    }

    /// The socket while hyper still owns it; `None` once it was taken.
    fn live(&mut self) -> Option<&mut I> {
        if self.handoff.is_taken() {
            return None;
        }
        self.io.as_mut()
    }
}

impl<I: Socket> Drop for HandoffIo<I> {
    fn drop(&mut self) {
        if !self.handoff.is_taken() {
            return;
        }
        let continuation = self.handoff.lock().continuation.take();
        let (Some(io), Some(continuation)) = (self.io.take(), continuation) else {
            return;
        };
        let keep = self.keep.take();
        // Dropped inside the connection's task, so a runtime is there; without one the
        // socket is simply closed.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _keep = keep;
                continuation(Box::new(io)).await;
            });
        }
    }
}

impl<I: Socket> AsyncRead for HandoffIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().live() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            // End of stream: hyper closes its side of the connection.
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<I: Socket> AsyncWrite for HandoffIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().live() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().live() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(I::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A taken socket's flush is done at once, and still wakes a waiter, which must never
        // hang.
        let result = match this.live() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        };
        if matches!(result, Poll::Ready(Ok(()))) && this.handoff.watching.load(Ordering::Acquire) {
            this.handoff.flushed();
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().live() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::oneshot;

    use super::*;

    /// Signals when dropped: stands for the connection's places under the caps.
    struct Place(Option<oneshot::Sender<()>>);

    impl Drop for Place {
        fn drop(&mut self) {
            if let Some(sender) = self.0.take() {
                let _ = sender.send(());
            }
        }
    }

    /// One connection served by hyper over an in-memory pipe, as the test sees it.
    struct Served {
        client: tokio::io::DuplexStream,
        /// Hyper's connection task.
        hyper: tokio::task::JoinHandle<Result<(), hyper::Error>>,
        /// Signalled when the connection's place is dropped.
        place_gone: oneshot::Receiver<()>,
        /// Lets the continuation write.
        go: oneshot::Sender<()>,
    }

    /// Serves one connection with hyper the way the accept loop does: every request gets
    /// `HandoffBody` with `first`, and a continuation that waits for `go`, writes `rest` and
    /// closes.
    fn serve(first: &'static str, rest: &'static str) -> Served {
        let (client, server) = tokio::io::duplex(64 << 10);
        let handoff = Handoff::new(Duration::from_secs(5));
        let (place_dropped, place_gone) = oneshot::channel();
        let io = HandoffIo::new(
            server,
            Arc::clone(&handoff),
            Box::new(Place(Some(place_dropped))),
        );
        let (go, wait) = oneshot::channel::<()>();
        let wait = Arc::new(Mutex::new(Some(wait)));
        let service = hyper::service::service_fn(move |_request| {
            let wait = wait.lock().unwrap_or_else(PoisonError::into_inner).take();
            let continuation: Continuation = Box::new(move |mut socket| {
                Box::pin(async move {
                    if let Some(wait) = wait {
                        let _ = wait.await;
                    }
                    let _ = socket.write_all(rest.as_bytes()).await;
                    let _ = socket.shutdown().await;
                })
            });
            let body = HandoffBody::new(Arc::clone(&handoff), Bytes::from(first), continuation);
            async move { Ok::<_, Infallible>(hyper::Response::new(body)) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        Served {
            client,
            hyper: tokio::spawn(connection),
            place_gone,
            go,
        }
    }

    #[tokio::test]
    async fn hyper_lets_go_of_the_socket_and_the_continuation_writes_the_rest() {
        let Served {
            mut client,
            hyper: served,
            mut place_gone,
            go,
        } = serve("head", "4\r\ntail\r\n0\r\n\r\n");
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .expect("request written");
        // Hyper's connection ends while the client is still connected: its buffers are gone.
        let served = tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("hyper lets go of the connection")
            .expect("the task ran");
        assert!(served.is_ok(), "{served:?}");
        // The socket, and the place it holds, live on in the continuation.
        assert!(place_gone.try_recv().is_err(), "the place is still held");
        let _ = go.send(());
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut received))
            .await
            .expect("the continuation finishes")
            .expect("reads");
        let received = String::from_utf8(received).expect("text");
        let (head, body) = received.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        // Exactly what the body and its continuation wrote: hyper's own end of the body
        // went nowhere.
        assert_eq!(body, "4\r\nhead\r\n4\r\ntail\r\n0\r\n\r\n");
        tokio::time::timeout(Duration::from_secs(5), place_gone)
            .await
            .expect("the place is given back once the continuation is done")
            .expect("signalled");
    }

    #[tokio::test]
    async fn a_head_request_keeps_the_connection_with_hyper() {
        let Served {
            mut client,
            hyper: served,
            mut place_gone,
            ..
        } = serve("never", "never");
        client
            .write_all(
                b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\nHEAD / HTTP/1.1\r\nhost: test\r\n\r\n",
            )
            .await
            .expect("requests written");
        // Both requests are answered on the same connection: nothing was taken.
        let mut received = String::new();
        while received.matches("HTTP/1.1 200 OK").count() < 2 {
            let mut buffer = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer))
                .await
                .expect("answers in time")
                .expect("reads");
            assert!(n > 0, "connection open: {received}");
            received.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        assert!(!received.contains("never"), "{received}");
        assert!(place_gone.try_recv().is_err(), "the place is still held");
        drop(client);
        let served = tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the connection ends with its client")
            .expect("the task ran");
        assert!(served.is_ok(), "{served:?}");
        tokio::time::timeout(Duration::from_secs(5), place_gone)
            .await
            .expect("the place is given back with the connection")
            .expect("signalled");
    }

    #[tokio::test]
    async fn a_body_after_the_socket_was_taken_ends_without_its_continuation() {
        use http_body::Body as _;
        let handoff = Handoff::new(Duration::from_secs(1));
        handoff.take(Box::new(|_socket| Box::pin(async {})));
        let (dropped, mut gone) = oneshot::channel();
        let place = Place(Some(dropped));
        let mut body = HandoffBody::new(
            Arc::clone(&handoff),
            Bytes::from("never"),
            Box::new(move |_socket| {
                let _place = place;
                Box::pin(async {})
            }),
        );
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(frame.is_none(), "no bytes for a socket that is gone");
        assert!(
            gone.try_recv().is_ok(),
            "the continuation was dropped unrun"
        );
    }
}
