//! Resume: which of the retained backlogs a `subscribe` with `since` asks for
//! are delivered whole, decided once for both transports (`/ws` and `/sse`).
//!
//! A backlog is delivered whole or not at all: a topic whose history still
//! reaches back to its `since` gets every retained update after it, in order,
//! queued past the outbox's conflation bound ([`super::Outbox::push_backlog`]);
//! every other topic gets its snapshot and is named in the ack's
//! `resume.partial`, so the client knows it has a gap there. What one
//! subscribe may replay is bounded by `[limits] max_resume` updates in total
//! (the queued handles share the history's frames, so that bound is what a
//! replay costs: ~40 bytes a handle); the smallest backlogs are served first,
//! so the most topics are whole.
//!
//! The plan is made just before the subscriber joins its topics, outside their
//! locks: an update published in between may push the oldest retained update
//! of a topic whose `since` sits exactly at the edge of its history out of
//! the ring, and that topic then gets its snapshot (`"snapshot":true`)
//! although the ack said it would be resumed. `tickerd.js` treats any snapshot
//! after a resume as a fresh start of that topic, so it stays correct.

use std::collections::HashMap;

use super::Hub;
use crate::protocol::ResumeNote;
use crate::topic::Pattern;

/// What a subscribe with `since` gets: the `since` entries that will be
/// replayed (for [`super::Resume`]) and the ack's `resume` field.
#[derive(Debug, Default)]
pub(crate) struct ResumePlan {
    /// Topic → last seq seen, for the topics whose backlog is delivered whole.
    pub(crate) since: HashMap<String, u64>,
    /// The ack's `resume` field; `None` when the request had no `since`.
    pub(crate) note: Option<ResumeNote>,
    /// Topic → its seq when planned, for the resumed topics that have one:
    /// what `max_rate`/`delta` shaping passes whole as the replay.
    pub(crate) replays: HashMap<String, u64>,
}

/// How one topic of `since` stands against its retained history.
enum Backlog {
    /// Nothing to replay: the client has the latest (its seq), or the topic
    /// has no update.
    None(Option<u64>),
    /// This many retained updates follow `since`, up to the topic's seq.
    Whole(u64, u64),
    /// The history no longer reaches back to `since`.
    Gone,
    /// `since` is above the topic's seq: the topic started over.
    Ahead(u64),
}

impl Hub {
    /// Decides which topics of `since` (among those `patterns` match) are
    /// resumed whole, with at most `budget` retained updates in all; see the
    /// module docs. A missing or foreign `epoch` resumes nothing.
    pub(crate) fn plan_resume(
        &self,
        patterns: &[Pattern],
        mut since: HashMap<String, u64>,
        epoch: Option<&str>,
        budget: usize,
    ) -> ResumePlan {
        if since.is_empty() {
            return ResumePlan::default(); // no `since`: no `resume` in the ack
        }
        // Only the topics these patterns match are joined now.
        since.retain(|topic, _| patterns.iter().any(|p| p.matches(topic)));
        if since.is_empty() {
            return ResumePlan {
                note: Some(ResumeNote::whole()),
                ..ResumePlan::default()
            };
        }
        let refuse_all = |reason: String, since: HashMap<String, u64>| {
            let mut partial: Vec<String> = since.into_keys().collect();
            partial.sort();
            ResumePlan {
                note: Some(ResumeNote::refused(reason, partial)),
                ..ResumePlan::default()
            }
        };
        match epoch {
            None => {
                let why = "no epoch given (send the epoch from hello with since): snapshots sent";
                return refuse_all(why.into(), since);
            }
            Some(e) if e != &*self.epoch() => {
                let why = format!(
                    "epoch mismatch ({e:?} is not this server's; it restarted): snapshots sent"
                );
                return refuse_all(why, since);
            }
            Some(_) => {}
        }
        let mut reasons = Vec::new();
        let mut partial = Vec::new();
        let mut gone = 0;
        let mut wanted = Vec::new();
        for (topic, seq) in since {
            match self.backlog(&topic, seq) {
                Backlog::None(current) => wanted.push((0, topic, seq, current)),
                Backlog::Whole(n, current) => wanted.push((n, topic, seq, Some(current))),
                Backlog::Gone => {
                    gone += 1;
                    partial.push(topic);
                }
                Backlog::Ahead(current) => {
                    reasons.push(format!(
                        "since {seq} for {topic} is above its seq {current}: snapshot sent"
                    ));
                    partial.push(topic);
                }
            }
        }
        reasons.sort();
        if gone > 0 {
            reasons.push(format!(
                "the retained history of {gone} topic(s) no longer reaches back to since: \
                 snapshots sent"
            ));
        }
        // Smallest backlogs first: the most topics whole within the budget.
        wanted.sort_unstable();
        let mut left = budget as u64;
        let mut over = 0;
        let mut resumed = HashMap::with_capacity(wanted.len());
        let mut replays = HashMap::new();
        for (n, topic, seq, current) in wanted {
            if n <= left {
                left -= n;
                if let Some(current) = current {
                    replays.insert(topic.clone(), current);
                }
                resumed.insert(topic, seq);
            } else {
                over += 1;
                partial.push(topic);
            }
        }
        if over > 0 {
            reasons.push(format!(
                "{over} topic(s) past the {budget} updates one resume may replay \
                 ([limits] max_resume): snapshots sent"
            ));
        }
        partial.sort();
        let note = match reasons.is_empty() {
            true => ResumeNote::whole(),
            false => ResumeNote::refused(reasons.join("; "), partial),
        };
        ResumePlan {
            since: resumed,
            note: Some(note),
            replays,
        }
    }

    /// Where `since` stands in `topic`'s retained history.
    fn backlog(&self, topic: &str, since: u64) -> Backlog {
        let Some(t) = self.read_topics().get(topic).cloned() else {
            return Backlog::None(None); // no such topic: it arrives live from its first update
        };
        let st = t.lock();
        if st.latest.is_none() || since == st.seq {
            return Backlog::None((st.seq > 0).then_some(st.seq));
        }
        if since > st.seq {
            return Backlog::Ahead(st.seq);
        }
        match st.history.front() {
            Some(first) if first.seq() <= since + 1 => Backlog::Whole(st.seq - since, st.seq),
            _ => Backlog::Gone,
        }
    }
}
