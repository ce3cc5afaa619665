//! The topic registry: per topic its seq, snapshot, history ring and subscribers.
//!
//! [`Hub::publish`] is the hot path: find the topic (a read lock on the name map),
//! take that topic's own lock, bump `seq`, encode the wire frame once, keep it as
//! the snapshot and in the history ring, and push the same frame handle into each
//! subscriber's `Outbox` (a non-blocking push). Patterns are resolved when a
//! client subscribes and when a topic is created, never per update, so publishing
//! costs O(subscribers of that topic).
//!
//! Subscription changes (subscribe, unsubscribe, disconnect, topic creation) are
//! serialised by one registry lock; they are rare next to publishes. Lock order is
//! always registry -> topic map -> one topic -> one outbox, and no lock is held
//! across an `.await`. Joining a topic (snapshot or history, then live updates)
//! happens under the topic's lock, so nothing is lost or duplicated in between.
//!
//! The history ring keeps `[history] size` updates per topic, or what the
//! publishing feed's own `history` asks for (a count, or a time span by the
//! updates' `ts`), capped by `[limits] max_history`; it serves resume (`since`)
//! and [`Hub::history`] (dashboard charts).

mod cluster;
mod heavy;
mod lifecycle;
mod publish;
mod read;
mod registry;
mod resume;
mod store;
mod subscription;

pub(crate) use cluster::{Originated, Relay};
pub(crate) use lifecycle::Produced;
use registry::Registry;
pub(crate) use registry::{Leave, Resume};
pub use store::StoreError;
pub use subscription::{Subscription, Update};

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::delivery::{Closing, Outbox};
use crate::frame::{Frame, Kind};
use crate::metrics::Metrics;
use crate::protocol::{self, TopicInfo};
use crate::sync::{MutexExt, RwLockExt};
use crate::topic::{self, Pattern, TopicError};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Identifies one subscriber (a WebSocket session or an in-process stream).
pub(crate) type SubscriberId = u64;

/// An outbox in a topic's subscriber set, equal and hashed by identity: one
/// pointer per subscriber and topic (a set of these costs ~15 bytes per entry
/// at 10k subscribers, an id-keyed `IndexMap` ~49).
#[derive(Clone)]
struct Subscriber(Arc<Outbox>);

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
    fn push(&self, frame: Frame) {
        self.0.push(frame);
    }
}

impl std::ops::Deref for Subscriber {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.0
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Who publishes an update: used for the `feed` column and staleness.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source {
    /// The feed's name; `None` for HTTP and in-process publishes.
    pub(crate) feed: Option<Arc<str>>,
    /// The feed's `stale_after`.
    pub(crate) stale_after: Option<Duration>,
    /// The feed's `history`: what its topics keep instead of `[history] size`.
    pub(crate) history: Option<crate::config::FeedHistory>,
}

/// What [`Hub::publish`] assigned to an update. In cluster mode the cluster
/// assigns the seq after `publish` returns, which then reports `seq: None`;
/// [`Hub::publish_and_wait`] waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The update's seq within its topic; `None` when the cluster has not
    /// assigned it yet (cluster mode, [`Hub::publish`]).
    pub seq: Option<u64>,
    /// Its publish time, ms since the Unix epoch.
    pub ts: u64,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The topic name breaks the grammar.
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    /// The data could not be serialized as JSON.
    #[error("data is not serializable as JSON: {0}")]
    Data(#[from] serde_json::Error),
    /// A new topic past `[limits] max_topics`: the topic is valid, the server
    /// is full (existing topics keep updating).
    #[error("{topic}: the server already holds its maximum of {max} topics ([limits] max_topics)")]
    TooManyTopics {
        /// The topic that would have been created.
        topic: String,
        /// The limit.
        max: usize,
    },
    /// Cluster mode: NATS did not take the update.
    #[error("the cluster did not take the update: {source}")]
    Cluster {
        /// NATS's own error, or why the cluster link could not try.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `[history] sync = "always"`: the update was published but could not be
    /// committed to the history store.
    #[error("the update was published but not stored: {0}")]
    NotStored(String),
}

struct TopicState {
    seq: u64,
    ts: u64,
    /// The latest update's frame. Set only with [`TopicState::set_latest`],
    /// which keeps `snapshot` in step.
    latest: Option<Frame>,
    /// `latest` as a snapshot frame (`"snapshot":true`), made by the first
    /// subscriber to join after an update and shared by every later one: a
    /// subscriber never holds a private copy of a topic's value.
    snapshot: Option<Frame>,
    /// The retained updates (`history.size`, or the feed's own `history`),
    /// oldest first.
    history: VecDeque<Frame>,
    /// A set by outbox identity, not a map by id: held per topic and
    /// subscriber, so its entry size is paid 16 times by a client of 16 topics.
    subscribers: HashSet<Subscriber>,
    source: Source,
    /// A reload changed the topic's feed so that it no longer produces the
    /// topic (see [`Hub::retire_feed_topics`]): listed with `"feed_removed":
    /// true` until a feed publishes it again.
    left_feed: bool,
}

pub(crate) struct Topic {
    id: u32,
    name: Arc<str>,
    state: Mutex<TopicState>,
    /// Durable store only: queued for the next commit.
    dirty: AtomicBool,
    /// Durable store only: the last seq handed to a commit.
    persisted: AtomicU64,
    /// Deleted from the hub ([`Hub::delete_topic`]): no longer stored.
    deleted: AtomicBool,
}

impl TopicState {
    /// Replaces the latest update (and drops the snapshot made of the old one).
    fn set_latest(&mut self, latest: Option<Frame>) {
        self.latest = latest;
        self.snapshot = None;
    }

    /// Removes a subscriber. The set gives back what a crowd of subscribers
    /// made it grow to once it is down to a quarter of that (each topic of
    /// 20,000 held ~2 KiB for 200 subscribers that had left); halving then
    /// keeps the rehashing amortized.
    fn leave(&mut self, sub: &Subscriber) {
        self.subscribers.remove(sub);
        if self.subscribers.capacity() > 4 * self.subscribers.len().max(8) {
            self.subscribers.shrink_to(2 * self.subscribers.len());
        }
    }

    /// The latest update as a snapshot frame, shared (see `snapshot`).
    fn snapshot(&mut self) -> Option<Frame> {
        let latest = self.latest.as_ref()?;
        let snap = (self.snapshot).get_or_insert_with(|| {
            let text = protocol::snapshot_of(latest.text());
            latest.with_kind(Kind::Snapshot, text)
        });
        Some(snap.clone())
    }
}

impl Topic {
    fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state.lock_or_recover()
    }

    fn info(&self, now: u64) -> TopicInfo {
        let st = self.lock();
        let stale = st
            .source
            .stale_after
            .is_some_and(|d| st.seq > 0 && now.saturating_sub(st.ts) > d.as_millis() as u64);
        TopicInfo {
            topic: self.name.to_string(),
            feed: st.source.feed.as_deref().map(str::to_string),
            seq: st.seq,
            ts: st.ts,
            stale,
            subscribers: st.subscribers.len(),
            feed_removed: st.left_feed,
        }
    }
}

struct Inner {
    /// Swapped when a cluster tells its epoch (see [`Hub::set_epoch`]).
    epoch: RwLock<Arc<str>>,
    /// Set in cluster mode: non-`$` updates go there instead of straight to
    /// subscribers.
    relay: OnceLock<Relay>,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    registry: Mutex<Registry>,
    next_topic: AtomicU32,
    next_subscriber: AtomicU64,
    history_size: AtomicUsize,
    /// `[limits] max_history`: the most a feed's own `history` keeps per topic.
    max_history: AtomicUsize,
    /// `[limits] max_topics`: new non-`$` topics past it are refused.
    max_topics: AtomicUsize,
    /// Non-`$` topics held (topics are never removed).
    user_topics: AtomicUsize,
    metrics: Arc<Metrics>,
    /// Cancelled when the ticker shuts down: ends in-process subscriptions.
    closed: CancellationToken,
    /// Set with `[history] path`: what the durable store has still to commit.
    persist: OnceLock<Arc<store::Persist>>,
    /// The feeds the config names (see [`Hub::set_feeds`]); `None`: not told.
    feeds: RwLock<Option<Arc<HashSet<String>>>>,
    /// The server-wide budget for heavy work (see `heavy`).
    heavy: Arc<tokio::sync::Semaphore>,
}

/// How every subscriber's connection is closed when the ticker owning the
/// hub shuts down.
const SHUT_DOWN: Closing = Closing::Code(1001, protocol::SHUTDOWN_REASON);

/// The topic registry and fan-out. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub keeping `history_size` updates per topic, with a fresh random epoch.
    #[cfg(test)]
    pub(crate) fn new(history_size: usize, metrics: Arc<Metrics>) -> Self {
        Hub::with_shutdown(history_size, metrics, CancellationToken::new())
    }

    /// A hub whose in-process subscriptions end when `closed` is cancelled.
    pub(crate) fn with_shutdown(
        history_size: usize,
        metrics: Arc<Metrics>,
        closed: CancellationToken,
    ) -> Self {
        let epoch = Alphanumeric.sample_string(&mut rand::rng(), 12);
        Hub {
            inner: Arc::new(Inner {
                epoch: RwLock::new(epoch.into()),
                relay: OnceLock::new(),
                topics: RwLock::default(),
                registry: Mutex::default(),
                next_topic: AtomicU32::new(1),
                next_subscriber: AtomicU64::new(1),
                history_size: AtomicUsize::new(history_size),
                max_history: AtomicUsize::new(10_000),
                max_topics: AtomicUsize::new(usize::MAX),
                user_topics: AtomicUsize::new(0),
                metrics,
                closed,
                persist: OnceLock::new(),
                feeds: RwLock::new(None),
                heavy: heavy::heavy_permits(),
            }),
        }
    }

    /// The epoch: seqs are comparable only within one epoch. A random one per
    /// process; in cluster mode, the cluster's (the same on every node).
    pub fn epoch(&self) -> Arc<str> {
        self.inner.epoch.read_or_recover().clone()
    }

    /// Adopts a cluster's epoch. When it differs from the one in force, every
    /// relayed topic starts over (its seqs belong to the old epoch); `$` topics
    /// are this node's own and keep theirs. Returns whether it changed.
    pub(crate) fn set_epoch(&self, epoch: &str) -> bool {
        let mut current = self.inner.epoch.write_or_recover();
        if &**current == epoch {
            return false;
        }
        *current = epoch.into();
        drop(current);
        for t in self.read_topics().values() {
            if !topic::is_system(&t.name) {
                let mut st = t.lock();
                st.seq = 0;
                st.set_latest(None);
                st.history.clear();
            }
        }
        true
    }

    /// Closes every subscriber's connection with `code` (e.g. 1012, "service
    /// restart": reconnect), abandoning writes their peers are not taking.
    /// In-process subscriptions end.
    pub(crate) fn close_all(&self, code: u16, reason: &'static str) {
        self.stop_all(Closing::Code(code, reason));
    }

    fn stop_all(&self, how: Closing) {
        for entry in self.registry().subscribers.values() {
            entry.outbox.stop(how);
        }
    }

    /// Once the ticker owning this hub shuts down, closes every
    /// subscriber's connection with 1001 (a subscriber added later closes
    /// itself: `Hub::add_subscriber`). For the ticker's task tracker.
    pub(crate) fn close_all_on_shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let hub = self.clone();
        async move {
            hub.inner.closed.cancelled().await;
            hub.stop_all(SHUT_DOWN);
        }
    }

    /// The counters this hub reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Caps how many topics this hub holds (`$` topics are always allowed).
    pub(crate) fn set_max_topics(&self, max: usize) {
        self.inner.max_topics.store(max, Ordering::Relaxed);
    }

    /// Caps what a feed's own `history` keeps per topic (`[limits] max_history`).
    pub(crate) fn set_max_history(&self, max: usize) {
        self.inner.max_history.store(max, Ordering::Relaxed);
    }

    /// Changes how many updates each topic keeps (applies from the next publish).
    pub(crate) fn set_history_size(&self, size: usize) {
        self.inner.history_size.store(size, Ordering::Relaxed);
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.inner.topics.read_or_recover()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock_or_recover()
    }

    /// Subscribes from your own code: a [`Stream`](futures_util::Stream) of the
    /// updates of every topic matching `patterns` (same syntax and semantics as a
    /// WebSocket client's `subscribe`: snapshots first, then live updates, with
    /// conflation). Dropping the [`Subscription`] unsubscribes.
    ///
    /// # Errors
    /// A pattern breaks the grammar.
    pub fn subscribe<I>(&self, patterns: I) -> Result<Subscription, TopicError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let outbox = Arc::new(Outbox::new(Subscription::QUEUE, self.metrics().clone()));
        let id = self.add_subscriber(outbox.clone());
        self.add_patterns(id, &patterns, &Resume::default());
        Ok(Subscription::new(self.clone(), id, outbox))
    }

    /// Has the ticker owning this hub shut down?
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// The token cancelled when the ticker owning this hub shuts down.
    pub(crate) fn closed_token(&self) -> CancellationToken {
        self.inner.closed.clone()
    }
}

#[cfg(test)]
mod tests;
