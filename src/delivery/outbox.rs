//! One subscriber's outbound queue: bounded, conflating, never blocking the
//! publisher.
//!
//! The publisher pushes a frame with [`Outbox::push`] while it holds the topic's
//! lock; that push only takes this outbox's own short lock. When `cap` frames are
//! already waiting, the frame goes to a map keyed by topic instead, where a newer
//! frame of the same topic replaces the older one (conflation). Once a topic has a
//! frame in that map, its later frames go there too until the writer drains it, so
//! a reader always sees a topic's seq strictly increasing. Memory is bounded by
//! `cap` frames plus one per subscribed topic, plus `CONTROL_CAP` replies.
//!
//! [`Outbox::take_all`] hands over the queues themselves and leaves empty ones
//! behind, so an idle subscriber holds no queue capacity (the next push
//! allocates afresh: a few allocations per flush under load, none while idle).
//!
//! An outbox may have a [`Direct`] way to its socket (a WebSocket over TCP).
//! While the connection's writer is parked ([`Outbox::park`]: waiting, with
//! nothing taken), the writer is not woken for updates at all:
//! - a connection that wrote nothing for its pacing interval (`pace`,
//!   `[server] flush_interval`) gets the frame written into its socket by
//!   [`Outbox::push`] itself, one non-blocking write;
//! - within the interval, frames queue as above and the outbox is scheduled
//!   with a [`Shard`] of the pacer, which writes all of them in one write
//!   when the interval ends ([`Outbox::write_paced`]).
//!
//! What neither can do (a reply, a close, a socket that did not take a whole
//! write) wakes the writer, which takes everything and writes it in order. A
//! frame is written directly only when nothing is queued or taken ahead of
//! it, so order is kept. README "Performance" has the figures.
//!
//! It must never await, allocate per subscriber on publish beyond the frame handle
//! and its queue's growth, or call back into the hub.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(doc)]
use crate::frame::Kind;
use crate::frame::{Frame, Text};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::lazy_map::LazyMap;
use super::sink::Closing;
use crate::metrics::Metrics;
use crate::sync::MutexExt;
use direct::Route;

/// Replies (acks, errors, pongs) buffered before the reader stops reading.
pub(crate) const CONTROL_CAP: usize = 64;

#[derive(Default)]
struct State {
    control: VecDeque<Frame>,
    queue: VecDeque<Frame>,
    conflated: Conflated,
    closing: Option<Closing>,
    /// Bytes of replies queued or taken and not yet handed to the socket.
    control_bytes: usize,
    /// Whose turn it is to write: the writer's, or (parked) the publisher's
    /// and the pacer's.
    turn: Turn,
    /// No direct write before this: a pace after the last write.
    quiet_until: Option<Instant>,
    /// When the pacer's next write is due: a pace after the last one was
    /// due, so that a pacer running late does not stretch the interval.
    next_due: Option<Instant>,
    /// [`Outbox::stop`] was called: the writer's write in progress is
    /// abandoned.
    stopped: bool,
}

/// Where the connection's writer is, as far as the direct route cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Turn {
    /// The writer has taken frames, or is about to: nothing is written
    /// around it.
    #[default]
    Writer,
    /// The writer waits with nothing taken ([`Outbox::park`]): a frame
    /// written directly cannot overtake one it holds.
    Parked,
    /// Parked, with the queued frames due with the pacer at this time (the
    /// writer is not woken for them); a pacer entry due at another time is
    /// stale.
    Paced(Instant),
    /// The socket holds bytes the writer (woken) must write before anything
    /// else: the rest of a direct write, a Pong ([`Outbox::owe_flush`]).
    Unflushed,
}

impl State {
    fn is_empty(&self) -> bool {
        self.control.is_empty() && self.queue.is_empty() && self.conflated.is_empty()
    }

    /// The queued frames are the pacer's to write: the writer is not woken
    /// for more of them.
    fn is_paced(&self) -> bool {
        matches!(self.turn, Turn::Paced(_))
    }

    /// Whether the writer abandons the write it is waiting on: the budget
    /// passed, or it was stopped.
    fn must_stop(&self) -> bool {
        self.stopped || self.closing == Some(Closing::OverBudget)
    }
}

/// The frames past `cap`, one per topic (its latest), keyed by topic id:
/// most outboxes never conflate.
type Conflated = LazyMap<u32, Frame>;

/// What [`Outbox::take_all`] took: the outbox's queues, moved out whole.
pub(crate) struct Taken {
    control: VecDeque<Frame>,
    queue: VecDeque<Frame>,
    conflated: Conflated,
    /// The close request, if any: acted on after the frames are written.
    pub(crate) closing: Option<Closing>,
}

impl Taken {
    /// The frames, in the order they must be written: replies, queued
    /// frames, then conflated frames. Each reply ([`Kind::Reply`]) is still
    /// counted against the budget until [`Outbox::release`]d.
    pub(crate) fn frames(self) -> impl Iterator<Item = Frame> {
        self.control
            .into_iter()
            .chain(self.queue)
            .chain(self.conflated.into_values())
    }
}

/// A bounded, conflating queue between the hub and one subscriber's writer.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when the outbox goes from empty to not empty.
    wake: Notify,
    /// Wakes the reader waiting for room among the replies, and the writer
    /// blocked on a write when it must stop ([`Outbox::stopped`]). Each
    /// checks its own condition again, so a wake meant for the other costs
    /// only that check (one `Notify` less in every outbox).
    changed: Notify,
    cap: usize,
    /// Most bytes of replies not yet handed to the socket.
    budget: usize,
    /// The socket, written directly while the writer is parked.
    direct: Option<Route>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    pub(crate) fn new(cap: usize, metrics: Arc<Metrics>) -> Self {
        Outbox {
            state: Mutex::default(),
            wake: Notify::new(),
            changed: Notify::new(),
            cap: cap.max(1),
            budget: usize::MAX,
            direct: None,
            metrics,
        }
    }

    /// Sets the most bytes of replies that may wait to be written (see the
    /// module docs); unbounded by default.
    pub(crate) fn with_budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queues inconsistent
        // (every operation is a single push or take), so poisoning is ignored.
        self.state.lock_or_recover()
    }

    /// Queues an update, or writes it into the socket when the connection is
    /// quiet (see the module docs); never blocks. Conflates by topic past
    /// `cap` frames.
    pub(crate) fn push(self: &Arc<Self>, frame: Frame) {
        let st = self.lock();
        if st.closing.is_some() {
            return;
        }
        let was_empty = st.is_empty();
        let Some((mut st, frame)) = self.push_direct(st, frame, was_empty) else {
            return;
        };
        if let Some(slot) = st.conflated.get_mut(&frame.id()) {
            *slot = frame;
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        } else if st.queue.len() < self.cap {
            st.queue.push_back(frame);
        } else {
            st.conflated.map_mut().insert(frame.id(), frame);
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        }
        let wake = was_empty && !st.is_paced();
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queues a topic's resumed backlog whole, past `cap`, for the writer
    /// (never written directly: it may be large). Only for a topic the
    /// subscriber has just joined, so nothing of it is queued yet and order
    /// holds; the resume plan bounds how much this queues in all.
    pub(crate) fn push_backlog(&self, frames: impl Iterator<Item = Frame>) {
        let mut st = self.lock();
        if st.closing.is_some() {
            return;
        }
        let was_empty = st.is_empty();
        st.queue.extend(frames);
        let wake = was_empty && !st.is_empty() && !st.is_paced();
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queues a reply to the client, waiting while `CONTROL_CAP` replies are
    /// already pending (the reader then stops reading: backpressure on the peer).
    /// A reply that would pass the byte budget closes the outbox instead
    /// ([`Closing::OverBudget`]); [`Outbox::is_closing`] then says so.
    pub(crate) async fn push_control(&self, mut text: Text) {
        loop {
            let room = self.changed.notified();
            match self.try_push_control(text) {
                Ok(()) => return,
                Err(t) => text = t,
            }
            room.await;
        }
    }

    /// Queues a reply unless `CONTROL_CAP` replies are pending (then hands it
    /// back). A reply to a closing connection is dropped; one that would pass
    /// the byte budget closes the outbox with [`Closing::OverBudget`].
    pub(crate) fn try_push_control(&self, text: Text) -> Result<(), Text> {
        let mut st = self.lock();
        if st.closing.is_some() {
            return Ok(());
        }
        if st.control_bytes.saturating_add(text.len()) > self.budget {
            drop(st);
            self.metrics
                .closed_over_budget
                .fetch_add(1, Ordering::Relaxed);
            self.close(Closing::OverBudget);
            return Ok(());
        }
        if st.control.len() >= CONTROL_CAP {
            return Err(text);
        }
        let wake = st.is_empty() || st.is_paced();
        st.control_bytes += text.len();
        st.control.push_back(Frame::reply(text));
        drop(st);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Asks the writer to close the connection; frames queued after this are
    /// dropped. The first reason wins.
    pub(crate) fn close(&self, how: Closing) {
        let mut st = self.lock();
        if st.closing.is_none() {
            st.closing = Some(how);
        }
        // Nothing queued will be written: free it now, not when the writer
        // gets past a write the peer may never let finish.
        let dropped = (how == Closing::OverBudget).then(|| {
            st.control_bytes = 0;
            (
                std::mem::take(&mut st.control),
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.conflated),
            )
        });
        drop(st);
        drop(dropped);
        self.wake.notify_one();
        self.changed.notify_waiters();
    }

    /// Closes as [`Outbox::close`] does, and makes the writer abandon a write
    /// the peer is not taking: the server shuts down, an `/sse` client went
    /// away.
    pub(crate) fn stop(&self, how: Closing) {
        self.lock().stopped = true;
        self.close(how);
    }

    /// Whether the outbox was closed: the reader stops reading then.
    pub(crate) fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Counts `bytes` of replies as handed to the socket: they no longer count
    /// against the budget.
    pub(crate) fn release(&self, bytes: usize) {
        let mut st = self.lock();
        st.control_bytes = st.control_bytes.saturating_sub(bytes);
    }

    /// The counters the outbox reports into.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The close request, if any.
    pub(crate) fn closing(&self) -> Option<Closing> {
        self.lock().closing
    }

    /// Waits until the writer must abandon the write it is waiting on: the
    /// outbox was closed with [`Closing::OverBudget`], or stopped.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check: a stop in between still wakes it.
            notified.as_mut().enable();
            if self.lock().must_stop() {
                return;
            }
            notified.await;
        }
    }

    /// Takes everything ready, leaving empty queues (without capacity) behind.
    /// [`Taken::frames`] yields it in the order it must be written.
    pub(crate) fn take_all(&self) -> Taken {
        let mut st = self.lock();
        st.turn = Turn::Writer;
        let taken = Taken {
            control: std::mem::take(&mut st.control),
            queue: std::mem::take(&mut st.queue),
            conflated: std::mem::take(&mut st.conflated),
            closing: st.closing,
        };
        drop(st);
        if !taken.control.is_empty() {
            self.changed.notify_waiters();
        }
        taken
    }

    /// Hands everything ready to `out` as the writer does (tests' shorthand
    /// for `super::writer::take` and `hand`). Returns the close request, if
    /// any.
    #[cfg(test)]
    pub(crate) fn take(&self, out: &mut Vec<Frame>) -> Option<Closing> {
        let (frames, closing) = super::writer::take(self, None);
        for frame in frames {
            super::writer::hand(out, self, &frame);
        }
        closing
    }

    /// Whether [`Outbox::take_all`] has something (or a close request) to return.
    pub(crate) fn has_work(&self) -> bool {
        let st = self.lock();
        !st.is_empty() || st.closing.is_some() || st.turn == Turn::Unflushed
    }

    /// Waits until [`Outbox::has_work`].
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.wake.notified();
            if self.has_work() {
                return;
            }
            notified.await;
        }
    }
}

mod direct;
#[cfg(test)]
mod tests;
