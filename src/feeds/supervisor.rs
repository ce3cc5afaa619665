//! Runs feeds: one supervised task per feed, restarts with backoff, status on
//! `$sys.feeds`, and the set of running feeds that reload changes by difference.
//!
//! Each feed's task runs `Feed::run`; on `Err` or panic it reports `backoff` and
//! sleeps a full-jitter delay (uniform in `[0, min(30 s, 1 s * 2^n)]`, with `n`
//! reset once a run has published), then runs it again. A reporter task publishes
//! every feed's status periodically and when a feed turns stale or fresh.

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::{ContextInner, DynFeed, FeedContext, Kinds};
use crate::config::FeedConfig;
use crate::hub::{now_ms, Hub, Source};
use crate::metrics::{family, label};

/// The topic carrying feed states.
pub(crate) const FEEDS_TOPIC: &str = "$sys.feeds";

/// The topic holding one feed's latest status: `$sys.feeds.{name}`. Feed names
/// are `[a-z0-9_-]+`, so it is always a valid topic.
pub(crate) fn feed_topic(name: &str) -> String {
    format!("{FEEDS_TOPIC}.{name}")
}

/// Publishes a feed's status on `$sys.feeds` (one update per change, every
/// feed on one topic) and on its own `$sys.feeds.{name}` (its latest status,
/// so `$sys.feeds.*` gives a newcomer every feed's status as snapshots).
pub(crate) fn publish_status(hub: &Hub, feed: &str, status: &impl Serialize) {
    let json = match serde_json::to_string(status) {
        Ok(j) => j,
        Err(e) => return warn!(error = %e, "Cannot serialize a feed status."),
    };
    for topic in [FEEDS_TOPIC, &feed_topic(feed)] {
        if let Err(e) = hub.publish_json(&Source::default(), topic, &json) {
            warn!(feed = %feed, error = %e, "Cannot publish feed status.");
        }
    }
}
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a stopping feed may take to return by itself before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(2);
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// A feed's lifecycle state, as published on `$sys.feeds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedState {
    /// Started, not yet connected or published.
    Starting,
    /// Publishing.
    Running,
    /// Failed; waiting before the next attempt, or retrying until that
    /// attempt connects or publishes. The error says what failed.
    Backoff,
    /// Could not be built; will not run until its config changes.
    Failed,
    /// Not running (disabled, removed or shut down).
    Stopped,
}

impl FeedState {
    /// The state's name, as on `$sys.feeds`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Starting => "starting",
            FeedState::Running => "running",
            FeedState::Backoff => "backoff",
            FeedState::Failed => "failed",
            FeedState::Stopped => "stopped",
        }
    }
}

/// One `$sys.feeds` update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedStatus {
    /// The feed's name.
    pub feed: String,
    /// Its kind.
    pub kind: String,
    /// Its state.
    pub state: FeedState,
    /// Its last error, if any.
    pub error: Option<String>,
    /// When it last published, ms since the Unix epoch.
    pub last_ok: Option<u64>,
    /// True when `stale_after` has passed without an update.
    pub stale: bool,
    /// Updates published since start.
    pub updates: u64,
    /// Errors since start (failed runs and dropped items).
    pub errors: u64,
}

/// The window of the `failures`-th backoff: `min(cap, base * 2^failures)`; the
/// delay is drawn uniformly below it (full jitter).
pub(crate) fn backoff_window(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(BACKOFF_CAP)
}

fn backoff_delay(failures: u32) -> Duration {
    let window = backoff_window(failures).as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(window / 20..=window))
}

/// A feed's live status, shared by its task, its context and the reporter.
pub(crate) struct StatusCell {
    status: Mutex<FeedStatus>,
    stale_after: Option<Duration>,
    started: Instant,
    updates: AtomicU64,
    errors: AtomicU64,
    last_ok: AtomicU64,
    /// `updates + errors` as of the last published status: the reporter
    /// republishes when they moved, so counters on `$sys.feeds` lag at most 1 s.
    reported: AtomicU64,
    /// The error shown is a note from [`StatusCell::waiting`], cleared once
    /// the feed runs (a real error stays as the last error).
    waiting: AtomicBool,
}

impl StatusCell {
    fn new(config: &FeedConfig) -> Self {
        StatusCell {
            status: Mutex::new(FeedStatus {
                feed: config.name.clone(),
                kind: config.kind.clone(),
                state: FeedState::Starting,
                error: None,
                last_ok: None,
                stale: false,
                updates: 0,
                errors: 0,
            }),
            stale_after: config.stale_after,
            started: Instant::now(),
            updates: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current status with fresh counters.
    pub(crate) fn snapshot(&self) -> FeedStatus {
        let mut s = self.lock().clone();
        s.updates = self.updates.load(Ordering::Relaxed);
        s.errors = self.errors.load(Ordering::Relaxed);
        s.last_ok = Some(self.last_ok.load(Ordering::Relaxed)).filter(|t| *t > 0);
        s
    }

    fn publish(&self, hub: &Hub) {
        self.reported.store(self.activity(), Ordering::Relaxed);
        let status = self.snapshot();
        publish_status(hub, &status.feed, &status);
    }

    fn set(&self, hub: &Hub, state: FeedState, error: Option<String>) {
        {
            let mut s = self.lock();
            s.state = state;
            if error.is_some() {
                s.error = error;
            }
        }
        self.publish(hub);
    }

    pub(crate) fn record_ok(&self, hub: &Hub) {
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.last_ok.store(now_ms(), Ordering::Relaxed);
        let changed = {
            let mut s = self.lock();
            let mut changed = s.state != FeedState::Running || s.stale;
            if self.waiting.swap(false, Ordering::Relaxed) {
                s.error = None;
                changed = true;
            }
            s.state = FeedState::Running;
            s.stale = false;
            changed
        };
        if changed {
            self.publish(hub);
        }
    }

    pub(crate) fn mark_running(&self, hub: &Hub) {
        let changed = {
            let mut s = self.lock();
            let waited = self.waiting.swap(false, Ordering::Relaxed);
            if waited {
                s.error = None;
            }
            std::mem::replace(&mut s.state, FeedState::Running) != FeedState::Running || waited
        };
        if changed {
            self.publish(hub);
        }
    }

    /// Shows why the feed has nothing yet, at once, without counting an error.
    pub(crate) fn waiting(&self, hub: &Hub, why: String) {
        let changed = {
            let mut s = self.lock();
            self.waiting.store(true, Ordering::Relaxed);
            s.error.as_deref() != Some(why.as_str()) && {
                s.error = Some(why);
                true
            }
        };
        if changed {
            self.publish(hub);
        }
    }

    pub(crate) fn record_error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
        self.lock().error = Some(message.to_string());
    }

    /// Updates plus errors so far: changes whenever the counters do.
    fn activity(&self) -> u64 {
        self.updates.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }

    /// Recomputes staleness; true when it changed.
    fn refresh_stale(&self) -> bool {
        let Some(after) = self.stale_after else {
            return false;
        };
        let last = self.last_ok.load(Ordering::Relaxed);
        let stale = if last == 0 {
            self.started.elapsed() > after
        } else {
            now_ms().saturating_sub(last) > after.as_millis() as u64
        };
        let mut s = self.lock();
        let active = matches!(
            s.state,
            FeedState::Running | FeedState::Backoff | FeedState::Starting
        );
        let stale = stale && active;
        std::mem::replace(&mut s.stale, stale) != stale
    }
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
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(state));
    }

    /// Takes what a previous run left, if it is a `T`.
    pub(crate) fn take<T: Any + Send>(&self) -> Option<T> {
        let left = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
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
            let mut last_full = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                let Some(feeds) = weak.upgrade() else { return };
                let full = last_full.elapsed() >= REPORT_EVERY;
                if full {
                    last_full = Instant::now();
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
                    if cell.refresh_stale() || full || moved {
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
                warn!(feed = %config.name, error = %format!("{e:#}"), "Feed cannot start.");
                status.record_error(&format!("{e:#}"));
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
            Ok(Err(e)) => format!("{e:#}"),
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

/// Appends per-feed figures in Prometheus text format.
pub(crate) fn render_metrics(statuses: &[FeedStatus], out: &mut String) {
    use std::fmt::Write as _;
    type Figure = fn(&FeedStatus) -> u64;
    let counters: [(&str, &str, Figure); 2] = [
        (
            "tickerd_feed_updates_total",
            "Updates published by a feed.",
            |s| s.updates,
        ),
        (
            "tickerd_feed_errors_total",
            "Errors of a feed (failed runs and dropped items).",
            |s| s.errors,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        for s in statuses {
            let _ = writeln!(
                out,
                "{name}{{feed=\"{}\",kind=\"{}\"}} {}",
                label(&s.feed),
                label(&s.kind),
                value(s)
            );
        }
    }
    let name = "tickerd_feed_state";
    family(
        out,
        name,
        "gauge",
        "A feed's state (1 for the current one).",
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "{name}{{feed=\"{}\",state=\"{}\"}} 1",
            label(&s.feed),
            s.state.as_str()
        );
    }
}

#[cfg(test)]
mod tests;
