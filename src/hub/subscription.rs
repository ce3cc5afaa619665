//! In-process consumers of the hub: [`Update`] (one update as a typed value) and
//! [`Subscription`] (a [`Stream`] of updates for server-side code).
//!
//! A subscription is an ordinary hub subscriber: it has its own [`Outbox`], so
//! it joins topics exactly like a WebSocket session (snapshot first, then live
//! updates, wildcards picking up new topics) and is conflated the same way when
//! it is polled too slowly. Frames are decoded into [`Update`]s only here, on the
//! consumer's side; the publisher's hot path is unchanged. Dropping the
//! subscription removes the subscriber.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::frame::{Frame, Kind};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Hub, SubscriberId};
use crate::delivery::{self, Outbox, Sink};

/// One update of a topic, as a client sees it. It serializes as
/// `{"topic","seq","ts","data","snapshot"}`, plus `"gone": true` for a
/// deleted topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    topic: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    ts: u64,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    snapshot: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    gone: bool,
}

impl Update {
    /// A frame for an in-process subscriber: an update or snapshot (its
    /// value decoded), or a deleted topic (a WebSocket client gets `gone`
    /// too); `None` for a reply.
    pub(crate) fn from_frame(frame: &Frame) -> Option<Update> {
        let update = |data: Option<Value>| Update {
            topic: frame.topic().to_string(),
            seq: frame.seq(),
            ts: frame.ts(),
            data: data.unwrap_or_default(),
            snapshot: frame.kind() == Kind::Snapshot,
            gone: frame.kind() == Kind::Gone,
        };
        match frame.kind() {
            Kind::Reply => None,
            Kind::Gone => Some(update(None)),
            Kind::Update | Kind::Snapshot => Some(update(Some(frame.data()?.clone()))),
        }
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its seq within the topic (strictly increasing, per process).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Its publish time, ms since the Unix epoch.
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The published value.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The published value, moved out.
    pub fn into_data(self) -> Value {
        self.data
    }

    /// The published value as your own type.
    ///
    /// # Errors
    /// The value does not have `T`'s shape.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// True when this is the topic's latest value handed over on subscribing,
    /// rather than a live update.
    pub fn is_snapshot(&self) -> bool {
        self.snapshot
    }

    /// True when the topic was deleted: this carries no value (seq and ts
    /// are 0, data is null). If the topic is published again, it starts
    /// over at seq 1.
    pub fn is_gone(&self) -> bool {
        self.gone
    }
}

/// The in-process subscriber's sink: each frame decoded into an [`Update`]
/// for the consumer to pull (replies skipped).
impl Sink for VecDeque<Update> {
    fn feed(&mut self, frame: &Frame) -> usize {
        self.extend(Update::from_frame(frame));
        0
    }
}

type Wait = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// A live stream of the updates of the topics matching some patterns; see
/// [`Hub::subscribe`].
///
/// It first yields the snapshot of every existing matching topic (with
/// [`Update::is_snapshot`] true), then every update as it is published; a topic
/// created later that matches is delivered from its first update. Per topic, seq
/// is strictly increasing; a consumer that falls more than
/// [`Subscription::QUEUE`] updates behind is conflated (it skips to the latest
/// value of each topic it fell behind on) instead of growing a queue. The stream
/// ends when the ticker shuts down. Dropping it unsubscribes. A deleted topic
/// is delivered as an update with [`Update::is_gone`] true.
pub struct Subscription {
    hub: Hub,
    id: SubscriberId,
    outbox: Arc<Outbox>,
    pending: VecDeque<Update>,
    wait: Option<Wait>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Updates buffered before the subscription conflates.
    pub const QUEUE: usize = 1024;

    pub(crate) fn new(hub: Hub, id: SubscriberId, outbox: Arc<Outbox>) -> Self {
        Subscription {
            hub,
            id,
            outbox,
            pending: VecDeque::new(),
            wait: None,
        }
    }

    /// Waits for the next update; `None` once the ticker has shut down.
    /// (The same as `StreamExt::next`, without importing a trait.)
    pub async fn recv(&mut self) -> Option<Update> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = Update;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        let this = self.get_mut();
        loop {
            if let Some(u) = this.pending.pop_front() {
                return Poll::Ready(Some(u));
            }
            let (frames, closing) = delivery::take(&this.outbox, None);
            for frame in frames {
                delivery::hand(&mut this.pending, &this.outbox, &frame);
            }
            if !this.pending.is_empty() {
                continue;
            }
            if closing.is_some() || this.hub.is_closed() {
                return Poll::Ready(None);
            }
            let wait = this.wait.get_or_insert_with(|| {
                let outbox = this.outbox.clone();
                let closed = this.hub.closed_token();
                Box::pin(async move {
                    tokio::select! {
                        _ = outbox.ready() => {}
                        _ = closed.cancelled() => {}
                    }
                })
            });
            match wait.as_mut().poll(cx) {
                Poll::Ready(()) => this.wait = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove_subscriber(self.id);
    }
}
