//! The poll loop shared by kinds that fetch on a timer (`http`, `command` in
//! interval mode, `prometheus`, `postgres` queries): one fetch per `interval`,
//! each bounded by `timeout`, all of it abandoned on cancellation. Each kind
//! supplies only the fetch; a document goes through the shared [`Pipeline`]
//! ([`poll`]), a kind that builds its own items hands them over ([`poll_with`]).
//!
//! A fetch that fails, times out or returns an unusable document ends the run
//! with `Err`, so the supervisor shows the error and backs off: a poll that
//! fails once is retried with the same backoff as a broken connection.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{FeedContext, Pipeline};

/// Fetches a document every `interval` and publishes it through `pipeline`
/// until `ctx` is cancelled. A fetch is dropped when it outlives `timeout` or
/// the feed is cancelled, so a fetch must clean up in `Drop`.
///
/// # Errors
/// The first fetch that fails or times out, or whose body is not a document.
pub(super) async fn poll<F, Fut>(
    ctx: &FeedContext,
    pipeline: &Pipeline,
    interval: Duration,
    timeout: Duration,
    fetch: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    poll_with(ctx, interval, timeout, fetch, |body| {
        ctx.publish_document(pipeline, &body).map(drop)
    })
    .await
}

/// Like [`poll`], with each fetch's result handed to `handle` instead of the
/// pipeline (for kinds whose fetch yields items, not a document).
///
/// # Errors
/// The first fetch that fails or times out, or that `handle` refuses.
pub(super) async fn poll_with<T, F, Fut, H>(
    ctx: &FeedContext,
    interval: Duration,
    timeout: Duration,
    mut fetch: F,
    mut handle: H,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
    H: FnMut(T) -> anyhow::Result<()>,
{
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.cancelled() => return Ok(()),
        }
        let body = tokio::select! {
            r = tokio::time::timeout(timeout, fetch()) => match r {
                Ok(body) => body?,
                Err(_) => anyhow::bail!("timed out after {}", humantime::format_duration(timeout)),
            },
            _ = ctx.cancelled() => return Ok(()),
        };
        handle(body)?;
    }
}
