//! Request targets as Go's server takes them, for a connection's first request.
//!
//! hyper parses the request target with the `http` crate, which refuses a few bytes that
//! clients send unencoded and Go's server (so PocketBase) accepts: `"`, `<` and `>` in a query
//! (`?filter=n>1`, `?filter=title="x"`), `<`, `>` and `` ` `` in a path, and bytes that are not
//! UTF-8. hyper answers such a request `400` with no body before any handler runs. Go also
//! reads a request target without a fragment: `#` is part of the path or the query there,
//! where `http` drops what follows it.
//!
//! [`FirstLine`] sits between the socket and hyper and, in the first request line a
//! connection sends, percent-encodes those bytes in the target, which decodes to what Go reads
//! (`%3E` is `>` to every decoder, `%23` is a `#` in a value). Only the first request line:
//! finding where a later request starts means following each body's framing, and a mistake
//! there would shift the connection's framing; a request sent on a connection kept alive
//! after another (what HTTP libraries do, and they encode their targets) is taken as hyper
//! takes it. Most clients that send raw targets (curl, hand-written tests) open a connection
//! per request.
//!
//! The line is read whole before any of it is handed on, within [`MAX_LINE`]; a longer one,
//! or a connection that ends first, is handed on unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest first line read whole (hyper's own bound on a head is larger); past it the
/// line is handed on as it came.
pub const MAX_LINE: usize = 16 * 1024;

/// A socket whose first request line is made acceptable to hyper (see the module docs).
pub struct FirstLine<I> {
    io: I,
    state: State,
}

enum State {
    /// Reading the first line; the bytes read so far (none on the fast path).
    Reading(Vec<u8>),
    /// The (rewritten) line and whatever followed it, handed on from `.1`.
    Handing(Vec<u8>, usize),
    /// Everything else goes straight through.
    Through,
}

impl<I> FirstLine<I> {
    pub fn new(io: I) -> Self {
        FirstLine {
            io,
            state: State::Reading(Vec::new()),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstLine<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Every read after the first line's.
        if let State::Through = this.state {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match &mut this.state {
                State::Through => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Handing(bytes, from) => {
                    let n = (bytes.len() - *from).min(buf.remaining());
                    buf.put_slice(&bytes[*from..*from + n]);
                    *from += n;
                    if *from == bytes.len() {
                        this.state = State::Through;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Reading(held) => {
                    let start = buf.filled().len();
                    ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    let read = &buf.filled()[start..];
                    if read.is_empty() {
                        // The connection ended: hand on what there is, as it came.
                        let held = std::mem::take(held);
                        this.state = if held.is_empty() {
                            State::Through
                        } else {
                            State::Handing(held, 0)
                        };
                        continue;
                    }
                    // The usual case: the whole line came in one read and needs nothing.
                    if held.is_empty()
                        && let Some(end) = line_end(read)
                        && rewrite(&read[..end]).is_none()
                    {
                        this.state = State::Through;
                        return Poll::Ready(Ok(()));
                    }
                    // Otherwise the bytes wait here until the line is whole.
                    held.extend_from_slice(read);
                    buf.set_filled(start);
                    let whole = line_end(held).or((held.len() > MAX_LINE).then_some(0));
                    let Some(end) = whole else {
                        continue;
                    };
                    let held = std::mem::take(held);
                    let out = match rewrite(&held[..end]) {
                        Some(mut line) => {
                            line.extend_from_slice(&held[end..]);
                            line
                        }
                        None => held,
                    };
                    this.state = State::Handing(out, 0);
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstLine<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where the first line of `bytes` ends (past its `\n`), once it is there. Empty lines before
/// a request line (which hyper skips) end the search too early; such a connection is left as
/// it is, since the target is then not in the first line.
fn line_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n').map(|at| at + 1)
}

/// `line` (`METHOD SP target SP version CRLF`) with its target's bytes that hyper would refuse
/// percent-encoded; `None` when it needs nothing (or is not a request line).
fn rewrite(line: &[u8]) -> Option<Vec<u8>> {
    let first = line.iter().position(|&b| b == b' ')?;
    let rest = &line[first + 1..];
    let len = rest.iter().position(|&b| b == b' ')?;
    let target = &rest[..len];
    let not_utf8 = std::str::from_utf8(target).is_err();
    let encode = |b: u8| matches!(b, b'"' | b'<' | b'>' | b'`' | b'#') || (not_utf8 && b >= 0x80);
    if !target.iter().any(|&b| encode(b)) {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 16);
    out.extend_from_slice(&line[..=first]);
    for &b in target {
        if encode(b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&rest[len..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[test]
    fn only_the_bytes_hyper_refuses_are_encoded() {
        let line = |target: &[u8]| {
            let mut line = b"GET ".to_vec();
            line.extend_from_slice(target);
            line.extend_from_slice(b" HTTP/1.1\r\n");
            line
        };
        let rewritten = |target: &[u8]| rewrite(&line(target)).map(|l| l[4..l.len() - 11].to_vec());
        assert_eq!(rewrite(&line(b"/api/health?x=1")), None);
        assert_eq!(rewrite(&line("/a/é?x=é".as_bytes())), None, "UTF-8 is kept");
        assert_eq!(rewrite(&line(b"/a?filter=x%3E1")), None);
        assert_eq!(
            rewritten(b"/r?filter=n>1&&t=\"x\"||m<2").as_deref(),
            Some(&b"/r?filter=n%3E1&&t=%22x%22||m%3C2"[..])
        );
        assert_eq!(
            rewritten(b"/he`llo#frag").as_deref(),
            Some(&b"/he%60llo%23frag"[..])
        );
        assert_eq!(
            rewritten(b"/x?v=\xff\xc3\xa9").as_deref(),
            Some(&b"/x?v=%FF%C3%A9"[..]),
            "a target that is not UTF-8 has every high byte encoded"
        );
        assert_eq!(rewrite(b"garbage\r\n"), None, "not a request line");
    }

    /// Hands `chunks` out one read at a time.
    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if let Some(chunk) = this.0.first_mut() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    this.0.remove(0);
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn through(chunks: &[&[u8]], read_size: usize) -> Vec<u8> {
        let mut io = FirstLine::new(Chunks(chunks.iter().map(|c| c.to_vec()).collect()));
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            let n = io.read(&mut buf).await.expect("read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn the_first_line_is_rewritten_across_reads_and_the_rest_is_untouched() {
        let second = b"GET /b?q=\"x\" HTTP/1.1\r\n\r\n";
        let expected = [
            &b"GET /a?f=n%3E1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n<>\""[..],
            second,
        ]
        .concat();
        // In one read, split inside the line, and handed out through a small buffer.
        let one: &[&[u8]] = &[b"GET /a?f=n>1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n<>\"GET /b?q=\"x\" HTTP/1.1\r\n\r\n"];
        assert_eq!(through(one, 4096).await, expected);
        let split: &[&[u8]] = &[
            b"GE",
            b"T /a?f=n>",
            b"1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n<>\"",
            second,
        ];
        assert_eq!(through(split, 4096).await, expected);
        assert_eq!(through(split, 5).await, expected);
    }

    #[tokio::test]
    async fn lines_that_need_nothing_or_never_end_pass_as_they_came() {
        let plain: &[&[u8]] = &[b"GET /a HTTP/1.1\r\n\r\n", b"GET /b>c HTTP/1.1\r\n\r\n"];
        assert_eq!(through(plain, 4096).await, plain.concat());
        let cut: &[&[u8]] = &[b"GET /a>b HTT"];
        assert_eq!(through(cut, 4096).await, b"GET /a>b HTT");
        let long = [b"GET /".to_vec(), vec![b'>'; MAX_LINE + 10]].concat();
        assert_eq!(
            through(&[&long], 4096).await,
            long,
            "past the bound, unchanged"
        );
    }
}
