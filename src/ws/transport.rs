//! The socket under an upgraded `/ws` connection: tungstenite over a
//! [`BatchIo`] (the handshake is done by `super::handshake` rather than by
//! axum's `WebSocketUpgrade`, for this): what an idle connection holds is what
//! decides how many a server can keep (README "Performance", "Where the bytes
//! go"), and how a frame reaches the socket is what decides the CPU per
//! delivery ("Where the CPU goes").
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
//! and writes Pings and Close frames, through the same buffer; once a Close
//! reply is owed (the peer closed) its frames go straight into the socket,
//! after what is gathered. And while a connection's writer is idle,
//! the publisher writes an update straight into the TCP socket
//! ([`Outgoing::write_now`], one non-blocking `writev`), without waking the
//! writer at all. Every write to the socket, from
//! whichever side, happens under the [`Outgoing`]'s lock and only when nothing
//! is ahead of it, so frames never interleave and leave in order; nothing is
//! written after a Close frame (the writer [`Outgoing::seal`]s the connection
//! before one can go out: state, not a scan of the bytes).
//!
//! What a connection can hold for writing is bounded: tungstenite's own buffer
//! (Pongs, Pings, Close) at [`CONTROL_WRITE_LIMIT`], past which it keeps only
//! the latest Pong (a peer that sends Pings and never reads gets one answer,
//! not one per Ping); the [`BatchIo`] at [`BATCH_LIMIT`] plus the frame being
//! written; the session's replies at `limits.max_buffered_bytes`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use crate::delivery::Wrote;
use crate::sync::MutexExt;
pub(crate) use batch::BatchIo;
use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::either::Either;

/// An upgraded `/ws` connection.
pub(crate) type Socket = WebSocketStream<BatchIo<Io>>;

/// What is under the [`BatchIo`]: the TCP socket itself, shared with the
/// direct path, or (a host serving the router over another transport, e.g.
/// TLS) the upgraded connection as hyper hands it over.
pub(crate) type Io = Either<SharedTcp, TokioIo<Upgraded>>;

/// tungstenite's read buffer. Client frames are small requests; a larger one
/// is read in several steps. Held for the life of the connection.
const READ_BUFFER: usize = 128;

/// Most bytes of tungstenite's own frames (Pongs, Pings, Close: each at most
/// 131 bytes) waiting for a socket that does not drain. Past it a new Pong
/// replaces the one not yet buffered, so Pongs coalesce instead of piling up.
const CONTROL_WRITE_LIMIT: usize = 4096;

/// Frames up to this size (header included) are written directly from a
/// copy on the stack, larger ones with `writev` from where they are.
const SMALL_FRAME: usize = 1024;

/// Wraps an upgraded connection: tungstenite over a [`BatchIo`], with the
/// [`Outgoing`] handle through which the session's writer (and, on a TCP
/// connection, the publisher) writes frames.
pub(crate) async fn wrap(upgraded: Upgraded, max_frame_bytes: usize) -> (Socket, Outgoing) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(CONTROL_WRITE_LIMIT)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes));
    let (io, outgoing) = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let outgoing = Outgoing::new(Some(parts.io.into_inner()));
            // An empty `Bytes` split off hyper's read buffer would still
            // keep all of that buffer alive.
            let read_buf = match parts.read_buf.is_empty() {
                true => Bytes::new(),
                false => parts.read_buf,
            };
            let tcp = SharedTcp {
                wire: outgoing.clone(),
                read_buf,
            };
            (Either::Left(tcp), outgoing)
        }
        Err(upgraded) => (Either::Right(TokioIo::new(upgraded)), Outgoing::new(None)),
    };
    let io = BatchIo::with_outgoing(io, outgoing.clone());
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    (socket, outgoing)
}

/// The write side shared by a connection's tungstenite (through its
/// [`BatchIo`]), its session's writer, and the publisher's direct writes.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing(Arc<WriteSide>);

#[derive(Debug)]
struct WriteSide {
    out: Mutex<Out>,
    /// The socket, on a TCP connection: what direct writes go to.
    tcp: Option<TcpStream>,
}

#[derive(Debug, Default)]
struct Out {
    /// Whole frames gathered for the next flush.
    pending: Vec<u8>,
    /// Taken from `pending` (or the rest of a direct write), being written.
    sending: Vec<u8>,
    /// How much of `sending` has been written.
    sent: usize,
    /// A Close frame is on its way ([`Outgoing::seal`]): nothing of ours
    /// may follow it.
    closed: bool,
    /// The peer closed ([`Outgoing::peer_closed`]): tungstenite's writes (its
    /// Close reply) go straight into the socket.
    through: bool,
    /// tungstenite's last write went in only in part: the rest of its frame
    /// comes with its next write, and nothing may come between.
    partial: bool,
}

impl Out {
    /// Nothing gathered or in flight: a frame written now goes out next.
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.sent == self.sending.len() && !self.partial
    }
}

impl Outgoing {
    fn new(tcp: Option<TcpStream>) -> Self {
        Outgoing(Arc::new(WriteSide {
            out: Mutex::default(),
            tcp,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Out> {
        // Every operation on the buffers is one append, one take or one
        // write's bookkeeping.
        self.0.out.lock_or_recover()
    }

    /// Whether [`Outgoing::write_now`] can write at all (a TCP connection).
    pub(crate) fn is_direct(&self) -> bool {
        self.0.tcp.is_some()
    }

    /// Appends text frames; returns how many bytes are now buffered. Nothing
    /// is appended after a Close frame.
    pub(crate) fn push_text<'a>(&self, payloads: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut out = self.lock();
        if out.closed {
            return out.pending.len();
        }
        let buf = &mut out.pending;
        for payload in payloads {
            if buf.is_empty() {
                buf.reserve((payload.len() + 10).max(4096));
            }
            encode_text(buf, payload);
        }
        buf.len()
    }

    /// Writes one text frame into the socket now, without blocking, when
    /// nothing is gathered or in flight ahead of it: one `writev` of header
    /// and payload, no copy. What the socket does not take is kept as the
    /// frame in flight, for the next flush.
    pub(crate) fn write_now(&self, payload: &[u8]) -> Wrote {
        let mut head = [0u8; 10];
        let h = encode_header(&mut head, payload.len());
        let total = h + payload.len();
        let send = |tcp: &TcpStream| match total <= SMALL_FRAME {
            // A small frame is copied whole onto the stack: one plain
            // `send` costs the kernel less than a two-part `writev`.
            true => {
                let mut small = [0u8; SMALL_FRAME];
                small[..h].copy_from_slice(&head[..h]);
                small[h..total].copy_from_slice(payload);
                tcp.try_write(&small[..total])
            }
            false => tcp.try_write_vectored(&[IoSlice::new(&head[..h]), IoSlice::new(payload)]),
        };
        let rest = |n: usize| {
            let mut rest = Vec::with_capacity(total - n);
            if n < h {
                rest.extend_from_slice(&head[n..h]);
                rest.extend_from_slice(payload);
            } else {
                rest.extend_from_slice(&payload[n - h..]);
            }
            rest
        };
        self.send_now(total, send, rest)
    }

    /// Writes text frames into the socket now in one write, encoded into
    /// `scratch`, as [`Outgoing::write_now`] does one.
    pub(crate) fn write_all_now(
        &self,
        frames: &mut dyn Iterator<Item = &[u8]>,
        scratch: &mut Vec<u8>,
    ) -> Wrote {
        scratch.clear();
        for payload in frames {
            encode_text(scratch, payload);
        }
        let scratch = &*scratch;
        let send = |tcp: &TcpStream| tcp.try_write(scratch);
        self.send_now(scratch.len(), send, |n| scratch[n..].to_vec())
    }

    /// The one way into the socket from outside the writer: under the lock,
    /// and only when nothing is gathered or in flight ahead and no Close went
    /// out. `send` writes `total` bytes without blocking; what the socket did
    /// not take (`rest` of what was written) becomes the frame in flight.
    fn send_now(
        &self,
        total: usize,
        send: impl FnOnce(&TcpStream) -> io::Result<usize>,
        rest: impl FnOnce(usize) -> Vec<u8>,
    ) -> Wrote {
        let Some(tcp) = &self.0.tcp else {
            return Wrote::Nothing;
        };
        let mut out = self.lock();
        if out.closed || !out.is_idle() {
            return Wrote::Nothing;
        }
        match send(tcp) {
            Ok(n) if n >= total => Wrote::All,
            Ok(n) => {
                out.sending = rest(n);
                out.sent = 0;
                Wrote::Part
            }
            // Full (`WouldBlock`): the writer waits for room. Failed: the
            // writer's next write finds out and ends the connection.
            Err(_) => Wrote::Nothing,
        }
    }

    /// Marks the connection as closing: from now on neither the writer's
    /// frames nor direct writes go in, only what tungstenite writes (the
    /// Close frame). The writer calls it before it sends a Close, and when
    /// it learns that the peer closed (tungstenite then owes the Close
    /// reply), so a Close is always the last frame, without reading it back
    /// out of the bytes.
    pub(crate) fn seal(&self) {
        self.lock().closed = true;
    }

    /// Seals the connection because the peer sent a Close: tungstenite owes
    /// the reply, which a server's tungstenite writes and then returns
    /// `ConnectionClosed` instead of ever flushing, so from now on its
    /// writes go straight into the socket (after what is gathered).
    pub(crate) fn peer_closed(&self) {
        let mut out = self.lock();
        out.closed = true;
        out.through = true;
    }

    /// Drops the whole frames waiting for the next flush (the frame being
    /// written, if any, is not here and still goes out whole).
    pub(crate) fn discard(&self) {
        self.lock().pending = Vec::new();
    }
}

/// Writes the header of an unfragmented, unmasked text frame (RFC 6455 §5.2)
/// of `len` payload bytes into `head`; returns its length.
fn encode_header(head: &mut [u8; 10], len: usize) -> usize {
    head[0] = 0x81; // FIN, opcode 1 (text)
    match len {
        n if n < 126 => {
            head[1] = n as u8;
            2
        }
        n if n <= usize::from(u16::MAX) => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    }
}

/// Appends one unfragmented, unmasked text frame (RFC 6455 §5.2).
pub(crate) fn encode_text(buf: &mut Vec<u8>, payload: &[u8]) {
    let mut head = [0u8; 10];
    let h = encode_header(&mut head, payload.len());
    buf.extend_from_slice(&head[..h]);
    buf.extend_from_slice(payload);
}

/// The TCP socket of a connection, read by tungstenite and written by
/// whoever holds the [`Outgoing`]'s lock (the socket is shared, not split: a
/// direct write needs only `&TcpStream`).
#[derive(Debug)]
pub(crate) struct SharedTcp {
    wire: Outgoing,
    /// What hyper read past the upgrade request: read first, then freed.
    read_buf: Bytes,
}

impl SharedTcp {
    fn tcp(&self) -> &TcpStream {
        self.wire
            .0
            .tcp
            .as_ref()
            .expect("a SharedTcp is made only with its socket")
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read_buf.is_empty() {
            let n = this.read_buf.len().min(buf.remaining());
            buf.put_slice(&this.read_buf[..n]);
            this.read_buf.advance(n);
            if this.read_buf.is_empty() {
                this.read_buf = Bytes::new(); // frees hyper's buffer
            }
            return Poll::Ready(Ok(()));
        }
        let tcp = this.tcp();
        loop {
            ready!(tcp.poll_read_ready(cx))?;
            match tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let tcp = self.tcp();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            match tcp.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sock = socket2::SockRef::from(self.tcp());
        Poll::Ready(sock.shutdown(std::net::Shutdown::Write))
    }
}

mod batch;
#[cfg(test)]
mod tests;
