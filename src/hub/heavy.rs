//! One budget, for the whole server, for the work whose cost grows with the
//! number of topics: matching a wildcard against every topic and joining each
//! (a snapshot per topic), leaving many topics at once, listing every topic.
//!
//! Each connection is already rate-limited, but a crowd of connections each
//! within its own allowance could still keep every async worker busy with such
//! work, and then feeds, `/healthz` and every other client wait behind it.
//! So that work runs here: on the blocking pool, off the async workers, at
//! most [`heavy_permits`] jobs at a time (half the cores, at least one); the
//! connections that ask queue for a permit (and stop reading meanwhile, which
//! is their backpressure). A literal subscribe or an unsubscribe of a few
//! topics is cheap and runs inline: only work that scales with the topic count
//! waits here.
//!
//! Every heavy entry point (`/ws`, `/sse`, `GET /api/topics`) goes through
//! [`Hub::offload`] or the gated calls below; none may run such work inline.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{Hub, Resume, SubscriberId};
use crate::topic::Pattern;

/// Topics a subscriber may hold before leaving them is heavy work.
const HEAVY_HOLDINGS: usize = 1024;

/// How many heavy jobs run at once: half the cores (at least one), so that
/// the other half always serves feeds and clients.
pub(super) fn heavy_permits() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(Semaphore::new((cores / 2).max(1)))
}

impl Hub {
    /// Runs `work` within the server-wide budget for heavy work (see the
    /// module docs): on the blocking pool, once a permit is free. The permit
    /// is held until `work` ends, even if the caller stops waiting.
    pub(crate) async fn offload<T, F>(&self, work: F) -> T
    where
        F: FnOnce(&Hub) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = (self.inner.heavy.clone().acquire_owned().await)
            .expect("the heavy-work semaphore is never closed");
        let hub = self.clone();
        let job = tokio::task::spawn_blocking(move || {
            let out = work(&hub);
            drop(permit);
            out
        });
        match job.await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// [`Hub::add_patterns`], within the budget when a pattern is a wildcard
    /// (its cost grows with the topic count); inline otherwise.
    pub(crate) async fn join_patterns(
        &self,
        id: SubscriberId,
        patterns: Vec<Pattern>,
        resume: Resume,
    ) -> usize {
        if patterns.iter().all(Pattern::is_literal) {
            return self.add_patterns(id, &patterns, &resume);
        }
        self.offload(move |hub| hub.add_patterns(id, &patterns, &resume))
            .await
    }

    /// [`Hub::unsubscribe`], within the budget when the subscriber holds many
    /// topics (each is checked against what it still holds); inline otherwise.
    pub(crate) async fn leave_patterns(
        &self,
        id: SubscriberId,
        patterns: Vec<Pattern>,
    ) -> Vec<Pattern> {
        if self.topic_count_of(id) <= HEAVY_HOLDINGS {
            return self.unsubscribe(id, &patterns);
        }
        self.offload(move |hub| hub.unsubscribe(id, &patterns))
            .await
    }
}
