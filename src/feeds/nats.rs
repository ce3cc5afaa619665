//! `nats`: a NATS core subscription (async-nats); each message's payload is
//! decoded by the broker payload rule (`broker`) and published with
//! `{nats_subject}` (the subject as is) and `{nats_level1}`, ... (its tokens)
//! available to the template, so `subject = "prices.>"` with
//! `topic = "{nats_subject}"` mirrors subjects as topics.
//!
//! One call of `run` is one connection. async-nats would reconnect by itself;
//! we end the run instead on its first `Disconnected` event, so the supervisor
//! owns reconnect policy (backoff, jitter, state on `$sys.feeds`) as for every
//! kind. Messages published while disconnected are lost: that is NATS core.
//!
//! Reads are bounded by the server's `max_payload` (1 MiB by default) and each
//! payload by the item limit.

use std::time::Duration;

use futures_util::StreamExt;

use super::broker::{self, SourceName};
use super::{Feed, FeedContext, Pipeline};
use crate::config::NatsOptions;

/// Longest a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A NATS subscription.
pub struct NatsFeed {
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
    pub fn new(options: NatsOptions) -> Self {
        NatsFeed {
            shown_url: broker::redact_url(&options.url),
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
        }
    }
}

impl Feed for NatsFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let url = &self.shown_url;
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
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
        let client = tokio::select! {
            c = tokio::time::timeout(CONNECT_TIMEOUT, connect.connect(self.options.url.as_str())) => c
                .map_err(|_| anyhow::anyhow!("connect to {url} timed out after {CONNECT_TIMEOUT:?}"))?
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?,
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
                    let name = SourceName {
                        var: "nats_subject",
                        level: "nats_level",
                        separator: '.',
                        name: msg.subject.as_str(),
                    };
                    broker::publish_message(&ctx, &self.pipeline, self.options.format, name, &msg.payload);
                }
                event = events.recv() => match event {
                    Some(async_nats::Event::Disconnected | async_nats::Event::Closed) | None => {
                        anyhow::bail!("disconnected from {url}");
                    }
                    Some(async_nats::Event::ServerError(e)) => {
                        anyhow::bail!("{url}: server error: {e}");
                    }
                    Some(async_nats::Event::SlowConsumer(_)) => {
                        ctx.item_error("messages dropped: tickerd reads slower than they arrive".into());
                    }
                    Some(_) => {}
                },
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }
}
