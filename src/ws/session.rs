//! One WebSocket connection: a reader that handles requests and a writer that
//! drains the connection's [`Outbox`] in batches.
//!
//! The reader parses each text frame, replies through the outbox's control
//! queue (acks always precede the snapshots they announce), and watches for a
//! peer silent for two heartbeat periods. The writer waits for the outbox, takes
//! everything ready, `feed`s each frame and `flush`es once: one syscall for many
//! frames under load. While it waits with nothing taken (parked), updates skip
//! it: the publisher writes a quiet connection's update into the socket, and
//! the pacer (`crate::hub::Pacer`) writes what gathers within `flush_interval`
//! after that, so a connection's task is not woken per update at all
//! (`crate::hub::Outbox` has the rules). The writer also sends protocol Pings
//! and, on server shutdown, a Close frame with 1001. Neither half ever blocks
//! the publisher: a slow peer only fills its own outbox, which conflates.
//!
//! Neither half waits without bound on a peer that does not read: a write
//! (a flush of frames, a Ping) that has not completed within two heartbeats
//! drops the connection, and replies that pile up past
//! `limits.max_buffered_bytes` close it with 1008 (the outbox's budget) at once,
//! freeing what was queued.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, Either};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame, Message, Utf8Bytes};

use crate::frame::Kind;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::debug;

use super::transport::{Outgoing, Socket, BATCH_LIMIT};
use crate::closes::{self, Limit};
use crate::connection::{Connection, RateLimit};
use crate::hub::{Closing, Direct, Outbox, Shard, SubscriberId, Wrote};
use crate::metrics::Metrics;
use crate::protocol::{self, ErrorCode};
use crate::rate::{Frames, Shaping};

/// When the writer sends: a Ping every `heartbeat`, and at most one flush per
/// `flush` (`[server] flush_interval`, default 25 ms); the publisher's and
/// the pacer's writes keep the same pace. A connection that was quiet for
/// `flush` writes at once; under a steady stream its frames gather for up to
/// `flush` and go out in one write. Loopback and NIC writes cost
/// microseconds each, so frames per write is what bounds fan-out: this trades
/// at most `flush` of added latency for several times fewer syscalls (measured
/// in `bench/`, see README "Performance").
#[derive(Clone, Copy)]
struct Pacing {
    heartbeat: Duration,
    flush: Duration,
}

/// The publisher's way into a connection's socket while its writer is parked
/// (see `crate::hub::Outbox::with_direct`): not while a subscription asked
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

/// The Close code for a connection whose token (a JWT) expired.
pub(crate) const TOKEN_EXPIRED: u16 = 4001;

/// How long a Close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
        let metrics = self.hub.metrics().clone();
        let limits = &self.settings.limits;
        let mut outbox =
            Outbox::new(limits.queue, metrics.clone()).with_budget(limits.max_buffered_bytes);
        if let Some(shard) = self.pacer.clone().filter(|_| outgoing.is_direct()) {
            let direct = DirectTo {
                outgoing: outgoing.clone(),
                shaping: self.shaping.clone(),
            };
            let pace = self.settings.flush_interval;
            outbox = outbox.with_direct(Box::new(direct), pace, shard);
        }
        let outbox = Arc::new(outbox);
        let id = self.hub.add_subscriber(outbox.clone());
        let leave = self.hub.leave_on_drop(id);
        let heartbeat = self.settings.heartbeat;
        let hello = protocol::hello(&self.hub.epoch(), heartbeat.as_millis() as u64);
        // A new outbox has room: this never hands the reply back.
        let _ = outbox.try_push_control(hello);
        // The writer's own token (a child of the server's): polling it takes
        // only this connection's lock.
        let done = self.shutdown.child_token();
        let sealer = outgoing.clone();
        let writer = Box::pin(write_loop(
            sink,
            outgoing,
            outbox.clone(),
            done.clone(),
            self.shutdown.clone(),
            Pacing {
                heartbeat,
                flush: self.settings.flush_interval,
            },
            metrics,
            self.shaping.clone(),
        ));
        let peer = self.peer;
        let reader = Box::pin(read_loop(self, stream, id, outbox, sealer, done));
        // When the writer ends, the connection is over: the reader is dropped.
        // When the reader ends, it has closed the outbox: the writer finishes
        // (writes what is queued, then the Close frame) and ends.
        async move {
            let stopped_by = match future::select(writer, reader).await {
                Either::Left((stopped_by, _reader)) => stopped_by,
                Either::Right(((), writer)) => writer.await,
            };
            if let Some(limit) = stopped_by {
                closes::log(peer, limit);
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
        let silent_limit = session.settings.heartbeat * 2;
        let mut limit = RateLimit::new();
        loop {
            // A JWT's grant ends at its `exp` (plus leeway) unless refreshed.
            let expires = session.grant().expires().map(crate::auth::jwt::deadline);
            let read = tokio::time::timeout(silent_limit, stream.next());
            let next = match expires {
                None => read.await,
                Some(at) => tokio::select! {
                    next = read => next,
                    _ = tokio::time::sleep_until(at) => {
                        debug!("The connection's token expired.");
                        outbox.close(Closing::Code(TOKEN_EXPIRED, "token expired"));
                        return;
                    }
                },
            };
            let msg = match next {
                Err(_) => {
                    closes::log(session.peer, Limit::Silent);
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
                    // cleanly, with the Close frame delivered, not reset.
                    Box::pin(drain(&mut stream, silent_limit)).await;
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

/// The writer half: waits for the outbox (or a Ping tick), lets frames gather
/// for up to `pacing.flush` under a steady stream, then writes them in one
/// flush. The rarely-entered, large states (a write in flight, a Ping, a Close)
/// are boxed, so that what an idle connection's future holds stays small.
/// Returns the limit that ended the connection, if one did (the reply budget,
/// a write not taken within two heartbeats).
// Not an `async fn`: as `read_loop`. Each part is held for the connection's
// life; a struct of them would only move the same fields one level down.
#[allow(clippy::manual_async_fn, clippy::too_many_arguments)]
fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    outgoing: Outgoing,
    outbox: Arc<Outbox>,
    done: CancellationToken,
    shutdown: CancellationToken,
    pacing: Pacing,
    metrics: Arc<Metrics>,
    shaping: Arc<Shaping>,
) -> impl Future<Output = Option<Limit>> + Send {
    async move {
        let Pacing { heartbeat, flush } = pacing;
        let mut stopped_by = None;
        // A write the peer does not let finish within two heartbeats ends the
        // connection: the peer is as good as silent.
        let stuck = heartbeat * 2;
        // One wait for the whole connection, rather than one per select: each
        // new one registers with the token and deregisters when dropped.
        let cancelled = done.cancelled();
        tokio::pin!(cancelled);
        // One timer for the connection's life, for the next Ping while idle
        // and the next flush while a stream flows (a tokio `Interval` for the
        // Pings would be a second, boxed one).
        let mut next_ping = Instant::now() + heartbeat;
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);
        loop {
            // Pings go out even under a steady stream (checked before frames).
            let now = Instant::now();
            if now >= next_ping {
                next_ping = now + heartbeat;
                let ping = Message::Ping(Default::default());
                let sent = send_or_end(&mut sink, ping, cancelled.as_mut());
                match tokio::time::timeout(stuck, Box::pin(sent)).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        stopped_by = Some(write_timed_out(&metrics));
                        break;
                    }
                }
            }
            // Frames held back by a `max_rate` are due on this same timer.
            let due = shaping.next_due();
            if !outbox.has_work() && due.is_none_or(|d| d > Instant::now()) {
                timer
                    .as_mut()
                    .reset(due.map_or(next_ping, |d| d.min(next_ping)));
                // Parked: meanwhile updates are written by the publisher (a
                // quiet connection) or the pacer (within `flush` of the last
                // write); only what they cannot write (a reply, a close, a
                // full socket) wakes this task. Shaped frames are this
                // task's to write.
                if !shaping.is_active() {
                    outbox.park();
                }
                tokio::select! {
                    biased;
                    _ = &mut cancelled => break,
                    _ = &mut timer => continue,
                    _ = outbox.ready() => {}
                }
                // Frames that came within `flush` of a direct write gather
                // for the rest of it.
                if let Some(until) = outbox.paced_until().filter(|&t| t > Instant::now()) {
                    timer.as_mut().reset(until);
                    tokio::select! {
                        biased;
                        _ = &mut cancelled => break,
                        _ = &mut timer => {}
                    }
                }
            }
            let flushed = Box::pin(flush_ready(
                &mut sink,
                &outgoing,
                &outbox,
                cancelled.as_mut(),
                &metrics,
                &shaping,
            ));
            match tokio::time::timeout(stuck, flushed).await {
                Err(_) => {
                    stopped_by = Some(write_timed_out(&metrics));
                    break;
                }
                Ok(Err(Ended)) => break,
                Ok(Ok(None)) => {}
                Ok(Ok(Some(how))) => {
                    // A Close after an over-budget write must wait for the
                    // peer to read what was already on its way: as long as
                    // any other write.
                    let limit = if how == Closing::OverBudget {
                        stuck
                    } else {
                        CLOSE_TIMEOUT
                    };
                    tokio::select! {
                        _ = Box::pin(close(&mut sink, &outgoing, how, limit)) => {}
                        _ = &mut cancelled => {}
                    }
                    if how == Closing::OverBudget {
                        stopped_by = Some(Limit::Budget);
                    }
                    if how == Closing::OverBudget && !done.is_cancelled() {
                        // The reader drains until the peer answers the Close.
                        let _ = tokio::time::timeout(stuck, done.cancelled()).await;
                    }
                    break;
                }
            }
            // At most one flush per `flush`: under a steady stream the
            // frames of the next interval gather meanwhile and go out in one
            // write, and the task wakes once per flush (for this timer). A
            // connection that was quiet for an interval writes at once.
            if !flush.is_zero() {
                timer.as_mut().reset(Instant::now() + flush);
                tokio::select! {
                    biased;
                    _ = &mut cancelled => break,
                    _ = &mut timer => {}
                }
            }
        }
        if shutdown.is_cancelled() {
            Box::pin(close(
                &mut sink,
                &outgoing,
                Closing::Code(1001, protocol::SHUTDOWN_REASON),
                CLOSE_TIMEOUT,
            ))
            .await;
        }
        stopped_by
    }
}

/// Counts a connection dropped for a write that did not complete; the limit
/// to log.
fn write_timed_out(metrics: &Metrics) -> Limit {
    metrics.closed_write_timeout.fetch_add(1, Ordering::Relaxed);
    Limit::WriteTimeout
}

/// The socket failed or the connection is ending: the writer stops.
struct Ended;

/// Sends one message unless the connection ends first; false when it did or
/// the send failed.
async fn send_or_end(
    sink: &mut SplitSink<Socket, Message>,
    msg: Message,
    cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> bool {
    tokio::select! {
        r = sink.send(msg) => r.is_ok(),
        _ = cancelled => false,
    }
}

/// Takes everything ready from the outbox and writes it: each frame encoded
/// into the socket's buffer, then one `flush` (and one more per
/// [`BATCH_LIMIT`] bytes). Returns the close request that came with it, if any.
/// When the outbox passes its budget meanwhile, what is not yet written is
/// dropped and [`Closing::OverBudget`] returned.
async fn flush_ready(
    sink: &mut SplitSink<Socket, Message>,
    outgoing: &Outgoing,
    outbox: &Outbox,
    cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
    metrics: &Metrics,
    shaping: &Shaping,
) -> Result<Option<Closing>, Ended> {
    let taken = outbox.take_all();
    let closing = taken.closing;
    // The peer closed or vanished: nothing is owed to it, and tungstenite may
    // already have queued its Close reply, after which no frame may follow.
    // Over budget: nothing more is owed either.
    let deliver = !matches!(closing, Some(Closing::Quiet | Closing::OverBudget));
    if !deliver {
        outgoing.seal();
    }
    let (mut count, mut bytes) = (0u64, 0u64);
    let frames = match shaping.is_active() {
        true => Frames::Shaped(shaping.apply(taken.frames()).into_iter()),
        false => Frames::Plain(taken.frames()),
    };
    let write = async {
        if deliver {
            for frame in frames {
                let text = frame.text();
                count += 1;
                bytes += text.len() as u64;
                let buffered = outgoing.push_text([text.as_bytes()]);
                if frame.kind() == Kind::Reply {
                    outbox.release(text.len());
                }
                if buffered >= BATCH_LIMIT {
                    sink.flush().await?;
                }
            }
        }
        sink.flush().await
    };
    let ok = tokio::select! {
        r = write => r.is_ok(),
        _ = cancelled => false,
        _ = outbox.passed_budget() => {
            outgoing.discard();
            return Ok(Some(Closing::OverBudget));
        }
    };
    if !ok {
        return Err(Ended);
    }
    metrics.frames_sent.fetch_add(count, Ordering::Relaxed);
    metrics.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    Ok(closing)
}

/// Closes the connection: a Close frame with a code, or (when the peer closed
/// or vanished) flushing the Close reply tungstenite queued, if any. Bounded by
/// `limit`.
async fn close(
    sink: &mut SplitSink<Socket, Message>,
    outgoing: &Outgoing,
    how: Closing,
    limit: Duration,
) {
    // Whatever is gathered still goes out, ahead of the Close; nothing after.
    outgoing.seal();
    match how {
        Closing::Code(..) | Closing::OverBudget => {
            let (code, reason) = match how {
                Closing::Code(code, reason) => (code, reason),
                _ => Closing::OVER_BUDGET,
            };
            let frame = CloseFrame {
                code: code.into(),
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = tokio::time::timeout(limit, sink.send(Message::Close(Some(frame)))).await;
        }
        Closing::Quiet => {
            let _ = tokio::time::timeout(limit, sink.close()).await;
        }
    }
}
