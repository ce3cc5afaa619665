//! Reading topics back: the latest value (as a frame, an [`Update`] or your
//! own type), the retained history, and the topic list.

use std::sync::Arc;

use crate::frame::Frame;
use serde::de::DeserializeOwned;

use super::{now_ms, Hub, Topic, Update};
use crate::protocol::TopicInfo;

impl Hub {
    /// The latest update of `topic` as its wire frame (the JSON text a client
    /// receives), if it has one. See [`Hub::latest`] for a typed value.
    pub fn latest_frame(&self, topic: &str) -> Option<String> {
        self.latest_bytes(topic).map(|f| f.text().to_string())
    }

    /// The latest frame of `topic` (a cheap handle clone), if it has one.
    pub(super) fn latest_bytes(&self, topic: &str) -> Option<Frame> {
        let t = self.read_topics().get(topic)?.clone();
        let latest = t.lock().latest.clone();
        latest
    }

    /// The last `limit` updates of `topic` kept in its history ring (at most
    /// `[history] size`), oldest first, as wire frames; just the latest when no
    /// history is kept. `None` when the topic has no update.
    pub fn history(&self, topic: &str, limit: usize) -> Option<Vec<String>> {
        let t = self.read_topics().get(topic)?.clone();
        let st = t.lock();
        let latest = st.latest.as_ref()?;
        if st.history.is_empty() {
            return Some(vec![latest.text().to_string()]);
        }
        let skip = st.history.len().saturating_sub(limit);
        Some(
            st.history
                .iter()
                .skip(skip)
                .map(|f| f.text().to_string())
                .collect(),
        )
    }

    /// The latest update of `topic`, if it has one.
    pub fn latest(&self, topic: &str) -> Option<Update> {
        self.latest_bytes(topic)
            .and_then(|f| Update::from_frame(&f))
    }

    /// The latest value of `topic` as your own type; `Ok(None)` when the topic
    /// has no update yet.
    ///
    /// # Errors
    /// The value does not have `T`'s shape.
    pub fn latest_as<T: DeserializeOwned>(
        &self,
        topic: &str,
    ) -> Result<Option<T>, serde_json::Error> {
        self.latest(topic).map(|u| u.data_as()).transpose()
    }

    /// Every topic with its seq, ts, feed and staleness, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.topics_where(|_| true)
    }

    /// The topics whose name passes `keep` (e.g. a grant), as [`Hub::topics`].
    /// The topic map's read lock is held only to copy the handles that pass;
    /// each row is built and the list sorted after it is released.
    pub(crate) fn topics_where(&self, keep: impl Fn(&str) -> bool) -> Vec<TopicInfo> {
        let topics: Vec<Arc<Topic>> = self
            .read_topics()
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(_, t)| t.clone())
            .collect();
        let now = now_ms();
        let mut out: Vec<TopicInfo> = topics.iter().map(|t| t.info(now)).collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        self.mark_removed_feeds(&mut out);
        out
    }
}
