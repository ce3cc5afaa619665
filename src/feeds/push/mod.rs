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
//! Each protocol's file parses its body into points ([`PushItem`]: read where
//! they lie in the body, each item's JSON written from its point by one
//! function) and plans them; the HTTP side (credentials, body cap, gzip, each
//! protocol's answer shape) is `server/push.rs`. Every item still goes
//! through the one way in, `FeedContext::publish_text_at` (template,
//! `transform`, status): a feed without `transform` steps publishes the
//! item's text as it is, no `Value` built.

pub(crate) mod influx;
mod line_protocol;
pub(crate) mod otlp;
mod otlp_item;
mod otlp_json;
pub(crate) mod otlp_proto;
pub(crate) mod remote_write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use std::ops::Range;

use serde::Serialize;

use super::FeedContext;
use crate::auth::PublishRight;
use crate::hub::Hub;
use crate::sync::RwLockExt;
use crate::topic::Found;

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

/// A point of a push write as its protocol read it, borrowing the write's
/// bytes. Its `Serialize` is the one function that makes its item's shape:
/// it writes the text that is published, and (through `serde_json::to_value`
/// or the text read back) the `Value` a feed's `transform` steps read, so the
/// two cannot differ. Each map it writes is kept by [`as_map`], so the text
/// is the text of that `Value`, byte for byte.
pub(crate) trait PushItem: Serialize {
    /// What a topic placeholder's `path` finds in the item (the rule of
    /// `topic::field`, through [`crate::topic::field_by`]).
    fn found(&self, path: &str) -> Option<Found<'_>>;
}

/// Makes `entries` the entries of a JSON object as serde_json's `Map` holds
/// them once each was inserted in order: sorted by key, and of a key given
/// twice only the last. The items used to be built as such maps; their text
/// is written from entries kept this way, so it has not changed.
pub(crate) fn as_map<T>(entries: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    // Most sources send their labels sorted (Prometheus must, Telegraf
    // does): then there is nothing to do, and no duplicate either.
    if entries.is_sorted_by(|a, b| key(a) < key(b)) {
        return;
    }
    // Stable, so that equal keys stay in the order they were sent.
    entries.sort_by(|a, b| key(a).cmp(key(b)));
    entries.dedup_by(|later, kept| {
        let same = key(later) == key(kept);
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

/// The entry of `entries` (kept by [`as_map`]) whose key is `wanted`.
pub(crate) fn entry<'e, T>(
    entries: &'e [T],
    wanted: &str,
    key: impl Fn(&T) -> &str,
) -> Option<&'e T> {
    entries
        .binary_search_by(|e| key(e).cmp(wanted))
        .ok()
        .map(|i| &entries[i])
}

/// One write's items, planned whole before any is published: for each, the
/// feed that takes it, its topic and its JSON text. The topics and texts of
/// all the write's items are kept back to back in two buffers, so planning a
/// point costs no allocation of its own.
#[derive(Default)]
pub(crate) struct Batch {
    items: Vec<Planned>,
    /// Every item's topic, back to back.
    topics: String,
    /// Every item's JSON text, back to back (written by `serde_json`, so
    /// UTF-8; checked once, whole, when the write is delivered).
    texts: Vec<u8>,
    /// Items a feed dropped while planning (no topic, too large): counted
    /// and reported as that feed's item errors.
    pub(crate) dropped: usize,
}

/// One planned item: its feed, and where its topic and text are in the
/// batch's buffers.
struct Planned {
    ctx: FeedContext,
    topic: Range<usize>,
    text: Range<usize>,
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
    /// A batch with room for `n` items of about `bytes` of text in all.
    pub(crate) fn with_capacity(n: usize, bytes: usize) -> Self {
        Batch {
            items: Vec::with_capacity(n),
            topics: String::with_capacity(n * 24),
            texts: Vec::with_capacity(bytes),
            dropped: 0,
        }
    }

    /// Plans `point` for each feed of `takers`: `raw_len` (its size as the
    /// source sent it) within the feed's `max_item_bytes`, and its topic
    /// filled from the feed's template. An item that fails either is that
    /// feed's counted error and is dropped; the write goes on. The point's
    /// text is written once, whichever feeds take it.
    pub(crate) fn plan<'f>(
        &mut self,
        takers: impl IntoIterator<Item = &'f FeedContext>,
        raw_len: usize,
        point: &impl PushItem,
    ) {
        let mut text: Option<Range<usize>> = None;
        for ctx in takers {
            if ctx.check_item_bytes(raw_len).is_err() {
                self.dropped += 1;
                continue;
            }
            let start = self.topics.len();
            if ctx
                .topic_into(&mut self.topics, &|path| point.found(path))
                .is_err()
            {
                self.dropped += 1;
                continue;
            }
            let topic = start..self.topics.len();
            let text = match &text {
                Some(written) => written.clone(),
                None => {
                    let start = self.texts.len();
                    if let Err(e) = serde_json::to_writer(&mut self.texts, point) {
                        // No item of ours fails (its keys are strings); if
                        // one did, it is that item's error like any other.
                        self.texts.truncate(start);
                        ctx.item_error(format!("item does not serialize: {e}"));
                        self.topics.truncate(topic.start);
                        self.dropped += 1;
                        continue;
                    }
                    text.insert(start..self.texts.len()).clone()
                }
            };
            self.items.push(Planned {
                ctx: ctx.clone(),
                topic,
                text,
            });
        }
    }

    /// Publishes every planned item, after checking the whole write: every
    /// topic within `right`, and the topics it would create within
    /// `max_topics` (`$` topics aside). A feed without `transform` steps
    /// publishes each item's text as it is; one with steps reads it first.
    ///
    /// # Errors
    /// The write is refused whole; nothing was published.
    pub(crate) fn deliver(
        self,
        hub: &Hub,
        right: &PublishRight,
        max_topics: usize,
    ) -> Result<Delivered, Refused> {
        let Batch {
            items,
            topics,
            texts,
            dropped,
        } = self;
        let topic = |p: &Planned| &topics[p.topic.clone()];
        if let Some(forbidden) = items.iter().map(topic).find(|t| !right.allows(t)) {
            return Err(Refused::Forbidden(format!(
                "this token may not publish to `{forbidden}` (its [[access]] publish patterns \
                 do not match it); nothing of this write was published"
            )));
        }
        let wanted: HashSet<&str> = items
            .iter()
            .map(topic)
            .filter(|t| !crate::topic::is_system(t))
            .collect();
        let (held, new) = hub.topics_to_create(wanted.iter().copied());
        if new > 0 && held + new > max_topics {
            return Err(Refused::Full(format!(
                "this write would create {new} new topics, and the server holds {held} of its \
                 maximum of {max_topics} ([limits] max_topics); nothing of this write was \
                 published"
            )));
        }
        drop(wanted);
        let texts = String::from_utf8(texts).map_err(|e| {
            Refused::Invalid(format!(
                "an item's text is not UTF-8 ({e}); nothing of this write was published"
            ))
        })?;
        let mut done = Delivered {
            published: 0,
            dropped,
        };
        for planned in &items {
            match planned
                .ctx
                .publish_text_at(topic(planned), &texts[planned.text.clone()])
            {
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
