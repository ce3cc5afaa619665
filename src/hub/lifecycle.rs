//! Topics that end: [`Hub::delete_topic`] removes a topic, tells its
//! subscribers it is `gone`, frees its `max_topics` slot and drops it from the
//! durable store; the topics a feed leaves behind when a reload removes or
//! changes it are deleted or marked `feed_removed` here
//! ([`Hub::retire_feed_topics`]).
//!
//! A topic published again after its deletion starts over at seq 1 under the
//! same epoch. That is safe for resuming clients because (1) a subscriber of
//! the deleted topic gets `{"type":"gone","topic":...}` and drops its resume
//! seq for it, and (2) a client that missed the `gone` (it was disconnected)
//! and resumes with a `since` past the new topic's seq gets the snapshot, not
//! silence (see `join` in the hub).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Hub, Topic, TopicState};
use crate::frame::{Frame, Kind};

/// Whether a feed still produces one of the topics it published, after a
/// reload changed its config (decided by `feeds::still_produces`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Produced {
    /// It does (again): the topic is the feed's.
    Yes,
    /// It no longer does: the topic gets the feed's `on_remove` treatment.
    No,
    /// The config cannot tell (e.g. a topic the feed published to by name).
    Unknown,
}
use crate::protocol::{self, TopicInfo};
use crate::sync::RwLockExt;
use crate::topic;

impl Hub {
    /// Deletes `name`: its subscribers get a `gone` frame (and keep their
    /// patterns, so a later publish reaches them from seq 1), it leaves the
    /// topic list, frees its `max_topics` slot and is dropped from the durable
    /// store. Returns whether it existed.
    pub fn delete_topic(&self, name: &str) -> bool {
        self.delete_if(name, |_| true)
    }

    /// Deletes every topic for which `pick(name, feed, ts)` holds, judged
    /// again under the topic's lock (an update in between keeps it). `feed` is
    /// the feed that last published it; `ts` its last update's time. `$`
    /// topics are never picked. Returns how many were deleted.
    pub(crate) fn delete_where(&self, pick: impl Fn(&str, Option<&str>, u64) -> bool) -> usize {
        let candidates: Vec<Arc<Topic>> = self
            .read_topics()
            .values()
            .filter(|t| !topic::is_system(&t.name))
            .cloned()
            .collect();
        candidates
            .iter()
            .filter(|t| {
                let st = t.lock();
                pick(&t.name, st.source.feed.as_deref(), st.ts)
            })
            .filter(|t| {
                self.delete_if(&t.name, |st| {
                    pick(&t.name, st.source.feed.as_deref(), st.ts)
                })
            })
            .count()
    }

    /// The feeds the config names now: a topic whose feed is not among them
    /// is listed with `"feed_removed": true`.
    pub(crate) fn set_feeds(&self, names: impl IntoIterator<Item = String>) {
        let names: HashSet<String> = names.into_iter().collect();
        *self.inner.feeds.write_or_recover() = Some(Arc::new(names));
    }

    /// Marks the rows whose feed the config no longer names (rows a reload
    /// retired are marked already).
    pub(super) fn mark_removed_feeds(&self, rows: &mut [TopicInfo]) {
        let feeds = self.inner.feeds.read_or_recover().clone();
        let Some(feeds) = feeds else { return };
        for row in rows {
            row.feed_removed |= row.feed.as_ref().is_some_and(|f| !feeds.contains(f));
        }
    }

    /// After a reload added, changed or removed feed `feed`: each topic it
    /// last published that `produced` judges [`Produced::No`] gets the
    /// feed's `on_remove` treatment, deleted (`delete`) or listed with
    /// `"feed_removed": true` until a feed publishes it again; one judged
    /// [`Produced::Yes`] loses that mark. Returns how many were deleted or
    /// marked.
    pub(crate) fn retire_feed_topics(
        &self,
        feed: &str,
        produced: impl Fn(&str) -> Produced,
        delete: bool,
    ) -> usize {
        if delete {
            return self
                .delete_where(|name, f, _| f == Some(feed) && produced(name) == Produced::No);
        }
        let topics: Vec<Arc<Topic>> = self
            .read_topics()
            .values()
            .filter(|t| !topic::is_system(&t.name))
            .cloned()
            .collect();
        let mut marked = 0;
        for t in topics {
            let mut st = t.lock();
            if st.source.feed.as_deref() != Some(feed) {
                continue;
            }
            match produced(&t.name) {
                Produced::No => {
                    marked += usize::from(!st.left_feed);
                    st.left_feed = true;
                }
                Produced::Yes => st.left_feed = false,
                Produced::Unknown => {}
            }
        }
        marked
    }

    /// Deletes `name` when `check` holds for its state (under its lock).
    fn delete_if(&self, name: &str, check: impl Fn(&TopicState) -> bool) -> bool {
        let mut reg = self.registry();
        let topic = {
            let mut topics = self.inner.topics.write_or_recover();
            let Some(topic) = topics.get(name).cloned() else {
                return false;
            };
            let mut st = topic.lock();
            if !check(&st) {
                return false;
            }
            topics.remove(name);
            topic.deleted.store(true, Ordering::Release);
            let gone = protocol::gone(name);
            let gone = Frame::new(Kind::Gone, topic.id, topic.name.clone(), 0, 0, gone);
            for outbox in st.subscribers.drain() {
                outbox.push(gone.clone());
            }
            st.set_latest(None);
            st.history.clear();
            drop(st);
            topic
        };
        if !topic::is_system(name) {
            self.inner.user_topics.fetch_sub(1, Ordering::Relaxed);
        }
        for entry in reg.subscribers.values_mut() {
            if let Ok(i) = entry.topics.binary_search_by_key(&topic.id, |t| t.id) {
                entry.topics.remove(i);
            }
        }
        drop(reg);
        if let Some(persist) = self.inner.persist.get() {
            persist.delete(topic.name.clone());
        }
        tracing::info!(topic = %name, "Topic deleted.");
        true
    }
}
