//! Push feeds: kinds whose source connects to tickerd instead of the other way
//! round. `influx` (InfluxDB line protocol), `remote_write` (Prometheus
//! remote-write 1.0) and `otlp` (OpenTelemetry metrics over OTLP/HTTP).
//!
//! This module owns what the three share:
//!
//! - [`Inlets`]: the running push feeds, by protocol. A push feed's `run`
//!   registers its [`FeedContext`] here ([`serve`]) and stays registered
//!   until it is cancelled, so adding, changing or removing such a feed on
//!   reload changes which writes are taken, without a restart. The server's
//!   routes are always there; a write no running feed takes is answered 404.
//! - [`Batch`]: one write's items, planned whole before any is published,
//!   then delivered ([`Batch::deliver`]) under the write's publish right
//!   and `[limits] max_topics`: a write that names a topic its token may not
//!   publish to, or that would take the server past `max_topics`, is refused
//!   whole, never half-applied.
//!
//! Each protocol's file parses its body into items and plans them; the HTTP
//! side (credentials, body cap, gzip, each protocol's answer shape) is
//! `server/push.rs`. Every item still goes through the one way in,
//! `FeedContext::publish_item` (template, `transform`, status).

pub(crate) mod influx;
mod line_protocol;
pub(crate) mod otlp;
mod otlp_json;
pub(crate) mod otlp_proto;
pub(crate) mod remote_write;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::FeedContext;
use crate::auth::PublishRight;
use crate::hub::Hub;
use crate::sync::RwLockExt;

/// What a running push feed takes.
#[derive(Debug, Clone)]
pub(crate) enum Taker {
    /// `influx`: the writes to its `bucket` (v2 `bucket`, v1 `db`).
    Influx { bucket: String },
    /// `remote_write`: the series its `match` list selects (all without one).
    RemoteWrite {
        matchers: Arc<[remote_write::Matcher]>,
    },
    /// `otlp`: every metrics export.
    Otlp,
}

/// The running push feeds, shared by the feed supervisor (whose feeds
/// register) and the server (whose routes deliver to them).
#[derive(Debug, Default)]
pub(crate) struct Inlets {
    open: RwLock<Vec<(u64, Taker, FeedContext)>>,
    next: AtomicU64,
}

/// A push feed's place in [`Inlets`]; dropping it takes the feed out.
pub(crate) struct Registration {
    inlets: Arc<Inlets>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inlets
            .open
            .write_or_recover()
            .retain(|(id, ..)| *id != self.id);
    }
}

impl Inlets {
    /// Registers `ctx`'s feed as taking what `taker` says, until the
    /// returned registration is dropped.
    pub(crate) fn open(self: &Arc<Self>, taker: Taker, ctx: FeedContext) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.write_or_recover().push((id, taker, ctx));
        Registration {
            inlets: self.clone(),
            id,
        }
    }

    /// The running feeds `pick` keeps (a snapshot: a reload may change the
    /// set while a write is delivered).
    pub(crate) fn takers<T>(&self, pick: impl Fn(&Taker) -> Option<T>) -> Vec<(T, FeedContext)> {
        self.open
            .read_or_recover()
            .iter()
            .filter_map(|(_, taker, ctx)| Some((pick(taker)?, ctx.clone())))
            .collect()
    }
}

/// A push feed's run: registered as `taker` until cancelled. Nothing fails
/// it: its source is the writes that arrive.
pub(crate) async fn serve(ctx: FeedContext, taker: Taker) -> anyhow::Result<()> {
    let _registration = ctx.inlets().open(taker, ctx.clone());
    ctx.mark_running();
    ctx.cancelled().await;
    Ok(())
}

/// Why a push write is refused whole. Each protocol answers it in its own
/// shape (`server/push.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The body does not parse (400); the text names the line or field.
    Invalid(String),
    /// The write's token may not publish to a topic it makes (403).
    Forbidden(String),
    /// The write would take the server past `[limits] max_topics` (507).
    Full(String),
    /// No running feed takes this write (404).
    NoTaker(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(m)
            | Refused::Forbidden(m)
            | Refused::Full(m)
            | Refused::NoTaker(m) => f.write_str(m),
        }
    }
}

/// One write's items, each with the feed that takes it and its topic,
/// planned whole before any is published.
#[derive(Default)]
pub(crate) struct Batch {
    items: Vec<(FeedContext, String, Value)>,
    /// Items a feed dropped while planning (no topic, too large): counted
    /// and reported as that feed's item errors.
    pub(crate) dropped: usize,
}

/// What a delivered write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Items published.
    pub(crate) published: usize,
    /// Items dropped (planning or publishing failed for that item).
    pub(crate) dropped: usize,
}

impl Batch {
    /// A batch with room for `n` items.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Batch {
            items: Vec::with_capacity(n),
            dropped: 0,
        }
    }

    /// Plans `item` for `ctx`'s feed: `raw_len` (its size as the source sent
    /// it) within the feed's `max_item_bytes`, and its topic filled from the
    /// feed's template. An item that fails either is that feed's counted
    /// error and is dropped; the write goes on.
    pub(crate) fn plan(&mut self, ctx: &FeedContext, raw_len: usize, item: Value) {
        if ctx.check_item_bytes(raw_len).is_err() {
            self.dropped += 1;
            return;
        }
        match ctx.topic_for(&item) {
            Ok(topic) => self.items.push((ctx.clone(), topic, item)),
            Err(_) => self.dropped += 1,
        }
    }

    /// Publishes every planned item, after checking the whole write: every
    /// topic within `right`, and the topics it would create within
    /// `max_topics` (`$` topics aside).
    ///
    /// # Errors
    /// The write is refused whole; nothing was published.
    pub(crate) fn deliver(
        self,
        hub: &Hub,
        right: &PublishRight,
        max_topics: usize,
    ) -> Result<Delivered, Refused> {
        if let Some((_, topic, _)) = self.items.iter().find(|(_, t, _)| !right.allows(t)) {
            return Err(Refused::Forbidden(format!(
                "this token may not publish to `{topic}` (its [[access]] publish patterns do not \
                 match it); nothing of this write was published"
            )));
        }
        let wanted: HashSet<&str> = self
            .items
            .iter()
            .map(|(_, t, _)| t.as_str())
            .filter(|t| !crate::topic::is_system(t))
            .collect();
        // One pass over the topic names, per write (not per item): how many
        // the server holds, and how many of this write's it already has.
        let (held, existing) = (Cell::new(0usize), Cell::new(0usize));
        hub.topics_where(|t| {
            if !crate::topic::is_system(t) {
                held.set(held.get() + 1);
                if wanted.contains(t) {
                    existing.set(existing.get() + 1);
                }
            }
            false
        });
        let (held, new) = (held.get(), wanted.len() - existing.get());
        if new > 0 && held + new > max_topics {
            return Err(Refused::Full(format!(
                "this write would create {new} new topics, and the server holds {held} of its \
                 maximum of {max_topics} ([limits] max_topics); nothing of this write was \
                 published"
            )));
        }
        drop(wanted);
        let mut done = Delivered {
            published: 0,
            dropped: self.dropped,
        };
        for (ctx, topic, item) in self.items {
            match ctx.publish_at(&topic, item) {
                Ok(_) => done.published += 1,
                Err(_) => done.dropped += 1,
            }
        }
        Ok(done)
    }
}

/// Milliseconds since the Unix epoch now: the time of an item its source
/// sent without one.
pub(crate) fn now_ms() -> i64 {
    crate::hub::now_ms() as i64
}
