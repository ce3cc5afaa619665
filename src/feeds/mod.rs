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
//! `websocket`, `sse` (with its pure `sse::parser`) and `file`. Every kind that
//! reads documents runs them through the one [`Pipeline`] via
//! [`FeedContext::publish_document`]. A connection-style kind makes one
//! connection per `run` and returns `Err` when it ends, so reconnect policy
//! (backoff, jitter, the cap) lives in the supervisor alone.
//!
//! A feed never sees a session or a socket: it only publishes into the hub.

mod command;
mod extract;
mod file;
mod http;
mod poll;
mod sse;
mod supervisor;
mod synthetic;
mod system;
mod websocket;

pub use command::CommandFeed;
pub use extract::Pipeline;
pub use file::FileFeed;
pub use http::HttpFeed;
pub use sse::SseFeed;
pub use supervisor::Diff;
pub use supervisor::{backoff_window, FeedState, FeedStatus};
pub(crate) use supervisor::{diff, feed_topic, publish_status, render_metrics, Feeds, FEEDS_TOPIC};
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
    /// table (every key but `name`, `kind`, `topic`, `enabled`, `stale_after`, `ttl`, `on_remove`),
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

    /// Has the feed been asked to stop?
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The feed's cancellation token (child tasks can watch it).
    pub fn token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Publishes one item to the feed's topic template, filled from the item's
    /// fields. An item that cannot fill the template is counted and reported as
    /// an error of that item.
    ///
    /// # Errors
    /// The item lacks a placeholder field or does not serialize.
    pub fn publish<T: Serialize + ?Sized>(&self, item: &T) -> Result<Published, ItemError> {
        let value = serde_json::to_value(item)
            .map_err(|e| self.item_error(format!("item does not serialize: {e}")))?;
        let topic = self
            .inner
            .template
            .fill(&value)
            .map_err(|e| self.item_error(e.to_string()))?;
        self.publish_to(&topic, &value)
    }

    /// Publishes to an explicit topic, bypassing the template.
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
    /// The document itself is unusable (not JSON, pointer finds nothing).
    pub fn publish_document(&self, pipeline: &Pipeline, body: &str) -> anyhow::Result<usize> {
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
        ItemError(message)
    }

    /// Marks the feed `running` (e.g. once connected) before its first update.
    pub fn mark_running(&self) {
        self.inner.status.mark_running(&self.inner.hub);
    }
}
