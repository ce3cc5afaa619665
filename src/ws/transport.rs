//! The socket under an upgraded `/ws` connection: its read side
//! ([`Incoming`], `super::read`) and its write side ([`Outgoing`]). The
//! handshake is done by `super::handshake` rather than by axum's
//! `WebSocketUpgrade`, and frames are neither read nor written through
//! tungstenite's `WebSocketStream`, for this: what an idle connection holds
//! is what decides how many a server can keep (README "Performance", "Where
//! the bytes go"), and how a frame reaches the socket is what decides the
//! CPU per delivery ("Where the CPU goes").
//!
//! Every frame the server sends is encoded here (a server's frames are
//! unmasked: a 2-10 byte header and the payload). The connection's writer
//! (`crate::delivery::run`) gathers the frames of one flush in a buffer that
//! is freed once the flush has gone out: many frames leave in one syscall,
//! and an idle connection holds no write buffer at all. While the writer is
//! idle, the publisher writes an update straight into the TCP socket
//! ([`Outgoing::write_now`], one non-blocking `send`), without waking the
//! writer at all; the reader answers a Ping the same way when nothing is
//! ahead of its Pong, and otherwise leaves the Pong for the writer. Every
//! write to the socket, from whichever side, happens under the
//! [`Outgoing`]'s lock and only when nothing is ahead of it, so frames never
//! interleave and leave in order. Only the writer waits for the socket to
//! take bytes (one task per direction registers for readiness). Nothing
//! follows a Close frame, and no data frame follows a seal: state, not a
//! scan of the bytes.
//!
//! What a connection can hold for writing is bounded: one Pong (a peer that
//! sends Pings and never reads gets one answer, not one per Ping) and one
//! Close; the writer's gathered frames at `crate::delivery::BATCH_LIMIT`
//! plus the frame being written; the session's replies at
//! `limits.max_buffered_bytes`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use super::read::Incoming;
use crate::delivery::Wrote;
use crate::sync::MutexExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio::net::TcpStream;

/// Frames up to this size (header included) are written directly from a
/// copy on the stack, larger ones with `writev` from where they are.
const SMALL_FRAME: usize = 1024;

/// Opcodes (with FIN set) of the frames a server sends (RFC 6455 §5.2).
const TEXT: u8 = 0x81;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;
const PONG: u8 = 0x8A;

/// An upgraded connection's read side, which holds its write side. On a
/// TCP connection both use the socket itself (a direct write needs only
/// `&TcpStream`); another transport (a host serving the router over TLS,
/// say) is split in two halves.
pub(crate) fn wrap(upgraded: Upgraded) -> Incoming {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => over_tcp(parts.io.into_inner(), &parts.read_buf),
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            let outgoing = Outgoing::new(WriteIo::Other(Mutex::new(write)));
            Incoming::new(outgoing, Some(read), &[])
        }
    }
}

/// A TCP connection's read side (holding its write side), reading
/// `read_first` first.
pub(super) fn over_tcp(tcp: TcpStream, read_first: &[u8]) -> Incoming {
    Incoming::new(Outgoing::new(WriteIo::Tcp(tcp)), None, read_first)
}

/// The write side shared by a connection's writer, its reader (Pongs, the
/// Close reply) and the publisher's direct writes.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing(Arc<WriteSide>);

#[derive(Debug)]
struct WriteSide {
    out: Mutex<Out>,
    io: WriteIo,
}

/// Where a connection's bytes go.
#[derive(Debug)]
enum WriteIo {
    /// The TCP socket: what direct writes (and the read side) use.
    Tcp(TcpStream),
    /// The write half of another transport; taken under the [`Out`] lock.
    Other(Mutex<WriteHalf<TokioIo<Upgraded>>>),
}

#[derive(Debug, Default)]
struct Out {
    /// Whole frames gathered for the next flush.
    pending: Vec<u8>,
    /// Taken from `pending` (or the rest of a direct write), being written.
    sending: Vec<u8>,
    /// How much of `sending` has been written.
    sent: usize,
    /// No more data frames: the peer closed, or no more is owed to it.
    sealed: bool,
    /// A Close frame is on its way: nothing may follow it.
    closed: bool,
    /// A Pong is gathered or in flight: a Ping meanwhile gets no other.
    pong: bool,
}

impl Out {
    /// Nothing gathered or in flight: a frame written now goes out next.
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.sent == self.sending.len()
    }
}

impl Outgoing {
    fn new(io: WriteIo) -> Self {
        Outgoing(Arc::new(WriteSide {
            out: Mutex::default(),
            io,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Out> {
        // Every operation on the buffers is one append, one take or one
        // write's bookkeeping.
        self.0.out.lock_or_recover()
    }

    /// The TCP socket, on a TCP connection.
    pub(super) fn tcp(&self) -> Option<&TcpStream> {
        match &self.0.io {
            WriteIo::Tcp(tcp) => Some(tcp),
            WriteIo::Other(_) => None,
        }
    }

    /// Whether [`Outgoing::write_now`] can write at all (a TCP connection).
    pub(crate) fn is_direct(&self) -> bool {
        self.tcp().is_some()
    }

    /// Appends text frames; returns how many bytes are now buffered. Nothing
    /// is appended once sealed.
    pub(crate) fn push_text<'a>(&self, payloads: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut out = self.lock();
        if out.sealed || out.closed {
            return out.pending.len();
        }
        let buf = &mut out.pending;
        for payload in payloads {
            if buf.is_empty() {
                buf.reserve((payload.len() + 10).max(4096));
            }
            encode(buf, TEXT, payload);
        }
        buf.len()
    }

    /// Writes one text frame into the socket now, without blocking, when
    /// nothing is gathered or in flight ahead of it: one write of header and
    /// payload. What the socket does not take is kept as the frame in
    /// flight, for the next flush.
    pub(crate) fn write_now(&self, payload: &[u8]) -> Wrote {
        let mut head = [0u8; 10];
        let h = encode_header(&mut head, TEXT, payload.len());
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
            encode(scratch, TEXT, payload);
        }
        let scratch = &*scratch;
        let send = |tcp: &TcpStream| tcp.try_write(scratch);
        self.send_now(scratch.len(), send, |n| scratch[n..].to_vec())
    }

    /// The one way into the socket from outside the writer: under the lock,
    /// and only when nothing is gathered or in flight ahead and the
    /// connection is not sealed. `send` writes `total` bytes without
    /// blocking; what the socket did not take (`rest` of what was written)
    /// becomes the frame in flight.
    fn send_now(
        &self,
        total: usize,
        send: impl FnOnce(&TcpStream) -> io::Result<usize>,
        rest: impl FnOnce(usize) -> Vec<u8>,
    ) -> Wrote {
        let Some(tcp) = self.tcp() else {
            return Wrote::Nothing;
        };
        let mut out = self.lock();
        if out.sealed || out.closed || !out.is_idle() {
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

    /// Answers a Ping: its Pong goes into the socket now when nothing is
    /// ahead of it, else it is gathered for the writer. One Pong at a time,
    /// none after a Close. Returns whether the writer must flush (a Pong
    /// gathered or only partly written).
    pub(crate) fn pong(&self, payload: &[u8]) -> bool {
        let mut out = self.lock();
        if out.closed || out.pong {
            return false;
        }
        let mut frame = Vec::with_capacity(2 + payload.len());
        encode(&mut frame, PONG, payload);
        let wrote = match (self.tcp(), out.is_idle()) {
            (Some(tcp), true) => tcp.try_write(&frame).unwrap_or(0),
            _ => 0,
        };
        match wrote {
            n if n == frame.len() => return false,
            0 => out.pending.extend_from_slice(&frame),
            n => {
                frame.drain(..n);
                out.sending = frame;
                out.sent = 0;
            }
        }
        out.pong = true;
        true
    }

    /// Gathers a heartbeat Ping (with no payload) for the next flush.
    pub(crate) fn ping(&self) {
        let mut out = self.lock();
        if !out.closed {
            encode(&mut out.pending, PING, &[]);
        }
    }

    /// Gathers a Close frame, with a code and reason or (`None`) without,
    /// unless one is already on its way; nothing follows it. It goes out
    /// with the next flush, after what was gathered before it.
    pub(crate) fn close(&self, code: Option<(u16, &str)>) {
        let mut out = self.lock();
        if out.closed {
            return;
        }
        let mut payload = Vec::new();
        if let Some((code, reason)) = code {
            // Ours are short; an echoed one fitted in the peer's Close.
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(reason.as_bytes());
        }
        encode(&mut out.pending, CLOSE, &payload);
        out.closed = true;
        out.sealed = true;
    }

    /// No data frame goes in from now on (the writer's or a direct write):
    /// the peer closed, or nothing more is owed to it. Control frames (the
    /// Close) still do.
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
    }

    /// Drops the whole frames waiting for the next flush (the frame being
    /// written, if any, is not here and still goes out whole).
    pub(crate) fn discard(&self) {
        let mut out = self.lock();
        out.pending = Vec::new();
        out.pong = false;
    }

    /// Writes out everything in flight and gathered, then frees the buffers
    /// (the connection's writer, the one task that waits for the socket).
    pub(crate) async fn flush(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held while writing: a direct write waits its turn.
        let mut out = self.lock();
        loop {
            if out.sent == out.sending.len() {
                out.sending = std::mem::take(&mut out.pending);
                out.sent = 0;
                if out.sending.is_empty() {
                    out.pong = false;
                    return Poll::Ready(Ok(()));
                }
            }
            let Out { sending, sent, .. } = &mut *out;
            let n = ready!(self.poll_write(cx, &sending[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match &self.0.io {
            WriteIo::Tcp(tcp) => loop {
                ready!(tcp.poll_write_ready(cx))?;
                match tcp.try_write(data) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => return Poll::Ready(r),
                }
            },
            WriteIo::Other(half) => Pin::new(&mut *half.lock_or_recover()).poll_write(cx, data),
        }
    }
}

/// Writes the header of an unfragmented, unmasked frame (RFC 6455 §5.2)
/// with `first` (FIN and opcode) and `len` payload bytes into `head`;
/// returns its length.
fn encode_header(head: &mut [u8; 10], first: u8, len: usize) -> usize {
    head[0] = first;
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

/// Appends one unfragmented, unmasked frame (RFC 6455 §5.2).
fn encode(buf: &mut Vec<u8>, first: u8, payload: &[u8]) {
    let mut head = [0u8; 10];
    let h = encode_header(&mut head, first, payload.len());
    buf.extend_from_slice(&head[..h]);
    buf.extend_from_slice(payload);
}

#[cfg(test)]
pub(super) mod tests;
