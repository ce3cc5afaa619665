//! Runs feeds: one supervised task per feed, restarts with backoff, status on
//! `$sys.feeds`, and the set of running feeds that reload changes by difference.
//!
//! Each feed's task runs `Feed::run`; on `Err` or panic it reports `backoff` and
//! sleeps a full-jitter delay (uniform in `[0, min(30 s, 1 s * 2^n)]`, with `n`
//! reset once a run has published), then runs it again. A reporter task publishes
//! a feed's status when its counters moved (at most once a second), when it
//! turns stale or fresh, and every 30 s while it is not stopped: in a cluster
//! that re-sends the statuses other nodes missed (see `cluster`); a stopped
//! feed's status does not change, so it is not re-sent.

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::status::{error_chain, feed_topic, FeedState, FeedStatus, StatusCell};
use super::{ContextInner, DynFeed, FeedContext, Kinds};
use crate::config::{FeedConfig, OnRemove};
use crate::hub::{Hub, Produced, Source};
use crate::sync::MutexExt;
use crate::topic::{Fill, Pattern};

const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a stopping feed may take to return by itself before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the status of a feed that is not stopped is published again,
/// changed or not (other cluster nodes learn what they missed).
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// The window of the `failures`-th backoff: `min(cap, base * 2^failures)`; the
/// delay is drawn uniformly below it (full jitter).
pub(crate) fn backoff_window(failures: u32) -> Duration {
    doubling_window(BACKOFF_BASE, BACKOFF_CAP, failures)
}

/// `min(cap, base * 2^n)`: the window the `n`-th retry's delay is drawn
/// from, for a failing feed (above) and a reconnecting `tickerd::client` alike.
pub(crate) fn doubling_window(base: Duration, cap: Duration, n: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(n.min(16))).min(cap)
}

fn backoff_delay(failures: u32) -> Duration {
    let window = backoff_window(failures).as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(window / 20..=window))
}

struct Running {
    config: FeedConfig,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    status: Arc<StatusCell>,
    handoff: Arc<Handoff>,
}

/// What one run of a feed leaves for the next run under the same name: its
/// retry after a failure, or the task that replaces it when its config changed
/// (e.g. a tail's offset, so no line is skipped). One per feed name, held by the
/// supervisor and passed from a stopped feed to its successor; dropped with the
/// feed when it is removed. A run takes only state of the type it left.
#[derive(Default)]
pub(crate) struct Handoff(Mutex<Option<Box<dyn Any + Send>>>);

impl Handoff {
    /// Leaves `state` for the next run (replacing what was there).
    pub(crate) fn put<T: Any + Send>(&self, state: T) {
        *self.0.lock_or_recover() = Some(Box::new(state));
    }

    /// Takes what a previous run left, if it is a `T`.
    pub(crate) fn take<T: Any + Send>(&self) -> Option<T> {
        let left = self.0.lock_or_recover().take()?;
        left.downcast().ok().map(|b| *b)
    }
}

/// The names a reload added, changed and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Feeds that are new.
    pub added: Vec<String>,
    /// Feeds whose config changed (they restart).
    pub changed: Vec<String>,
    /// Feeds that are gone.
    pub removed: Vec<String>,
}

/// Compares feed lists by value (locations ignored).
pub(crate) fn diff(old: &[FeedConfig], new: &[FeedConfig]) -> Diff {
    let mut d = Diff::default();
    for f in new {
        match old.iter().find(|o| o.name == f.name) {
            None => d.added.push(f.name.clone()),
            Some(o) if o != f => d.changed.push(f.name.clone()),
            Some(_) => {}
        }
    }
    d.removed = old
        .iter()
        .filter(|o| !new.iter().any(|f| f.name == o.name))
        .map(|o| o.name.clone())
        .collect();
    d
}

/// Whether feed `name` still produces `topic` (a topic it published) now that
/// a reload took its config from `old` to `new` (`None`: absent). The one rule
/// for "topics a feed no longer produces": a removed feed produces none; an
/// added one (back again) produces every topic under its name; a changed one
/// whose template changed no longer produces a topic its old template could
/// fill and its new one cannot ([`crate::topic::TopicTemplate::can_produce`]).
/// A topic neither template can fill was published by name
/// ([`FeedContext::publish_to`]) and is not judged, nor is any topic of a feed
/// whose template stayed: the config does not say which items a kind will
/// produce (e.g. a `synthetic` feed's `symbols`), only its template does.
pub(crate) fn still_produces(
    old: Option<&FeedConfig>,
    new: Option<&FeedConfig>,
    topic: &str,
) -> Produced {
    match (old, new) {
        (_, None) => Produced::No,
        (None, Some(_)) => Produced::Yes,
        (Some(old), Some(new)) if old.topic == new.topic => Produced::Unknown,
        (Some(old), Some(new)) => {
            // Every placeholder may span segments: a broker variable such as
            // `{mqtt_topic}` does, and the config cannot tell which
            // placeholders are variables, so the answer errs towards "can".
            let Ok(topic) = Pattern::parse(topic) else {
                return Produced::Unknown;
            };
            let can = |t: &crate::topic::TopicTemplate| t.can_produce(&topic, &|_| Fill::Segments);
            if can(&new.topic) {
                Produced::Yes
            } else if can(&old.topic) {
                Produced::No
            } else {
                Produced::Unknown
            }
        }
    }
}

/// After a reload from `old` to `new` feeds (`diff` between them): gives the
/// topics each added, changed or removed feed no longer produces
/// ([`still_produces`]) the feed's `on_remove` treatment (the new config's,
/// or the removed feed's last), in the hub. Single node and cluster alike.
pub(crate) fn settle_topics(hub: &Hub, old: &[FeedConfig], new: &[FeedConfig], diff: &Diff) {
    let find = |list: &'_ [FeedConfig], name: &str| list.iter().find(|f| f.name == name).cloned();
    for name in diff.added.iter().chain(&diff.changed).chain(&diff.removed) {
        let (was, now) = (find(old, name), find(new, name));
        if matches!((&was, &now), (Some(w), Some(n)) if w.topic == n.topic) {
            continue;
        }
        let Some(policy) = now.as_ref().or(was.as_ref()).map(|f| f.on_remove) else {
            continue;
        };
        let delete = policy == OnRemove::Delete;
        let n = hub.retire_feed_topics(
            name,
            |topic| still_produces(was.as_ref(), now.as_ref(), topic),
            delete,
        );
        if n > 0 {
            let what = if delete {
                "deleted"
            } else {
                "marked feed_removed"
            };
            info!(feed = %name, topics = n, on_remove = ?policy, "Topics the feed no longer produces {what}.");
        }
    }
}

/// The set of running feeds.
pub(crate) struct FeedSupervisor {
    hub: Hub,
    kinds: Kinds,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl FeedSupervisor {
    /// An empty set whose feeds stop when `cancel` is cancelled; starts the
    /// status reporter.
    pub(crate) fn new(
        hub: Hub,
        kinds: Kinds,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Self> {
        let feeds = Arc::new(FeedSupervisor {
            hub,
            kinds,
            running: tokio::sync::Mutex::default(),
            tracker,
            cancel,
        });
        let weak = Arc::downgrade(&feeds);
        let cancel = feeds.cancel.clone();
        feeds.tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_full = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                let Some(feeds) = weak.upgrade() else { return };
                let full = last_full.elapsed() >= REPORT_EVERY;
                if full {
                    last_full = tokio::time::Instant::now();
                }
                let cells: Vec<Arc<StatusCell>> = feeds
                    .running
                    .lock()
                    .await
                    .values()
                    .map(|r| r.status.clone())
                    .collect();
                for cell in cells {
                    let moved = cell.activity() != cell.reported.load(Ordering::Relaxed);
                    let resend = full && cell.lock().state != FeedState::Stopped;
                    if cell.refresh_stale() || resend || moved {
                        cell.publish(&feeds.hub);
                    }
                }
            }
        });
        feeds
    }

    /// The kinds this set can build.
    pub(crate) fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// Brings the running set in line with `configs`: stops removed and changed
    /// feeds (waiting for them to end), then starts added and changed ones.
    /// Unchanged feeds are not touched.
    pub(crate) async fn apply(&self, configs: &[FeedConfig]) -> Diff {
        let mut running = self.running.lock().await;
        let old: Vec<FeedConfig> = running.values().map(|r| r.config.clone()).collect();
        let d = diff(&old, configs);
        // Cancel every outgoing feed first so they wind down together, then wait
        // for each: a changed feed never runs twice.
        let outgoing: Vec<Running> = d
            .removed
            .iter()
            .chain(&d.changed)
            .filter_map(|n| running.remove(n))
            .collect();
        for r in &outgoing {
            r.cancel.cancel();
        }
        // A changed feed's successor gets what the stopped task left.
        let mut handoffs = HashMap::new();
        for r in outgoing {
            let name = r.config.name.clone();
            handoffs.insert(name.clone(), r.handoff.clone());
            stop(r).await;
            info!(feed = %name, "Feed stopped.");
        }
        for name in &d.removed {
            self.hub.delete_topic(&feed_topic(name));
        }
        for name in d.added.iter().chain(&d.changed) {
            let config = configs
                .iter()
                .find(|c| &c.name == name)
                .expect("diff names come from configs");
            let handoff = handoffs.remove(name).unwrap_or_default();
            running.insert(name.clone(), self.start(config.clone(), handoff));
        }
        d
    }

    /// Every feed's status, sorted by name.
    pub(crate) async fn statuses(&self) -> Vec<FeedStatus> {
        let mut all: Vec<FeedStatus> = self
            .running
            .lock()
            .await
            .values()
            .map(|r| r.status.snapshot())
            .collect();
        all.sort_by(|a, b| a.feed.cmp(&b.feed));
        all
    }

    /// Stops every feed and waits for each to end.
    pub(crate) async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        let all: Vec<Running> = running.drain().map(|(_, r)| r).collect();
        for r in &all {
            r.cancel.cancel();
        }
        for r in all {
            stop(r).await;
        }
    }

    fn start(&self, config: FeedConfig, handoff: Arc<Handoff>) -> Running {
        let status = Arc::new(StatusCell::new(&config));
        let cancel = self.cancel.child_token();
        let mut running = Running {
            config: config.clone(),
            cancel: cancel.clone(),
            task: None,
            status: status.clone(),
            handoff: handoff.clone(),
        };
        if !config.enabled {
            status.set(&self.hub, FeedState::Stopped, None);
            return running;
        }
        let feed = match self.kinds.build(&config) {
            Ok(f) => f,
            Err(e) => {
                let error = error_chain(&*e);
                warn!(feed = %config.name, error = %error, "Feed cannot start.");
                status.record_error(&error);
                status.set(&self.hub, FeedState::Failed, None);
                return running;
            }
        };
        let ctx = FeedContext {
            inner: Arc::new(ContextInner {
                hub: self.hub.clone(),
                template: config.topic.clone(),
                source: Source {
                    feed: Some(config.name.as_str().into()),
                    stale_after: config.stale_after,
                    history: config.history,
                },
                status,
                cancel,
                transforms: config.transform.clone(),
                memory: Default::default(),
                handoff,
                max_item_bytes: config
                    .max_item_bytes
                    .unwrap_or(crate::config::LimitsConfig::default().max_item_bytes),
            }),
        };
        let span = tracing::info_span!("feed", feed = %config.name, kind = %config.kind);
        running.task = Some(
            self.tracker
                .spawn(supervise(feed, ctx, self.hub.clone()).instrument(span)),
        );
        info!(feed = %config.name, kind = %config.kind, "Feed started.");
        running
    }
}

async fn stop(r: Running) {
    r.cancel.cancel();
    if let Some(task) = r.task {
        // The supervisor itself bounds the feed's exit by STOP_GRACE.
        let _ = tokio::time::timeout(STOP_GRACE * 2, task).await;
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

async fn supervise(feed: Arc<dyn DynFeed>, ctx: FeedContext, hub: Hub) {
    let status = ctx.inner.status.clone();
    let mut failures: u32 = 0;
    // A retry after a failure stays `backoff`, with its error, until the run
    // connects or publishes: `starting` would hide that it keeps failing.
    status.set(&hub, FeedState::Starting, None);
    loop {
        let before = status.updates.load(Ordering::Relaxed);
        let run = AssertUnwindSafe(feed.run_boxed(ctx.clone())).catch_unwind();
        tokio::pin!(run);
        let outcome = tokio::select! {
            r = &mut run => r,
            _ = ctx.cancelled() => {
                let _ = tokio::time::timeout(STOP_GRACE, run).await;
                break;
            }
        };
        let error = match outcome {
            Ok(Ok(())) if ctx.is_cancelled() => break,
            Ok(Ok(())) => "the feed ended".to_string(),
            Ok(Err(e)) => error_chain(&*e),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        if status.updates.load(Ordering::Relaxed) > before {
            failures = 0;
        }
        let delay = backoff_delay(failures);
        failures = failures.saturating_add(1);
        status.record_error(&error);
        status.set(&hub, FeedState::Backoff, Some(error.clone()));
        warn!(error = %error, retry_in = ?delay, "Feed failed; retrying.");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.cancelled() => break,
        }
    }
    status.set(&hub, FeedState::Stopped, None);
}

#[cfg(test)]
mod tests;
