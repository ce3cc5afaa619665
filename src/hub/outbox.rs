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
//! [`Outbox::take`] hands over the queues themselves and leaves empty ones
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

#[cfg(doc)]
use crate::frame::Kind;
use crate::frame::{Frame, Text};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::pacer::{Paced, Shard};
use crate::metrics::Metrics;
use crate::sync::MutexExt;

/// Replies (acks, errors, pongs) buffered before the reader stops reading.
pub(crate) const CONTROL_CAP: usize = 64;

/// Most bytes of frames the pacer writes for one connection at once; a
/// larger backlog wakes the connection's writer.
const PACED_LIMIT: usize = 64 * 1024;

/// Why a connection is being closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Send a Close frame with this code and reason, then stop.
    Code(u16, &'static str),
    /// The peer closed or vanished: flush what tungstenite owes and stop.
    Quiet,
    /// The connection's unwritten replies passed its byte budget: what is not
    /// yet written is dropped, then Close 1008 (policy violation) is sent.
    OverBudget,
}

impl Closing {
    /// The Close code and reason for [`Closing::OverBudget`].
    pub(crate) const OVER_BUDGET: (u16, &'static str) = (1008, "reply buffer over budget");
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

/// A subscriber's socket, written by the publishing side (see the module
/// docs).
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

/// The publishing side's way into a subscriber's socket.
struct Route {
    to: Box<dyn Direct>,
    /// Least time between two writes of a steady stream (`flush_interval`).
    pace: Duration,
    /// Writes what queued within `pace` once it has passed.
    shard: Arc<Shard>,
}

#[derive(Default)]
struct State {
    control: VecDeque<Frame>,
    queue: VecDeque<Frame>,
    conflated: HashMap<u32, Frame>,
    closing: Option<Closing>,
    /// Bytes of replies queued or taken and not yet handed to the socket.
    control_bytes: usize,
    /// The writer waits with nothing taken ([`Outbox::park`]): a frame
    /// written directly cannot overtake one the writer holds.
    parked: bool,
    /// No direct write before this: a pace after the last write.
    quiet_until: Option<Instant>,
    /// When the pacer's next write is due: a pace after the last one was
    /// due, so that a pacer running late does not stretch the interval.
    next_due: Option<Instant>,
    /// A direct write left part of a frame for the writer to finish.
    unflushed: bool,
    /// When the queued frames are due with the pacer (the writer is not
    /// woken for them); an entry of the pacer's due at another time is stale.
    scheduled: Option<Instant>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.control.is_empty() && self.queue.is_empty() && self.conflated.is_empty()
    }
}

/// An outbox in a topic's subscriber set, equal and hashed by identity: one
/// pointer per subscriber and topic (a set of these costs ~15 bytes per entry
/// at 10k subscribers, an id-keyed `IndexMap` ~49).
#[derive(Clone)]
pub(crate) struct Subscriber(pub(crate) Arc<Outbox>);

impl PartialEq for Subscriber {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Subscriber {}

impl std::hash::Hash for Subscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state)
    }
}

impl Subscriber {
    /// [`Outbox::push`] to this subscriber.
    pub(crate) fn push(&self, frame: Frame) {
        self.0.push(frame);
    }
}

impl std::ops::Deref for Subscriber {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.0
    }
}

/// What [`Outbox::take_all`] took: the outbox's queues, moved out whole.
pub(crate) struct Taken {
    control: VecDeque<Frame>,
    queue: VecDeque<Frame>,
    conflated: HashMap<u32, Frame>,
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
    /// Wakes a reader waiting for room among the replies.
    room: Notify,
    /// Wakes a writer blocked on a write when the budget is passed.
    over_budget: Notify,
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
            room: Notify::new(),
            over_budget: Notify::new(),
            cap: cap.max(1),
            budget: usize::MAX,
            direct: None,
            metrics,
        }
    }

    /// Lets the publishing side write to the subscriber's socket while its
    /// writer is parked: at once when quiet, else through `shard` once `pace`
    /// has passed since the last write (see the module docs).
    pub(crate) fn with_direct(
        mut self,
        direct: Box<dyn Direct>,
        pace: Duration,
        shard: Arc<Shard>,
    ) -> Self {
        self.direct = Some(Route {
            to: direct,
            pace,
            shard,
        });
        self
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
        let mut st = self.lock();
        if st.closing.is_some() {
            return;
        }
        let was_empty = st.is_empty();
        if let Some(route) = self.direct.as_ref().filter(|_| st.parked && !st.unflushed) {
            if was_empty {
                let now = Instant::now();
                match st.quiet_until.filter(|&t| t > now) {
                    None => {
                        let wrote = route.to.write_now(frame.text().as_bytes());
                        if wrote != Wrote::Nothing {
                            st.quiet_until = Some(now + route.pace);
                            st.next_due = st.quiet_until;
                            self.wrote(st, wrote, 1, frame.text().len());
                            return;
                        }
                        // The socket is full: the writer waits for room.
                    }
                    Some(quiet) => {
                        let due = st.next_due.unwrap_or(quiet).max(now);
                        st.queue.push_back(frame);
                        st.scheduled = Some(due);
                        drop(st);
                        route.shard.schedule(due, self.clone());
                        return;
                    }
                }
            }
        }
        if let Some(slot) = st.conflated.get_mut(&frame.id()) {
            *slot = frame;
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        } else if st.queue.len() < self.cap {
            st.queue.push_back(frame);
        } else {
            st.conflated.insert(frame.id(), frame);
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        }
        let wake = was_empty && st.scheduled.is_none();
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
        let wake = was_empty && !st.is_empty() && st.scheduled.is_none();
        drop(st);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Counts what a direct write wrote; wakes the writer to finish a frame
    /// the socket took only part of.
    fn wrote(&self, mut st: MutexGuard<'_, State>, wrote: Wrote, frames: u64, bytes: usize) {
        st.unflushed = wrote == Wrote::Part;
        drop(st);
        self.metrics
            .frames_sent
            .fetch_add(frames, Ordering::Relaxed);
        self.metrics
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if wrote == Wrote::Part {
            self.wake.notify_one();
        }
    }

    /// The pacer's turn, for the write due `at` (see the module docs):
    /// writes the frames queued since the last write in one write, or, when
    /// it cannot, wakes the writer to. The next paced write is due a pace
    /// after `at`, so a late pacer does not stretch the interval; but the
    /// connection is quiet (direct writes) only a pace after this write,
    /// else an overloaded, late pacer would leave every connection looking
    /// quiet and each update would cost the publisher a write of its own.
    pub(crate) fn write_paced(&self, at: Instant, scratch: &mut Vec<u8>) {
        let mut st = self.lock();
        if st.scheduled != Some(at) {
            return; // stale: the writer took them, and they were due again
        }
        st.scheduled = None;
        let Some(route) = &self.direct else {
            return;
        };
        // Scheduled (and not stale) means parked: only `take_all` unparks,
        // and it unschedules too.
        if st.queue.is_empty() && st.conflated.is_empty() {
            return; // an over-budget close dropped them
        }
        let bytes = (st.queue.iter().map(|f| f.text().len()).sum::<usize>())
            + st.conflated.values().map(|f| f.text().len()).sum::<usize>();
        let writable = st.closing.is_none() && !st.unflushed && st.control.is_empty();
        // A backlog this large is the writer's: it writes in steps, waiting
        // for the socket, instead of copying it all at once.
        let wrote = match writable && bytes <= PACED_LIMIT {
            true => {
                let mut frames = (st.queue.iter())
                    .chain(st.conflated.values())
                    .map(|f| f.text().as_bytes());
                route.to.write_all_now(&mut frames, scratch)
            }
            false => Wrote::Nothing,
        };
        if wrote == Wrote::Nothing {
            drop(st);
            self.wake.notify_one();
            return;
        }
        let queue = std::mem::take(&mut st.queue);
        let conflated = std::mem::take(&mut st.conflated);
        st.quiet_until = Some(Instant::now() + route.pace);
        st.next_due = Some(at + route.pace);
        let frames = (queue.len() + conflated.len()) as u64;
        self.wrote(st, wrote, frames, bytes);
    }

    /// Queues a reply to the client, waiting while `CONTROL_CAP` replies are
    /// already pending (the reader then stops reading: backpressure on the peer).
    /// A reply that would pass the byte budget closes the outbox instead
    /// ([`Closing::OverBudget`]); [`Outbox::is_closing`] then says so.
    pub(crate) async fn push_control(&self, mut text: Text) {
        loop {
            let room = self.room.notified();
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
        let wake = st.is_empty() || st.scheduled.is_some();
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
        if how == Closing::OverBudget {
            // A stored permit: the writer may not be waiting yet.
            self.over_budget.notify_one();
        }
        self.wake.notify_one();
        self.room.notify_waiters();
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

    /// Waits until the outbox is closed with [`Closing::OverBudget`].
    pub(crate) async fn passed_budget(&self) {
        self.over_budget.notified().await;
    }

    /// Marks the writer as waiting with nothing taken: from now until its
    /// next [`Outbox::take_all`], a quiet connection's frames may be written
    /// directly.
    pub(crate) fn park(&self) {
        self.lock().parked = true;
    }

    /// Until when the writer lets frames gather after a direct write (the
    /// pacing interval); `None` when it need not wait, e.g. to close.
    /// (Frames the pacer has are due then too.)
    pub(crate) fn paced_until(&self) -> Option<Instant> {
        let st = self.lock();
        st.quiet_until.filter(|_| st.closing.is_none())
    }

    /// Takes everything ready, leaving empty queues (without capacity) behind.
    /// [`Taken::frames`] yields it in the order it must be written.
    pub(crate) fn take_all(&self) -> Taken {
        let mut st = self.lock();
        st.parked = false;
        st.unflushed = false;
        st.scheduled = None;
        let taken = Taken {
            control: std::mem::take(&mut st.control),
            queue: std::mem::take(&mut st.queue),
            conflated: std::mem::take(&mut st.conflated),
            closing: st.closing,
        };
        drop(st);
        if !taken.control.is_empty() {
            self.room.notify_waiters();
        }
        taken
    }

    /// Moves everything ready into `out`, in the order it must be written.
    /// Returns the close request, if any, which the caller acts on after
    /// handling `out`.
    pub(crate) fn take(&self, out: &mut Vec<Frame>) -> Option<Closing> {
        let taken = self.take_all();
        let closing = taken.closing;
        let replied: usize = taken.control.iter().map(|f| f.text().len()).sum();
        self.release(replied);
        out.extend(taken.frames());
        closing
    }

    /// Whether [`Outbox::take`] has something (or a close request) to return.
    pub(crate) fn has_work(&self) -> bool {
        let st = self.lock();
        !st.is_empty() || st.closing.is_some() || st.unflushed
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

impl Paced for Outbox {
    fn write_paced(&self, at: Instant, scratch: &mut Vec<u8>) {
        Outbox::write_paced(self, at, scratch);
    }
}

#[cfg(test)]
mod tests;
