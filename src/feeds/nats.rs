//! `nats`: a NATS core subscription (async-nats); each message's payload is
//! decoded by the broker payload rule (`broker`) and published with
//! `{nats_subject}` (the subject as is) and `{nats_level1}`, ... (its tokens)
//! available to the template, so `subject = "prices.>"` with
//! `topic = "{nats_subject}"` mirrors subjects as topics.
//!
//! With `stream` and `durable`, messages come through a durable JetStream pull
//! consumer instead: each is acknowledged once published, so what the stream
//! stored while tickerd was away or disconnected arrives on reconnect. A
//! stopping feed leaves no pull request pending (a message delivered to one
//! nobody reads would come back only after `ack_wait`, out of order). "Already
//! published" is decided by the stream sequences this feed published and whose
//! ack was not confirmed, handed from run to run (retries and config changes),
//! never by "older than the last one": a redelivery of one of those is only
//! acknowledged, any other message is published. Across a restart of tickerd
//! delivery is at least once.
//!
//! One call of `run` is one connection. async-nats would reconnect by itself;
//! we end the run instead on its first `Disconnected` event, so the supervisor
//! owns reconnect policy (backoff, jitter, state on `$sys.feeds`) as for every
//! kind. Without JetStream, messages published while disconnected are lost:
//! that is NATS core.
//!
//! Reads are bounded by the server's `max_payload` (1 MiB by default) and each
//! payload by the item limit.

use std::collections::BTreeSet;
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
    /// cancelled. Messages come in pull requests of at most [`PULL_EXPIRES`];
    /// a cancelled feed reads its request to the end, handing back (nak) what
    /// still arrives, so it stops with no request pending that could take a
    /// message nobody reads. Each message is published, then acknowledged; one
    /// whose ack was not confirmed is remembered in [`Unacked`] (handed to the
    /// next run) and, if delivered again, only acknowledged.
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
            s.get_or_create_consumer(
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
            .map_err(|e| anyhow::anyhow!("{url}: consumer {durable:?} on {stream:?}: {e}"))
        };
        let consumer: async_nats::jetstream::consumer::PullConsumer = tokio::select! {
            m = tokio::time::timeout(CONNECT_TIMEOUT, setup) => m
                .map_err(|_| anyhow::anyhow!("{url}: JetStream did not answer within {CONNECT_TIMEOUT:?}"))??,
            _ = ctx.cancelled() => return Ok(()),
        };
        let mut left = LeaveUnacked {
            ctx,
            unacked: Unacked::take(ctx, stream, durable),
        };
        let unacked = &mut left.unacked;
        unacked.acked_up_to(consumer.cached_info().ack_floor.stream_sequence);
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, stream, durable, "NATS JetStream consumer connected.");
        let mut stopping = false;
        while !stopping && !ctx.is_cancelled() {
            // Not raced with cancel: a request sent but not read would be left pending.
            let mut batch = consumer
                .batch()
                .max_messages(PULL_BATCH)
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("consumer {durable:?} on {url}: {e}"))?;
            loop {
                let msg = tokio::select! {
                    msg = batch.next() => msg,
                    event = events.recv() => {
                        self.on_event(ctx, event)?;
                        continue;
                    }
                    _ = ctx.cancelled(), if !stopping => {
                        stopping = true;
                        continue;
                    }
                };
                let Some(msg) = msg else { break };
                let msg = msg.map_err(|e| anyhow::anyhow!("consumer {durable:?} on {url}: {e}"))?;
                if stopping {
                    // The successor (or the next start) gets it at once.
                    msg.ack_with(async_nats::jetstream::AckKind::Nak(None))
                        .await
                        .map_err(|e| anyhow::anyhow!("{url}: cannot hand a message back: {e}"))?;
                    continue;
                }
                let seq = match msg.info() {
                    Ok(info) => info.stream_sequence,
                    Err(e) => anyhow::bail!("{url}: a JetStream message without metadata: {e}"),
                };
                if unacked.insert(seq) {
                    self.publish(ctx, msg.subject.as_str(), &msg.payload);
                }
                msg.double_ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("{url}: cannot acknowledge: {e}"))?;
                unacked.remove(seq);
            }
        }
        Ok(())
    }
}

/// Most messages one pull request asks for.
const PULL_BATCH: usize = 256;

/// How long one pull request waits for messages; a stopping feed reads its
/// request to the end, so this bounds the stop (below the supervisor's grace).
const PULL_EXPIRES: Duration = Duration::from_millis(500);

/// Most sequences [`Unacked`] remembers; past it the oldest are forgotten
/// (their redelivery, if any, is published again: at least once).
const MAX_UNACKED: usize = 1024;

/// The stream sequences a durable consumer's feed published whose ack the
/// server did not confirm: a redelivery of one of them was already published
/// and is only acknowledged; every other message is published, however old
/// (one delivered to a request nobody read comes back after `ack_wait` and was
/// never published). Handed from one run to the next through the feed's
/// handoff (a retry, or the successor after a config change), for the same
/// stream and consumer only.
#[derive(Debug, Default)]
struct Unacked {
    stream: String,
    durable: String,
    seqs: BTreeSet<u64>,
}

impl Unacked {
    /// What the previous run on `stream`/`durable` left, or an empty set.
    fn take(ctx: &FeedContext, stream: &str, durable: &str) -> Self {
        ctx.handoff()
            .take::<Unacked>()
            .filter(|u| u.stream == stream && u.durable == durable)
            .unwrap_or_else(|| Unacked {
                stream: stream.to_string(),
                durable: durable.to_string(),
                seqs: BTreeSet::new(),
            })
    }

    /// Forgets sequences the consumer's ack floor shows acknowledged.
    fn acked_up_to(&mut self, floor: u64) {
        self.seqs = self.seqs.split_off(&floor.saturating_add(1));
    }

    /// Remembers `seq` as published and unconfirmed; false when it already was
    /// (a redelivery of a message published before).
    fn insert(&mut self, seq: u64) -> bool {
        if self.seqs.contains(&seq) {
            return false;
        }
        if self.seqs.len() >= MAX_UNACKED {
            self.seqs.pop_first();
        }
        self.seqs.insert(seq)
    }

    /// `seq`'s ack is confirmed.
    fn remove(&mut self, seq: u64) {
        self.seqs.remove(&seq);
    }
}

/// A run's [`Unacked`], left in the feed's handoff when the run ends, however
/// it ends (returned, failed, or dropped by the supervisor past its grace).
struct LeaveUnacked<'a> {
    ctx: &'a FeedContext,
    unacked: Unacked,
}

impl Drop for LeaveUnacked<'_> {
    fn drop(&mut self) {
        self.ctx.handoff().put(std::mem::take(&mut self.unacked));
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
