//! Per-subscription shaping on a connection's writer: `max_rate` (updates per
//! second per topic) and `delta` (field-level merge patches, `super::delta`).
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
//! flush: nothing is parsed. Frames carry their topic, seq and kind
//! ([`Frame`]); a frame's `data` is parsed once, for every `delta`
//! subscriber of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::lazy_map::LazyMap;
use crate::frame::{Frame, Kind};
use tokio::time::Instant;

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

/// One topic's state on this connection.
#[derive(Default)]
struct TopicShape {
    /// The rule in force, resolved at `generation`.
    rule: Rule,
    generation: u64,
    next_allowed: Option<Instant>,
    /// The latest frame held back by the rate.
    pending: Option<Frame>,
    /// The frame whose value the client holds (delta only): its `data` is
    /// parsed once, shared with every other subscriber.
    base: Option<Frame>,
}

#[derive(Default)]
struct Shaper {
    /// Every pattern the connection holds, with what its subscribe asked.
    rules: Vec<(Pattern, Rule)>,
    /// Bumped when `rules` change: topics resolve their rule again.
    generation: u64,
    topics: LazyMap<String, TopicShape>,
    /// Resumed topics: frames up to this seq are replays, sent whole.
    replay_until: LazyMap<String, u64>,
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
            let t = self.topics.map_mut().entry(topic.to_string()).or_default();
            t.rule = rule;
            t.generation = generation;
            if !rule.delta {
                t.base = None;
            }
        }
        self.topics.get_mut(topic).expect("inserted above")
    }

    /// One frame taken from the outbox: the frame to write now, if any.
    fn pass(&mut self, frame: Frame, now: Instant) -> Option<Frame> {
        match frame.kind() {
            Kind::Reply => return Some(frame),
            Kind::Gone => {
                self.topics.remove(frame.topic());
                self.replay_until.remove(frame.topic());
                return Some(frame);
            }
            Kind::Update | Kind::Snapshot => {}
        }
        let (seq, topic) = (frame.seq(), frame.topic());
        let replay = match self.replay_until.get(topic) {
            Some(&until) if seq <= until => {
                if seq == until {
                    self.replay_until.remove(topic);
                }
                true
            }
            _ => false,
        };
        let whole = replay || frame.kind() == Kind::Snapshot;
        let t = self.shape_of(frame.topic());
        if whole {
            t.pending = None;
            t.next_allowed = t.rule.interval.map(|i| now + i);
            if t.rule.delta {
                t.base = Some(frame.clone());
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
    fn due(&mut self, now: Instant, out: &mut Vec<Frame>) {
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

/// The frame to write for a live update: with `delta`, a merge patch against
/// the value the client holds when there is one, it can say it, and it is
/// shorter than the value; else the frame as it is. Each frame's `data` is
/// parsed once for all its subscribers ([`Frame::data`]).
fn emit(t: &mut TopicShape, frame: Frame) -> Frame {
    if !t.rule.delta {
        return frame;
    }
    let Some(data) = frame.data() else {
        return frame;
    };
    let patch = (t.base.as_ref())
        .and_then(Frame::data)
        .and_then(|base| super::delta::diff(base, data));
    let out = match patch {
        Some(patch) => {
            let patch_json = patch.to_string();
            let delta =
                protocol::encode_update(frame.topic(), frame.seq(), frame.ts(), &patch_json);
            let body = delta.strip_suffix('}').unwrap_or(&delta);
            let delta = format!(r#"{body},"delta":true}}"#);
            match delta.len() < frame.text().len() {
                true => frame.with_text(delta.into()),
                false => frame.clone(),
            }
        }
        None => frame.clone(),
    };
    t.base = Some(frame);
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
        // The first push reserves room for four: a connection keeps its
        // rules for life.
        s.rules.shrink_to_fit();
        s.generation += 1;
        if !replays.is_empty() {
            s.replay_until.map_mut().extend(replays);
        }
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

    /// Passes the frames taken from the outbox (replies as they are), then
    /// appends the held frames now due.
    pub(crate) fn apply(&self, frames: impl Iterator<Item = Frame>) -> Vec<Frame> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut out = Vec::new();
        for frame in frames {
            out.extend(s.pass(frame, now));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::frame::Text;
    use serde_json::Value;

    fn frame(topic: &str, seq: u64, data: Value) -> Frame {
        let text = protocol::encode_update(topic, seq, seq * 10, &data.to_string());
        Frame::new(Kind::Update, 1, topic.into(), seq, seq * 10, text)
    }

    fn snapshot(f: Frame) -> Frame {
        let text = protocol::snapshot_of(f.text());
        Frame::new(Kind::Snapshot, 1, f.topic().into(), f.seq(), f.ts(), text)
    }

    fn parse(f: &Frame) -> Value {
        serde_json::from_str(f.text()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_rated_topic_gets_the_latest_value_at_most_at_its_rate() {
        let s = Shaping::default();
        let p = Pattern::parse("a.*").unwrap();
        s.subscribe(&[p], Rule::new(Some(2.0), false), HashMap::new());
        assert!(s.is_active());
        let snap = snapshot(frame("a.x", 1, json!(1)));
        let out = s.apply([snap, frame("a.x", 2, json!(2)), frame("a.x", 3, json!(3))].into_iter());
        assert_eq!(out.len(), 1, "the snapshot only; 3 is held");
        assert!(s.next_due().is_some());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(s.apply(std::iter::empty()).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let out = s.apply(std::iter::empty());
        assert_eq!(parse(&out[0])["seq"], 3, "the latest, seq jumps");
        assert!(s.next_due().is_none());
        // Unrated topics, and replies, pass untouched.
        let out = s.apply(
            [
                Frame::reply(Text::from("{\"type\":\"pong\"}")),
                frame("b.x", 1, json!(1)),
            ]
            .into_iter(),
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
        );
        let got: Vec<Value> = out.iter().map(parse).collect();
        assert_eq!(got[0]["data"], big(1), "a replay: whole");
        assert_eq!(got[1]["data"], big(2), "a replay: whole");
        assert_eq!(got[2]["data"], json!({"price": 3}));
        assert_eq!(got[2]["delta"], true);
        assert_eq!(got[2]["seq"], 3);
        let out = s.apply(std::iter::once(frame("a.x", 4, json!(7))));
        assert!(
            parse(&out[0]).get("delta").is_none(),
            "not an object: whole"
        );
    }
}
