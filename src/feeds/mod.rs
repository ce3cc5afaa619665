//! Feeds: producer tasks that turn a source into topic updates.
//!
//! A feed kind implements [`Feed`]: an async `run` given a [`FeedContext`] (a
//! publisher that fills the feed's topic template, counts and reports, plus a
//! cancellation token). `run` returns `Err` when the source fails; the supervisor
//! (see `supervisor`) then reports `backoff` on `$sys.feeds` and runs it again
//! after an exponential, fully jittered delay. A panic is caught and treated as an
//! error. Built-in kinds are one file each; a user's own kind is registered from
//! Rust ([`Kinds`]) and configured like any other.
//!
//! Built-in kinds: `synthetic`, `system`, `http` (on the shared `poll` loop),
//! `command` (interval mode on `poll` too; stream mode; process groups),
//! `websocket`, `sse` (with its pure `sse::parser`), `file`, the broker
//! kinds `mqtt`, `redis` and `nats` (sharing `broker`: payload rule, the
//! message's topic/channel/subject as template variables), `prometheus` (on
//! `poll`) and `postgres` (LISTEN, or a query on `poll`). Every kind that
//! reads documents runs them through the one [`Pipeline`] via
//! [`FeedContext::publish_document`]. A connection-style kind makes one
//! connection per `run` and returns `Err` when it ends, so reconnect policy
//! (backoff, jitter, the cap) lives in the supervisor alone. Every item then
//! goes through the feed's `transform` steps (see `transform`) before it is
//! published; each kind checks a raw item's size once, with
//! [`FeedContext::check_item_bytes`].
//!
//! Every read from a source is capped at the feed's `max_item_bytes` through
//! the helpers of `limit`; an oversized item is an error of the feed.
//!
//! A feed never sees a session or a socket: it only publishes into the hub.

mod broker;
mod command;
mod extract;
mod file;
mod http;
mod limit;
mod mqtt;
mod nats;
mod poll;
mod postgres;
mod prometheus;
mod redis;
mod sse;
mod supervisor;
mod synthetic;
mod system;
mod websocket;

pub use command::CommandFeed;
pub use extract::Pipeline;
pub use file::FileFeed;
pub use http::HttpFeed;
pub use limit::ItemTooLarge;
pub use mqtt::MqttFeed;
pub use nats::NatsFeed;
pub use postgres::PostgresFeed;
pub use prometheus::PrometheusFeed;
pub use redis::RedisFeed;
pub use sse::SseFeed;
pub use supervisor::Diff;
pub use supervisor::{backoff_window, FeedState, FeedStatus};
pub(crate) use supervisor::{
    diff, feed_topic, publish_status, render_metrics, FeedSupervisor, FEEDS_TOPIC,
};
pub use synthetic::Synthetic;
pub use system::SystemFeed;
pub use websocket::WebSocketFeed;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::config::{FeedConfig, FeedKind};
use crate::hub::{Hub, Published, Source};
use crate::topic::TopicTemplate;

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

type Factory = dyn Fn(&toml::Table) -> anyhow::Result<Arc<dyn DynFeed>> + Send + Sync;
type Check = dyn Fn(&toml::Table) -> Result<(), String> + Send + Sync;

/// Custom feed kinds registered from Rust, by kind name.
#[derive(Clone, Default)]
pub struct Kinds {
    factories: HashMap<String, Arc<Factory>>,
    /// Per kind: do a table's options deserialize into the kind's options type?
    /// Run when a config is loaded, so bad options refuse the whole config.
    checks: HashMap<String, Arc<Check>>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

impl Kinds {
    /// Registers `kind`: `make` builds a feed from the options of a `[[feed]]`
    /// table (every key but `name`, `kind`, `topic`, `enabled`, `stale_after`,
    /// `transform`, `max_item_bytes`, `history`, `ttl`, `on_remove`),
    /// deserialized into `O` (use [`toml::Table`] to take them raw).
    pub fn register<O, F, M>(&mut self, kind: &str, make: M)
    where
        O: serde::de::DeserializeOwned,
        F: Feed,
        M: Fn(O) -> anyhow::Result<F> + Send + Sync + 'static,
    {
        let factory = move |options: &toml::Table| -> anyhow::Result<Arc<dyn DynFeed>> {
            let options = parse_options::<O>(options).map_err(anyhow::Error::msg)?;
            Ok(Arc::new(make(options)?))
        };
        self.factories.insert(kind.to_string(), Arc::new(factory));
        let check = |options: &toml::Table| parse_options::<O>(options).map(drop);
        self.checks.insert(kind.to_string(), Arc::new(check));
    }

    /// Checks the options of every custom-kind feed in `feeds` against its
    /// kind's options type, collecting every error with its file, line and feed.
    pub(crate) fn check(&self, feeds: &[FeedConfig]) -> Result<(), crate::config::ConfigErrors> {
        let errors: Vec<crate::config::ConfigError> = feeds
            .iter()
            .filter_map(|f| match &f.kind {
                FeedKind::Custom { kind, options } => {
                    let check = self.checks.get(kind)?;
                    check(options)
                        .err()
                        .map(|message| crate::config::ConfigError {
                            location: Some(f.location.clone()),
                            feed: Some(f.name.clone()),
                            message,
                        })
                }
                _ => None,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(crate::config::ConfigErrors(errors))
        }
    }

    /// Is `kind` registered?
    pub fn contains(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// Builds the runnable feed for a config.
    pub(crate) fn build(&self, config: &FeedConfig) -> anyhow::Result<Arc<dyn DynFeed>> {
        Ok(match &config.kind {
            FeedKind::Synthetic(o) => Arc::new(Synthetic::new(o.clone())),
            FeedKind::System(o) => Arc::new(SystemFeed::new(o.clone())),
            FeedKind::Http(o) => Arc::new(HttpFeed::new(o.clone())?),
            FeedKind::Command(o) => Arc::new(CommandFeed::new(o.clone())),
            FeedKind::Sse(o) => Arc::new(SseFeed::new(o.clone())?),
            FeedKind::File(o) => Arc::new(FileFeed::new(o.clone())),
            FeedKind::WebSocket(o) => Arc::new(WebSocketFeed::new(o.clone())),
            FeedKind::Mqtt(o) => Arc::new(MqttFeed::new(o.clone(), &config.name)?),
            FeedKind::Redis(o) => Arc::new(RedisFeed::new(o.clone())?),
            FeedKind::Nats(o) => Arc::new(NatsFeed::new(o.clone())),
            FeedKind::Prometheus(o) => Arc::new(PrometheusFeed::new(o.clone())?),
            FeedKind::Postgres(o) => Arc::new(PostgresFeed::new(o.clone())?),
            FeedKind::Custom { kind, options } => match self.factories.get(kind) {
                Some(make) => make(options)?,
                None => anyhow::bail!("kind {kind:?} is not registered in this program"),
            },
        })
    }
}

/// Deserializes a custom kind's options table into `O`.
fn parse_options<O: serde::de::DeserializeOwned>(options: &toml::Table) -> Result<O, String> {
    toml::Value::Table(options.clone())
        .try_into::<O>()
        .map_err(|e| format!("invalid options: {}", e.message().trim()))
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
    status: Arc<supervisor::StatusCell>,
    cancel: CancellationToken,
    /// The feed's `transform` steps, applied to every item in order.
    transforms: Vec<crate::transform::Transform>,
    /// Their per-topic state. A std `Mutex`: only this feed's own task
    /// publishes, so it is uncontended, and it is never held across an await;
    /// a feed without stateful steps never takes it.
    memory: std::sync::Mutex<crate::transform::Memory>,
    handoff: Arc<supervisor::Handoff>,
    max_item_bytes: usize,
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
        let value = serde_json::to_value(item)
            .map_err(|e| self.item_error(format!("item does not serialize: {e}")))?;
        let topic = self
            .inner
            .template
            .fill(&value)
            .map_err(|e| self.item_error(e.to_string()))?;
        let value = self.transform(&topic, value)?;
        self.publish_to(&topic, &value)
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
        item: &serde_json::Value,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Published, ItemError> {
        let topic = self
            .inner
            .template
            .fill_with(item, vars)
            .map_err(|e| self.item_error(e.to_string()))?;
        self.publish_to(&topic, item)
    }

    /// Publishes to an explicit topic, bypassing the template.
    /// Runs the feed's `transform` steps over one item of `topic`.
    fn transform(
        &self,
        topic: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, ItemError> {
        let steps = &self.inner.transforms;
        if steps.is_empty() {
            return Ok(value);
        }
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
        result.map_err(|e| self.item_error(e))
    }

    /// Publishes to an explicit topic, bypassing the template and the
    /// `transform` steps.
    ///
    /// # Errors
    /// The topic is invalid or the data does not serialize.
    pub fn publish_to<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
    ) -> Result<Published, ItemError> {
        match self.inner.hub.publish_from(&self.inner.source, topic, data) {
            Ok(p) => {
                self.inner.status.record_ok(&self.inner.hub);
                Ok(p)
            }
            Err(e) => Err(self.item_error(e.to_string())),
        }
    }

    /// Runs `body` through `pipeline` and publishes every item. Items that fail
    /// are counted and reported; the count of published items is returned.
    ///
    /// # Errors
    /// The document itself is unusable (not JSON, pointer finds nothing), or
    /// larger than [`FeedContext::max_item_bytes`].
    pub fn publish_document(&self, pipeline: &Pipeline, body: &str) -> anyhow::Result<usize> {
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
