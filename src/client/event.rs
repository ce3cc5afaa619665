//! What a [`Subscription`](super::Subscription) yields: whole updates (deltas
//! already merged), topics that were deleted, and the connection's state.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One update of a topic, as the server sent it but always whole: with
/// `delta` subscriptions the patch is merged into the value held before the
/// caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The topic, e.g. `stocks.AAPL`.
    pub topic: String,
    /// Its seq: strictly increasing per topic within one epoch; a jump means
    /// updates were merged (`max_rate`, a slow reader).
    pub seq: u64,
    /// Publish time, ms since the Unix epoch.
    pub ts: u64,
    /// The whole value.
    pub data: Value,
    /// True for the snapshot sent on subscribing (or after a resume that could
    /// not be served whole), false for live and resumed updates.
    pub snapshot: bool,
    pub(super) frame: String,
}

impl Update {
    /// The value as a type of yours.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An update of a topic the subscription's patterns match.
    Update(Update),
    /// The topic was deleted on the server (`DELETE /api/topics/{topic}`): drop
    /// its value. If it is published again it starts over at seq 1.
    Gone {
        /// The deleted topic.
        topic: String,
    },
}

impl Event {
    /// The topic this event is about.
    pub fn topic(&self) -> &str {
        match self {
            Event::Update(u) => &u.topic,
            Event::Gone { topic } => topic,
        }
    }

    /// The frame exactly as the server sent it (for a `delta` update: the
    /// patch frame), one JSON object: what `tickerd sub --json` prints.
    pub fn frame(&self) -> String {
        match self {
            Event::Update(u) => u.frame.clone(),
            // Encoded as the server encodes it (one place: `protocol::gone`).
            Event::Gone { topic } => crate::protocol::gone(topic).to_string(),
        }
    }
}

/// The connection's state, as [`Client::state`](super::Client::state) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Opening a connection.
    Connecting,
    /// Connected and subscribed; `epoch` is the server's (see docs/protocol.md).
    Live {
        /// The epoch of the server's seqs.
        epoch: String,
    },
    /// The link was lost (or refused); the next try is due after a backoff.
    Reconnecting {
        /// Tries since the link was last up.
        attempt: u32,
        /// Why the last connection ended or failed.
        error: String,
    },
    /// [`Client::close`](super::Client::close) was called, or the client was dropped.
    Closed,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Connecting => f.write_str("connecting"),
            State::Live { .. } => f.write_str("live"),
            State::Reconnecting { attempt, error } => {
                write!(f, "reconnecting (try {attempt}: {error})")
            }
            State::Closed => f.write_str("closed"),
        }
    }
}
