//! The one writer discipline: how a connection's frames leave its outbox, for
//! every transport.
//!
//! [`take`] is the order: everything ready, replies first, then queued
//! frames, then conflated ones, passed through the connection's `max_rate`
//! and `delta` shaping. [`hand`] gives one frame to a [`Sink`] and lets a
//! reply stop counting against the outbox's budget. Both serve every
//! subscriber, the in-process one included.
//!
//! [`run`] is the writer task of a socket ([`Wire`]: `/ws`, `/sse`): it
//! waits for the outbox (or a heartbeat), lets frames gather for up to
//! `flush_interval` under a steady stream, then feeds everything ready and
//! flushes once (and once more per [`BATCH_LIMIT`] bytes): one syscall for
//! many frames under load. While it waits with nothing taken (parked), a
//! WebSocket's updates skip it: the publisher writes a quiet connection's
//! update into the socket, and the pacer writes what gathers within the
//! interval after that, so the task is not woken per update at all
//! (`super::outbox` has the rules). It also sends the heartbeat, and the
//! Close the outbox asks for (on server shutdown, 1001: `crate::hub::Hub`
//! stops every outbox).
//!
//! It never waits without bound on a peer that does not read: a write (a
//! flush, a heartbeat) that has not completed within two heartbeats drops the
//! connection, and replies that pile up past `limits.max_buffered_bytes`
//! close it with 1008 at once, dropping what was queued. Neither ever blocks
//! the publisher: a slow peer only fills its own outbox, which conflates.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::outbox::Outbox;
use super::shaping::Shaping;
use super::sink::{Closing, Sink, Wire};
use crate::closes::{self, Limit};
use crate::frame::{Frame, Kind};
use crate::metrics::Metrics;

/// Bytes a sink gathers before the writer flushes without waiting for the
/// end of its batch: bounds a connection's buffered output while it writes a
/// long backlog.
pub(crate) const BATCH_LIMIT: usize = 64 * 1024;

/// How long a Close may take to go out before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// When a writer sends: a heartbeat every `heartbeat`, and at most one
/// flush per `flush` (`[server] flush_interval`, default 25 ms); the
/// publisher's and the pacer's writes keep the same pace. A connection that
/// was quiet for `flush` writes at once; under a steady stream its frames
/// gather for up to `flush` and go out in one write. Loopback and NIC writes
/// cost microseconds each, so frames per write is what bounds fan-out: this
/// trades at most `flush` of added latency for several times fewer syscalls
/// (README "Performance").
///
/// Kept in whole milliseconds and microseconds (8 bytes, not 32: every idle
/// connection's writer holds it).
#[derive(Clone, Copy)]
pub(crate) struct Pacing {
    heartbeat_ms: u32,
    flush_us: u32,
}

impl Pacing {
    /// A heartbeat every `heartbeat`, at most one flush per `flush`.
    pub(crate) fn new(heartbeat: Duration, flush: Duration) -> Self {
        let clamp = |n: u128| u32::try_from(n).unwrap_or(u32::MAX);
        Pacing {
            heartbeat_ms: clamp(heartbeat.as_millis()),
            flush_us: clamp(flush.as_micros()),
        }
    }

    fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.into())
    }

    fn flush(&self) -> Duration {
        Duration::from_micros(self.flush_us.into())
    }

    /// How long a write may wait for the peer: two heartbeats.
    fn stuck(&self) -> Duration {
        self.heartbeat() * 2
    }
}

/// Takes everything ready from `outbox`, in the order it must go out,
/// through `shaping` when the connection asked for `max_rate` or `delta`.
/// Returns the frames and the close request that came with them, if any.
pub(crate) fn take(
    outbox: &Outbox,
    shaping: Option<&Shaping>,
) -> (impl Iterator<Item = Frame> + Send, Option<Closing>) {
    let taken = outbox.take_all();
    let closing = taken.closing;
    let frames = match shaping.filter(|s| s.is_active()) {
        Some(shaping) => Frames::Shaped(shaping.apply(taken.frames()).into_iter()),
        None => Frames::Plain(taken.frames()),
    };
    (frames, closing)
}

/// The frames a writer writes: as taken, or as `Shaping::apply` left them.
enum Frames<I> {
    /// Untouched (no shaping on this connection).
    Plain(I),
    /// Shaped.
    Shaped(std::vec::IntoIter<Frame>),
}

impl<I: Iterator<Item = Frame>> Iterator for Frames<I> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        match self {
            Frames::Plain(i) => i.next(),
            Frames::Shaped(i) => i.next(),
        }
    }
}

/// Hands one frame to `sink`; a reply no longer counts against the outbox's
/// budget once handed over. Returns the bytes the sink holds unwritten.
pub(crate) fn hand(sink: &mut impl Sink, outbox: &Outbox, frame: &Frame) -> usize {
    let held = sink.feed(frame);
    if frame.kind() == Kind::Reply {
        outbox.release(frame.text().len());
    }
    held
}

/// What a connection's writer task holds for the connection's life.
pub(crate) struct Writer<W> {
    pub(crate) wire: W,
    pub(crate) outbox: Arc<Outbox>,
    /// `max_rate` and `delta` of the connection's subscriptions.
    pub(crate) shaping: Arc<Shaping>,
    pub(crate) pacing: Pacing,
    /// The peer's address, for the line logged when a limit stops it.
    pub(crate) peer: Option<SocketAddr>,
}

/// The writer task of one connection (see the module docs). The rarely
/// entered, large states (a write in flight, a heartbeat, a Close) are
/// boxed, so that what an idle connection's future holds stays small.
/// Returns the limit that ended the connection, if one did (the reply
/// budget, a write not taken within two heartbeats), after logging it.
// Not an `async fn`, and the fields used in place rather than destructured:
// the future is held for the connection's life, and either would keep a
// second copy of what it was given.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<W: Wire>(mut w: Writer<W>) -> impl Future<Output = Option<Limit>> + Send {
    async move {
        let mut stopped_by = None;
        // A write the peer does not let finish within two heartbeats
        // (`stuck`, computed where used: every value kept across an await is
        // held by every idle connection) ends the connection: the peer is as
        // good as silent. A write is abandoned at once when the outbox says
        // so (`Outbox::stopped`: over budget, server shutdown).
        // One timer for the connection's life, for the next heartbeat while
        // idle and the next flush while a stream flows.
        let mut next_ping = Instant::now() + w.pacing.heartbeat();
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);
        loop {
            // Heartbeats go out even under a steady stream (checked first).
            if Instant::now() >= next_ping {
                next_ping = Instant::now() + w.pacing.heartbeat();
                let ping = async {
                    tokio::select! {
                        biased;
                        r = w.wire.ping() => r.is_ok(),
                        // The close the outbox asks for is next.
                        _ = w.outbox.stopped() => true,
                    }
                };
                match tokio::time::timeout(w.pacing.stuck(), Box::pin(ping)).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        stopped_by = Some(write_timed_out(w.outbox.metrics()));
                        break;
                    }
                }
            }
            // Frames held back by a `max_rate` are due on this same timer.
            let due = w.shaping.next_due();
            if !w.outbox.has_work() && due.is_none_or(|d| d > Instant::now()) {
                timer
                    .as_mut()
                    .reset(due.map_or(next_ping, |d| d.min(next_ping)));
                // Parked: meanwhile updates are written by the publisher (a
                // quiet connection) or the pacer (within `flush` of the last
                // write), where the outbox has a direct route; only what they
                // cannot write (a reply, a close, a full socket) wakes this
                // task. Shaped frames are this task's to write.
                if !w.shaping.is_active() {
                    w.outbox.park();
                }
                tokio::select! {
                    biased;
                    _ = &mut timer => continue,
                    _ = w.outbox.ready() => {}
                }
                // Frames that came within `flush` of a direct write gather
                // for the rest of it.
                if let Some(until) = w.outbox.paced_until().filter(|&t| t > Instant::now()) {
                    timer.as_mut().reset(until);
                    timer.as_mut().await;
                }
            }
            let flushed = Box::pin(flush_ready(&mut w.wire, &w.outbox, &w.shaping));
            match tokio::time::timeout(w.pacing.stuck(), flushed).await {
                Err(_) => {
                    stopped_by = Some(write_timed_out(w.outbox.metrics()));
                    break;
                }
                Ok(Err(Ended)) => break,
                Ok(Ok(None)) => {}
                Ok(Ok(Some(how))) => {
                    // A Close after an over-budget write must wait for the
                    // peer to read what was already on its way: as long as
                    // any other write.
                    let limit = match how {
                        Closing::OverBudget => w.pacing.stuck(),
                        _ => CLOSE_TIMEOUT,
                    };
                    let _ = tokio::time::timeout(limit, Box::pin(w.wire.close(how))).await;
                    if how == Closing::OverBudget {
                        stopped_by = Some(Limit::Budget);
                    }
                    break;
                }
            }
            // At most one flush per `flush`: under a steady stream the
            // frames of the next interval gather meanwhile and go out in one
            // write, and the task wakes once per flush (for this timer). A
            // connection that was quiet for an interval writes at once.
            if !w.pacing.flush().is_zero() {
                timer.as_mut().reset(Instant::now() + w.pacing.flush());
                timer.as_mut().await;
            }
        }
        if let Some(limit) = stopped_by {
            closes::log(w.peer, limit);
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

/// Takes everything ready and writes it: each frame fed to the wire, then
/// one flush (and one more per [`BATCH_LIMIT`] bytes). Returns the close
/// request that came with it, if any. When the outbox says to stop
/// meanwhile (over budget, shutdown), what is not yet written is dropped
/// and its close request returned.
async fn flush_ready<W: Wire>(
    wire: &mut W,
    outbox: &Outbox,
    shaping: &Shaping,
) -> Result<Option<Closing>, Ended> {
    let (frames, closing) = take(outbox, Some(shaping));
    // The peer closed or vanished, or the budget passed: nothing more is
    // owed, and a WebSocket's Close reply may already be on its way, after
    // which no frame may follow.
    let deliver = Closing::delivers(closing);
    if !deliver {
        wire.seal();
    }
    let (mut count, mut bytes) = (0u64, 0u64);
    let write = async {
        if deliver {
            for frame in frames {
                count += 1;
                bytes += frame.text().len() as u64;
                if hand(&mut *wire, outbox, &frame) >= BATCH_LIMIT {
                    wire.flush().await?;
                }
            }
        }
        wire.flush().await
    };
    // The write first: what the socket takes at once still goes out.
    let flushed = tokio::select! {
        biased;
        r = write => Some(r.is_ok()),
        _ = outbox.stopped() => None,
    };
    match flushed {
        None => {
            wire.discard();
            Ok(outbox.closing())
        }
        Some(false) => Err(Ended),
        Some(true) => {
            let metrics = outbox.metrics();
            metrics.frames_sent.fetch_add(count, Ordering::Relaxed);
            metrics.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            Ok(closing)
        }
    }
}

/// Tests hand frames to a `Vec` (`Outbox::take`).
#[cfg(test)]
impl Sink for Vec<Frame> {
    fn feed(&mut self, frame: &Frame) -> usize {
        self.push(frame.clone());
        0
    }
}
