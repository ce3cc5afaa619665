//! Paced writes without waking each connection: the frames a connection
//! queued within its pacing interval (`[server] flush_interval`) after a
//! direct write are written, when the interval ends, by one of a few shared
//! tasks (one shard per runtime worker), not by the connection's own writer,
//! which stays parked. Each shard keeps a heap of due times; one wake of a
//! shard writes every connection due by then, in one `write` each.
//!
//! The connection's writer still does everything a shard cannot: replies,
//! closing, a socket that did not take a whole write, shaped subscriptions
//! (`max_rate`, deltas). See `super::outbox` for when frames go which way.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sync::MutexExt;

/// What the pacer writes when it is due: an outbox (`super::outbox`), named
/// here by the one thing the pacer asks of it, so that the pacer does not
/// import the outbox, which imports the pacer to schedule itself.
pub(crate) trait Paced: Send + Sync {
    /// Writes what gathered for the write due `at`, in one write (or wakes
    /// the connection's writer to).
    fn write_paced(&self, at: Instant, scratch: &mut Vec<u8>);
}

/// A scratch buffer larger than this is freed after a batch.
const SCRATCH_KEEP: usize = 64 * 1024;

/// The shards, handed out round-robin to new connections.
pub(crate) struct Pacer {
    shards: Box<[Arc<Shard>]>,
    next: AtomicUsize,
}

impl Pacer {
    /// Starts one shard task per worker of the current runtime, tracked by
    /// `tasks`, until `cancel`.
    pub(crate) fn start(tasks: &TaskTracker, cancel: &CancellationToken) -> Pacer {
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1)
            .max(1);
        let shards: Box<[Arc<Shard>]> = (0..workers).map(|_| Arc::default()).collect();
        for shard in shards.iter() {
            tasks.spawn(shard.clone().run(cancel.clone()));
        }
        Pacer {
            shards,
            next: AtomicUsize::new(0),
        }
    }

    /// The shard for a new connection.
    pub(crate) fn shard(&self) -> Arc<Shard> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[i].clone()
    }
}

/// One shard: the outboxes due for a paced write, earliest first.
#[derive(Default)]
pub(crate) struct Shard {
    due: Mutex<BinaryHeap<Due>>,
    /// Wakes the shard's task when an earlier due time was added.
    wake: Notify,
}

struct Due {
    at: Instant,
    outbox: Arc<dyn Paced>,
}

// Ordered by due time, earliest greatest (`BinaryHeap` pops the greatest).
impl Ord for Due {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Due>> {
        // Every operation is one push or pop.
        self.due.lock_or_recover()
    }

    /// Writes `outbox`'s queued frames at `at` (see [`Paced::write_paced`]).
    pub(crate) fn schedule(&self, at: Instant, outbox: Arc<dyn Paced>) {
        let mut due = self.lock();
        let earliest = due.peek().is_none_or(|d| at < d.at);
        due.push(Due { at, outbox });
        drop(due);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How many outboxes are due.
    #[cfg(test)]
    pub(crate) fn scheduled(&self) -> usize {
        self.lock().len()
    }

    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut scratch = Vec::new();
        let mut ready = Vec::new();
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut due = self.lock();
                let now = Instant::now();
                // Everything due, at most one live entry per connection: each
                // turn of the shard serves all of them, as each connection's
                // own task would get a turn. (Fewer per turn starve the
                // connections when a busy feed holds the thread between
                // turns.)
                while due.peek().is_some_and(|d| d.at <= now) {
                    ready.extend(due.pop());
                }
                due.peek().map(|d| d.at)
            };
            if !ready.is_empty() {
                for Due { at, outbox } in ready.drain(..) {
                    outbox.write_paced(at, &mut scratch);
                }
                if scratch.capacity() > SCRATCH_KEEP {
                    scratch = Vec::new();
                }
                if ready.capacity() > 4096 {
                    ready = Vec::new();
                }
                // Let a feed publish before the next turn.
                tokio::task::yield_now().await;
                continue;
            }
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = notified => {}
                _ = sleep => {}
            }
        }
    }
}
