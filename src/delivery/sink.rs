//! Where a subscriber's frames go, named by what delivery asks of it.
//!
//! - [`Sink`]: takes frames in the order they must reach the peer. Every
//!   subscriber has one: a WebSocket (`ws::session`), an `/sse` stream
//!   (`server::sse`), an in-process [`Subscription`](crate::hub::Subscription)
//!   (it decodes each frame into an `Update`).
//! - [`Wire`]: a sink over a socket, which the connection's writer task
//!   (`super::writer`) flushes, pings and closes, waiting for the peer. The
//!   in-process subscription is no wire: its consumer pulls (nothing to wait
//!   on), so it takes frames with the same `super::writer::take` and hands
//!   them to its sink, without a task.
//! - [`Direct`]: the publishing side's way into a socket while the writer is
//!   parked (WebSocket over TCP only); see `super::outbox`.
//!
//! # Lock order
//!
//! Delivery takes its locks in one order, top to bottom, never back up:
//!
//! 1. a topic's lock in the hub (held while the publisher pushes the frame
//!    to every subscriber of the topic);
//! 2. the subscriber's outbox lock (`Outbox::push`, `Outbox::write_paced`);
//! 3. the socket's write lock (`ws::transport::Outgoing`), taken by a
//!    [`Direct`] write under the outbox lock, and on its own by the writer
//!    task and the reader (its Pongs and Close reply).
//!
//! A pacer shard's heap lock (`super::pacer`) is taken only after the outbox
//! lock is dropped, and the pacer takes an outbox lock only with its heap
//! lock dropped. Nothing in delivery awaits while holding any of them.

use std::future::Future;
use std::io;

use crate::frame::Frame;

/// Takes a subscriber's frames, in the order they must reach it.
pub(crate) trait Sink {
    /// Takes one frame for the next flush; returns how many bytes the sink
    /// now holds unwritten (the writer flushes in steps past
    /// `super::BATCH_LIMIT`).
    fn feed(&mut self, frame: &Frame) -> usize;
}

/// A [`Sink`] over a socket, driven by the connection's writer task
/// (`super::writer::run`): one writer discipline for every transport.
pub(crate) trait Wire: Sink + Send {
    /// Writes out what was fed, waiting for the peer to take it.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes a heartbeat (a WebSocket Ping, an SSE comment) and flushes.
    fn ping(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Ends the connection as `how` says, after what was flushed (the
    /// writer bounds how long this may take).
    fn close(&mut self, how: Closing) -> impl Future<Output = ()> + Send;

    /// Nothing fed from now on goes out: the peer closed, or no more is
    /// owed to it. (A WebSocket's Close must be its last frame.)
    fn seal(&mut self);

    /// Drops what was fed and not yet written.
    fn discard(&mut self);
}

/// Why a connection is being closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Send a Close frame with this code and reason (an `/sse` stream
    /// ends), then stop.
    Code(u16, &'static str),
    /// The peer closed or vanished: flush what is owed (a WebSocket's Close
    /// reply) and stop.
    Quiet,
    /// The connection's unwritten replies passed its byte budget (or an
    /// `/sse` stream took nothing for two heartbeats): what is not yet
    /// written is dropped, then Close 1008 (policy violation) is sent.
    OverBudget,
}

impl Closing {
    /// The Close code and reason for [`Closing::OverBudget`].
    pub(crate) const OVER_BUDGET: (u16, &'static str) = (1008, "reply buffer over budget");

    /// Whether frames still queued are owed to the peer: not when it closed
    /// or vanished, nor past the budget.
    pub(crate) fn delivers(how: Option<Closing>) -> bool {
        !matches!(how, Some(Closing::Quiet | Closing::OverBudget))
    }
}

/// What a [`Direct`] write did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// The socket took all of it.
    All,
    /// The socket took part of it; the rest is the frame in flight, which
    /// the writer's next flush finishes before anything else.
    Part,
    /// Nothing: something is ahead of it, or the socket is full.
    Nothing,
}

/// A subscriber's socket, written by the publishing side while the writer is
/// parked (see `super::outbox`).
pub(crate) trait Direct: Send + Sync {
    /// Writes one text frame now, without blocking, if nothing is ahead of
    /// it in the socket's own buffers.
    fn write_now(&self, text: &[u8]) -> Wrote;

    /// Writes text frames in one write, as [`Direct::write_now`], encoding
    /// them into `scratch` first.
    fn write_all_now(
        &self,
        frames: &mut dyn Iterator<Item = &[u8]>,
        scratch: &mut Vec<u8>,
    ) -> Wrote;
}
