//! Status reporting: each feed's [`FeedStatus`] (state, counts, last error),
//! kept in a [`StatusCell`] shared by its task and its context, published on
//! `$sys.feeds` and `$sys.feeds.{name}`, and rendered at `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use tracing::warn;

use crate::config::FeedConfig;
use crate::hub::{now_ms, Hub, Source};
use crate::metrics::{family, label};
use crate::sync::MutexExt;

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

/// How a feed's error is shown on `$sys.feeds` and in the log: its message and
/// every cause below it (`source()`), joined by `: `, so "error sending
/// request" comes with the "Connection refused" that explains it. A cause
/// whose text the message already holds (many errors print their source) is
/// not repeated.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

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

/// A feed's live status, shared by its task, its context and the reporter.
pub(crate) struct StatusCell {
    pub(super) status: Mutex<FeedStatus>,
    pub(super) stale_after: Option<Duration>,
    pub(super) started: Instant,
    pub(super) updates: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) last_ok: AtomicU64,
    /// `updates + errors` as of the last published status: the reporter
    /// republishes when they moved, so counters on `$sys.feeds` lag at most 1 s.
    pub(super) reported: AtomicU64,
    /// The error shown is a note from [`StatusCell::waiting`], cleared once
    /// the feed runs (a real error stays as the last error).
    pub(super) waiting: AtomicBool,
}

impl StatusCell {
    pub(super) fn new(config: &FeedConfig) -> Self {
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, FeedStatus> {
        self.status.lock_or_recover()
    }

    /// The current status with fresh counters.
    pub(crate) fn snapshot(&self) -> FeedStatus {
        let mut s = self.lock().clone();
        s.updates = self.updates.load(Ordering::Relaxed);
        s.errors = self.errors.load(Ordering::Relaxed);
        s.last_ok = Some(self.last_ok.load(Ordering::Relaxed)).filter(|t| *t > 0);
        s
    }

    pub(super) fn publish(&self, hub: &Hub) {
        self.reported.store(self.activity(), Ordering::Relaxed);
        let status = self.snapshot();
        publish_status(hub, &status.feed, &status);
    }

    pub(super) fn set(&self, hub: &Hub, state: FeedState, error: Option<String>) {
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
    /// The note replaces whatever error an earlier attempt left; a feed in
    /// `backoff` whose retry got this far no longer fails, so it is `starting`.
    pub(crate) fn waiting(&self, hub: &Hub, why: String) {
        let changed = {
            let mut s = self.lock();
            self.waiting.store(true, Ordering::Relaxed);
            let retried = s.state == FeedState::Backoff;
            if retried {
                s.state = FeedState::Starting;
            }
            let new_note = s.error.as_deref() != Some(why.as_str());
            if new_note {
                s.error = Some(why);
            }
            retried || new_note
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
    pub(super) fn activity(&self) -> u64 {
        self.updates.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }

    /// Recomputes staleness; true when it changed.
    pub(super) fn refresh_stale(&self) -> bool {
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
