//! `websocket`: subscribes to an upstream WebSocket; each text message is one
//! document for the shared [`Pipeline`].
//!
//! One call of `run` is one connection: connect (bounded by [`CONNECT_TIMEOUT`]),
//! send the configured `send` messages, mark the feed running, then read until
//! the upstream closes, errors or goes silent. Every way a connection ends is an
//! `Err`, so the supervisor reconnects with its jittered backoff; a bad message is
//! only that item's error. Upstream Pings are answered by tungstenite itself: it
//! queues the Pong and flushes it on the next read, and this loop always reads.
//! We send our own Ping every [`PING_EVERY`] and treat an upstream from which
//! nothing at all arrived for [`SILENCE_LIMIT`] as dead (a half-open TCP
//! connection otherwise looks like a quiet market forever).

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use super::options::{self, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, ItemTooLarge, Pipeline};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest a connect (TCP, TLS and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often we Ping the upstream.
const PING_EVERY: Duration = Duration::from_secs(15);
/// An upstream that sends nothing (not even a Pong) for this long is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// An upstream WebSocket subscription.
#[derive(Debug, Clone)]
pub(super) struct WebSocketFeed {
    options: WebSocketOptions,
    pipeline: Pipeline,
    /// [`PING_EVERY`] and [`SILENCE_LIMIT`]; shorter in tests.
    ping_every: Duration,
    silence_limit: Duration,
}

impl WebSocketFeed {
    /// A subscription described by `options`.
    pub(super) fn new(options: WebSocketOptions) -> Self {
        let pipeline = Pipeline::new(options.extract.as_deref(), options.format);
        WebSocketFeed {
            options,
            pipeline,
            ping_every: PING_EVERY,
            silence_limit: SILENCE_LIMIT,
        }
    }

    /// Publishes one message's text; a bad document is that item's error.
    fn document(&self, ctx: &FeedContext, text: &str) {
        if let Err(e) = ctx.publish_document(&self.pipeline, text) {
            ctx.item_error(format!("{e:#}"));
        }
    }
}

impl Feed for WebSocketFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let mut request = self
            .options
            .url
            .as_str()
            .into_client_request()
            .context("invalid websocket request")?;
        request
            .headers_mut()
            .extend(super::options::header_map(&self.options.headers)?);
        // One message (and one frame) of at most `max_item_bytes`; a larger
        // one fails the connection, which is then made afresh.
        let max = ctx.max_item_bytes();
        let config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let connect = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(request, Some(config), false),
        );
        let (mut ws, _) = tokio::select! {
            r = connect => r
                .map_err(|_| anyhow::anyhow!("connect timed out after {CONNECT_TIMEOUT:?}"))?
                .with_context(|| format!("cannot connect to {}", self.options.url))?,
            _ = ctx.cancelled() => return Ok(()),
        };
        for m in &self.options.send {
            ws.send(Message::text(m.as_str()))
                .await
                .context("cannot send to upstream")?;
        }
        ctx.mark_running();
        tracing::info!(url = %self.options.url, "Upstream WebSocket connected.");

        let every = self.ping_every;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        let mut last_seen = Instant::now();
        loop {
            tokio::select! {
                msg = ws.next() => {
                    last_seen = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => self.document(&ctx, t.as_str()),
                        Some(Ok(Message::Binary(b))) => match std::str::from_utf8(&b) {
                            Ok(t) => self.document(&ctx, t),
                            Err(_) => {
                                ctx.item_error("binary message is not UTF-8".into());
                            }
                        },
                        Some(Ok(Message::Close(frame))) => {
                            anyhow::bail!("upstream closed the connection ({frame:?})")
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Err(tungstenite::Error::Capacity(e))) => {
                            let len = match e {
                                CapacityError::MessageTooLong { size, .. } => Some(size as u64),
                                _ => None,
                            };
                            return Err(ItemTooLarge { len, max })
                                .context("upstream sent a message too large; reconnecting");
                        }
                        Some(Err(e)) => return Err(e).context("upstream connection failed"),
                        None => anyhow::bail!("upstream connection ended"),
                    }
                }
                _ = ping.tick() => {
                    let limit = self.silence_limit;
                    if last_seen.elapsed() >= limit {
                        anyhow::bail!("upstream silent for {limit:?}; reconnecting");
                    }
                    ws.send(Message::Ping(Default::default()))
                        .await
                        .context("cannot ping upstream")?;
                }
                _ = ctx.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// `kind = "websocket"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "websocket",
    check: registry::check::<WebSocketOptions>,
    build: |c| Ok(Arc::new(WebSocketFeed::new(registry::options(c)?))),
};

/// `websocket`: subscribes to an upstream WebSocket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSocketOptions {
    /// The URL (`ws` or `wss`).
    pub(crate) url: String,
    /// Text messages sent after each connect (e.g. a subscribe request).
    #[serde(default)]
    pub(crate) send: Vec<String>,
    /// Extra handshake headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// JSON Pointer (RFC 6901) into each message.
    pub(crate) extract: Option<String>,
    /// How each message is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl KindOptions for WebSocketOptions {
    fn check(&self, bad: Bad<'_>) {
        options::url(&self.url, &["ws", "wss"], bad);
        options::extract(&self.extract, bad);
        options::headers(&self.headers, bad);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::config::Config;
    use crate::feeds::{FeedState, FeedSupervisor, Kinds};
    use crate::hub::Hub;
    use crate::metrics::Metrics;

    /// An upstream that completes the handshake and then never reads or writes
    /// (so our Pings go unanswered) is declared dead after the silence limit:
    /// the feed reports `backoff` with that reason and reconnects.
    #[tokio::test]
    async fn a_silent_upstream_is_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    held.push(ws); // silent: never polled again
                    let _ = accepted_tx.send(());
                }
            }
        });
        let mut kinds = Kinds::default();
        kinds.register("quiet-ws", move |_: toml::Table| {
            let mut feed = WebSocketFeed::new(WebSocketOptions {
                url: url.clone(),
                send: Vec::new(),
                headers: Default::default(),
                extract: None,
                format: Default::default(),
            });
            feed.ping_every = Duration::from_millis(50);
            feed.silence_limit = Duration::from_millis(200);
            Ok(feed)
        });
        let text = "[[feed]]\nname = \"q\"\nkind = \"quiet-ws\"\ntopic = \"t\"\n";
        let config = Config::parse(text, std::path::Path::new("t.toml"), None, &kinds).unwrap();
        let hub = Hub::new(0, Arc::new(Metrics::default()));
        let cancel = CancellationToken::new();
        let feeds = FeedSupervisor::new(hub, kinds, cancel.clone(), TaskTracker::new());
        feeds.apply(&config.feeds).await;
        let deadline = Duration::from_secs(10);
        tokio::time::timeout(deadline, accepted.recv())
            .await
            .unwrap();
        let status = tokio::time::timeout(deadline, async {
            loop {
                let s = feeds.statuses().await.remove(0);
                if s.state == FeedState::Backoff {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert!(status.error.unwrap().contains("silent"));
        // It reconnects.
        tokio::time::timeout(deadline, accepted.recv())
            .await
            .unwrap();
        cancel.cancel();
        feeds.stop_all().await;
    }
}
