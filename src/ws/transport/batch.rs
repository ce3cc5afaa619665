//! [`BatchIo`]: the write-gathering wrapper under tungstenite (see the
//! module docs of `super`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Out, Outgoing};
use crate::delivery::BATCH_LIMIT;

/// A write-gathering wrapper: writes land in a buffer (shared with the
/// session's writer through [`Outgoing`]) that goes out on flush, or once it
/// holds [`BATCH_LIMIT`] bytes, and is freed once written, so that an idle
/// connection holds none. Once the peer closed, tungstenite's writes (its
/// Close reply) go straight through.
#[derive(Debug)]
pub(crate) struct BatchIo<T> {
    inner: T,
    /// Where writes gather, and the frame in flight.
    pub(super) outgoing: Outgoing,
}

impl<T: AsyncWrite + Unpin> BatchIo<T> {
    /// Wraps `inner`, gathering writes in `outgoing`'s buffer.
    pub(super) fn with_outgoing(inner: T, outgoing: Outgoing) -> Self {
        BatchIo { inner, outgoing }
    }

    #[cfg(test)]
    pub(super) fn new(inner: T) -> Self {
        Self::with_outgoing(inner, Outgoing::new(None))
    }

    /// Writes out everything in flight and buffered, then frees the buffers.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let BatchIo { inner, outgoing } = self;
        // Held while writing: a direct write waits its turn.
        drain(&mut outgoing.lock(), inner, cx)
    }
}

/// Writes `out`'s frame in flight and its gathered frames into `inner`,
/// freeing the buffers once they are out.
fn drain<T: AsyncWrite + Unpin>(
    out: &mut Out,
    inner: &mut T,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        if out.sent == out.sending.len() {
            out.sending = std::mem::take(&mut out.pending);
            out.sent = 0;
            if out.sending.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
        let Out { sending, sent, .. } = &mut *out;
        let n = ready!(Pin::new(&mut *inner).poll_write(cx, &sending[*sent..]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        *sent += n;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchIo<T> {
    /// Only tungstenite writes here (Pings, Pongs, a Close; each at most 131
    /// bytes). They gather with the writer's frames until the next flush,
    /// except once the peer closed ([`Outgoing::peer_closed`]): then they go
    /// straight into the socket after what is gathered, because a server's
    /// tungstenite writes its Close reply and returns `ConnectionClosed`
    /// instead of ever flushing again.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let BatchIo { inner, outgoing } = self.get_mut();
        let mut out = outgoing.lock();
        if !out.through {
            if out.pending.len() >= BATCH_LIMIT {
                ready!(drain(&mut out, inner, cx))?;
            }
            let buf = &mut out.pending;
            if buf.is_empty() {
                // One allocation for a typical flush instead of a doubling series.
                buf.reserve(data.len().max(4096));
            }
            buf.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        ready!(drain(&mut out, inner, cx))?;
        let n = ready!(Pin::new(&mut *inner).poll_write(cx, data))?;
        // tungstenite hands the rest of its buffer back in its next write;
        // until then nothing else may go in.
        out.partial = n < data.len();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
