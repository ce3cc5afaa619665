//! What the client remembers per topic across connections: the last seq seen
//! (to resume, and to drop what it already has) and the latest value (to merge
//! deltas into), both valid within one epoch, as `web/tickerd.js` keeps them.

use std::collections::HashMap;

use serde_json::Value;

use crate::topic::Pattern;

use super::event::Update;

/// Merges a `delta` update's patch into the value held: the one call into the
/// crate's merge-patch code (RFC 7386), so that code can move without this
/// module changing more than this line.
fn merge_patch(target: &mut Value, patch: &Value) {
    crate::delivery::apply_delta(target, patch);
}

/// Seqs and values per topic, for one server epoch.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    epoch: Option<String>,
    seq: HashMap<String, u64>,
    latest: HashMap<String, Value>,
}

/// An `update` frame's fields.
#[derive(serde::Deserialize)]
struct Frame {
    topic: String,
    seq: u64,
    ts: u64,
    data: Value,
    #[serde(default)]
    snapshot: bool,
    #[serde(default)]
    delta: bool,
}

impl Tracker {
    /// A `hello`: seqs of another epoch (another server life) mean nothing.
    pub(super) fn hello(&mut self, epoch: &str) {
        if self.epoch.as_deref() != Some(epoch) {
            self.seq.clear();
            self.latest.clear();
            self.epoch = Some(epoch.to_string());
        }
    }

    /// The epoch of the seqs held.
    pub(super) fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// Starts `topic` at `seq` (a caller's `since`) unless it has one already.
    pub(super) fn start_at(&mut self, topic: &str, seq: u64) {
        self.seq.entry(topic.to_string()).or_insert(seq);
    }

    /// The `since` of a subscribe for `patterns`: every topic they match.
    pub(super) fn since(&self, patterns: &[Pattern]) -> HashMap<String, u64> {
        self.seq
            .iter()
            .filter(|(t, _)| patterns.iter().any(|p| p.matches(t)))
            .map(|(t, s)| (t.clone(), *s))
            .collect()
    }

    /// An `update` frame: the whole update, or `None` when it was seen already
    /// (a resume overlapping what arrived) or is not an update. A snapshot at
    /// or below the last seq is taken: the topic started over.
    pub(super) fn update(&mut self, text: &str) -> Option<Update> {
        let f: Frame = serde_json::from_str(text).ok()?;
        let last = self.seq.get(&f.topic).copied();
        if last.is_some_and(|l| f.seq <= l) && !f.snapshot {
            return None;
        }
        let data = if f.delta {
            let mut whole = self.latest.get(&f.topic).cloned().unwrap_or(Value::Null);
            merge_patch(&mut whole, &f.data);
            whole
        } else {
            f.data
        };
        self.seq.insert(f.topic.clone(), f.seq);
        self.latest.insert(f.topic.clone(), data.clone());
        Some(Update {
            topic: f.topic,
            seq: f.seq,
            ts: f.ts,
            data,
            snapshot: f.snapshot,
            frame: text.to_string(),
        })
    }

    /// A `gone` frame: the topic's seq and value are dropped.
    pub(super) fn gone(&mut self, topic: &str) {
        self.seq.remove(topic);
        self.latest.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Seen seqs are dropped, a snapshot that starts over is taken, deltas
    /// come back whole, and another epoch forgets everything.
    #[test]
    fn dedupes_merges_and_forgets_on_a_new_epoch() {
        let mut t = Tracker::default();
        t.hello("e1");
        let f = |seq: u64, data: Value, extra: &str| {
            format!(r#"{{"type":"update","topic":"a.b","seq":{seq},"ts":1,"data":{data}{extra}}}"#)
        };
        let u = t
            .update(&f(1, json!({"p": 1, "q": 2}), r#","snapshot":true"#))
            .unwrap();
        assert!(u.snapshot);
        let u = t
            .update(&f(2, json!({"p": 3}), r#","delta":true"#))
            .unwrap();
        assert_eq!(u.data, json!({"p": 3, "q": 2}));
        assert!(t.update(&f(2, json!({"p": 4}), "")).is_none());
        let u = t
            .update(&f(1, json!({"x": 1}), r#","snapshot":true"#))
            .unwrap();
        assert_eq!((u.seq, u.data), (1, json!({"x": 1})));
        let pats = [Pattern::parse("a.*").unwrap()];
        assert_eq!(t.since(&pats), HashMap::from([("a.b".to_string(), 1)]));
        t.hello("e2");
        assert!(t.since(&pats).is_empty());
    }
}
