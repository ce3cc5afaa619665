//! One WebSocket connection: a reader that handles requests, and the
//! connection's writer (`crate::delivery::run`, the writer of every
//! transport) over a [`WsWire`].
//!
//! The reader parses each text frame and replies through the outbox's
//! control queue (acks always precede the snapshots they announce), and
//! answers Pings; it ends the connection on a Close (its reply gathered as
//! the last frame), a read error (with the matching Close code), a peer
//! silent for two heartbeats, or a token (JWT) that expired. While the writer is parked, the publisher writes a quiet
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
use tracing::debug;

use super::read::{Incoming, Message, FRAME_TOO_LARGE};
use super::transport::Outgoing;
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
    /// Writes this connection's paced frames while its writer is parked
    /// (`/ws`; `/sse` writes through its stream).
    pub(crate) pacer: Option<Arc<Shard>>,
}

impl Session {
    /// Serves one upgraded connection until either side ends it.
    ///
    /// Not an `async fn`: the future it returns is held for the life of the
    /// connection, so it is built from parts that hold nothing twice (an
    /// `async fn` keeps its arguments' slots beside the locals they move into).
    pub(crate) fn run(self, incoming: Incoming) -> impl Future<Output = ()> + Send + 'static {
        let Session { conn, pacer } = self;
        let outgoing = incoming.outgoing().clone();
        let mut outbox = conn.outbox();
        if let Some(shard) = pacer.filter(|_| outgoing.is_direct()) {
            let direct = DirectTo {
                outgoing: outgoing.clone(),
                shaping: conn.shaping.clone(),
            };
            let pace = conn.settings.flush_interval;
            outbox = outbox.with_direct(Box::new(direct), pace, shard);
        }
        let (outbox, id, leave) = conn.attach(outbox);
        let writer = conn.writer(WsWire(outgoing), outbox.clone());
        let writer = Box::pin(delivery::run(writer));
        let reader = Box::pin(read_loop(conn, incoming, id, outbox));
        // When the writer ends, the connection is over: the reader is dropped
        // (after an over-budget Close, once it has read the peer's answer).
        // When the reader ends, it has closed the outbox: the writer finishes
        // (writes what is queued, then the Close frame) and ends; unless the
        // reader read the peer's answer to a Close the server sent, after
        // which nothing is owed.
        // (The writer logs the limit that stopped it. This future holds only
        // the two halves and `leave`: what it holds, every idle connection's
        // task holds.)
        async move {
            match future::select(writer, reader).await {
                // The reader's drain is bounded by its own deadline.
                Either::Left((Some(Limit::Budget), reader)) => {
                    reader.await;
                }
                Either::Left(_) => {}
                Either::Right((answered, writer)) => {
                    if !answered {
                        writer.await;
                    }
                }
            }
            drop(leave);
        }
    }
}

/// Answers one data frame from the client.
async fn request(
    conn: &Connection,
    sub: SubscriberId,
    outbox: &Outbox,
    limit: &mut RateLimit,
    msg: Message,
) {
    match msg {
        Message::Text(text) => conn.handle(sub, outbox, limit, &text).await,
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

/// How long a peer may send nothing (not even a Pong): two heartbeats.
fn silent_limit(conn: &Connection) -> Duration {
    conn.settings.heartbeat * 2
}

/// The reader half: handles each request, answers Pings, and ends the
/// connection on Close, a read error, or a peer silent for two heartbeats.
/// Returns whether it ended by reading what the peer sent after a Close
/// from the server (until its answer): the writer is done then.
// Not an `async fn`: see `Session::run` (an async fn keeps a second copy of
// its arguments for its whole life).
#[allow(clippy::manual_async_fn)]
fn read_loop(
    conn: Connection,
    mut incoming: Incoming,
    id: SubscriberId,
    outbox: Arc<Outbox>,
) -> impl Future<Output = bool> + Send {
    async move {
        let mut limit = RateLimit::new();
        loop {
            // A JWT's grant ends at its `exp` (plus leeway) unless refreshed.
            let expires = conn.grant().expires().map(crate::auth::jwt::deadline);
            // (Limits read where used: what is kept across this await, every
            // idle connection holds.)
            let max = conn.settings.limits.max_frame_bytes;
            let read = tokio::time::timeout(silent_limit(&conn), incoming.next(max));
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
                            return false;
                        }
                    }
                }
            };
            let msg = match next {
                Err(_) => {
                    // Not a silent peer when the server is the one closing
                    // (over budget, shutdown): the writer says why.
                    if !outbox.is_closing() {
                        closes::log(conn.peer, Limit::Silent);
                    }
                    outbox.close(Closing::Quiet);
                    return false;
                }
                Ok(Ok(Message::Close(reply))) => {
                    // The reply (its code echoed) is gathered now, before the
                    // writer can gather anything else: it goes out with the
                    // writer's next flush, and nothing after it.
                    let reply = reply.as_ref().map(|(code, why)| (*code, why.as_str()));
                    incoming.outgoing().close(reply);
                    outbox.close(Closing::Quiet);
                    return false;
                }
                Ok(Ok(Message::Ping(payload))) => {
                    if incoming.outgoing().pong(&payload) {
                        outbox.owe_flush();
                    }
                    continue;
                }
                // Heard from: the silence deadline starts over.
                Ok(Ok(Message::Pong)) => continue,
                Ok(Err(e)) => {
                    let how = e.close();
                    debug!(error = %e, "Client read failed.");
                    if how == FRAME_TOO_LARGE {
                        closes::log(conn.peer, Limit::FrameTooLarge);
                    }
                    outbox.close(how);
                    return false;
                }
                Ok(Ok(msg)) => msg,
            };
            // Boxed, with the message moved in: a request's state is large and
            // rare; inline, every idle connection would carry room for it.
            Box::pin(request(&conn, id, &outbox, &mut limit, msg)).await;
            if outbox.is_closing() {
                // Over its budget: no more requests are handled, but the
                // socket is still read (and what arrives dropped) until the
                // peer answers the Close, so that the connection ends
                // cleanly, with the Close frame delivered, not reset: for at
                // most two heartbeats in all.
                let (max, silent) = (conn.settings.limits.max_frame_bytes, silent_limit(&conn));
                let drained = drain(&mut incoming, max, silent);
                let _ = Box::pin(tokio::time::timeout(silent, drained)).await;
                return true;
            }
        }
    }
}

/// Reads and drops frames until the peer closes, fails, or is silent for
/// `silent_limit`.
async fn drain(incoming: &mut Incoming, max: usize, silent_limit: Duration) {
    loop {
        match tokio::time::timeout(silent_limit, incoming.next(max)).await {
            Ok(Ok(Message::Close(_)) | Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// A WebSocket as delivery's [`Wire`]: every frame (updates, replies,
/// Pings, the Close) is encoded straight into the socket's batch
/// ([`Outgoing`]).
struct WsWire(Outgoing);

impl Sink for WsWire {
    fn feed(&mut self, frame: &Frame) -> usize {
        self.0.push_text([frame.text().as_bytes()])
    }
}

impl Wire for WsWire {
    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.0.ping();
        self.0.flush().await
    }

    /// A Close frame with a code, or (the peer closed or vanished) the Close
    /// reply already gathered, else one without a code. What is gathered
    /// still goes out ahead of it; nothing after.
    async fn close(&mut self, how: Closing) {
        let code = match how {
            Closing::Code(code, reason) => Some((code, reason)),
            Closing::OverBudget => Some(Closing::OVER_BUDGET),
            Closing::Quiet => None,
        };
        self.0.close(code);
        let _ = self.0.flush().await;
    }

    fn seal(&mut self) {
        self.0.seal();
    }

    fn discard(&mut self) {
        self.0.discard();
    }
}
