//! Feeds: producer tasks that turn a source into topic updates.
//!
//! A feed kind implements [`Feed`]: an async `run` given a [`FeedContext`] (a
//! publisher that fills the feed's topic template, counts and reports, plus a
//! cancellation token). `run` returns `Err` when the source fails; the supervisor
//! (see `supervisor`) then reports `backoff` on `$sys.feeds` and runs it again
//! after an exponential, fully jittered delay. A panic is caught and treated as an
//! error. Built-in kinds are one file each (options, their checks, constructor),
//! listed once in `registry`; a user's own kind is registered from Rust
//! ([`Kinds`]) and configured, and validated with the config, like any other.
//!
//! Built-in kinds: `synthetic`, `system`, `http` (on the shared `poll` loop),
//! `command` (interval mode on `poll` too; stream mode; process groups),
//! `websocket`, `sse` (with its pure `sse::parser`), `file`, the broker
//! kinds `mqtt`, `redis` and `nats` (sharing `broker`: payload rule, the
//! message's topic/channel/subject as template variables), `prometheus` (on
//! `poll`) and `postgres` (LISTEN, or a query on `poll`). Every kind that
//! reads documents runs them through the one `Pipeline` via
//! `FeedContext::publish_document`. A connection-style kind makes one
//! connection per `run` and returns `Err` when it ends, so reconnect policy
//! (backoff, jitter, the cap) lives in the supervisor alone. Every item then
//! goes through the feed's `transform` steps (see `transform`) before it is
//! published; each kind checks a raw item's size once, with
//! [`FeedContext::check_item_bytes`].
//!
//! Every read from a source is capped at the feed's `max_item_bytes` through
//! the helpers of `limit`; an oversized item is an error of the feed.
//!
//! The push kinds `influx`, `remote_write` and `otlp` (see `push`) have no
//! connection of their own: their run registers the feed with the server's
//! push routes until it is cancelled, and each write is published through the
//! same `publish_item` (its points as the JSON text they are written to,
//! `publish_text_at`, read into a `Value` only for a feed with steps).
//!
//! A feed never sees a session or a socket: it only publishes into the hub.

mod broker;
mod extract;
mod limit;
mod options;
mod poll;
pub(crate) mod push;
mod registry;
mod status;
mod supervisor;

/// Declares each built-in kind's module (`feeds/<kind>.rs`, defining its
/// `KIND`) and lists it in [`BUILTIN`]: adding a kind is its file plus its
/// name here.
/// The push kinds (`push/<kind>.rs`, declared by `push`) follow the `;`.
macro_rules! builtin_kinds {
    ($($kind:ident),* ; $($pushed:ident),* $(,)?) => {
        $(mod $kind;)*

        /// Every built-in kind, in the order the "unknown kind" message lists
        /// them.
        pub(crate) const BUILTIN: &[registry::BuiltinKind] =
            &[$($kind::KIND,)* $(push::$pushed::KIND),*];
    };
}

builtin_kinds!(
    synthetic, system, http, command, websocket, sse, file, mqtt, redis, nats, prometheus,
    postgres; influx, remote_write, otlp,
);

pub(crate) use extract::Pipeline;
pub use limit::ItemTooLarge;
pub use registry::{builtin_kinds, Kinds};
pub(crate) use status::{feed_topic, publish_status, render_metrics, FEEDS_TOPIC};
pub use status::{FeedState, FeedStatus};
#[cfg(feature = "client")]
pub(crate) use supervisor::doubling_window;
pub use supervisor::Diff;
pub(crate) use supervisor::{diff, settle_topics, FeedSupervisor};

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::hub::{Hub, PublishError, Published, Source};
use crate::topic::{Found, TopicTemplate};

/// A source of updates. Implement it for a kind of your own and register it with
/// [`crate::TickerBuilder::kind`].
///
/// `run` should loop until `ctx` is cancelled (then return `Ok(())`), publishing
/// with [`FeedContext::publish`]. Return `Err` when the source fails: the
/// supervisor reports it and calls `run` again after a backoff.
pub trait Feed: Send + Sync + 'static {
    /// Runs the feed until cancellation or failure.
    fn run(&self, ctx: FeedContext) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Object-safe form of [`Feed`], used by the supervisor.
pub(crate) trait DynFeed: Send + Sync + 'static {
    fn run_boxed(
        &self,
        ctx: FeedContext,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>;
}

impl<F: Feed> DynFeed for F {
    fn run_boxed(
        &self,
        ctx: FeedContext,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(self.run(ctx))
    }
}

/// What a running feed uses to publish and to notice it must stop.
#[derive(Clone)]
pub struct FeedContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    hub: Hub,
    template: TopicTemplate,
    source: Source,
    status: Arc<status::StatusCell>,
    cancel: CancellationToken,
    /// The feed's `transform` steps, applied to every item in order.
    transforms: Vec<crate::transform::Transform>,
    /// Their per-topic state. A std `Mutex`: only this feed's own task
    /// publishes, so it is uncontended, and it is never held across an await;
    /// a feed without stateful steps never takes it.
    memory: std::sync::Mutex<crate::transform::Memory>,
    handoff: Arc<supervisor::Handoff>,
    max_item_bytes: usize,
    /// The running push feeds, which a push kind's run joins (see `push`).
    inlets: Arc<push::Inlets>,
}

impl std::fmt::Debug for FeedContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedContext")
            .field("feed", &self.name())
            .finish_non_exhaustive()
    }
}

/// An item that could not be published (reported and counted, never fatal).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ItemError(String);

impl FeedContext {
    /// The feed's name.
    pub fn name(&self) -> &str {
        self.inner.source.feed.as_deref().unwrap_or_default()
    }

    /// Completes when the feed must stop (removed, changed, or shutdown).
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.cancel.cancelled()
    }

    /// The most bytes the feed may read from its source for one item (its
    /// `max_item_bytes`, else `[limits] max_item_bytes`).
    pub fn max_item_bytes(&self) -> usize {
        self.inner.max_item_bytes
    }

    /// Has the feed been asked to stop?
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The feed's cancellation token (child tasks can watch it).
    pub fn token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Publishes one item to the feed's topic template, filled from the item's
    /// fields, after the feed's `transform` steps. An item that cannot fill the
    /// template or go through a step is counted and reported as an error of
    /// that item.
    ///
    /// The topic is filled from the item as the source gave it, so the steps
    /// shape only the published data (a `select` may drop the topic's field).
    ///
    /// # Errors
    /// The item lacks a placeholder field, fails a step, or does not serialize.
    pub fn publish<T: Serialize + ?Sized>(&self, item: &T) -> Result<Published, ItemError> {
        let value = self.to_value(item)?;
        let topic = self.fill(&value, &|_| None)?;
        self.publish_item(&topic, Cow::Owned(value))
    }

    /// Like [`FeedContext::publish`], with template placeholders that `vars`
    /// names taken from it rather than from the item (see
    /// [`TopicTemplate::fill_with`]): the broker kinds pass the name a message
    /// arrived on.
    ///
    /// # Errors
    /// As [`FeedContext::publish`].
    pub fn publish_with(
        &self,
        item: &Value,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Published, ItemError> {
        let topic = self.fill(item, vars)?;
        self.publish_item(&topic, Cow::Borrowed(item))
    }

    /// Publishes to an explicit topic instead of the template's, after the
    /// feed's `transform` steps like every other item.
    ///
    /// # Errors
    /// The topic is invalid, the data fails a step or does not serialize.
    pub fn publish_to<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<Published, ItemError> {
        let value = self.to_value(data)?;
        self.publish_item(topic, Cow::Owned(value))
    }

    /// The topic the feed's template makes of an item read through `lookup`
    /// rather than a `Value` (a push point, see `push::PushItem`; a push
    /// write checks every topic before it publishes any), appended to `out`
    /// (left as it was on an error). A failure is that item's counted error.
    pub(crate) fn topic_into<'a>(
        &self,
        out: &mut String,
        lookup: &dyn Fn(&str) -> Option<Found<'a>>,
    ) -> Result<(), ItemError> {
        self.inner
            .template
            .fill_into(out, &|_| None, lookup)
            .map_err(|e| self.item_error(e.to_string()))
    }

    /// Publishes an item given as its JSON text (`json`: one valid JSON
    /// value), whose topic [`FeedContext::topic_into`] made, through the one
    /// way in. Without `transform` steps the text is published as it is, no
    /// tree built (a push write's fast path); with steps it is read into the
    /// `Value` they need first.
    pub(crate) fn publish_text_at(&self, topic: &str, json: &str) -> Result<Published, ItemError> {
        if !self.inner.transforms.is_empty() {
            let value = serde_json::from_str(json)
                .map_err(|e| self.item_error(format!("item is not JSON: {e}")))?;
            return self.publish_item(topic, Cow::Owned(value));
        }
        let published = self.inner.hub.publish_json(&self.inner.source, topic, json);
        self.record(published)
    }

    /// The running push feeds this feed's supervisor shares with the server.
    pub(crate) fn inlets(&self) -> &Arc<push::Inlets> {
        &self.inner.inlets
    }

    /// The one way into the hub for every item of every kind: the feed's
    /// `transform` steps, then the publish, counted and shown on the feed's
    /// status. The public `publish*` methods only differ in how they name the
    /// topic, so no path can skip a step.
    fn publish_item(&self, topic: &str, value: Cow<'_, Value>) -> Result<Published, ItemError> {
        let value = self.transform(topic, value)?;
        let published = self
            .inner
            .hub
            .publish_from(&self.inner.source, topic, &*value);
        self.record(published)
    }

    /// A publish's outcome on the feed's status: counted as an update, or
    /// reported as that item's error.
    fn record(&self, published: Result<Published, PublishError>) -> Result<Published, ItemError> {
        match published {
            Ok(p) => {
                self.inner.status.record_ok(&self.inner.hub);
                Ok(p)
            }
            Err(e) => Err(self.item_error(e.to_string())),
        }
    }

    /// An item as JSON; one that does not serialize is that item's error.
    fn to_value<T: Serialize + ?Sized>(&self, item: &T) -> Result<Value, ItemError> {
        serde_json::to_value(item)
            .map_err(|e| self.item_error(format!("item does not serialize: {e}")))
    }

    /// The feed's topic for `item`, filled from its fields and `vars`.
    fn fill(
        &self,
        item: &Value,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ItemError> {
        self.inner
            .template
            .fill_with(item, vars)
            .map_err(|e| self.item_error(e.to_string()))
    }

    /// Runs the feed's `transform` steps over one item of `topic`.
    fn transform<'a>(
        &self,
        topic: &str,
        value: Cow<'a, Value>,
    ) -> Result<Cow<'a, Value>, ItemError> {
        let steps = &self.inner.transforms;
        if steps.is_empty() {
            return Ok(value);
        }
        let value = value.into_owned();
        let now = tokio::time::Instant::now();
        let result = if steps.iter().any(crate::transform::Transform::is_stateful) {
            let mut memory = self
                .inner
                .memory
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::transform::apply(steps, memory.of(topic, steps.len()), value, now)
        } else {
            crate::transform::apply(steps, &mut vec![None; steps.len()], value, now)
        };
        result.map(Cow::Owned).map_err(|e| self.item_error(e))
    }

    /// Runs `body` through `pipeline` and publishes every item. Items that fail
    /// are counted and reported; the count of published items is returned.
    ///
    /// # Errors
    /// The document itself is unusable (not JSON, pointer finds nothing), or
    /// larger than [`FeedContext::max_item_bytes`].
    pub(crate) fn publish_document(
        &self,
        pipeline: &Pipeline,
        body: &str,
    ) -> anyhow::Result<usize> {
        let max = self.max_item_bytes();
        if body.len() > max {
            let len = Some(body.len() as u64);
            return Err(ItemTooLarge { len, max }.into());
        }
        let items = pipeline.items(body).map_err(anyhow::Error::msg)?;
        Ok(items
            .iter()
            .filter(|item| self.publish(*item).is_ok())
            .count())
    }

    /// [`FeedContext::publish_document`] for a document that is the feed's
    /// whole set (`prune = true`): then deletes the feed's topics that no item
    /// of it names. A document that is unusable deletes nothing.
    ///
    /// # Errors
    /// The document itself is unusable (not JSON, pointer finds nothing).
    pub(crate) fn publish_set(&self, pipeline: &Pipeline, body: &str) -> anyhow::Result<usize> {
        let items = pipeline.items(body).map_err(anyhow::Error::msg)?;
        let kept: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|item| self.inner.template.fill(item).ok())
            .collect();
        let published = items
            .iter()
            .filter(|item| self.publish(*item).is_ok())
            .count();
        let me = self.name();
        let pruned = self
            .inner
            .hub
            .delete_where(|topic, feed, _| feed == Some(me) && !kept.contains(topic));
        if pruned > 0 {
            tracing::info!(feed = %me, topics = pruned, "Topics that left the feed's set deleted (prune).");
        }
        Ok(published)
    }

    /// Records an error that does not stop the feed (a bad item or message):
    /// logged, counted and shown as the feed's last error.
    pub fn item_error(&self, message: String) -> ItemError {
        tracing::warn!(feed = %self.name(), error = %message, "Item dropped.");
        self.inner.status.record_error(&message);
        // The source works, its items do not: say so now, not at the next report.
        self.inner.status.mark_running(&self.inner.hub);
        ItemError(message)
    }

    /// Shows on `$sys.feeds` why the feed has nothing yet (e.g. `waiting for
    /// /x/y to exist`), without counting an error; cleared once it runs.
    pub fn waiting(&self, why: String) {
        self.inner.status.waiting(&self.inner.hub, why);
    }

    /// Checks one item's size against the feed's `max_item_bytes`: a larger
    /// item is counted and reported as that item's error, and must be dropped.
    /// Kinds that learn an item's size before decoding it (a message, a row, a
    /// series) call this once per raw item; kinds that read streams use the
    /// capped readers of `limit`. One bound either way.
    ///
    /// # Errors
    /// The item is larger than the limit.
    pub fn check_item_bytes(&self, len: usize) -> Result<(), ItemError> {
        limit::check_len(len, self.max_item_bytes())
            .map_err(|e| self.item_error(format!("{e}; dropped")))
    }

    /// State a previous run of this feed left for the next one (its retry, or
    /// its successor after a config change).
    pub(crate) fn handoff(&self) -> &supervisor::Handoff {
        &self.inner.handoff
    }

    /// Marks the feed `running` (e.g. once connected) before its first update.
    pub fn mark_running(&self) {
        self.inner.status.mark_running(&self.inner.hub);
    }
}
