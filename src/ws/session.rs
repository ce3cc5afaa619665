//! One WebSocket connection: a reader that handles requests, and the
//! connection's writer (`crate::delivery::run`, the writer of every
//! transport) over a [`WsWire`].
//!
//! The reader parses each text frame and replies through the outbox's
//! control queue (acks always precede the snapshots they announce); it ends
//! the connection on a Close (tungstenite owes the Close reply: the wire is
//! sealed so that the reply is the last frame), a read error (with the
//! matching Close code), a peer silent for two heartbeats, or a token (JWT)
//! that expired. While the writer is parked, the publisher writes a quiet
//! connection's updates straight into its socket ([`DirectTo`]; the outbox
//! has the rules). A peer that does not read fills only its own outbox, which
//! conflates; replies piling up past `limits.max_buffered_bytes` close it with
//! 1008, after which the reader reads (and drops) until the peer answers the
//! Close, so that the connection ends cleanly rather than reset.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, Either};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::transport::{Outgoing, Socket};
use crate::closes::{self, Limit};
use crate::connection::{Connection, RateLimit, TOKEN_EXPIRED};
use crate::delivery::{self, Closing, Direct, Outbox, Shaping, Shard, Sink, Wire, Wrote};
use crate::frame::Frame;
use crate::hub::SubscriberId;
use crate::protocol::{self, ErrorCode};

/// The publisher's way into a connection's socket while its writer is parked
/// (see `crate::delivery::Outbox::with_direct`): not while a subscription asked
/// for `max_rate` or deltas, which only the writer applies.
struct DirectTo {
    outgoing: Outgoing,
    shaping: Arc<Shaping>,
}

impl Direct for DirectTo {
    fn write_now(&self, text: &[u8]) -> Wrote {
        match self.shaping.is_active() {
            true => Wrote::Nothing,
            false => self.outgoing.write_now(text),
        }
    }

    fn write_all_now(
        &self,
        frames: &mut dyn Iterator<Item = &[u8]>,
        scratch: &mut Vec<u8>,
    ) -> Wrote {
        match self.shaping.is_active() {
            true => Wrote::Nothing,
            false => self.outgoing.write_all_now(frames, scratch),
        }
    }
}

/// Everything a session needs, fixed at connect time: the connection's
/// request side ([`Connection`], shared with `/sse`) and what only a
/// WebSocket's writer uses.
pub(crate) struct Session {
    pub(crate) conn: Connection,
    /// The server's shutdown token: when it fires, clients get Close 1001.
    pub(crate) shutdown: CancellationToken,
    /// Writes this connection's paced frames while its writer is parked
    /// (`/ws`; `/sse` writes through its stream).
    pub(crate) pacer: Option<Arc<Shard>>,
}

/// A session is its connection plus a writer: the connection's fields and
/// request handling read as the session's own.
impl std::ops::Deref for Session {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Session {
    /// Serves one upgraded connection until either side ends it.
    ///
    /// Not an `async fn`: the future it returns is held for the life of the
    /// connection, so it is built from parts that hold nothing twice (an
    /// `async fn` keeps its arguments' slots beside the locals they move into).
    /// Takes the socket already split, for the same reason.
    pub(crate) fn run(
        self,
        sink: SplitSink<Socket, Message>,
        stream: SplitStream<Socket>,
        outgoing: Outgoing,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut outbox = self.outbox();
        if let Some(shard) = self.pacer.clone().filter(|_| outgoing.is_direct()) {
            let direct = DirectTo {
                outgoing: outgoing.clone(),
                shaping: self.shaping.clone(),
            };
            let pace = self.settings.flush_interval;
            outbox = outbox.with_direct(Box::new(direct), pace, shard);
        }
        let (outbox, id, leave) = self.attach(outbox);
        let sealer = outgoing.clone();
        let wire = WsWire { sink, outgoing };
        let writer = self.writer(wire, outbox.clone(), &self.shutdown);
        let done = writer.done.clone();
        let writer = Box::pin(delivery::run(writer));
        let reader = Box::pin(read_loop(self, stream, id, outbox, sealer, done));
        // When the writer ends, the connection is over: the reader is dropped
        // (after an over-budget Close, once it has read the peer's answer).
        // When the reader ends, it has closed the outbox: the writer finishes
        // (writes what is queued, then the Close frame) and ends.
        // (The writer logs the limit that stopped it. This future holds only
        // the two halves and `leave`: what it holds, every idle connection's
        // task holds.)
        async move {
            match future::select(writer, reader).await {
                // The reader's drain is bounded by its own deadline.
                Either::Left((Some(Limit::Budget), reader)) => reader.await,
                Either::Left(_) => {}
                Either::Right(((), writer)) => {
                    writer.await;
                }
            }
            drop(leave);
        }
    }

    /// Answers one data frame from the client.
    async fn request(
        &self,
        sub: SubscriberId,
        outbox: &Outbox,
        limit: &mut RateLimit,
        msg: Message,
    ) {
        match msg {
            Message::Text(text) => self.conn.handle(sub, outbox, limit, text.as_str()).await,
            _ => {
                let reply = protocol::error(
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not accepted: send JSON text frames",
                );
                outbox.push_control(reply).await;
            }
        }
    }
}

/// The reader half: handles each request, and ends the connection on Close,
/// a read error, or a peer silent for two heartbeats.
// Not an `async fn`: see `Session::run` (an async fn keeps a second copy of
// its arguments for its whole life).
#[allow(clippy::manual_async_fn)]
fn read_loop(
    session: Session,
    mut stream: SplitStream<Socket>,
    id: SubscriberId,
    outbox: Arc<Outbox>,
    outgoing: Outgoing,
    done: CancellationToken,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut limit = RateLimit::new();
        loop {
            let silent_limit = session.settings.heartbeat * 2;
            // A JWT's grant ends at its `exp` (plus leeway) unless refreshed.
            let expires = session.grant().expires().map(crate::auth::jwt::deadline);
            let read = tokio::time::timeout(silent_limit, stream.next());
            let next = match expires {
                None => read.await,
                // Boxed: inline, every connection would carry room for the
                // second timer, JWT or not.
                Some(at) => {
                    let expiring = Box::pin(async {
                        tokio::select! {
                            next = read => Some(next),
                            _ = tokio::time::sleep_until(at) => None,
                        }
                    });
                    match expiring.await {
                        Some(next) => next,
                        None => {
                            debug!("The connection's token expired.");
                            outbox.close(TOKEN_EXPIRED);
                            return;
                        }
                    }
                }
            };
            let msg = match next {
                Err(_) => {
                    // Not a silent peer when the server is the one closing
                    // (over budget, shutdown): the writer says why.
                    if !outbox.is_closing() {
                        closes::log(session.peer, Limit::Silent);
                    }
                    outbox.close(Closing::Quiet);
                    return;
                }
                Ok(Some(Ok(Message::Close(_)))) => {
                    // tungstenite owes the Close reply now and writes it on
                    // the writer's next flush: marked first (this runs before
                    // the writer can), so it goes out, and nothing after it.
                    outgoing.peer_closed();
                    outbox.close(Closing::Quiet);
                    return;
                }
                Ok(None) => {
                    outbox.close(Closing::Quiet);
                    return;
                }
                Ok(Some(Err(e))) => {
                    let how = classify(e);
                    debug!(?how, "Client read failed.");
                    if how == FRAME_TOO_LARGE {
                        closes::log(session.peer, Limit::FrameTooLarge);
                    }
                    outbox.close(how);
                    return;
                }
                Ok(Some(Ok(msg))) => msg,
            };
            // Boxed, with the message moved in: a request's state is large and
            // rare; inline, every idle connection would carry room for it.
            if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                Box::pin(session.request(id, &outbox, &mut limit, msg)).await;
                if outbox.is_closing() {
                    // Over its budget: no more requests are handled, but the
                    // socket is still read (and what arrives dropped) until
                    // the peer answers the Close, so that the connection ends
                    // cleanly, with the Close frame delivered, not reset:
                    // for at most two heartbeats in all.
                    let silent_limit = session.settings.heartbeat * 2;
                    let drained = drain(&mut stream, silent_limit);
                    let _ = Box::pin(tokio::time::timeout(silent_limit, drained)).await;
                    done.cancel();
                    return;
                }
            }
        }
    }
}

/// Reads and drops frames until the peer closes, fails, or is silent for
/// `silent_limit`.
async fn drain(stream: &mut SplitStream<Socket>, silent_limit: Duration) {
    loop {
        match tokio::time::timeout(silent_limit, stream.next()).await {
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// How a connection that sent a frame past `max_frame_bytes` is closed.
const FRAME_TOO_LARGE: Closing = Closing::Code(1009, "frame too large");

/// Maps a read error to how the connection is closed (1009 for too large, 1007 for invalid UTF-8).
fn classify(e: tungstenite::Error) -> Closing {
    match e {
        tungstenite::Error::Capacity(_) => FRAME_TOO_LARGE,
        tungstenite::Error::Utf8(_) => Closing::Code(1007, "invalid UTF-8"),
        tungstenite::Error::Protocol(_) => Closing::Code(1002, "protocol error"),
        _ => Closing::Quiet,
    }
}

/// A WebSocket as delivery's [`Wire`]: update and reply frames are encoded
/// straight into the socket's batch ([`Outgoing`]); tungstenite writes the
/// Pings and the Close, through the same batch.
struct WsWire {
    sink: SplitSink<Socket, Message>,
    outgoing: Outgoing,
}

impl Sink for WsWire {
    fn feed(&mut self, frame: &Frame) -> usize {
        self.outgoing.push_text([frame.text().as_bytes()])
    }
}

impl Wire for WsWire {
    async fn flush(&mut self) -> io::Result<()> {
        self.sink.flush().await.map_err(io::Error::other)
    }

    async fn ping(&mut self) -> io::Result<()> {
        let ping = Message::Ping(Default::default());
        self.sink.send(ping).await.map_err(io::Error::other)
    }

    /// A Close frame with a code, or (the peer closed or vanished) flushing
    /// the Close reply tungstenite queued, if any. What is gathered still
    /// goes out ahead of it; nothing after.
    async fn close(&mut self, how: Closing) {
        self.outgoing.seal();
        let (code, reason) = match how {
            Closing::Code(code, reason) => (code, reason),
            Closing::OverBudget => Closing::OVER_BUDGET,
            Closing::Quiet => {
                let _ = self.sink.close().await;
                return;
            }
        };
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
    }

    fn seal(&mut self) {
        self.outgoing.seal();
    }

    fn discard(&mut self) {
        self.outgoing.discard();
    }
}
