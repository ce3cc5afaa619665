//! Updates to and from the stream: [`Publisher`] sequences the updates this node
//! originates; [`follow`] feeds every node's hub from the stream.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::frame::Text;
use async_nats::jetstream::consumer::{push, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::{header, HeaderMap};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{until_connected, Cluster, STREAM, SUBJECT_PREFIX};
use crate::hub::{Originated, PublishError, Published, Source};
use crate::protocol;
use crate::sync::MutexExt;

const SEQ: &str = "Tickerd-Seq";
const TS: &str = "Tickerd-Ts";
const NODE: &str = "Tickerd-Node";
const FEED: &str = "Tickerd-Feed";
const STALE_MS: &str = "Tickerd-Stale-Ms";

/// Updates one topic may have waiting for NATS; past it, publishes fail.
const BACKLOG: usize = 1024;
/// How often the follower checks that its stream is still there.
const STREAM_CHECK: Duration = Duration::from_secs(2);
/// How long an update may wait for NATS (link down, no stream yet) before it
/// is dropped and counted.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(5);

/// Sequences this node's updates into the stream, one topic at a time: each
/// topic has a task with its last `(seq, stream seq)`, publishing in order.
pub(super) struct Publisher {
    cluster: Arc<Cluster>,
    tasks: TaskTracker,
    topics: Mutex<HashMap<Arc<str>, mpsc::Sender<Originated>>>,
}

enum Attempt {
    /// Another node took the seq first: re-read the subject and try again.
    Conflict,
    /// NATS did not answer or has no stream yet: wait and try again.
    Transient(Box<dyn std::error::Error + Send + Sync>),
}

impl Publisher {
    pub(super) fn new(cluster: Arc<Cluster>, tasks: TaskTracker) -> Arc<Self> {
        Arc::new(Publisher {
            cluster,
            tasks,
            topics: Mutex::default(),
        })
    }

    /// Queues `out` behind the topic's earlier updates (never blocks).
    pub(super) fn submit(self: &Arc<Self>, out: Originated) {
        let mut topics = self.topics.lock_or_recover();
        let tx = topics.entry(out.topic.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(BACKLOG);
            self.tasks
                .spawn(self.clone().run_topic(out.topic.clone(), rx));
            tx
        });
        if let Err(e) = tx.try_send(out) {
            let out = match e {
                mpsc::error::TrySendError::Full(out) | mpsc::error::TrySendError::Closed(out) => {
                    out
                }
            };
            self.cluster
                .metrics
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
            fail(out, "this topic's backlog for NATS is full");
        }
    }

    async fn run_topic(self: Arc<Self>, topic: Arc<str>, mut rx: mpsc::Receiver<Originated>) {
        let subject = format!("{SUBJECT_PREFIX}{topic}");
        // The subject's last (seq, stream seq); None: read it from the stream.
        let mut last: Option<(u64, u64)> = None;
        loop {
            let out = tokio::select! {
                out = rx.recv() => match out { Some(out) => out, None => return },
                _ = self.cluster.cancel.cancelled() => return,
            };
            let result = self.publish(&subject, &mut last, &out).await;
            let m = &self.cluster.metrics;
            match &result {
                Ok(_) => m.originated.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    warn!(topic = %topic, error = %e, "Update dropped: NATS did not take it.");
                    m.publish_failures.fetch_add(1, Ordering::Relaxed)
                }
            };
            if let Some(reply) = out.reply {
                let _ = reply.send(result);
            }
        }
    }

    /// Publishes one update with the next seq, retrying conflicts at once and
    /// transient failures until [`PUBLISH_DEADLINE`].
    async fn publish(
        &self,
        subject: &str,
        last: &mut Option<(u64, u64)>,
        out: &Originated,
    ) -> Result<Published, PublishError> {
        let deadline = Instant::now() + PUBLISH_DEADLINE;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.attempt(subject, last, out).await {
                Ok(p) => return Ok(p),
                Err(Attempt::Conflict) => {
                    *last = None;
                    self.cluster
                        .metrics
                        .conflicts
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(Attempt::Transient(e)) => {
                    debug!(subject, error = %e, "Publish to NATS failed; retrying.");
                    if Instant::now() + pause > deadline || self.cluster.cancel.is_cancelled() {
                        return Err(PublishError::Cluster { source: e });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn attempt(
        &self,
        subject: &str,
        last: &mut Option<(u64, u64)>,
        out: &Originated,
    ) -> Result<Published, Attempt> {
        let js = self.cluster.jetstream(Duration::from_secs(2));
        let (seq, stream_seq) = match *last {
            Some(l) => l,
            None => {
                let (seq, stream_seq, id) = last_of(&js, subject).await?;
                if id.is_some_and(|id| self.is_ours(&id, out)) {
                    // An earlier attempt was stored; only its ack was lost.
                    *last = Some((seq, stream_seq));
                    return Ok(Published {
                        seq: Some(seq),
                        ts: out.ts,
                    });
                }
                (seq, stream_seq)
            }
        };
        let seq = seq + 1;
        let frame = protocol::encode_update(&out.topic, seq, out.ts, &out.json);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            stream_seq.to_string().as_str(),
        );
        // A retry after a lost ack is recognised as the same message.
        let id = format!("{}/{}/{}/{seq}", self.cluster.node, out.topic, out.ts);
        headers.insert(header::NATS_MESSAGE_ID, id.as_str());
        headers.insert(SEQ, seq.to_string().as_str());
        headers.insert(TS, out.ts.to_string().as_str());
        headers.insert(NODE, &*self.cluster.node);
        if let Some(feed) = &out.source.feed {
            headers.insert(FEED, &**feed);
        }
        if let Some(stale) = out.source.stale_after {
            headers.insert(STALE_MS, stale.as_millis().to_string().as_str());
        }
        let payload = bytes::Bytes::from(frame); // the same bytes, no copy
        let ack = js
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| Attempt::Transient(e.into()))?
            .await;
        match ack {
            Ok(ack) => {
                *last = Some((seq, ack.sequence));
                Ok(Published {
                    seq: Some(seq),
                    ts: out.ts,
                })
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(Attempt::Conflict),
            Err(e) => {
                *last = None;
                Err(Attempt::Transient(e.into()))
            }
        }
    }
}

impl Publisher {
    /// Is `id` (a stored message's `Nats-Msg-Id`) one of the attempts at `out`?
    fn is_ours(&self, id: &str, out: &Originated) -> bool {
        let prefix = format!("{}/{}/{}/", self.cluster.node, out.topic, out.ts);
        id.starts_with(&prefix)
    }
}

/// The subject's last `(seq, stream seq, message id)`; `(0, 0, None)` when it
/// has none.
async fn last_of(
    js: &async_nats::jetstream::Context,
    subject: &str,
) -> Result<(u64, u64, Option<String>), Attempt> {
    let stream = js
        .get_stream_no_info(STREAM)
        .await
        .map_err(|e| Attempt::Transient(e.into()))?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => {
            let id = m
                .headers
                .get(header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_string());
            Ok((
                header_u64(Some(&m.headers), SEQ).unwrap_or(0),
                m.sequence,
                id,
            ))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((0, 0, None)),
        Err(e) => Err(Attempt::Transient(e.into())),
    }
}

fn fail(out: Originated, why: &str) {
    if let Some(reply) = out.reply {
        let _ = reply.send(Err(PublishError::Cluster { source: why.into() }));
    }
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

/// Follows the stream into the hub until shutdown: replays what it holds, then
/// takes updates as they come. A broken link or consumer is re-established
/// from the last stream seq taken, so nothing is skipped or taken twice.
pub(super) async fn follow(cluster: Arc<Cluster>) {
    let mut next: Option<u64> = None;
    let mut epoch: Option<String> = None;
    let mut sources: HashMap<String, Source> = HashMap::new();
    loop {
        if !until_connected(&cluster).await {
            return;
        }
        if let Err(e) = consume(&cluster, &mut next, &mut epoch, &mut sources).await {
            warn!(error = %e, "Following the cluster stream failed; retrying.");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = cluster.cancel.cancelled() => return,
        }
    }
}

async fn consume(
    cluster: &Cluster,
    next: &mut Option<u64>,
    adopted: &mut Option<String>,
    sources: &mut HashMap<String, Source>,
) -> anyhow::Result<()> {
    let js = cluster.jetstream(Duration::from_secs(3));
    let epoch = cluster.ensure_stream(&js).await?;
    if cluster.hub.set_epoch(&epoch) {
        info!(epoch = %epoch, "Cluster epoch adopted.");
        *next = None;
        if adopted.is_some() {
            // The stream was lost and made anew (NATS lost its store): seqs
            // start over, which clients must not mistake for repeats.
            warn!("The cluster stream was recreated; clients are asked to reconnect.");
            cluster
                .hub
                .close_all(1012, "cluster epoch changed: reconnect");
        }
    }
    *adopted = Some(epoch.clone());
    cluster
        .epoch_known
        .send_if_modified(|k| !std::mem::replace(k, true));
    cluster.update_view(|v| v.epoch = epoch.clone());
    let stream = js.get_stream_no_info(STREAM).await?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: cluster.client.new_inbox(),
            filter_subject: format!("{SUBJECT_PREFIX}>"),
            deliver_policy: match *next {
                Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
                None => DeliverPolicy::All,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    // The ordered consumer rides out NATS restarts by itself, but not the loss
    // of the stream: check now and then that it is still the one we follow
    // (this also applies a reloaded `history.size`).
    let mut check = tokio::time::interval_at(Instant::now() + STREAM_CHECK, STREAM_CHECK);
    loop {
        let message = tokio::select! {
            m = messages.next() => m,
            _ = check.tick() => {
                let now = cluster.ensure_stream(&js).await?;
                if now != epoch {
                    anyhow::bail!("the stream was recreated");
                }
                continue;
            }
            _ = cluster.cancel.cancelled() => return Ok(()),
        };
        let Some(message) = message else {
            anyhow::bail!("the consumer ended");
        };
        let message = message?;
        let stream_seq = message.info().map_err(anyhow::Error::msg)?.stream_sequence;
        take(cluster, &message, sources);
        *next = Some(stream_seq + 1);
    }
}

/// Hands one stream message to the hub, frame untouched.
fn take(cluster: &Cluster, m: &async_nats::Message, sources: &mut HashMap<String, Source>) {
    let Some(topic) = m.subject.strip_prefix(SUBJECT_PREFIX) else {
        return;
    };
    let headers = m.headers.as_ref();
    let (Some(seq), Some(ts)) = (header_u64(headers, SEQ), header_u64(headers, TS)) else {
        warn!(subject = %m.subject, "Stream message without seq/ts headers skipped.");
        return;
    };
    let Ok(frame) = Text::try_from(m.payload.clone()) else {
        warn!(subject = %m.subject, "Stream message that is not UTF-8 skipped.");
        return;
    };
    let feed = headers.and_then(|h| h.get(FEED)).map(|v| v.as_str());
    let stale = header_u64(headers, STALE_MS).map(Duration::from_millis);
    let none = Source::default();
    let source = match feed {
        None => &none,
        Some(name) => {
            if !sources.contains_key(name) {
                let fresh = Source {
                    feed: Some(name.into()),
                    stale_after: stale,
                    // The cluster's stream holds the history (`history.size`).
                    history: None,
                };
                sources.insert(name.to_string(), fresh);
            }
            let cached = sources.get_mut(name).expect("inserted above");
            cached.stale_after = stale;
            &*cached
        }
    };
    match cluster.hub.insert_relayed(topic, seq, ts, frame, source) {
        Ok(_) => {
            cluster.metrics.relayed.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => warn!(subject = %m.subject, error = %e, "Stream message skipped."),
    }
}
