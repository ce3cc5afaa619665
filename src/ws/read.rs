//! The read side of an upgraded `/ws` connection: the client's frames, parsed
//! and checked (RFC 6455 §5) with tungstenite's frame header and codes, into
//! the messages the session acts on.
//!
//! Not tungstenite's `WebSocketStream`: that keeps a read buffer, a frame
//! codec, a write buffer and two waker proxies for the life of every
//! connection, and needs its stream split behind a lock to be written from
//! two tasks. Here an idle connection holds no buffer at all: a read goes
//! into a stack buffer for the length of one poll, and only the bytes of a
//! frame not yet whole are kept (README "Where the bytes go"). Everything a
//! server writes is encoded by `super::transport`.
//!
//! What the peer must keep to (else the connection is failed with the code
//! [`ReadError::close`] gives): client frames are masked; no reserved bits
//! or opcodes; control frames are whole and at most 125 bytes; a
//! continuation only continues a message, and a new message waits for the
//! last to end; a frame or message is at most `max_frame_bytes`; text is
//! UTF-8 (checked as the fragments arrive); a Close carries no code or an
//! allowed one, with a UTF-8 reason.

use std::future::Future;
use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf, ReadHalf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::transport::Outgoing;
use crate::delivery::Closing;

/// Bytes read from the socket per poll, into a buffer on the stack.
const READ_CHUNK: usize = 4096;

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Text(String),
    Binary,
    /// A Ping, with its payload (for the Pong).
    Ping(Vec<u8>),
    /// A Pong: the peer is there (what answers the server's heartbeat).
    Pong,
    /// A Close; what a Close in reply carries: its code and reason echoed,
    /// or nothing when it had none.
    Close(Option<(u16, String)>),
}

/// Why reading ended.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the TCP connection (without a Close frame).
    Eof,
    Io(io::Error),
    /// A frame or message past `max_frame_bytes`.
    TooLarge,
    /// Text (a message or a Close reason) that is not UTF-8.
    Utf8,
    /// A frame RFC 6455 does not allow here.
    Protocol(&'static str),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Eof => f.write_str("the peer closed the TCP connection"),
            ReadError::Io(e) => write!(f, "read failed: {e}"),
            ReadError::TooLarge => f.write_str("a frame or message past max_frame_bytes"),
            ReadError::Utf8 => f.write_str("text that is not UTF-8"),
            ReadError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl ReadError {
    /// How the server closes a connection whose read failed so.
    pub(crate) fn close(&self) -> Closing {
        match self {
            ReadError::TooLarge => FRAME_TOO_LARGE,
            ReadError::Utf8 => Closing::Code(1007, "invalid UTF-8"),
            ReadError::Protocol(_) => Closing::Code(1002, "protocol error"),
            ReadError::Eof | ReadError::Io(_) => Closing::Quiet,
        }
    }
}

/// How a connection that sent a frame past `max_frame_bytes` is closed.
pub(crate) const FRAME_TOO_LARGE: Closing = Closing::Code(1009, "frame too large");

/// The upgraded connection's read half, when the router is served over
/// another transport (e.g. TLS); on a TCP connection the socket is read
/// where the write side has it.
pub(crate) type OtherIo = ReadHalf<TokioIo<Upgraded>>;

/// A connection's read side: where bytes come from and what of a message
/// has arrived so far. It holds the connection's write side too, for the
/// reader's Pongs and Close reply.
pub(crate) struct Incoming {
    out: Outgoing,
    other: Option<OtherIo>,
    /// Bytes read that do not make a whole frame yet; unallocated between
    /// frames.
    buf: Vec<u8>,
    /// A fragmented message so far (rare: boxed, one pointer otherwise).
    partial: Option<Box<Partial>>,
}

/// A message that came in fragments, until its last one.
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// How much of `data` is known to be whole UTF-8 characters (text).
    valid: usize,
}

impl Incoming {
    /// Reads from `out`'s TCP socket, or from `other`, starting with
    /// `read_first` (what the HTTP server read past the upgrade request).
    pub(crate) fn new(out: Outgoing, other: Option<OtherIo>, read_first: &[u8]) -> Self {
        Incoming {
            out,
            other,
            buf: read_first.to_vec(),
            partial: None,
        }
    }

    /// The connection's write side.
    pub(crate) fn outgoing(&self) -> &Outgoing {
        &self.out
    }

    /// The next message: a whole text or binary message, a control frame.
    /// Frames and messages past `max` bytes are refused as soon as their
    /// header says so, without reading them. (What a waiting reader holds
    /// is a reference and `max`: every idle connection's reader waits here.)
    pub(crate) fn next(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Message, ReadError>> + '_ {
        std::future::poll_fn(move |cx| self.poll_next(cx, max))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<Message, ReadError>> {
        loop {
            if let Some(message) = self.parse(max)? {
                return Poll::Ready(Ok(message));
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Err(ReadError::Eof)),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(ReadError::Io(e))),
            }
        }
    }

    /// Reads what the socket has onto `buf`; 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let n = match (&mut self.other, self.out.tcp()) {
            (Some(half), _) => {
                let mut read = ReadBuf::new(&mut chunk);
                ready!(Pin::new(half).poll_read(cx, &mut read))?;
                read.filled().len()
            }
            (None, Some(tcp)) => loop {
                ready!(tcp.poll_read_ready(cx))?;
                match tcp.try_read(&mut chunk) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r?,
                }
            },
            (None, None) => unreachable!("an Incoming has a socket or a read half"),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Poll::Ready(Ok(n))
    }

    /// Takes whole frames off `buf` until one completes a message; `None`
    /// when more bytes are needed.
    fn parse(&mut self, max: usize) -> Result<Option<Message>, ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            let Some((head, len)) = FrameHeader::parse(&mut cursor)
                .map_err(|_| ReadError::Protocol("reserved opcode"))?
            else {
                return Ok(None);
            };
            check(&head, len, max)?;
            let start = cursor.position() as usize;
            let end = start + len as usize;
            if self.buf.len() < end {
                // The frame is not here yet. No room is made for what its
                // header announces: the buffer grows with what arrives, so a
                // header alone costs the sender as much as it costs us.
                return Ok(None);
            }
            let payload = &mut self.buf[start..end];
            unmask(
                payload,
                head.mask.expect("checked: client frames are masked"),
            );
            let message = self.frame(&head, start, end, max)?;
            self.buf.drain(..end);
            if self.buf.is_empty() {
                self.buf = Vec::new(); // an idle connection holds no buffer
            }
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// Acts on the frame at `buf[start..end]` (unmasked): a message when it
    /// completes one.
    fn frame(
        &mut self,
        head: &FrameHeader,
        start: usize,
        end: usize,
        max: usize,
    ) -> Result<Option<Message>, ReadError> {
        let payload = &self.buf[start..end];
        let data = match head.opcode {
            OpCode::Control(Control::Close) => return close(payload).map(Some),
            OpCode::Control(Control::Ping) => return Ok(Some(Message::Ping(payload.to_vec()))),
            OpCode::Control(_) => return Ok(Some(Message::Pong)),
            OpCode::Data(data) => data,
        };
        let partial = match (data, self.partial.as_mut()) {
            (Data::Continue, None) => return Err(ReadError::Protocol("continuation of nothing")),
            (Data::Continue, Some(partial)) => partial,
            (_, Some(_)) => {
                return Err(ReadError::Protocol("a new message inside a fragmented one"))
            }
            (data, None) if head.is_final => return whole(data == Data::Text, payload).map(Some),
            (data, None) => self.partial.insert(Box::new(Partial {
                text: data == Data::Text,
                data: Vec::new(),
                valid: 0,
            })),
        };
        if partial.data.len() + payload.len() > max {
            return Err(ReadError::TooLarge);
        }
        partial.data.extend_from_slice(payload);
        if partial.text {
            // Failed as soon as a fragment cannot continue UTF-8 text; a
            // character split across fragments waits for the rest.
            partial.valid += match std::str::from_utf8(&partial.data[partial.valid..]) {
                Ok(rest) => rest.len(),
                Err(e) if e.error_len().is_none() && !head.is_final => e.valid_up_to(),
                Err(_) => return Err(ReadError::Utf8),
            };
        }
        if !head.is_final {
            return Ok(None);
        }
        let partial = self.partial.take().expect("continued above");
        whole(partial.text, &partial.data).map(Some)
    }
}

/// The checks a frame's header alone decides.
fn check(head: &FrameHeader, len: u64, max: usize) -> Result<(), ReadError> {
    if head.rsv1 || head.rsv2 || head.rsv3 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    if head.mask.is_none() {
        return Err(ReadError::Protocol("an unmasked frame from a client"));
    }
    if let OpCode::Control(_) = head.opcode {
        if !head.is_final {
            return Err(ReadError::Protocol("a fragmented control frame"));
        }
        if len > 125 {
            return Err(ReadError::Protocol("a control frame over 125 bytes"));
        }
    }
    if len > max as u64 {
        return Err(ReadError::TooLarge);
    }
    Ok(())
}

/// A whole message.
fn whole(text: bool, payload: &[u8]) -> Result<Message, ReadError> {
    match text {
        true => match std::str::from_utf8(payload) {
            Ok(text) => Ok(Message::Text(text.to_owned())),
            Err(_) => Err(ReadError::Utf8),
        },
        false => Ok(Message::Binary),
    }
}

/// A Close frame's payload: nothing, or a code and a UTF-8 reason. A code
/// that may not be sent is answered with 1002 (as tungstenite does).
fn close(payload: &[u8]) -> Result<Message, ReadError> {
    let (code, reason) = match payload {
        [] => return Ok(Message::Close(None)),
        [_] => return Err(ReadError::Protocol("a Close payload of one byte")),
        [a, b, reason @ ..] => (u16::from_be_bytes([*a, *b]), reason),
    };
    let reason = std::str::from_utf8(reason).map_err(|_| ReadError::Utf8)?;
    Ok(Message::Close(Some(
        match CloseCode::from(code).is_allowed() {
            true => (code, reason.to_owned()),
            false => (1002, "Protocol violation".to_owned()),
        },
    )))
}

/// Unmasks a client frame's payload in place (RFC 6455 §5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

#[cfg(test)]
mod tests;
