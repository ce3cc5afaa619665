//! The hub's subscriber registry: who holds which patterns, which topics each
//! subscriber receives, and how a subscriber joins a topic (snapshot, or a
//! resume from history).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Hub, Subscriber, SubscriberId, Topic, TopicState, SHUT_DOWN};
use crate::delivery::Outbox;
use crate::topic::Pattern;

/// How a subscriber joins a topic it matches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resume {
    /// Last seq seen per topic, honoured only when the client's epoch is ours.
    pub(crate) since: HashMap<String, u64>,
}

pub(super) struct SubscriberEntry {
    pub(super) outbox: Arc<Outbox>,
    /// The patterns it holds: the registry's own copies (see
    /// [`Hub::shared_patterns`]), without spare capacity (a subscriber holds
    /// few and rarely changes them).
    pub(super) patterns: Vec<Pattern>,
    /// The topics it receives, sorted by id. A sorted `Vec`, not a map: every
    /// connection holds one (16 topics: 128 bytes instead of ~560).
    pub(super) topics: Vec<Arc<Topic>>,
}

#[derive(Default)]
pub(super) struct Registry {
    /// Distinct patterns and who holds them: what a new topic is matched
    /// against. Ids only: a holder's outbox is in `subscribers` (an entry
    /// here is paid once per subscriber and pattern: 8 bytes, not 16).
    pub(super) patterns: HashMap<Pattern, HashSet<SubscriberId>>,
    pub(super) subscribers: HashMap<SubscriberId, SubscriberEntry>,
}

impl Hub {
    /// Registers a subscriber with its outbox; it holds no pattern yet. Once
    /// the hub's ticker shut down, the outbox is closed at once (1001), as
    /// `Hub::close_all_on_shutdown` closed those registered before.
    pub(crate) fn add_subscriber(&self, outbox: Arc<Outbox>) -> SubscriberId {
        let id = self.inner.next_subscriber.fetch_add(1, Ordering::Relaxed);
        self.registry().subscribers.insert(
            id,
            SubscriberEntry {
                outbox: outbox.clone(),
                patterns: Vec::new(),
                topics: Vec::new(),
            },
        );
        // Checked after the insert: a shutdown sweep that began before it
        // finds this subscriber, one that begins after it is seen here.
        if self.is_closed() {
            outbox.stop(SHUT_DOWN);
        }
        id
    }

    /// A guard that removes subscriber `id` when dropped: its connection
    /// (a `/ws` session, an `/sse` stream) holds it for as long as it lives.
    pub(crate) fn leave_on_drop(&self, id: SubscriberId) -> Leave {
        Leave {
            hub: self.clone(),
            id,
        }
    }

    /// `patterns` with each one that a subscriber already holds replaced by
    /// the registry's copy of it, so that every holder of a pattern shares
    /// one parse (a crowd on `stocks.*` holds one, not one per connection).
    /// Call it before keeping a pattern per connection (the subscribe's
    /// `max_rate`/`delta` rules); [`Hub::add_patterns`] keeps the registry's
    /// copies itself.
    pub(crate) fn shared_patterns(&self, patterns: Vec<Pattern>) -> Vec<Pattern> {
        let reg = self.registry();
        patterns
            .into_iter()
            .map(|p| match reg.patterns.get_key_value(&p) {
                Some((shared, _)) => shared.clone(),
                None => p,
            })
            .collect()
    }

    /// How many topics `id` receives.
    pub(crate) fn topic_count_of(&self, id: SubscriberId) -> usize {
        let reg = self.registry();
        reg.subscribers.get(&id).map_or(0, |e| e.topics.len())
    }

    /// The patterns `id` holds.
    pub(crate) fn patterns_of(&self, id: SubscriberId) -> Vec<Pattern> {
        let reg = self.registry();
        reg.subscribers
            .get(&id)
            .map_or_else(Vec::new, |e| e.patterns.clone())
    }

    /// How many distinct patterns `id` holds, and how many of `patterns`
    /// (distinct) it does not hold yet.
    pub(crate) fn pattern_counts(&self, id: SubscriberId, patterns: &[Pattern]) -> (usize, usize) {
        let reg = self.registry();
        let held: &[Pattern] = reg.subscribers.get(&id).map_or(&[], |e| &e.patterns);
        let fresh: std::collections::HashSet<&Pattern> =
            patterns.iter().filter(|p| !held.contains(p)).collect();
        (held.len(), fresh.len())
    }

    /// Adds patterns to a subscriber. For every existing topic that a new pattern
    /// matches and the subscriber did not already receive, queues its snapshot (or,
    /// with a valid resume point, the retained updates after it), then delivers
    /// live updates from there on. Returns how many patterns were new.
    pub(crate) fn add_patterns(
        &self,
        id: SubscriberId,
        patterns: &[Pattern],
        resume: &Resume,
    ) -> usize {
        // Matching a wildcard against every topic is the costly part: it runs
        // on the topic map alone (its read lock, which publishing to existing
        // topics shares), before the registry lock is taken. Under that lock
        // only the topics created meanwhile (ids from `seen_below` on) are
        // matched; a topic created after it finds the pattern registered.
        let wildcards: Vec<&Pattern> = patterns.iter().filter(|p| !p.is_literal()).collect();
        let (early, seen_below) = if wildcards.is_empty() {
            (Vec::new(), 0)
        } else {
            let topics = self.read_topics();
            let seen_below = self.inner.next_topic.load(Ordering::Relaxed);
            let early: Vec<Arc<Topic>> = topics
                .values()
                .filter(|t| wildcards.iter().any(|p| p.matches(&t.name)))
                .cloned()
                .collect();
            (early, seen_below)
        };
        let mut reg = self.registry();
        let reg = &mut *reg;
        let Some(entry) = reg.subscribers.get_mut(&id) else {
            return 0;
        };
        let fresh: Vec<Pattern> = patterns
            .iter()
            .filter(|p| !entry.patterns.contains(p))
            .cloned()
            .fold(Vec::new(), |mut acc, p| {
                if !acc.contains(&p) {
                    acc.push(p);
                }
                acc
            });
        for p in &fresh {
            let shared = match reg.patterns.get_key_value(p) {
                Some((shared, _)) => shared.clone(),
                None => p.clone(),
            };
            reg.patterns.entry(shared.clone()).or_default().insert(id);
            entry.patterns.push(shared);
        }
        entry.patterns.shrink_to_fit();
        let matching: Vec<Arc<Topic>> = {
            let topics = self.read_topics();
            let mut found = Vec::new();
            for p in fresh.iter().filter(|p| p.is_literal()) {
                found.extend(topics.get(p.as_str()).cloned());
            }
            let wild: Vec<&Pattern> = fresh.iter().filter(|p| !p.is_literal()).collect();
            if !wild.is_empty() {
                let matches = |t: &Arc<Topic>| wild.iter().any(|p| p.matches(&t.name));
                found.extend(early.into_iter().filter(|t| matches(t)));
                // Integer comparisons only, but for the topics created since.
                found.extend(
                    topics
                        .values()
                        .filter(|t| t.id >= seen_below && matches(t))
                        .cloned(),
                );
            }
            found
        };
        let held = entry.topics.len();
        let mut joined = HashSet::new();
        for t in matching {
            let known = entry.topics[..held]
                .binary_search_by_key(&t.id, |x| x.id)
                .is_ok();
            if known || !joined.insert(t.id) {
                continue;
            }
            let mut st = t.lock();
            join(
                &mut st,
                &entry.outbox,
                resume.since.get(&*t.name).copied(),
                self.inner.relay.get().is_none(),
            );
            drop(st);
            entry.topics.push(t);
        }
        if entry.topics.len() > held {
            entry.topics.sort_unstable_by_key(|t| t.id);
            entry.topics.shrink_to_fit();
        }
        self.inner
            .metrics
            .subscriptions
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        fresh.len()
    }

    /// Removes patterns from a subscriber; it leaves every topic that no pattern it
    /// still holds matches. Returns the patterns it did not hold (a topic that
    /// only a wildcard covers is not a held pattern: nothing changes for it).
    pub(crate) fn unsubscribe(&self, id: SubscriberId, patterns: &[Pattern]) -> Vec<Pattern> {
        let mut reg = self.registry();
        let reg = &mut *reg;
        let Some(entry) = reg.subscribers.get_mut(&id) else {
            return patterns.to_vec();
        };
        let not_held: Vec<Pattern> = patterns
            .iter()
            .filter(|p| !entry.patterns.contains(p))
            .cloned()
            .collect();
        let before = entry.patterns.len();
        entry.patterns.retain(|p| !patterns.contains(p));
        entry.patterns.shrink_to_fit();
        let removed = before - entry.patterns.len();
        for p in patterns {
            forget_pattern(&mut reg.patterns, p, id);
        }
        let remaining = &entry.patterns;
        let me = Subscriber(entry.outbox.clone());
        entry.topics.retain(|t| {
            let keep = remaining.iter().any(|p| p.matches(&t.name));
            if !keep {
                t.lock().leave(&me);
            }
            keep
        });
        self.inner
            .metrics
            .subscriptions
            .fetch_sub(removed as u64, Ordering::Relaxed);
        not_held
    }

    /// Forgets a subscriber entirely (its connection ended).
    pub(crate) fn remove_subscriber(&self, id: SubscriberId) {
        let mut reg = self.registry();
        let Some(entry) = reg.subscribers.remove(&id) else {
            return;
        };
        for p in &entry.patterns {
            forget_pattern(&mut reg.patterns, p, id);
        }
        let me = Subscriber(entry.outbox);
        for t in &entry.topics {
            t.lock().leave(&me);
        }
        self.inner
            .metrics
            .subscriptions
            .fetch_sub(entry.patterns.len() as u64, Ordering::Relaxed);
    }
}

fn forget_pattern(
    patterns: &mut HashMap<Pattern, HashSet<SubscriberId>>,
    p: &Pattern,
    id: SubscriberId,
) {
    if let Some(holders) = patterns.get_mut(p) {
        holders.remove(&id);
        if holders.is_empty() {
            patterns.remove(p);
        }
    }
}

/// Adds a subscriber to a locked topic and queues what it must see first.
///
/// `ahead_restarts`: a `since` past the topic's seq means the topic started
/// over (it was deleted and published again, or a crash lost the tail of a
/// durable store's last interval), so the client gets the snapshot. Not in
/// cluster mode, where a node may simply lag behind the one the client left.
fn join(st: &mut TopicState, outbox: &Arc<Outbox>, since: Option<u64>, ahead_restarts: bool) {
    st.subscribers.insert(Subscriber(outbox.clone()));
    if st.latest.is_none() {
        return; // no update yet: the first one arrives live
    }
    match since {
        Some(since) if since == st.seq || (since > st.seq && !ahead_restarts) => {} // up to date
        Some(since)
            if since < st.seq
                && st
                    .history
                    .front()
                    .is_some_and(|first| first.seq() <= since + 1) =>
        {
            // Whole, past the conflation bound: the resume plan (see
            // `resume`) bounded what every joined topic replays in total.
            let backlog = st.history.iter().filter(|f| f.seq() > since);
            outbox.push_backlog(backlog.cloned());
        }
        _ => {
            if let Some(snapshot) = st.snapshot() {
                outbox.push(snapshot);
            }
        }
    }
}

/// Removes its subscriber from the hub when dropped ([`Hub::leave_on_drop`]).
pub(crate) struct Leave {
    hub: Hub,
    id: SubscriberId,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.hub.remove_subscriber(self.id);
    }
}
