//! The socket under an upgraded `/ws` connection: tungstenite over a
//! [`BatchIo`] (the handshake is done by `super::handshake` rather than by
//! axum's `WebSocketUpgrade`, for this): what an idle connection holds is what decides how many a
//! server can keep (README "Performance", "Where the bytes go").
//!
//! tungstenite keeps its write buffer's capacity for the life of the
//! connection (4 KiB per idle connection with a 4 KiB buffer, 128 KiB with the
//! default). Here tungstenite writes each frame straight through
//! (`write_buffer_size(0)`) into a [`BatchIo`], which gathers the frames of one
//! flush in a buffer of its own and frees that buffer once the flush has gone
//! out. Many frames still leave in one syscall; an idle connection holds no
//! write buffer at all.
//!
//! The session's update and reply frames skip tungstenite's `Sink` altogether:
//! the writer encodes them (a server's frames are unmasked: a 2-10 byte header
//! and the payload) straight into the [`BatchIo`]'s buffer through an
//! [`Outgoing`] handle, then flushes. tungstenite still reads, answers Pings
//! and writes Pings and Close frames, through the same buffer; every write into
//! it is a whole frame, so frames never interleave.
//!
//! What a connection can hold for writing is bounded: tungstenite's own buffer
//! (Pongs, Pings, Close) at [`CONTROL_WRITE_LIMIT`], past which it keeps only
//! the latest Pong (a peer that sends Pings and never reads gets one answer,
//! not one per Ping); the [`BatchIo`] at [`BATCH_LIMIT`] plus the frame being
//! written; the session's replies at `limits.max_buffered_bytes`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use crate::sync::MutexExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// An upgraded `/ws` connection.
pub(crate) type Socket = WebSocketStream<BatchIo<TokioIo<Upgraded>>>;

/// tungstenite's read buffer. Client frames are small requests; a larger one
/// is read in several steps. Held for the life of the connection.
const READ_BUFFER: usize = 128;

/// Most bytes of tungstenite's own frames (Pongs, Pings, Close: each at most
/// 131 bytes) waiting for a socket that does not drain. Past it a new Pong
/// replaces the one not yet buffered, so Pongs coalesce instead of piling up.
const CONTROL_WRITE_LIMIT: usize = 4096;

/// Bytes a [`BatchIo`] gathers before it writes without waiting for a flush:
/// bounds a connection's buffered output while its writer feeds a long batch.
pub(crate) const BATCH_LIMIT: usize = 64 * 1024;

/// Wraps an upgraded connection: tungstenite over a [`BatchIo`], with the
/// [`Outgoing`] handle through which the session's writer appends frames.
pub(crate) async fn wrap(upgraded: Upgraded, max_frame_bytes: usize) -> (Socket, Outgoing) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(CONTROL_WRITE_LIMIT)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes));
    let io = BatchIo::new(TokioIo::new(upgraded));
    let outgoing = io.outgoing();
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    (socket, outgoing)
}

/// The writer's handle on a [`BatchIo`]'s buffer: it appends whole text
/// frames there, which go out with the socket's next flush.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outgoing(Arc<Mutex<Vec<u8>>>);

impl Outgoing {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // Every operation on the buffer is one append or one take.
        self.0.lock_or_recover()
    }

    /// Appends text frames; returns how many bytes are now buffered.
    pub(crate) fn push_text<'a>(&self, payloads: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut buf = self.lock();
        for payload in payloads {
            if buf.is_empty() {
                buf.reserve((payload.len() + 10).max(4096));
            }
            encode_text(&mut buf, payload);
        }
        buf.len()
    }

    /// Drops the whole frames waiting for the next flush (the frame being
    /// written, if any, is not here and still goes out whole).
    pub(crate) fn discard(&self) {
        *self.lock() = Vec::new();
    }
}

/// Appends one unfragmented, unmasked text frame (RFC 6455 §5.2).
pub(crate) fn encode_text(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.push(0x81); // FIN, opcode 1 (text)
    match payload.len() {
        n if n < 126 => buf.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            buf.push(126);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            buf.push(127);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    buf.extend_from_slice(payload);
}

/// A write-gathering wrapper: writes land in a buffer (shared with the
/// session's writer through [`Outgoing`]) that goes out on flush, or once it
/// holds [`BATCH_LIMIT`] bytes, and is freed once written, so that an idle
/// connection holds none.
#[derive(Debug)]
pub(crate) struct BatchIo<T> {
    inner: T,
    /// Where writes gather.
    pending: Outgoing,
    /// Taken from `pending`, being written.
    sending: Vec<u8>,
    /// How much of `sending` has been written.
    sent: usize,
}

impl<T: AsyncWrite + Unpin> BatchIo<T> {
    pub(crate) fn new(inner: T) -> Self {
        BatchIo {
            inner,
            pending: Outgoing::default(),
            sending: Vec::new(),
            sent: 0,
        }
    }

    fn outgoing(&self) -> Outgoing {
        self.pending.clone()
    }

    /// Writes out everything buffered, then frees the buffers.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.sent == self.sending.len() {
                self.sending = std::mem::take(&mut *self.pending.lock());
                self.sent = 0;
                if self.sending.is_empty() {
                    return Poll::Ready(Ok(()));
                }
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.sending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
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
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.lock().len() >= BATCH_LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        let mut buf = self.pending.lock();
        if buf.is_empty() {
            // One allocation for a typical flush instead of a doubling series.
            buf.reserve(data.len().max(4096));
        }
        buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Writes gather until flush, go out in order, and leave no buffer behind.
    #[tokio::test]
    async fn batch_io_gathers_until_flush_and_frees_its_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut io = BatchIo::new(a);
        io.write_all(b"hello ").await.unwrap();
        io.write_all(b"world").await.unwrap();
        assert_eq!(io.pending.lock().len(), 11, "nothing written before flush");
        io.flush().await.unwrap();
        assert_eq!(io.pending.lock().capacity(), 0, "buffer freed after flush");
        assert_eq!(io.sending.capacity(), 0, "buffer freed after flush");
        let mut got = [0u8; 11];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    /// Past BATCH_LIMIT a write pushes what is buffered out first.
    #[tokio::test]
    async fn batch_io_writes_through_past_its_limit() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut io = BatchIo::new(a);
        let chunk = vec![7u8; BATCH_LIMIT];
        io.write_all(&chunk).await.unwrap();
        io.write_all(b"x").await.unwrap();
        assert_eq!(
            io.pending.lock().len(),
            1,
            "the full buffer went out before the next write"
        );
        let mut got = vec![0u8; BATCH_LIMIT];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, chunk);
    }

    /// Encoded frames carry the right header for each length form and parse
    /// back as text frames of the same payload.
    #[test]
    fn text_frames_encode_all_three_length_forms() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![b'a'; len];
            let mut buf = Vec::new();
            encode_text(&mut buf, &payload);
            let mut cursor = std::io::Cursor::new(&buf[..]);
            let (header, n) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.mask.is_none());
            assert_eq!(n, len as u64);
            assert_eq!(&buf[cursor.position() as usize..], &payload[..]);
        }
    }
}
