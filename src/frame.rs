//! What tickerd sends, as a value: [`Text`], the JSON text of one frame,
//! shared (cloning it is one reference count), and [`Frame`], an update of a
//! topic with what every part of delivery needs to know about it (the topic,
//! its seq, what kind of frame it is) beside its text, so that nothing reads
//! them back out of the JSON.
//!
//! A frame is built once, where it happens (publish, snapshot, delete), and
//! shared by every subscriber: each subscriber's queue holds a handle. The
//! encodings each transport needs are made once too: a WebSocket sends the
//! text itself (`ws` writes the 2-10 byte header in front as it writes), and
//! an `/sse` stream's event is made by the first stream that sends the frame
//! and kept with it ([`Frame::encoded`]) for every other; WebSocket framing
//! stays inside `ws`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

/// The JSON text of one frame: UTF-8, immutable, shared.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Text(Bytes);

impl Text {
    /// A text known at compile time.
    pub(crate) const fn from_static(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ever built from `str`s, or from bytes checked to be UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s))
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::from_static(s)
    }
}

impl TryFrom<Bytes> for Text {
    type Error = std::str::Utf8Error;

    /// Bytes from outside (a cluster peer's message), checked once here.
    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&b)?;
        Ok(Text(b))
    }
}

impl From<Text> for Bytes {
    /// The same bytes, no copy (a cluster message's payload).
    fn from(t: Text) -> Bytes {
        t.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`Frame`] is, which decides how each part of delivery treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A reply to one client (`hello`, `ack`, `pong`, `error`, ...): never
    /// conflated, shaped or resumed.
    Reply,
    /// A topic's update, live or resumed from history.
    Update,
    /// A topic's latest value, handed over on joining (`"snapshot":true`).
    Snapshot,
    /// The topic was deleted (`{"type":"gone"}`).
    Gone,
}

/// One frame with what delivery needs to know about it, shared by every
/// subscriber it goes to (a clone is one reference count).
#[derive(Clone, Debug)]
pub(crate) struct Frame(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    kind: Kind,
    /// The topic's id in the hub: the key of conflation (0 for a reply).
    id: u32,
    seq: u64,
    ts: u64,
    /// The topic's name (empty for a reply).
    topic: Arc<str>,
    text: Text,
    /// The update's `data`, parsed the first time a subscriber needs it
    /// (`delta`) and then shared by every other.
    data: OnceLock<Option<Value>>,
    /// A transport's own encoding of it (an `/sse` event), made by the first
    /// subscriber of that transport, with the key it was made for (boxed:
    /// one pointer in a frame that no such subscriber ever sends).
    encoded: OnceLock<Box<(Arc<str>, Bytes)>>,
}

impl Frame {
    /// A frame of topic `topic` (id `id`).
    pub(crate) fn new(kind: Kind, id: u32, topic: Arc<str>, seq: u64, ts: u64, text: Text) -> Self {
        Frame(Arc::new(Inner {
            kind,
            id,
            seq,
            ts,
            topic,
            text,
            data: OnceLock::new(),
            encoded: OnceLock::new(),
        }))
    }

    /// A reply to one client.
    pub(crate) fn reply(text: Text) -> Self {
        Frame::new(Kind::Reply, 0, Arc::from(""), 0, 0, text)
    }

    /// The same frame with another text (a `delta` subscriber's patch).
    pub(crate) fn with_text(&self, text: Text) -> Self {
        let i = &self.0;
        Frame::new(i.kind, i.id, i.topic.clone(), i.seq, i.ts, text)
    }

    /// The same update as another kind, with its text (a snapshot of it).
    pub(crate) fn with_kind(&self, kind: Kind, text: Text) -> Self {
        let i = &self.0;
        Frame::new(kind, i.id, i.topic.clone(), i.seq, i.ts, text)
    }

    /// What it is.
    pub(crate) fn kind(&self) -> Kind {
        self.0.kind
    }

    /// Whether it is a topic's update (live, resumed or a snapshot).
    pub(crate) fn is_update(&self) -> bool {
        matches!(self.0.kind, Kind::Update | Kind::Snapshot)
    }

    /// The topic's id in the hub, the key of conflation.
    pub(crate) fn id(&self) -> u32 {
        self.0.id
    }

    /// The topic's name (empty for a reply).
    pub(crate) fn topic(&self) -> &str {
        &self.0.topic
    }

    /// The update's seq (0 for a reply or a `gone`).
    pub(crate) fn seq(&self) -> u64 {
        self.0.seq
    }

    /// The update's publish time, ms since the Unix epoch (0 for a reply or
    /// a `gone`).
    pub(crate) fn ts(&self) -> u64 {
        self.0.ts
    }

    /// The JSON text, as sent.
    pub(crate) fn text(&self) -> &Text {
        &self.0.text
    }

    /// This frame as a transport's own encoding, made by `make` the first
    /// time and then shared by every subscriber that asks with the same
    /// `key` (`server::sse`: the event, whose id carries the hub's epoch; a
    /// frame asked for with another key is encoded afresh, uncached). A
    /// reply goes to one client: it is encoded, never kept.
    pub(crate) fn encoded(&self, key: &Arc<str>, make: impl Fn(&Frame) -> Bytes) -> Bytes {
        if self.0.kind == Kind::Reply {
            return make(self);
        }
        let (made_for, bytes) = &**self
            .0
            .encoded
            .get_or_init(|| Box::new((key.clone(), make(self))));
        match Arc::ptr_eq(made_for, key) || **made_for == **key {
            true => bytes.clone(),
            false => make(self),
        }
    }

    /// The update's `data`, parsed once for every subscriber that asks.
    pub(crate) fn data(&self) -> Option<&Value> {
        let parse = || {
            let v: Value = serde_json::from_str(self.0.text.as_str()).ok()?;
            match v {
                Value::Object(mut m) => m.remove("data"),
                _ => None,
            }
        };
        self.0.data.get_or_init(parse).as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A transport's encoding is made once per frame and key and shared;
    /// another key gets its own, uncached; a reply's is never kept.
    #[test]
    fn an_encoding_is_made_once_and_shared() {
        let made = AtomicUsize::new(0);
        let make = |f: &Frame| {
            made.fetch_add(1, Ordering::Relaxed);
            Bytes::from(format!("event {}", f.seq()))
        };
        let frame = Frame::new(Kind::Update, 1, "a".into(), 7, 0, Text::from("{}"));
        let epoch: Arc<str> = Arc::from("E1");
        for _ in 0..3 {
            assert_eq!(frame.clone().encoded(&epoch, make), "event 7");
        }
        // An equal key made elsewhere shares it too.
        assert_eq!(frame.encoded(&Arc::from("E1"), make), "event 7");
        assert_eq!(made.load(Ordering::Relaxed), 1);
        assert_eq!(frame.encoded(&Arc::from("E2"), make), "event 7");
        assert_eq!(made.load(Ordering::Relaxed), 2);
        let reply = Frame::reply(Text::from("{}"));
        reply.encoded(&epoch, make);
        reply.encoded(&epoch, make);
        assert_eq!(made.load(Ordering::Relaxed), 4);
    }
}
