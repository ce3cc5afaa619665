//! Publishing: an update gets its topic's next seq and ts, becomes one wire
//! frame, and is delivered to every subscriber of the topic (or, in cluster
//! mode, handed to the cluster first).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use crate::frame::{Frame, Kind, Text};
use serde::Serialize;

use super::Subscriber;
use super::{now_ms, Hub, PublishError, Published, Source, Topic, TopicState};
use crate::config::FeedHistory;
use crate::protocol;
use crate::sync::RwLockExt;
use crate::topic;

impl Hub {
    /// Publishes `data` to `topic` with no feed attached.
    ///
    /// # Errors
    /// The topic is invalid or the data does not serialize.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<Published, PublishError> {
        self.publish_from(&Source::default(), topic, data)
    }

    /// Publishes `data` to `topic` on behalf of `source`.
    ///
    /// # Errors
    /// The topic is invalid or the data does not serialize.
    pub(crate) fn publish_from<T: Serialize + ?Sized>(
        &self,
        source: &Source,
        topic: &str,
        data: &T,
    ) -> Result<Published, PublishError> {
        let json = serde_json::to_string(data)?;
        self.publish_json(source, topic, &json)
    }

    /// Publishes `data` and, in cluster mode, waits until the cluster has
    /// sequenced it: the returned seq is the one every node delivers. Without a
    /// cluster it is [`Hub::publish`].
    ///
    /// # Errors
    /// The topic is invalid, the data does not serialize, or (cluster mode) NATS
    /// did not take the update in time.
    pub async fn publish_and_wait<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<Published, PublishError> {
        let json = serde_json::to_string(data)?;
        self.publish_json_and_wait(topic, &json).await
    }

    /// [`Hub::publish_and_wait`] of already-serialized JSON (`json` must be
    /// one valid JSON value): a large value published as the text it came
    /// in, never built into a tree.
    ///
    /// # Errors
    /// As [`Hub::publish_and_wait`].
    pub(crate) async fn publish_json_and_wait(
        &self,
        topic: &str,
        json: &str,
    ) -> Result<Published, PublishError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.relay_out(&Source::default(), topic, json, Some(tx))? {
            None => {
                let published = self.publish_json(&Source::default(), topic, json)?;
                match self.inner.persist.get().filter(|p| p.always()) {
                    Some(p) if !p.flushed().await => Err(PublishError::NotStored(
                        "the history store could not commit it (see the server log)".into(),
                    )),
                    _ => Ok(published),
                }
            }
            Some(_) => rx.await.unwrap_or_else(|_| {
                Err(PublishError::Cluster {
                    source: "the cluster link stopped".into(),
                })
            }),
        }
    }

    /// Publishes already-serialized JSON. `json` must be one valid JSON value.
    ///
    /// In cluster mode a non-`$` update is handed to the cluster, which assigns
    /// its seq; the returned seq is then `None` (see [`Hub::publish_and_wait`]).
    pub(crate) fn publish_json(
        &self,
        source: &Source,
        name: &str,
        json: &str,
    ) -> Result<Published, PublishError> {
        if let Some(ts) = self.relay_out(source, name, json, None)? {
            return Ok(Published { seq: None, ts });
        }
        let topic = self.topic_or_insert(name)?;
        let mut st = topic.lock();
        st.seq += 1;
        st.ts = now_ms();
        let frame = protocol::encode_update(&topic.name, st.seq, st.ts, json);
        self.deliver(&topic, &mut st, frame, source);
        if let Some(persist) = self.inner.persist.get() {
            persist.mark(&topic);
        }
        Ok(Published {
            seq: Some(st.seq),
            ts: st.ts,
        })
    }

    /// The second half of a publish, once seq and ts are set: keeps the frame as
    /// the snapshot and in history, and pushes it to every subscriber.
    pub(super) fn deliver(&self, topic: &Topic, st: &mut TopicState, frame: Text, source: &Source) {
        let max = self.inner.max_history.load(Ordering::Relaxed);
        let frame = Frame::new(
            Kind::Update,
            topic.id,
            topic.name.clone(),
            st.seq,
            st.ts,
            frame,
        );
        let (count, age) = match source.history {
            None => (self.inner.history_size.load(Ordering::Relaxed), None),
            Some(FeedHistory::Count(n)) => (n.min(max), None),
            Some(FeedHistory::Age(d)) => (max, Some(d.as_millis() as u64)),
        };
        if count > 0 {
            while st.history.len() >= count {
                st.history.pop_front();
            }
            st.history.push_back(frame.clone());
            if let Some(age) = age {
                let cutoff = st.ts.saturating_sub(age);
                while st.history.front().is_some_and(|f| f.ts() < cutoff) {
                    st.history.pop_front();
                }
            }
        } else {
            st.history.clear();
        }
        for outbox in &st.subscribers {
            outbox.push(frame.clone());
        }
        st.set_latest(Some(frame));
        if source.feed.is_some() || st.source.feed.is_none() {
            st.source = source.clone();
            st.left_feed = false;
        }
        self.inner
            .metrics
            .updates_published
            .fetch_add(1, Ordering::Relaxed);
    }

    /// What publishing to every topic of `names` (no `$` topic among them,
    /// none twice) would do to `[limits] max_topics`: how many topics (`$`
    /// topics aside) the hub holds, and how many of `names` it would create.
    /// One lookup per name under one read lock, rather than a pass over
    /// every topic the hub holds: a push write checks its thousands of
    /// topics this way before it publishes any.
    pub(crate) fn topics_to_create<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> (usize, usize) {
        let topics = self.read_topics();
        let new = names
            .into_iter()
            .filter(|name| !topics.contains_key(*name))
            .count();
        (self.inner.user_topics.load(Ordering::Relaxed), new)
    }

    /// The topic named `name`, created (and matched against every pattern) if new.
    pub(super) fn topic_or_insert(&self, name: &str) -> Result<Arc<Topic>, PublishError> {
        if let Some(t) = self.read_topics().get(name) {
            return Ok(t.clone());
        }
        topic::validate_topic(name)?;
        let mut reg = self.registry();
        let mut topics = self.inner.topics.write_or_recover();
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        if !topic::is_system(name) {
            let max = self.inner.max_topics.load(Ordering::Relaxed);
            if self.inner.user_topics.load(Ordering::Relaxed) >= max {
                return Err(PublishError::TooManyTopics {
                    topic: name.to_string(),
                    max,
                });
            }
            // Under the topic map's write lock: no other creation races this.
            self.inner.user_topics.fetch_add(1, Ordering::Relaxed);
        }
        let name: Arc<str> = name.into();
        let topic = Arc::new(Topic {
            id: self.inner.next_topic.fetch_add(1, Ordering::Relaxed),
            name: name.clone(),
            state: Mutex::new(TopicState {
                seq: 0,
                ts: 0,
                latest: None,
                snapshot: None,
                history: VecDeque::new(),
                subscribers: HashSet::new(),
                source: Source::default(),
                left_feed: false,
            }),
            dirty: AtomicBool::new(false),
            persisted: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
        });
        topics.insert(name, topic.clone());
        drop(topics);
        let reg = &mut *reg;
        let mut st = topic.lock();
        for (pattern, holders) in &reg.patterns {
            if pattern.matches(&topic.name) {
                for id in holders {
                    if let Some(entry) = reg.subscribers.get_mut(id) {
                        st.subscribers.insert(Subscriber(entry.outbox.clone()));
                        // The newest topic has the highest id: pushing keeps
                        // the order; a second matching pattern finds it last.
                        if entry.topics.last().map(|t| t.id) != Some(topic.id) {
                            entry.topics.push(topic.clone());
                        }
                    }
                }
            }
        }
        drop(st);
        Ok(topic)
    }
}
