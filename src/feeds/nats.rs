//! `nats`: a NATS core subscription (async-nats); each message's payload is
//! decoded by the broker payload rule (`broker`) and published with
//! `{nats_subject}` (the subject as is) and `{nats_level1}`, ... (its tokens)
//! available to the template, so `subject = "prices.>"` with
//! `topic = "{nats_subject}"` mirrors subjects as topics.
//!
//! With `stream` and `durable`, messages come through a durable JetStream pull
//! consumer instead: each is acknowledged once published, so what the stream
//! stored while tickerd was away or disconnected arrives on reconnect. A
//! redelivery after a lost ack is recognised by its stream sequence and not
//! published again while this feed instance lives; across a restart of tickerd
//! (or a config change of the feed) delivery is at least once.
//!
//! One call of `run` is one connection. async-nats would reconnect by itself;
//! we end the run instead on its first `Disconnected` event, so the supervisor
//! owns reconnect policy (backoff, jitter, state on `$sys.feeds`) as for every
//! kind. Without JetStream, messages published while disconnected are lost:
//! that is NATS core.
//!
//! Reads are bounded by the server's `max_payload` (1 MiB by default) and each
//! payload by the item limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

use super::broker::{self, SourceName};
use super::options::{self, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, Pipeline};
use serde::Deserialize;
use std::sync::Arc;

/// Longest a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A NATS subscription.
pub(super) struct NatsFeed {
    options: NatsOptions,
    /// `url` with any password redacted, for errors and logs.
    shown_url: String,
    pipeline: Pipeline,
    /// The stream sequence of the last JetStream message published, kept
    /// across runs so a redelivery after a lost ack is not published twice.
    last_seq: AtomicU64,
}

impl std::fmt::Debug for NatsFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsFeed")
            .field("url", &self.shown_url)
            .field("subject", &self.options.subject)
            .finish_non_exhaustive()
    }
}

impl NatsFeed {
    /// A subscription described by `options`.
    pub(super) fn new(options: NatsOptions) -> Self {
        NatsFeed {
            shown_url: super::options::redact_url(&options.url),
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            last_seq: AtomicU64::new(0),
        }
    }
}

type Events = tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>;

impl NatsFeed {
    /// Connects; the receiver gets the client's connection events.
    async fn connect(&self, ctx: &FeedContext) -> anyhow::Result<(async_nats::Client, Events)> {
        let url = &self.shown_url;
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut connect = async_nats::ConnectOptions::new()
            .name(format!("tickerd-{}", ctx.name()))
            .connection_timeout(CONNECT_TIMEOUT)
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            });
        if let Some(token) = &self.options.token {
            connect = connect.token(token.0.clone());
        }
        if let (Some(user), Some(password)) = (&self.options.user, &self.options.password) {
            connect = connect.user_and_password(user.clone(), password.0.clone());
        }
        let client =
            tokio::time::timeout(CONNECT_TIMEOUT, connect.connect(self.options.url.as_str()))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("connect to {url} timed out after {CONNECT_TIMEOUT:?}")
                })?
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
        Ok((client, events))
    }

    /// What a connection event means for the run: `Err` ends it.
    fn on_event(&self, ctx: &FeedContext, event: Option<async_nats::Event>) -> anyhow::Result<()> {
        let url = &self.shown_url;
        match event {
            Some(async_nats::Event::Disconnected | async_nats::Event::Closed) | None => {
                anyhow::bail!("disconnected from {url}")
            }
            Some(async_nats::Event::ServerError(e)) => anyhow::bail!("{url}: server error: {e}"),
            Some(async_nats::Event::SlowConsumer(_)) => {
                ctx.item_error("messages dropped: tickerd reads slower than they arrive".into());
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    fn publish(&self, ctx: &FeedContext, subject: &str, payload: &[u8]) {
        let name = SourceName {
            var: "nats_subject",
            level: "nats_level",
            separator: '.',
            name: subject,
        };
        broker::publish_message(ctx, &self.pipeline, self.options.format, name, payload);
    }

    /// A core subscription, until the connection ends or the feed is cancelled.
    async fn core(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let url = &self.shown_url;
        let (client, mut events) = tokio::select! {
            c = self.connect(ctx) => c?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let subject = self.options.subject.clone();
        let mut messages = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{url}: cannot subscribe to {subject:?}: {e}"))?;
        // A round trip, so a subject the server refuses (permissions) fails here.
        client
            .flush()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, subject = %subject, "NATS connected.");
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        anyhow::bail!("subscription to {subject:?} on {url} ended");
                    };
                    self.publish(ctx, msg.subject.as_str(), &msg.payload);
                }
                event = events.recv() => self.on_event(ctx, event)?,
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }

    /// A durable JetStream consumer, until the connection ends or the feed is
    /// cancelled. Each message is acknowledged once published; a redelivered
    /// one (its ack was lost) that was already published is only acknowledged.
    async fn durable(&self, ctx: &FeedContext, stream: &str, durable: &str) -> anyhow::Result<()> {
        use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
        let url = &self.shown_url;
        let (client, mut events) = tokio::select! {
            c = self.connect(ctx) => c?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let js = async_nats::jetstream::new(client);
        let setup = async {
            let s = js
                .get_stream(stream)
                .await
                .map_err(|e| anyhow::anyhow!("{url}: JetStream stream {stream:?}: {e}"))?;
            let consumer: async_nats::jetstream::consumer::PullConsumer = s
                .get_or_create_consumer(
                    durable,
                    pull::Config {
                        durable_name: Some(durable.to_string()),
                        filter_subject: self.options.subject.clone(),
                        ack_policy: AckPolicy::Explicit,
                        deliver_policy: DeliverPolicy::New,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{url}: consumer {durable:?} on {stream:?}: {e}"))?;
            consumer
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("{url}: consumer {durable:?}: {e}"))
        };
        let mut messages = tokio::select! {
            m = tokio::time::timeout(CONNECT_TIMEOUT, setup) => m
                .map_err(|_| anyhow::anyhow!("{url}: JetStream did not answer within {CONNECT_TIMEOUT:?}"))??,
            _ = ctx.cancelled() => return Ok(()),
        };
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, stream, durable, "NATS JetStream consumer connected.");
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let msg = msg
                        .ok_or_else(|| anyhow::anyhow!("consumer {durable:?} on {url} ended"))?
                        .map_err(|e| anyhow::anyhow!("consumer {durable:?} on {url}: {e}"))?;
                    let (seq, redelivered) = match msg.info() {
                        Ok(info) => (info.stream_sequence, info.delivered > 1),
                        Err(e) => anyhow::bail!("{url}: a JetStream message without metadata: {e}"),
                    };
                    if !(redelivered && seq <= self.last_seq.load(Ordering::Relaxed)) {
                        self.publish(ctx, msg.subject.as_str(), &msg.payload);
                        self.last_seq.store(seq, Ordering::Relaxed);
                    }
                    msg.ack()
                        .await
                        .map_err(|e| anyhow::anyhow!("{url}: cannot acknowledge: {e}"))?;
                }
                event = events.recv() => self.on_event(ctx, event)?,
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }
}

impl Feed for NatsFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        match (&self.options.stream, &self.options.durable) {
            (Some(stream), Some(durable)) => self.durable(&ctx, stream, durable).await,
            _ => self.core(&ctx).await,
        }
    }
}

/// `kind = "nats"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "nats",
    check: registry::check::<NatsOptions>,
    build: |c| Ok(Arc::new(NatsFeed::new(registry::options(c)?))),
};

/// `nats`: a NATS core subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsOptions {
    /// The server, `nats://host:port` (or `tls://host:port`).
    pub(crate) url: String,
    /// The subject, wildcards allowed: `prices.*`, `plant.>`.
    pub(crate) subject: String,
    /// User (with `password`).
    pub(crate) user: Option<String>,
    /// Password (with `user`); never logged.
    pub(crate) password: Option<options::Secret>,
    /// Token authentication; never logged.
    pub(crate) token: Option<options::Secret>,
    /// A JetStream stream that stores `subject` (with `durable`).
    pub(crate) stream: Option<String>,
    /// A durable JetStream consumer (with `stream`): tickerd acknowledges each
    /// message once published, so messages stored while it was away or
    /// disconnected arrive when it reconnects, once each. Created on first use
    /// (delivering messages newer than that); an existing one is used as is.
    pub(crate) durable: Option<String>,
    /// JSON Pointer (RFC 6901) into each payload.
    pub(crate) extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl KindOptions for NatsOptions {
    fn check(&self, bad: Bad<'_>) {
        options::extract(&self.extract, bad);
        check_nats(self, bad);
    }
}

fn check_nats(n: &NatsOptions, bad: Bad<'_>) {
    options::broker_url(&n.url, &["nats", "tls"], bad);
    let tokens: Vec<&str> = n.subject.split('.').collect();
    let ok = tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.chars().any(char::is_whitespace)
            && (*t != ">" || i == tokens.len() - 1)
            && (t.len() == 1 || !(t.contains('*') || t.contains('>')))
    });
    if !ok {
        bad(
            "subject",
            format!(
                "subject {:?} is not valid: dot-separated tokens, `*` a whole token, `>` the whole last token",
                n.subject
            ),
        );
    }
    match (&n.user, &n.password) {
        (Some(_), None) => bad("user", "`user` and `password` go together".into()),
        (None, Some(_)) => bad("password", "`user` and `password` go together".into()),
        _ => {}
    }
    match (&n.stream, &n.durable) {
        (Some(_), None) => bad(
            "stream",
            "`stream` needs `durable` (a consumer name)".into(),
        ),
        (None, Some(_)) => bad(
            "durable",
            "`durable` needs `stream` (the JetStream stream)".into(),
        ),
        _ => {}
    }
    for (key, name) in [("stream", &n.stream), ("durable", &n.durable)] {
        if let Some(name) = name {
            if name.is_empty()
                || name.contains(['.', '*', '>', '/', '\\'])
                || name.contains(char::is_whitespace)
            {
                bad(
                    key,
                    format!("{key} {name:?} is not a valid JetStream name (no spaces, `.`, `*`, `>`, `/`)"),
                );
            }
        }
    }
    if n.token.is_some() && n.user.is_some() {
        bad(
            "token",
            "use either `token` or `user`/`password`, not both".into(),
        );
    }
}
