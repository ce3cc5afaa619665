//! Per-subscription shaping on a connection's writer: `max_rate` (updates per
//! second per topic) and `delta` (field-level merge patches, [`crate::delta`]).
//!
//! The hub still pushes one shared frame per update into the connection's
//! outbox; the writer passes what it takes through this connection's
//! [`Shaping`] before writing. There is no timer per topic: each topic keeps
//! its `next_allowed` instant and the latest frame held back (`pending`); the
//! writer's own tick asks for the held frames that are due
//! ([`Shaping::next_due`], [`Shaping::due`]). A client of a rated topic thus
//! gets at most `max_rate` updates per second of it, always the latest value,
//! with the seq jump telling it that updates were merged.
//!
//! A topic's rule is resolved from every pattern of the connection that
//! matches it: the most permissive wins (no `max_rate` on any matching pattern
//! means none; else the highest), and deltas only when every matching pattern
//! asked for them. Snapshots and resumed (replayed) updates always pass at once
//! and whole; they restart the topic's interval and delta base.
//!
//! A connection that never asked for either pays one relaxed atomic load per
//! flush: nothing is parsed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::protocol;
use crate::sync::MutexExt;
use crate::topic::Pattern;

/// The longest interval a `max_rate` may ask for (a day): keeps instants far
/// from overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// What one subscribe asked for its patterns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rule {
    /// At least this long between two updates of one topic.
    pub(crate) interval: Option<Duration>,
    /// Send merge patches after the first full value.
    pub(crate) delta: bool,
}

impl Rule {
    /// A rule from a subscribe's `max_rate` (validated: positive, finite) and
    /// `delta`.
    pub(crate) fn new(max_rate: Option<f64>, delta: bool) -> Self {
        let interval = max_rate.map(|r| {
            Duration::try_from_secs_f64(1.0 / r)
                .unwrap_or(MAX_INTERVAL)
                .min(MAX_INTERVAL)
        });
        Rule { interval, delta }
    }

    fn is_plain(&self) -> bool {
        self.interval.is_none() && !self.delta
    }
}

/// The topic and seq (as text) of an update frame, read from its fixed prefix
/// (`protocol::encode_update`); `None` for any other frame.
pub(crate) fn update_key(frame: &str) -> Option<(&str, &str)> {
    let rest = frame.strip_prefix(r#"{"type":"update","topic":""#)?;
    let (topic, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(r#","seq":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    (end > 0).then(|| (topic, &rest[..end]))
}

/// The topic of a `gone` frame.
fn gone_topic(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix(r#"{"type":"gone","topic":""#)?;
    rest.split_once('"').map(|(t, _)| t)
}

/// One topic's state on this connection.
#[derive(Default)]
struct TopicShape {
    /// The rule in force, resolved at `generation`.
    rule: Rule,
    generation: u64,
    next_allowed: Option<Instant>,
    /// The latest frame held back by the rate.
    pending: Option<Utf8Bytes>,
    /// The value the client holds (delta only).
    base: Option<Value>,
}

#[derive(Default)]
struct Shaper {
    /// Every pattern the connection holds, with what its subscribe asked.
    rules: Vec<(Pattern, Rule)>,
    /// Bumped when `rules` change: topics resolve their rule again.
    generation: u64,
    topics: HashMap<String, TopicShape>,
    /// Resumed topics: frames up to this seq are replays, sent whole.
    replay_until: HashMap<String, u64>,
}

impl Shaper {
    fn resolve(&self, topic: &str) -> Rule {
        let mut matching = self.rules.iter().filter(|(p, _)| p.matches(topic));
        let Some((_, first)) = matching.next() else {
            return Rule::default();
        };
        matching.fold(*first, |acc, (_, r)| Rule {
            interval: match (acc.interval, r.interval) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            },
            delta: acc.delta && r.delta,
        })
    }

    fn shape_of(&mut self, topic: &str) -> &mut TopicShape {
        let generation = self.generation;
        if self
            .topics
            .get(topic)
            .is_none_or(|t| t.generation != generation)
        {
            let rule = self.resolve(topic);
            let t = self.topics.entry(topic.to_string()).or_default();
            t.rule = rule;
            t.generation = generation;
            if !rule.delta {
                t.base = None;
            }
        }
        self.topics.get_mut(topic).expect("inserted above")
    }

    /// One frame taken from the outbox: the frame to write now, if any.
    fn pass(&mut self, frame: Utf8Bytes, now: Instant) -> Option<Utf8Bytes> {
        if let Some(topic) = gone_topic(&frame) {
            self.topics.remove(topic);
            self.replay_until.remove(topic);
            return Some(frame);
        }
        let Some((topic, seq)) = update_key(&frame) else {
            return Some(frame);
        };
        let seq: u64 = seq.parse().unwrap_or(0);
        let topic = topic.to_string();
        let replay = match self.replay_until.get(&topic) {
            Some(&until) if seq <= until => {
                if seq == until {
                    self.replay_until.remove(&topic);
                }
                true
            }
            _ => false,
        };
        let whole = replay || frame.ends_with(r#","snapshot":true}"#);
        let t = self.shape_of(&topic);
        if whole {
            t.pending = None;
            t.next_allowed = t.rule.interval.map(|i| now + i);
            if t.rule.delta {
                t.base = data_of(&frame);
            }
            return Some(frame);
        }
        match (t.rule.interval, t.next_allowed) {
            (Some(_), Some(at)) if at > now => {
                t.pending = Some(frame);
                None
            }
            (interval, _) => {
                t.next_allowed = interval.map(|i| now + i);
                Some(emit(t, frame))
            }
        }
    }

    /// The held frames whose time has come, in no particular order.
    fn due(&mut self, now: Instant, out: &mut Vec<Utf8Bytes>) {
        for t in self.topics.values_mut() {
            let ready = t.next_allowed.is_none_or(|at| at <= now);
            if ready {
                if let Some(frame) = t.pending.take() {
                    t.next_allowed = t.rule.interval.map(|i| now + i);
                    out.push(emit(t, frame));
                }
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.topics
            .values()
            .filter(|t| t.pending.is_some())
            .map(|t| t.next_allowed.unwrap_or_else(Instant::now))
            .min()
    }
}

/// The `data` of an update frame.
fn data_of(frame: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(frame).ok()?;
    Some(v.get_mut("data")?.take())
}

/// The frame to write for a live update: with `delta`, a merge patch against
/// the value the client holds when there is one, it can say it, and it is
/// shorter than the value; else the frame as it is.
fn emit(t: &mut TopicShape, frame: Utf8Bytes) -> Utf8Bytes {
    if !t.rule.delta {
        return frame;
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(&frame) else {
        return frame;
    };
    let Some(data) = obj.remove("data") else {
        return frame;
    };
    let patch = t
        .base
        .as_ref()
        .and_then(|base| crate::delta::diff(base, &data));
    let out = match patch {
        Some(patch) => {
            let patch_json = patch.to_string();
            let full_len = frame.len();
            let (topic, seq, ts) = (
                obj.get("topic").and_then(Value::as_str).unwrap_or_default(),
                obj.get("seq").and_then(Value::as_u64).unwrap_or_default(),
                obj.get("ts").and_then(Value::as_u64).unwrap_or_default(),
            );
            let delta = protocol::encode_update(topic, seq, ts, &patch_json);
            let body = delta.strip_suffix('}').unwrap_or(&delta);
            let delta = Utf8Bytes::from(format!(r#"{body},"delta":true}}"#));
            if delta.len() < full_len {
                delta
            } else {
                frame
            }
        }
        None => frame,
    };
    t.base = Some(data);
    out
}

/// One connection's shaping state, shared by its reader (which records what
/// each subscribe asked) and its writer.
#[derive(Default)]
pub(crate) struct Shaping {
    /// Whether any subscription asked for a rate or deltas.
    active: AtomicBool,
    inner: Mutex<Shaper>,
}

impl Shaping {
    fn lock(&self) -> MutexGuard<'_, Shaper> {
        // Every operation leaves the maps consistent.
        self.inner.lock_or_recover()
    }

    /// Does the writer need to pass frames through [`Shaping::apply`]?
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Records a subscribe's patterns and rule, before the hub queues their
    /// snapshots. `replays`: the topics resumed with `since`, with their seq
    /// now (the updates up to it are replays, sent whole).
    pub(crate) fn subscribe(
        &self,
        patterns: &[Pattern],
        rule: Rule,
        replays: HashMap<String, u64>,
    ) {
        let mut s = self.lock();
        for p in patterns {
            match s.rules.iter_mut().find(|(q, _)| q == p) {
                Some(held) => held.1 = rule,
                None => s.rules.push((p.clone(), rule)),
            }
        }
        s.generation += 1;
        s.replay_until.extend(replays);
        let active = s.rules.iter().any(|(_, r)| !r.is_plain());
        self.active.store(active, Ordering::Relaxed);
    }

    /// Forgets patterns; topics none of the remaining ones match are dropped
    /// (the hub no longer delivers them).
    pub(crate) fn unsubscribe(&self, patterns: &[Pattern]) {
        let mut s = self.lock();
        s.rules.retain(|(p, _)| !patterns.contains(p));
        s.generation += 1;
        let s = &mut *s;
        let rules = &s.rules;
        s.topics
            .retain(|topic, _| rules.iter().any(|(p, _)| p.matches(topic)));
        let active = rules.iter().any(|(_, r)| !r.is_plain());
        self.active.store(active, Ordering::Relaxed);
    }

    /// Passes the frames taken from the outbox (the first `replies` are
    /// replies, written as they are), then appends the held frames now due.
    pub(crate) fn apply(
        &self,
        frames: impl Iterator<Item = Utf8Bytes>,
        replies: usize,
    ) -> Vec<Utf8Bytes> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut out = Vec::new();
        for (i, frame) in frames.enumerate() {
            if i < replies {
                out.push(frame);
            } else if let Some(f) = s.pass(frame, now) {
                out.push(f);
            }
        }
        s.due(now, &mut out);
        out
    }

    /// When the next held frame is due; `None` when none is held.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if !self.is_active() {
            return None;
        }
        self.lock().next_due()
    }
}

/// The frames a writer writes: as taken, or as [`Shaping::apply`] left them.
pub(crate) enum Frames<I> {
    /// Untouched (no shaping on this connection).
    Plain(I),
    /// Shaped.
    Shaped(std::vec::IntoIter<Utf8Bytes>),
}

impl<I: Iterator<Item = Utf8Bytes>> Iterator for Frames<I> {
    type Item = Utf8Bytes;

    fn next(&mut self) -> Option<Utf8Bytes> {
        match self {
            Frames::Plain(i) => i.next(),
            Frames::Shaped(i) => i.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(topic: &str, seq: u64, data: Value) -> Utf8Bytes {
        protocol::encode_update(topic, seq, seq * 10, &data.to_string())
    }

    fn parse(f: &Utf8Bytes) -> Value {
        serde_json::from_str(f).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_rated_topic_gets_the_latest_value_at_most_at_its_rate() {
        let s = Shaping::default();
        let p = Pattern::parse("a.*").unwrap();
        s.subscribe(&[p], Rule::new(Some(2.0), false), HashMap::new());
        assert!(s.is_active());
        let snap = protocol::snapshot_of(&frame("a.x", 1, json!(1)));
        let out = s.apply(
            [snap, frame("a.x", 2, json!(2)), frame("a.x", 3, json!(3))].into_iter(),
            0,
        );
        assert_eq!(out.len(), 1, "the snapshot only; 3 is held");
        assert!(s.next_due().is_some());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(s.apply(std::iter::empty(), 0).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let out = s.apply(std::iter::empty(), 0);
        assert_eq!(parse(&out[0])["seq"], 3, "the latest, seq jumps");
        assert!(s.next_due().is_none());
        // Unrated topics, and replies, pass untouched.
        let out = s.apply(
            [
                Utf8Bytes::from("{\"type\":\"pong\"}"),
                frame("b.x", 1, json!(1)),
            ]
            .into_iter(),
            1,
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn deltas_follow_the_first_full_value_and_resumes_are_whole() {
        let s = Shaping::default();
        let p = Pattern::parse("a.x").unwrap();
        s.subscribe(
            &[p],
            Rule::new(None, true),
            HashMap::from([("a.x".into(), 2)]),
        );
        let big = |n: u64| json!({"symbol": "AAAAAAAAAAAAAAAAAAAAAAAAA", "price": n, "name": "a long constant field"});
        let out = s.apply(
            [
                frame("a.x", 1, big(1)),
                frame("a.x", 2, big(2)),
                frame("a.x", 3, big(3)),
            ]
            .into_iter(),
            0,
        );
        let got: Vec<Value> = out.iter().map(parse).collect();
        assert_eq!(got[0]["data"], big(1), "a replay: whole");
        assert_eq!(got[1]["data"], big(2), "a replay: whole");
        assert_eq!(got[2]["data"], json!({"price": 3}));
        assert_eq!(got[2]["delta"], true);
        assert_eq!(got[2]["seq"], 3);
        let out = s.apply(std::iter::once(frame("a.x", 4, json!(7))), 0);
        assert!(
            parse(&out[0]).get("delta").is_none(),
            "not an object: whole"
        );
    }
}
