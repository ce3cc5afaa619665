//! Topics that end: [`Hub::delete_topic`] removes a topic, tells its
//! subscribers it is `gone`, frees its `max_topics` slot and drops it from the
//! durable store.
//!
//! A topic published again after its deletion starts over at seq 1 under the
//! same epoch. That is safe for resuming clients because (1) a subscriber of
//! the deleted topic gets `{"type":"gone","topic":...}` and drops its resume
//! seq for it, and (2) a client that missed the `gone` (it was disconnected)
//! and resumes with a `since` past the new topic's seq gets the snapshot, not
//! silence (see `join` in the hub).

use std::sync::atomic::Ordering;

use super::{Frame, Hub};
use crate::protocol;
use crate::topic;

impl Hub {
    /// Deletes `name`: its subscribers get a `gone` frame (and keep their
    /// patterns, so a later publish reaches them from seq 1), it leaves the
    /// topic list, frees its `max_topics` slot and is dropped from the durable
    /// store. Returns whether it existed.
    pub fn delete_topic(&self, name: &str) -> bool {
        let mut reg = self.registry();
        let Some(topic) = self
            .inner
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        else {
            return false;
        };
        if !topic::is_system(name) {
            self.inner.user_topics.fetch_sub(1, Ordering::Relaxed);
        }
        let gone = protocol::gone(name);
        {
            let mut st = topic.lock();
            topic.deleted.store(true, Ordering::Release);
            for outbox in st.subscribers.drain() {
                outbox.push(Frame {
                    topic: topic.id,
                    text: gone.clone(),
                });
            }
            st.latest = None;
            st.history.clear();
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
