//! `redis`: Redis pub/sub (`mode = "pubsub"`: SUBSCRIBE `channels`, PSUBSCRIBE
//! `patterns`) or Redis Streams (`mode = "stream"`: XREAD BLOCK on `streams`).
//!
//! One call of `run` is one connection; every way it ends is an `Err`, so the
//! supervisor reconnects with its backoff.
//!
//! Pub/sub: each message's payload goes through the broker payload rule
//! (`broker`); the channel is `{redis_channel}` in the template (`:` mapped to
//! `.`, parts as `{redis_level1}`, ...). A PING every [`PING_EVERY`] that gets no
//! answer within [`CONNECT_TIMEOUT`] drops a half-open connection. Messages
//! published while disconnected are lost: that is pub/sub.
//!
//! Streams: each entry is one document, an object of its fields (a field whose
//! value is JSON, such as `21.5` or `{"a":1}`, is decoded; any other is a
//! string), then `extract` and fan-out as usual; the stream key is
//! `{redis_stream}`. The feed remembers the last id it delivered per stream,
//! across reconnects ([`RedisFeed::last_ids`]), and reads on from there: a
//! reconnect neither loses nor repeats entries. The first connect starts at the
//! stream's current end, resolved to a concrete id before the feed reports
//! `running`, so nothing added after that is missed.
//!
//! Reads are bounded in count (`COUNT` per XREAD) and each payload or entry by
//! the item limit; the Redis client buffers one whole reply before we see it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde_json::Value;

use super::broker::{self, SourceName};
use super::options::{self, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, Pipeline};
use crate::sync::MutexExt;
use serde::Deserialize;
use std::sync::Arc;

/// Longest a connect, or an answer to a PING, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle pub/sub connection is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long one XREAD blocks waiting for entries.
const BLOCK: Duration = Duration::from_secs(5);
/// Most entries taken per stream by one XREAD.
const COUNT: usize = 100;

/// A Redis pub/sub or stream reader.
pub(super) struct RedisFeed {
    options: RedisOptions,
    /// The client; holds the credentials, so never printed.
    client: redis::Client,
    /// `url` with its password redacted, for errors and logs.
    shown_url: String,
    pipeline: Pipeline,
    /// Per stream, the id of the last entry delivered; kept across runs (`run`
    /// is called again on every reconnect). A std `Mutex`: never held across
    /// an await.
    last_ids: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RedisFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeed")
            .field("url", &self.shown_url)
            .field("mode", &self.options.mode)
            .finish_non_exhaustive()
    }
}

impl RedisFeed {
    /// A reader described by `options`.
    ///
    /// # Errors
    /// The URL cannot be used.
    pub(super) fn new(options: RedisOptions) -> anyhow::Result<Self> {
        let shown_url = super::options::redact_url(&options.url);
        let mut url = reqwest::Url::parse(&options.url)
            .with_context(|| format!("invalid url {shown_url:?}"))?;
        if let Some(user) = &options.username {
            url.set_username(user)
                .map_err(|_| anyhow::anyhow!("cannot set the user name on {shown_url}"))?;
        }
        if let Some(password) = &options.password {
            url.set_password(Some(&password.0))
                .map_err(|_| anyhow::anyhow!("cannot set the password on {shown_url}"))?;
        }
        let client = redis::Client::open(url.as_str())
            .map_err(|e| anyhow::anyhow!("invalid url {shown_url:?}: {e}"))?;
        Ok(RedisFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            client,
            shown_url,
            last_ids: Mutex::default(),
        })
    }

    fn last_ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.last_ids.lock_or_recover()
    }

    /// One pub/sub connection, until it fails or the feed is cancelled.
    async fn pubsub(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let url = &self.shown_url;
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub());
        let pubsub = tokio::select! {
            r = connect => r
                .map_err(|_| anyhow::anyhow!("connect to {url} timed out after {CONNECT_TIMEOUT:?}"))?
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let (mut sink, mut messages) = pubsub.split();
        for channel in &self.options.channels {
            sink.subscribe(channel)
                .await
                .with_context(|| format!("{url}: SUBSCRIBE {channel}"))?;
        }
        for pattern in &self.options.patterns {
            sink.psubscribe(pattern)
                .await
                .with_context(|| format!("{url}: PSUBSCRIBE {pattern}"))?;
        }
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, "Redis pub/sub connected.");
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        anyhow::bail!("connection to {url} closed");
                    };
                    let name = SourceName {
                        var: "redis_channel",
                        level: "redis_level",
                        separator: ':',
                        name: msg.get_channel_name(),
                    };
                    broker::publish_message(
                        ctx,
                        &self.pipeline,
                        self.options.format,
                        name,
                        msg.get_payload_bytes(),
                    );
                }
                _ = ping.tick() => {
                    tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>())
                        .await
                        .map_err(|_| anyhow::anyhow!("{url} did not answer a PING within {CONNECT_TIMEOUT:?}"))?
                        .with_context(|| format!("{url}: PING failed"))?;
                }
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }

    /// One stream-reading connection, until it fails or the feed is cancelled.
    async fn streams(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let url = &self.shown_url;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(BLOCK + CONNECT_TIMEOUT));
        let mut con = tokio::select! {
            r = self.client.get_multiplexed_async_connection_with_config(&config) => r
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let keys = &self.options.streams;
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            let known = self.last_ids().get(key).cloned();
            let id = match known {
                Some(id) => id,
                None => {
                    // The stream's current end, as a concrete id ("0-0" when empty).
                    let last: StreamRangeReply = con
                        .xrevrange_count(key, "+", "-", 1)
                        .await
                        .with_context(|| format!("{url}: XREVRANGE {key}"))?;
                    let id = last
                        .ids
                        .first()
                        .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
                    self.last_ids().insert(key.clone(), id.clone());
                    id
                }
            };
            ids.push(id);
        }
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, "Redis streams connected.");
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(COUNT);
        loop {
            let reply: Option<StreamReadReply> = tokio::select! {
                r = con.xread_options(keys, &ids, &options) => r
                    .with_context(|| format!("{url}: XREAD failed"))?,
                _ = ctx.cancelled() => return Ok(()),
            };
            for stream in reply.map(|r| r.keys).unwrap_or_default() {
                let Some(at) = keys.iter().position(|k| *k == stream.key) else {
                    continue;
                };
                for entry in &stream.ids {
                    let name = SourceName {
                        var: "redis_stream",
                        level: "redis_level",
                        separator: ':',
                        name: &stream.key,
                    };
                    match self.entry_items(&entry.map, ctx.max_item_bytes()) {
                        Ok(items) => {
                            for item in &items {
                                let _ = ctx.publish_with(item, &|f| name.lookup(f));
                            }
                        }
                        Err(e) => {
                            ctx.item_error(format!("entry {} of {:?}: {e}", entry.id, stream.key));
                        }
                    }
                    ids[at].clone_from(&entry.id);
                }
                self.last_ids().insert(stream.key.clone(), ids[at].clone());
            }
        }
    }

    /// The items of one stream entry (see the module docs).
    fn entry_items(
        &self,
        fields: &HashMap<String, redis::Value>,
        max_item_bytes: usize,
    ) -> Result<Vec<Value>, String> {
        let size: usize = fields
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        redis::Value::BulkString(b) => b.len(),
                        _ => 0,
                    }
            })
            .sum();
        super::limit::check_len(size, max_item_bytes).map_err(|e| e.to_string())?;
        let mut doc = serde_json::Map::new();
        for (k, v) in fields {
            let value = match v {
                redis::Value::BulkString(b) => {
                    let text =
                        std::str::from_utf8(b).map_err(|_| format!("field {k:?} is not UTF-8"))?;
                    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
                }
                other => return Err(format!("field {k:?} is not a string ({other:?})")),
            };
            doc.insert(k.clone(), value);
        }
        let items = self.pipeline.items_from(Value::Object(doc))?;
        Ok(broker::wrap_scalars(items))
    }
}

impl Feed for RedisFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        match self.options.mode {
            RedisMode::Pubsub => self.pubsub(&ctx).await,
            RedisMode::Stream => self.streams(&ctx).await,
        }
    }
}

/// `kind = "redis"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "redis",
    check: registry::check::<RedisOptions>,
    build: |c| Ok(Arc::new(RedisFeed::new(registry::options(c)?)?)),
};

/// How a `redis` feed reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RedisMode {
    /// SUBSCRIBE to `channels` and PSUBSCRIBE to `patterns`.
    #[default]
    Pubsub,
    /// XREAD `streams`, resuming after the last entry delivered.
    Stream,
}

/// `redis`: Redis pub/sub channels or streams.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisOptions {
    /// The server, `redis://[user:password@]host:port[/db]`.
    pub(crate) url: String,
    /// `pubsub` (default) or `stream`.
    #[serde(default)]
    pub(crate) mode: RedisMode,
    /// Channels to SUBSCRIBE to (`pubsub` mode).
    #[serde(default)]
    pub(crate) channels: Vec<String>,
    /// Glob patterns to PSUBSCRIBE to (`pubsub` mode), e.g. `prices:*`.
    #[serde(default)]
    pub(crate) patterns: Vec<String>,
    /// Stream keys to XREAD (`stream` mode).
    #[serde(default)]
    pub(crate) streams: Vec<String>,
    /// User name (Redis 6 ACL); overrides one in `url`.
    pub(crate) username: Option<String>,
    /// Password; overrides one in `url`; never logged.
    pub(crate) password: Option<options::Secret>,
    /// JSON Pointer (RFC 6901) into each payload.
    pub(crate) extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl KindOptions for RedisOptions {
    fn check(&self, bad: Bad<'_>) {
        options::extract(&self.extract, bad);
        check_redis(self, bad);
    }
}

fn check_redis(r: &RedisOptions, bad: Bad<'_>) {
    options::broker_url(&r.url, &["redis"], bad);
    match r.mode {
        RedisMode::Pubsub => {
            if r.channels.is_empty() && r.patterns.is_empty() {
                bad(
                    "mode",
                    "mode \"pubsub\" needs `channels` and/or `patterns`".into(),
                );
            }
            if !r.streams.is_empty() {
                bad(
                    "streams",
                    "`streams` is for mode = \"stream\" (this feed is in mode \"pubsub\")".into(),
                );
            }
        }
        RedisMode::Stream => {
            if r.streams.is_empty() {
                bad("mode", "mode \"stream\" needs `streams`".into());
            }
            for key in ["channels", "patterns"] {
                let set = if key == "channels" {
                    &r.channels
                } else {
                    &r.patterns
                };
                if !set.is_empty() {
                    bad(
                        key,
                        format!(
                            "`{key}` is for mode = \"pubsub\" (this feed is in mode \"stream\")"
                        ),
                    );
                }
            }
        }
    }
    for (key, names) in [
        ("channels", &r.channels),
        ("patterns", &r.patterns),
        ("streams", &r.streams),
    ] {
        if names.iter().any(String::is_empty) {
            bad(key, format!("`{key}` must not hold an empty name"));
        }
    }
}
