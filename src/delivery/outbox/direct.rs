//! The outbox's direct route (see the module docs of `super`): the
//! publisher's write into a quiet connection's socket, the pacer's write of
//! what gathered within the pacing interval, and the writer's turn that both
//! wait for.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{Outbox, State, Turn};
use crate::delivery::pacer::{Paced, Shard};
use crate::delivery::sink::{Direct, Wrote};
use crate::frame::Frame;

/// Most bytes of frames the pacer writes for one connection at once; a
/// larger backlog wakes the connection's writer.
const PACED_LIMIT: usize = 64 * 1024;

/// The publishing side's way into a subscriber's socket.
pub(super) struct Route {
    pub(super) to: Box<dyn Direct>,
    /// Least time between two writes of a steady stream (`flush_interval`).
    pub(super) pace: Duration,
    /// Writes what queued within `pace` once it has passed.
    pub(super) shard: Arc<Shard>,
}

impl Outbox {
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

    /// A parked, quiet connection's frame is written into its socket now; one
    /// within the pacing interval after a write is queued for the pacer.
    /// Gives the frame (and the lock) back when the writer must take it: no
    /// direct route, the writer's turn, something queued ahead, a full socket.
    pub(super) fn push_direct<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
        frame: Frame,
        was_empty: bool,
    ) -> Option<(MutexGuard<'a, State>, Frame)> {
        let route = match &self.direct {
            Some(route) if st.turn == Turn::Parked && was_empty => route,
            _ => return Some((st, frame)),
        };
        let now = Instant::now();
        match st.quiet_until.filter(|&t| t > now) {
            None => {
                let wrote = route.to.write_now(frame.text().as_bytes());
                if wrote == Wrote::Nothing {
                    return Some((st, frame)); // full: the writer waits for room
                }
                st.quiet_until = Some(now + route.pace);
                st.next_due = st.quiet_until;
                self.wrote(st, wrote, 1, frame.text().len());
                None
            }
            Some(quiet) => {
                let due = st.next_due.unwrap_or(quiet).max(now);
                st.queue.push_back(frame);
                st.turn = Turn::Paced(due);
                drop(st);
                route.shard.schedule(due, self.clone());
                None
            }
        }
    }

    /// Counts what a direct write wrote; wakes the writer to finish a frame
    /// the socket took only part of.
    fn wrote(&self, st: MutexGuard<'_, State>, wrote: Wrote, frames: u64, bytes: usize) {
        drop(st);
        self.metrics
            .frames_sent
            .fetch_add(frames, Ordering::Relaxed);
        self.metrics
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if wrote == Wrote::Part {
            self.owe_flush();
        }
    }

    /// The socket holds bytes that only the writer may finish (the rest of
    /// a direct write, a Pong that could not go at once): wakes it to flush,
    /// and nothing is written directly until it has.
    pub(crate) fn owe_flush(&self) {
        self.lock().turn = Turn::Unflushed;
        self.wake.notify_one();
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
        if st.turn != Turn::Paced(at) {
            return; // stale: the writer took them, and they were due again
        }
        st.turn = Turn::Parked;
        let Some(route) = &self.direct else {
            return;
        };
        // Paced at `at` (not stale) means parked with nothing in flight:
        // only `take_all` takes the turn back.
        if st.queue.is_empty() && st.conflated.is_empty() {
            return; // an over-budget close dropped them
        }
        let bytes = (st.queue.iter().map(|f| f.text().len()).sum::<usize>())
            + st.conflated.values().map(|f| f.text().len()).sum::<usize>();
        let writable = st.closing.is_none() && st.control.is_empty();
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

    /// Marks the writer as waiting with nothing taken: from now until its
    /// next [`Outbox::take_all`], a quiet connection's frames may be written
    /// directly.
    pub(crate) fn park(&self) {
        let mut st = self.lock();
        if st.turn == Turn::Writer {
            st.turn = Turn::Parked;
        }
    }

    /// Until when the writer lets frames gather after a direct write (the
    /// pacing interval); `None` when it need not wait, e.g. to close.
    /// (Frames the pacer has are due then too.)
    pub(crate) fn paced_until(&self) -> Option<Instant> {
        let st = self.lock();
        st.quiet_until.filter(|_| st.closing.is_none())
    }
}

impl Paced for Outbox {
    fn write_paced(&self, at: Instant, scratch: &mut Vec<u8>) {
        Outbox::write_paced(self, at, scratch);
    }
}
