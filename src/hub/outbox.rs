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
//! It must never await, allocate per subscriber on publish beyond the frame handle
//! and its queue's growth, or call back into the hub.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::Metrics;
use crate::sync::MutexExt;

/// Replies (acks, errors, pongs) buffered before the reader stops reading.
pub(crate) const CONTROL_CAP: usize = 64;

/// An update's wire frame, as shared by every subscriber of its topic.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// The topic's id, the key of conflation.
    pub(crate) topic: u32,
    /// The encoded `{"type":"update",...}` text.
    pub(crate) text: Utf8Bytes,
}

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

#[derive(Default)]
struct State {
    control: VecDeque<Utf8Bytes>,
    queue: VecDeque<Frame>,
    conflated: HashMap<u32, Frame>,
    closing: Option<Closing>,
    /// Bytes of replies queued or taken and not yet handed to the socket.
    control_bytes: usize,
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

impl std::ops::Deref for Subscriber {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.0
    }
}

/// What [`Outbox::take_all`] took: the outbox's queues, moved out whole.
pub(crate) struct Taken {
    control: VecDeque<Utf8Bytes>,
    queue: VecDeque<Frame>,
    conflated: HashMap<u32, Frame>,
    /// The close request, if any: acted on after the frames are written.
    pub(crate) closing: Option<Closing>,
}

impl Taken {
    /// How many of [`Taken::frames`] (the first ones) are replies: each is
    /// still counted against the budget until [`Outbox::release`]d.
    pub(crate) fn replies(&self) -> usize {
        self.control.len()
    }

    /// The frames, in the order they must be written: replies, queued
    /// frames, then conflated frames.
    pub(crate) fn frames(self) -> impl Iterator<Item = Utf8Bytes> {
        self.control
            .into_iter()
            .chain(self.queue.into_iter().map(|f| f.text))
            .chain(self.conflated.into_values().map(|f| f.text))
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

    /// Queues an update; never blocks. Conflates by topic past `cap` frames.
    pub(crate) fn push(&self, frame: Frame) {
        let mut st = self.lock();
        if st.closing.is_some() {
            return;
        }
        let was_empty = st.is_empty();
        if let Some(slot) = st.conflated.get_mut(&frame.topic) {
            *slot = frame;
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        } else if st.queue.len() < self.cap {
            st.queue.push_back(frame);
        } else {
            st.conflated.insert(frame.topic, frame);
            self.metrics
                .frames_conflated
                .fetch_add(1, Ordering::Relaxed);
        }
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Queues a reply to the client, waiting while `CONTROL_CAP` replies are
    /// already pending (the reader then stops reading: backpressure on the peer).
    /// A reply that would pass the byte budget closes the outbox instead
    /// ([`Closing::OverBudget`]); [`Outbox::is_closing`] then says so.
    pub(crate) async fn push_control(&self, mut text: Utf8Bytes) {
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
    pub(crate) fn try_push_control(&self, text: Utf8Bytes) -> Result<(), Utf8Bytes> {
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
        let was_empty = st.is_empty();
        st.control_bytes += text.len();
        st.control.push_back(text);
        drop(st);
        if was_empty {
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

    /// Takes everything ready, leaving empty queues (without capacity) behind.
    /// [`Taken::frames`] yields it in the order it must be written.
    pub(crate) fn take_all(&self) -> Taken {
        let mut st = self.lock();
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
    pub(crate) fn take(&self, out: &mut Vec<Utf8Bytes>) -> Option<Closing> {
        let taken = self.take_all();
        let closing = taken.closing;
        let replied: usize = taken.control.iter().map(|t| t.len()).sum();
        self.release(replied);
        out.extend(taken.frames());
        closing
    }

    /// Whether [`Outbox::take`] has something (or a close request) to return.
    pub(crate) fn has_work(&self) -> bool {
        let st = self.lock();
        !st.is_empty() || st.closing.is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(topic: u32, seq: u64) -> Frame {
        Frame {
            topic,
            text: Utf8Bytes::from(format!("{topic}:{seq}")),
        }
    }

    #[test]
    fn conflates_past_cap_and_keeps_per_topic_order() {
        let ob = Outbox::new(2, Arc::default());
        ob.push(frame(1, 1));
        ob.push(frame(2, 1));
        ob.push(frame(1, 2)); // over cap: conflated
        ob.push(frame(3, 1)); // over cap: conflated
        ob.push(frame(1, 3)); // replaces 1:2
        let mut out = Vec::new();
        assert_eq!(ob.take(&mut out), None);
        let got: Vec<&str> = out.iter().map(|t| t.as_str()).collect();
        assert_eq!(&got[..2], ["1:1", "2:1"]);
        let mut rest = got[2..].to_vec();
        rest.sort();
        assert_eq!(rest, ["1:3", "3:1"]);
    }

    #[test]
    fn a_conflated_topic_stays_conflated_until_drained() {
        let ob = Outbox::new(1, Arc::default());
        ob.push(frame(1, 1));
        ob.push(frame(1, 2)); // conflated
        let mut out = Vec::new();
        ob.take(&mut out);
        ob.push(frame(1, 3));
        ob.take(&mut out);
        let got: Vec<&str> = out.iter().map(|t| t.as_str()).collect();
        assert_eq!(got, ["1:1", "1:2", "1:3"]);
    }

    /// Replies count against the budget until released; one that would pass
    /// it closes the outbox with `OverBudget`, frees what was queued and is
    /// counted.
    #[test]
    fn replies_past_the_budget_close_the_outbox_and_free_it() {
        let metrics = Arc::new(Metrics::default());
        let ob = Outbox::new(4, metrics.clone()).with_budget(10);
        ob.try_push_control(Utf8Bytes::from("123456")).unwrap();
        ob.push(frame(1, 1));
        let taken = ob.take_all();
        assert_eq!(taken.replies(), 1);
        // Taken but not yet written: still counted.
        ob.try_push_control(Utf8Bytes::from("1234")).unwrap();
        assert!(!ob.is_closing());
        ob.release(6);
        ob.try_push_control(Utf8Bytes::from("12345")).unwrap();
        assert!(!ob.is_closing(), "9 of 10 bytes");
        ob.push(frame(2, 1));
        ob.try_push_control(Utf8Bytes::from("xy")).unwrap();
        assert!(ob.is_closing(), "11 of 10 bytes");
        assert_eq!(metrics.closed_over_budget.load(Ordering::Relaxed), 1);
        let after = ob.take_all();
        assert_eq!(after.closing, Some(Closing::OverBudget));
        assert_eq!(after.frames().count(), 0, "queues freed at close");
    }
}
