//! A subscribe, whichever transport it came by: its checks (pattern count,
//! pattern grammar, the grant), the resume it plans, its `max_rate`/`delta`
//! rule, the ack, and joining the hub. Every refusal is a [`Check`] with its
//! text made here, so `/ws` and `/sse` refuse the same requests with the same
//! words (`tests/refusals.rs` runs one of each [`Check`] through both).

use std::collections::HashMap;

use super::Connection;
use crate::delivery::{Outbox, Rule};
use crate::hub::{Resume, SubscriberId};
use crate::protocol::{self, ErrorCode};
use crate::topic::Pattern;

/// What a subscribe asks for: a `/ws` `subscribe` request's fields, or a
/// `GET /sse` query.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Subscribe {
    /// The patterns, in order, as given.
    pub(crate) topics: Vec<String>,
    /// Last seq seen per topic.
    pub(crate) since: HashMap<String, u64>,
    /// The epoch `since` belongs to.
    pub(crate) epoch: Option<String>,
    /// `max_rate`: at most this many updates per second per topic.
    pub(crate) max_rate: Option<f64>,
    /// `delta`: merge patches after the first whole value.
    pub(crate) delta: bool,
}

/// Every check a subscribe can fail, in the order they run. The variants'
/// names are read by `tests/refusals.rs`: a new one needs a row there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// More patterns than `limits.max_subscriptions`, in the request or in
    /// what the connection would hold after it.
    TooMany,
    /// A pattern breaks the topic grammar.
    Pattern,
    /// A pattern outside what the connection's grant allows.
    Grant,
}

/// A refused subscribe: which check, and what the client is told.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The check that failed.
    pub(crate) check: Check,
    /// What is wrong, and what would be right.
    pub(crate) message: String,
}

impl Refused {
    /// The error code a `/ws` reply carries (`/sse` maps it to a status).
    pub(crate) fn code(&self) -> ErrorCode {
        match self.check {
            Check::TooMany => ErrorCode::TooManySubscriptions,
            Check::Pattern => ErrorCode::InvalidTopic,
            Check::Grant => ErrorCode::Forbidden,
        }
    }
}

/// `topics` as patterns, or the first one's grammar error.
pub(crate) fn parse_patterns(topics: &[String]) -> Result<Vec<Pattern>, Refused> {
    topics
        .iter()
        .map(|t| Pattern::parse(t))
        .collect::<Result<_, _>>()
        .map_err(|e| Refused {
            check: Check::Pattern,
            message: e.to_string(),
        })
}

impl Connection {
    /// The checks that need no subscriber yet: the count (first: one request
    /// may name thousands of patterns, and parsing and grant checks are not
    /// free), the grammar, the grant. `/sse` runs them before it takes a
    /// connection slot.
    pub(crate) fn check(&self, topics: &[String]) -> Result<Vec<Pattern>, Refused> {
        let limit = self.settings.limits.max_subscriptions;
        if topics.len() > limit {
            return Err(Refused {
                check: Check::TooMany,
                message: format!("a connection may hold at most {limit} patterns"),
            });
        }
        let patterns = parse_patterns(topics)?;
        let grant = self.grant();
        if let Some(p) = patterns.iter().find(|p| !grant.may_subscribe(p)) {
            return Err(Refused {
                check: Check::Grant,
                message: format!("`{p}` is outside what this connection's token allows"),
            });
        }
        Ok(patterns)
    }

    /// Subscribes `sub` to `patterns` (from [`Connection::check`]): refused
    /// if the connection would then hold too many; else the resume is
    /// planned, the rule recorded, the ack (request `id`) queued, and the hub
    /// queues the snapshots or backlogs after it.
    pub(crate) async fn join(
        &self,
        sub: SubscriberId,
        outbox: &Outbox,
        id: Option<&serde_json::Value>,
        patterns: Vec<Pattern>,
        request: Subscribe,
    ) -> Result<(), Refused> {
        // Patterns it holds already cost nothing more.
        let limit = self.settings.limits.max_subscriptions;
        let (held, fresh) = self.hub.pattern_counts(sub, &patterns);
        if held + fresh > limit {
            return Err(Refused {
                check: Check::TooMany,
                message: format!("a connection may hold at most {limit} patterns (holds {held})"),
            });
        }
        let Subscribe {
            topics,
            since,
            epoch,
            max_rate,
            delta,
        } = request;
        // The hub's copies of patterns other connections hold already: this
        // connection's rules (below) and registry entry then share them
        // rather than keep a parse of their own.
        let patterns = self.hub.shared_patterns(patterns);
        let max_resume = self.settings.limits.max_resume;
        let plan = self
            .hub
            .plan_resume(&patterns, since, epoch.as_deref(), max_resume);
        // Recorded before the hub queues snapshots, which the writer then
        // shapes by it.
        // Every pattern's rule is recorded, plain ones too: a later shaped
        // subscribe must not shape what these match.
        let shaped = max_rate.is_some() || delta || self.shaping.is_active();
        let replays = match shaped {
            true => plan.replays,
            false => HashMap::new(),
        };
        self.shaping
            .subscribe(&patterns, Rule::new(max_rate, delta), replays);
        let ack = protocol::ack(id, "subscribe", &topics, plan.note.as_ref(), &[]);
        outbox.push_control(ack).await;
        let resume = Resume { since: plan.since };
        self.hub.join_patterns(sub, patterns, resume).await;
        Ok(())
    }
}
