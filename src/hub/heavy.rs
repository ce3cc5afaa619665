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
//!
//! The memory such work took is given back once it has drained: a second
//! after the last heavy job (queued or running) ends, the allocator returns
//! its free pages to the system (see [`GiveBack`]). Without that, glibc's
//! malloc kept most of what a crowd had freed in its per-thread arenas
//! (SECURITY.md "Crowds").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
        // Counted from the moment it queues, until it ends or its caller
        // stops waiting (the guard drops either way).
        let _drained = GiveBack::enter();
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

/// Heavy jobs queued or running in this process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Whether a give-back is already scheduled (at most one waits at a time,
/// so it runs at most once a second).
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// How long the heavy work must have been idle before memory is given back:
/// long enough that a crowd's connections have closed and freed their
/// queues, short enough that RSS falls soon after.
const QUIET: Duration = Duration::from_secs(1);

/// Counts one heavy job while it lives; the last one to end schedules the
/// allocator's give-back ([`give_back_when_quiet`]).
struct GiveBack;

impl GiveBack {
    fn enter() -> GiveBack {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        GiveBack
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 && !SCHEDULED.swap(true, Ordering::SeqCst)
        {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(give_back_when_quiet())),
                Err(_) => SCHEDULED.store(false, Ordering::SeqCst),
            }
        }
    }
}

/// Waits until no heavy job has been in flight for [`QUIET`], then hands the
/// allocator's free memory back to the system, on the blocking pool (it walks
/// every arena: milliseconds, never on an async worker).
async fn give_back_when_quiet() {
    /// Clears [`SCHEDULED`] however the task ends: a runtime shut down while
    /// it waits (an embedder's, a test's) must not stop every later
    /// give-back in the process.
    struct Unschedule;
    impl Drop for Unschedule {
        fn drop(&mut self) {
            SCHEDULED.store(false, Ordering::SeqCst);
        }
    }
    let _unschedule = Unschedule;
    loop {
        tokio::time::sleep(QUIET).await;
        if IN_FLIGHT.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
    let _ = tokio::task::spawn_blocking(trim_allocator).await;
}

/// glibc's `malloc_trim(0)`: every arena's free pages go back to the system,
/// not only those at the top of the main heap (which `free` returns itself).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_allocator() {
    // SAFETY: `malloc_trim` takes a plain integer, touches only the
    // allocator's own state under its own locks, and is safe to call from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return freed memory on their own schedule: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}
