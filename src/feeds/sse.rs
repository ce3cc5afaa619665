//! `sse`: subscribes to an upstream `text/event-stream`; each event's data is
//! one document for the shared [`Pipeline`]. Parsing is the pure [`parser`].
//!
//! One call of `run` is one connection; every way it ends is an `Err`, so the
//! supervisor reconnects with backoff. What must survive a reconnect lives in the
//! feed itself ([`Resume`]): the last event id, sent back as `Last-Event-ID`, and
//! the server's `retry:` delay, honoured as the least time between a disconnect
//! and the next connect (on top of the supervisor's backoff, never instead of it).
//! A stream silent for `timeout` (default 60 s) is dropped and reconnected.

mod parser;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use http::{header, HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::options::{self, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, ItemTooLarge, Pipeline};
use crate::sync::MutexExt;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest a connect (TCP, TLS and the response head) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream event stream.
#[derive(Debug)]
pub(super) struct SseFeed {
    options: SseOptions,
    pipeline: Pipeline,
    headers: HeaderMap,
    client: reqwest::Client,
    /// Kept across runs (`run` is called again on every reconnect); a std
    /// `Mutex` because it is never held across an await.
    resume: Mutex<Resume>,
}

/// What the next connection needs from the previous one.
#[derive(Debug, Default)]
struct Resume {
    last_id: String,
    retry: Option<Duration>,
    disconnected: Option<Instant>,
}

impl SseFeed {
    /// A subscription described by `options`.
    ///
    /// # Errors
    /// A header is invalid, or the HTTP client cannot be built.
    pub(super) fn new(options: SseOptions) -> anyhow::Result<Self> {
        let mut headers = super::options::header_map(&options.headers)?;
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let client = super::options::http_client(Some(CONNECT_TIMEOUT))?;
        Ok(SseFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            headers,
            client,
            resume: Mutex::default(),
        })
    }

    fn resume(&self) -> std::sync::MutexGuard<'_, Resume> {
        self.resume.lock_or_recover()
    }

    /// One connection, until it ends (always `Err`) or the feed is cancelled.
    async fn connection(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let (last_id, wait) = {
            let r = self.resume();
            let wait = match (r.retry, r.disconnected) {
                (Some(retry), Some(at)) => retry.saturating_sub(at.elapsed()),
                _ => Duration::ZERO,
            };
            (r.last_id.clone(), wait)
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.cancelled() => return Ok(()),
            }
        }
        let mut request = self
            .client
            .get(&self.options.url)
            .headers(self.headers.clone());
        if !last_id.is_empty() {
            request = request.header("Last-Event-ID", &last_id);
        }
        let mut response = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, request.send()) => r
                .map_err(|_| anyhow::anyhow!("connect timed out after {CONNECT_TIMEOUT:?}"))?
                .with_context(|| format!("GET {}", self.options.url))?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("GET {} answered {status}", self.options.url);
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            anyhow::bail!(
                "GET {} is not an event stream ({content_type:?})",
                self.options.url
            );
        }
        ctx.mark_running();
        tracing::info!(url = %self.options.url, "Event stream connected.");
        let max = ctx.max_item_bytes();
        let mut parser = parser::Parser::new(&last_id).with_limit(max);
        loop {
            let silence = self.options.timeout;
            let chunk = tokio::select! {
                c = tokio::time::timeout(silence, response.chunk()) => match c {
                    Ok(c) => c.context("event stream failed")?,
                    Err(_) => anyhow::bail!("no data for {silence:?}: the stream looks dead"),
                },
                _ = ctx.cancelled() => return Ok(()),
            };
            let Some(chunk) = chunk else {
                anyhow::bail!("event stream ended");
            };
            let events = parser.push(&chunk);
            for _ in 0..parser.take_oversized() {
                let too_large = ItemTooLarge { len: None, max };
                ctx.item_error(format!("an event of {}: {too_large}", self.options.url));
            }
            for event in events {
                if let Err(e) = ctx.publish_document(&self.pipeline, &event.data) {
                    ctx.item_error(format!("{e:#}"));
                }
            }
            let mut r = self.resume();
            r.last_id.clear();
            r.last_id.push_str(parser.last_id());
            r.retry = parser.retry().or(r.retry);
            drop(r);
        }
    }
}

impl Feed for SseFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let outcome = self.connection(&ctx).await;
        self.resume().disconnected = Some(Instant::now());
        outcome
    }
}

/// `kind = "sse"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "sse",
    check: registry::check::<SseOptions>,
    build: |c| Ok(Arc::new(SseFeed::new(registry::options(c)?)?)),
};

/// `sse`: subscribes to an upstream `text/event-stream`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SseOptions {
    /// The URL (`http` or `https`).
    pub(crate) url: String,
    /// Extra request headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// JSON Pointer (RFC 6901) into each event's data.
    pub(crate) extract: Option<String>,
    /// How each event's data is read.
    #[serde(default)]
    pub(crate) format: options::Format,
    /// Longest silence (not a byte, keep-alive comments included) before the
    /// stream counts as dead and is reconnected: a half-open TCP connection
    /// otherwise hangs the feed for good. Default 60 s.
    #[serde(default = "SseOptions::default_timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
}

impl SseOptions {
    fn default_timeout() -> Duration {
        Duration::from_secs(60)
    }
}

impl KindOptions for SseOptions {
    fn check(&self, bad: Bad<'_>) {
        options::url(&self.url, &["http", "https"], bad);
        options::extract(&self.extract, bad);
        options::headers(&self.headers, bad);
    }
}
