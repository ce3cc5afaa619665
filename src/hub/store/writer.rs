//! The writer task: commits what the hub marks on schedule, and holds through
//! disk faults.
//!
//! Schedule. With `sync = "interval"` each commit starts `sync_interval` after
//! the one before *started*, less the time that one took: an update waits at
//! most about one interval to be on disk, even when heavy publishing makes
//! commits slow (sleeping a whole interval after each commit made the window
//! the interval plus two commits). With `always`, any mark commits at once.
//!
//! Faults. After a failed write (ENOSPC, EIO) redb refuses every later
//! transaction ("Previous I/O error occurred. Please close and re-open the
//! database"), so the writer drops the database, puts the changes back in
//! front of the queue (nothing the hub holds is lost), and reopens and
//! commits everything on a backoff until it works. Each change of state is
//! one WARN line, one `$sys.store` update and the `/healthz` text; retries
//! are quiet. While degraded, `sync = "always"` publishes are refused at once
//! (503) instead of waiting for a retry.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::persist::{Degraded, Persist};
use super::{Store, STORE_TOPIC};
use crate::hub::{now_ms, Hub};

/// The first retry after a failed commit; each failure doubles it, up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two retries: a disk that has space again is used
/// within this long.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Commits what the hub marks, every `interval` (or at once with `always`),
/// until `cancel`; then commits what is left and returns.
pub(in crate::hub) async fn run_writer(
    store: Store,
    hub: Hub,
    persist: Arc<Persist>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let dir = store.dir();
    let shown = store.path.display().to_string();
    let mut store = Some(store);
    publish_state(&hub, &persist);
    let mut next = Instant::now() + interval;
    // While degraded: when to retry, and the wait after that.
    let mut retry: Option<(Instant, Duration)> = None;
    loop {
        let due = match retry {
            Some((at, _)) => Some(at),
            None if persist.always() => None,
            None => Some(next),
        };
        let stopping = tokio::select! {
            () = cancel.cancelled() => true,
            () = persist.wake.notified() => false,
            () = sleep_until(due), if due.is_some() => false,
        };
        if let Some((at, _)) = retry {
            if !stopping && Instant::now() < at {
                // Woken by a mark or a flush request: not stored until the retry.
                persist.refuse_flushes();
                continue;
            }
        }
        let started = Instant::now();
        let (changes, undo, requested) = persist.take();
        let mut ok = true;
        let count = changes.len();
        if count > 0 || store.is_none() {
            let taken = store.take();
            let d = dir.clone();
            let result = tokio::task::spawn_blocking(move || commit_or_reopen(taken, &d, &changes))
                .await
                .unwrap_or_else(|e| (None, Err(e.to_string())));
            store = result.0;
            if let Err(error) = result.1 {
                ok = false;
                persist.put_back(undo);
                let wait = retry.map_or(RETRY_FIRST, |(_, w)| (w * 2).min(RETRY_MAX));
                retry = Some((Instant::now() + wait, wait));
                if persist.degraded().is_none() {
                    persist.set_degraded(Some(Degraded {
                        error: error.clone(),
                        since: now_ms(),
                    }));
                    warn!(path = %shown, error = %error, pending = persist.pending_count(), "Cannot commit to the history store: keeping every pending change in memory and retrying until it commits (free space on its disk, or fix the disk).");
                    publish_state(&hub, &persist);
                }
            }
        }
        if ok && retry.take().is_some() {
            persist.set_degraded(None);
            warn!(path = %shown, "The history store commits again: every pending change is stored.");
            publish_state(&hub, &persist);
        }
        if count > 0 {
            // The figure behind docs/config.md `sync_interval` (tests/durable.rs reads it).
            debug!(
                took_ms = started.elapsed().as_millis() as u64,
                changes = count,
                ok,
                "History store commit."
            );
        }
        // The next commit starts one interval after this one started, less
        // what this one took (see the module docs).
        next = started + interval.saturating_sub(started.elapsed());
        persist.done.send_replace((requested, ok));
        if stopping {
            if !ok {
                warn!(path = %shown, pending = persist.pending_count(), "Stopping with changes the history store could not commit: they are lost; the store keeps its last commit.");
            }
            // Later flush requests are answered at once: not stored.
            persist.done.send_replace((u64::MAX, false));
            return;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(at) = due {
        tokio::time::sleep_until(at).await;
    }
}

/// Commits `changes` to `store`, reopening it first when a failure dropped
/// it. A failed commit drops the store: redb refuses every later transaction
/// until the file is opened again.
fn commit_or_reopen(
    store: Option<Store>,
    dir: &std::path::Path,
    changes: &[super::Change],
) -> (Option<Store>, Result<(), String>) {
    let store = match store {
        Some(s) => s,
        None => match Store::reopen(dir) {
            Ok(s) => s,
            Err(e) => return (None, Err(e.to_string())),
        },
    };
    match store.commit(changes) {
        Ok(()) => (Some(store), Ok(())),
        Err(e) => (None, Err(e.to_string())),
    }
}

/// Publishes the store's state on `$sys.store`: `{"ok":true,"state":"ok",
/// "since":MS,"pending":N}`, or with `"ok":false,"state":"degraded"` and the
/// `"error"` while commits fail.
fn publish_state(hub: &Hub, persist: &Persist) {
    let pending = persist.pending_count();
    let state = match persist.degraded() {
        Some(d) => {
            json!({"ok": false, "state": "degraded", "error": d.error, "since": d.since, "pending": pending})
        }
        None => json!({"ok": true, "state": "ok", "since": now_ms(), "pending": pending}),
    };
    if let Err(e) = hub.publish(STORE_TOPIC, &state) {
        warn!(error = %e, "Cannot publish the history store's state.");
    }
}

impl Hub {
    /// Why the durable store does not commit, while it does not (for
    /// `/healthz`); `None` when it commits or there is no store.
    pub(crate) fn store_problem(&self) -> Option<String> {
        let d = self.inner.persist.get()?.degraded()?;
        Some(d.error)
    }
}
