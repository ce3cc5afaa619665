//! The wire protocol of `/ws` (docs/protocol.md): client requests and server frames.
//!
//! Updates are encoded once, in `Hub::publish`, by `encode_update`; every other
//! frame is a reply to one client and encoded here too, so the JSON shapes of the
//! protocol live in one file. Nothing here touches sockets or the hub.

use std::collections::HashMap;

use crate::frame::Text;
use serde::Serialize;
use serde_json::Value;

use crate::nearest::nearest;

mod request;

pub use request::parse_request;

/// Error codes of `{"type":"error"}` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not the shape of any request.
    BadRequest,
    /// `op` names no known operation.
    UnknownOp,
    /// A topic or pattern breaks the topic grammar.
    InvalidTopic,
    /// The connection would hold more than `limits.max_subscriptions` patterns.
    TooManySubscriptions,
    /// The connection's token does not allow this.
    Forbidden,
    /// An expensive request (`topics`, a subscribe or unsubscribe naming a
    /// wildcard pattern) sent faster than the connection's rate allows; nothing
    /// was done, and it may be sent again later.
    RateLimited,
    /// A `refresh` whose token is not valid (unknown, forged or expired).
    Unauthorized,
}

/// A request from a client, validated for shape (not for topic grammar).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `{"op":"subscribe","topics":[..],"since":{..},"epoch":".."}`
    Subscribe {
        /// Patterns as sent.
        topics: Vec<String>,
        /// Last seq seen per topic, for resume.
        since: HashMap<String, u64>,
        /// The epoch the `since` values belong to.
        epoch: Option<String>,
        /// At most this many updates per second per topic (positive).
        max_rate: Option<f64>,
        /// Updates after the first full value as merge patches.
        delta: bool,
    },
    /// `{"op":"unsubscribe","topics":[..]}`
    Unsubscribe {
        /// Patterns as sent.
        topics: Vec<String>,
    },
    /// `{"op":"topics"}`
    Topics,
    /// `{"op":"ping"}`
    Ping,
    /// `{"op":"publish","topic":..,"data":..}` or
    /// `{"op":"publish","items":[{"topic","data"},..]}`: each item as sent
    /// (its shape is checked when it is published, one result per item).
    Publish {
        /// The items, in order.
        items: Vec<Value>,
    },
    /// `{"op":"refresh","token":".."}`: a new token (a JWT) before the
    /// connection's runs out.
    Refresh {
        /// The new token.
        token: String,
    },
}

/// A request that could not be understood, with the reply it deserves.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The code of the error reply.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// What `max_rate` takes, on a WebSocket `subscribe` and in `/sse?max_rate=`.
pub(crate) const MAX_RATE: &str =
    "`max_rate` must be a positive number of updates per second per topic, e.g. 2 or 0.5";

/// What `delta` takes, on a WebSocket `subscribe` and in `/sse?delta=`.
pub(crate) const DELTA: &str = "`delta` must be true or false";

/// The reason of the Close 1001 every WebSocket client gets when the server
/// shuts down. Most shutdowns are restarts (a deploy, systemd), so it says
/// when to come back, like an HTTP `Retry-After` (docs/protocol.md "Close
/// codes").
pub(crate) const SHUTDOWN_REASON: &str = "server shutting down; retry after 2s";

/// A `max_rate` as given (`None`: not a number): a positive, finite rate, or
/// [`MAX_RATE`].
pub(crate) fn max_rate(rate: Option<f64>) -> Result<f64, String> {
    match rate {
        Some(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(MAX_RATE.to_string()),
    }
}

/// The fields of a `subscribe` besides `op` and `id`; `/sse` takes the same
/// names from its query.
pub(crate) const SUBSCRIBE_FIELDS: &[&str] = &["topics", "since", "epoch", "max_rate", "delta"];

/// Every op and the fields it takes besides `op` and `id`: a request with any
/// other field is refused, whatever its op, before the op's own parsing.
pub(crate) const OPS: &[(&str, &[&str])] = &[
    ("subscribe", SUBSCRIBE_FIELDS),
    ("unsubscribe", &["topics"]),
    ("topics", &[]),
    ("ping", &[]),
    ("publish", &["topic", "data", "items"]),
    ("refresh", &["token"]),
];

/// The one text for a name nobody knows (a request field, an op, a query
/// parameter): what it is and where, the nearest known name when it is close
/// enough to be a typo, and every known name.
pub(crate) fn unknown_name(what: &str, name: &str, place: &str, known: &[&str]) -> String {
    let hint = match nearest(name, known) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    let expected = match known {
        [] => "it takes none".to_string(),
        [one] => format!("expected `{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|n| format!("`{n}`")).collect();
            format!("expected {} or `{last}`", init.join(", "))
        }
    };
    format!("unknown {what} `{name}`{place}{hint} ({expected})")
}

/// Encodes an update frame. `data_json` is the already-serialized data, so the
/// costly part can run outside the topic's lock.
pub(crate) fn encode_update(topic: &str, seq: u64, ts: u64, data_json: &str) -> Text {
    // Topic names are validated to [A-Za-z0-9_$.-], so they need no escaping.
    let mut s = String::with_capacity(64 + topic.len() + data_json.len());
    s.push_str(r#"{"type":"update","topic":""#);
    s.push_str(topic);
    s.push_str(r#"","seq":"#);
    s.push_str(itoa::Buffer::new().format(seq));
    s.push_str(r#","ts":"#);
    s.push_str(itoa::Buffer::new().format(ts));
    s.push_str(r#","data":"#);
    s.push_str(data_json);
    s.push('}');
    Text::from(s)
}

/// The snapshot form of an update frame: the same object plus `"snapshot":true`.
pub(crate) fn snapshot_of(frame: &str) -> Text {
    let body = frame.strip_suffix('}').unwrap_or(frame);
    Text::from(format!(r#"{body},"snapshot":true}}"#))
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Reply<'a> {
    Hello {
        epoch: &'a str,
        server: &'a str,
        heartbeat_ms: u64,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        op: &'a str,
        topics: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        resume: Option<&'a ResumeNote>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        not_subscribed: &'a [String],
    },
    Topics {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        topics: &'a [TopicInfo],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
    },
    Gone {
        topic: &'a str,
    },
    Published {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        results: &'a [ItemResult],
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        code: ErrorCode,
        message: &'a str,
    },
}

fn encode(reply: &Reply<'_>) -> Text {
    Text::from(serde_json::to_string(reply).expect("replies always serialize"))
}

/// The server's name and version, as sent in `hello`.
pub const SERVER: &str = concat!("tickerd/", env!("CARGO_PKG_VERSION"));

pub(crate) fn hello(epoch: &str, heartbeat_ms: u64) -> Text {
    encode(&Reply::Hello {
        epoch,
        server: SERVER,
        heartbeat_ms,
    })
}

/// An `ack`; it also says whether a resume (`since`) was possible and which
/// patterns an unsubscribe named that the connection did not hold.
pub(crate) fn ack(
    id: Option<&Value>,
    op: &str,
    topics: &[String],
    resume: Option<&ResumeNote>,
    not_subscribed: &[String],
) -> Text {
    encode(&Reply::Ack {
        id,
        op,
        topics,
        resume,
        not_subscribed,
    })
}

/// The `resume` field of a subscribe `ack` that carried `since`:
/// `{"ok":true}` when every retained backlog asked for is delivered whole, or
/// `{"ok":false,"reason":"...","partial":[topics]}` naming the topics that get
/// their snapshot instead (a gap the client must not paper over).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ResumeNote {
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) partial: Vec<String>,
}

impl ResumeNote {
    /// Every backlog asked for is delivered whole.
    pub(crate) fn whole() -> Self {
        ResumeNote {
            ok: true,
            reason: None,
            partial: Vec::new(),
        }
    }

    /// Not every backlog is: why, and the topics that get snapshots.
    pub(crate) fn refused(reason: String, partial: Vec<String>) -> Self {
        ResumeNote {
            ok: false,
            reason: Some(reason),
            partial,
        }
    }
}

/// The `topics` reply: the first rows (in the order given) that fit in
/// `max_bytes`, with `"truncated":true` when some were left out.
pub(crate) fn topics(id: Option<&Value>, topics: &[TopicInfo], max_bytes: usize) -> Text {
    let head = encoded_len(&Reply::Topics {
        id,
        topics: &[],
        truncated: true,
    });
    let mut used = head;
    let mut fit = 0;
    for row in topics {
        // The row and the comma before the next one.
        used += encoded_len(row) + 1;
        if used > max_bytes {
            break;
        }
        fit += 1;
    }
    encode(&Reply::Topics {
        id,
        topics: &topics[..fit],
        truncated: fit < topics.len(),
    })
}

/// The length of `value` as JSON, without building the text.
fn encoded_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("replies always serialize");
    count.0
}

pub(crate) fn pong(id: Option<&Value>) -> Text {
    encode(&Reply::Pong { id })
}

/// `{"type":"gone","topic":...}`: the topic was deleted. A client drops its
/// resume seq for it; if it is published again, it starts over at seq 1.
pub(crate) fn gone(topic: &str) -> Text {
    encode(&Reply::Gone { topic })
}

/// `{"type":"published","results":[..]}`: one result per item of a
/// `publish`, in order (`{"topic","seq","ts"}` or `{"topic","error"}`).
pub(crate) fn published(id: Option<&Value>, results: &[ItemResult]) -> Text {
    encode(&Reply::Published { id, results })
}

pub(crate) fn error(id: Option<&Value>, code: ErrorCode, message: &str) -> Text {
    encode(&Reply::Error { id, code, message })
}

/// One row of the `topics` reply and of `GET /api/topics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicInfo {
    /// The topic's name.
    pub topic: String,
    /// The feed that last published it; `null` for HTTP and in-process publishes.
    pub feed: Option<String>,
    /// Its latest seq (0 before its first update).
    pub seq: u64,
    /// Its latest update's publish time, ms since the Unix epoch.
    pub ts: u64,
    /// True when its feed's `stale_after` has passed without an update.
    pub stale: bool,
    /// How many subscribers (WebSocket and SSE connections, in-process
    /// subscriptions) receive it on this node; a count, never who.
    pub subscribers: usize,
    /// True when the feed that published it is no longer in the config (its
    /// `on_remove = "keep"` left the topic); omitted when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub feed_removed: bool,
}

/// The outcome of one item of a bulk publish (`POST /api/publish`, the
/// WebSocket `publish` op).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum ItemResult {
    Published {
        topic: String,
        /// `None` only where the cluster has not assigned it yet.
        seq: Option<u64>,
        ts: u64,
    },
    Refused {
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        error: String,
    },
}

impl ItemResult {
    pub(crate) fn refused(topic: Option<&str>, error: impl Into<String>) -> Self {
        ItemResult::Refused {
            topic: topic.map(str::to_string),
            error: error.into(),
        }
    }
}

#[cfg(test)]
mod tests;
