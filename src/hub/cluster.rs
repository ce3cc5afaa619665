//! The hub's cluster hooks: in `[cluster]` mode a non-`$` update is handed to
//! the cluster ([`Relay`]) to be sequenced, and comes back through
//! [`Hub::insert_relayed`] with the origin's seq, ts and frame.

use std::sync::Arc;

use crate::frame::Text;

use super::{now_ms, Hub, PublishError, Published, Source};
use crate::topic::{self, TopicError};

/// An update this node originates in cluster mode, handed to the cluster to be
/// sequenced; it reaches local subscribers when it comes back from NATS.
pub(crate) struct Originated {
    pub(crate) topic: Arc<str>,
    /// The value, serialized once.
    pub(crate) json: String,
    /// Publish time, assigned here at the origin.
    pub(crate) ts: u64,
    pub(crate) source: Source,
    /// Told the outcome, for callers that wait ([`Hub::publish_and_wait`]).
    pub(crate) reply: Option<tokio::sync::oneshot::Sender<Result<Published, PublishError>>>,
}

/// Where a clustered hub sends the updates it originates.
pub(crate) type Relay = Box<dyn Fn(Originated) + Send + Sync>;

impl Hub {
    /// Routes this hub's non-`$` publishes through `relay` (cluster mode). Set
    /// once, before anything publishes.
    pub(crate) fn set_relay(&self, relay: Relay) {
        if self.inner.relay.set(relay).is_err() {
            tracing::warn!("A hub's relay can be set only once.");
        }
    }

    /// Cluster mode: hands a non-`$` update to the cluster, stamped with its ts,
    /// and returns that ts; `None` when the update is this hub's to deliver.
    pub(super) fn relay_out(
        &self,
        source: &Source,
        name: &str,
        json: &str,
        reply: Option<tokio::sync::oneshot::Sender<Result<Published, PublishError>>>,
    ) -> Result<Option<u64>, TopicError> {
        let Some(relay) = self.inner.relay.get().filter(|_| !topic::is_system(name)) else {
            return Ok(None);
        };
        topic::validate_topic(name)?;
        let ts = now_ms();
        relay(Originated {
            topic: name.into(),
            json: json.to_string(),
            ts,
            source: source.clone(),
            reply,
        });
        Ok(Some(ts))
    }

    /// Takes an update sequenced elsewhere (cluster mode): its seq, ts and wire
    /// frame are the origin's and are kept as they are. An update at or below the
    /// topic's seq was seen already and is skipped. Returns whether it was new.
    pub(crate) fn insert_relayed(
        &self,
        name: &str,
        seq: u64,
        ts: u64,
        frame: Text,
        source: &Source,
    ) -> Result<bool, PublishError> {
        let topic = self.topic_or_insert(name)?;
        let mut st = topic.lock();
        if seq <= st.seq {
            return Ok(false);
        }
        st.seq = seq;
        st.ts = ts;
        self.deliver(&topic, &mut st, frame, source);
        Ok(true)
    }
}
