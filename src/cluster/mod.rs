//! Cluster mode: several tickerd nodes share one set of topics through NATS.
//!
//! Without `[cluster]` none of this runs and NATS is never contacted.
//!
//! - **Updates** ([`relay`]). A node that originates an update (a feed it owns, an
//!   HTTP publish, the Rust API) does not deliver it locally. It assigns the
//!   topic's next seq and the ts, encodes the wire frame once, and publishes that
//!   frame to the JetStream stream `TICKERD` on subject `tickerd.t.<topic>`, with
//!   seq and ts in headers. The publish carries `Nats-Expected-Last-Subject-Sequence`,
//!   so two nodes publishing to one topic at once cannot both take a seq: the
//!   loser re-reads the subject's last message and tries again with the next seq.
//!   Every node, the origin included, follows the stream with an ordered consumer
//!   and hands each frame to its hub untouched ([`Hub::insert_relayed`]). So every
//!   node delivers the same frames, with the same seq and ts, in the same order.
//! - **History** is the stream itself: it keeps `history.size` messages per
//!   subject. A node that starts (or restarts) replays them into its hub, so a
//!   client can resume with `since` on any node. The epoch is derived from the
//!   stream's creation time: the same on every node, for as long as the stream
//!   lives.
//! - **Feed ownership** ([`leases`]). Every node has the same config. Each feed
//!   runs on the node that holds its key in the KV bucket `tickerd_feeds`. The key
//!   is created if absent and renewed by compare-and-set on its revision. The
//!   bucket's `max_age` is the lease: when the owner stops renewing (killed,
//!   partitioned), the key lapses and another node creates it and starts the feed.
//!   The new owner continues the topics' seqs from the stream. An owner that could
//!   not renew for half a lease stops its feeds before anyone else can take them.
//! - **Status**: `$sys.cluster` (this node's view: link state, nodes, feed owners)
//!   and the `tickerd_cluster_*` metrics. Feed statuses are shared over core NATS
//!   (`tickerd.feeds.<node>`), so every node's `$sys.feeds` shows every feed,
//!   remote ones with a `node` field.
//!
//! [`Hub::insert_relayed`]: crate::hub::Hub

mod leases;
mod link;
mod relay;

use link::{show_link, until_connected, LinkLog};

use std::collections::BTreeMap;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ClusterConfig, FeedConfig};
use crate::feeds::{FeedSupervisor, FEEDS_TOPIC};
use crate::hub::Hub;
use crate::metrics::{render_rows, Counter};
use crate::sync::MutexExt;

/// The topic carrying this node's view of the cluster.
pub const CLUSTER_TOPIC: &str = "$sys.cluster";

/// The JetStream stream holding every topic's recent updates.
const STREAM: &str = "TICKERD";
/// Topic `t` travels on subject `tickerd.t.<t>`.
const SUBJECT_PREFIX: &str = "tickerd.t.";
/// Feed name -> owning node, with the lease as `max_age`.
const FEEDS_BUCKET: &str = "tickerd_feeds";
/// Node name -> its start time, with the lease as `max_age`.
const NODES_BUCKET: &str = "tickerd_nodes";

/// Cluster counters, rendered at `/metrics`.
#[derive(Debug, Default)]
struct ClusterMetrics {
    connected: Counter,
    nodes: Counter,
    owned_feeds: Counter,
    acquired: Counter,
    originated: Counter,
    relayed: Counter,
    conflicts: Counter,
    publish_failures: Counter,
}

/// This node's view, published on `$sys.cluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct View {
    node: String,
    /// Is the link to NATS up?
    connected: bool,
    epoch: String,
    /// Nodes that renewed their presence within the last lease.
    nodes: Vec<String>,
    /// Every enabled feed and the node running it (`null`: none right now).
    feeds: BTreeMap<String, Option<String>>,
}

/// A node's link to the cluster. Built by [`Cluster::start`] when the config has
/// `[cluster]`; owned by the ticker.
pub(crate) struct Cluster {
    node: Arc<str>,
    lease: Duration,
    client: async_nats::Client,
    hub: Hub,
    feeds: Arc<FeedSupervisor>,
    /// The feeds the config defines; the lease keeper runs the owned ones.
    desired: watch::Sender<Arc<Vec<FeedConfig>>>,
    /// `history.size`: the stream keeps this many messages per subject.
    history: watch::Sender<usize>,
    metrics: ClusterMetrics,
    view: Mutex<View>,
    /// True once the hub holds the cluster's epoch (read from the stream);
    /// until then no client may be handed one (see [`Cluster::wait_for_epoch`]).
    epoch_known: watch::Sender<bool>,
    cancel: CancellationToken,
}

impl Cluster {
    /// Connects (in the background: an unreachable NATS is retried, not fatal),
    /// routes the hub's publishes through NATS, and starts following the stream
    /// and keeping leases. Feeds run only once their lease is held.
    ///
    /// # Errors
    /// The credentials file cannot be read.
    pub(crate) async fn start(
        config: &ClusterConfig,
        history: usize,
        hub: Hub,
        feeds: Arc<FeedSupervisor>,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> std::io::Result<Arc<Cluster>> {
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("tickerd-{}", config.node))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(2))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * attempt as u64).clamp(100, 1000))
            });
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &config.credentials {
            options = options.credentials_file(path).await?;
        }
        let urls = config.urls().join(",");
        let up = watch::Sender::new(false);
        let link = up.subscribe();
        let log = Arc::new(LinkLog {
            urls: urls.clone(),
            last: Mutex::default(),
            up,
        });
        options = options.event_callback(move |event| {
            log.note(event);
            async {}
        });
        let client = options
            .connect(urls.as_str())
            .await
            .map_err(|e| std::io::Error::other(format!("NATS at {urls}: {e}")))?;
        let cluster = Arc::new(Cluster {
            node: config.node.as_str().into(),
            lease: config.lease,
            client,
            hub: hub.clone(),
            feeds,
            desired: watch::Sender::new(Arc::new(Vec::new())),
            history: watch::Sender::new(history),
            metrics: ClusterMetrics::default(),
            view: Mutex::new(View {
                node: config.node.clone(),
                epoch: hub.epoch().to_string(),
                ..View::default()
            }),
            epoch_known: watch::Sender::new(false),
            cancel,
        });
        info!(node = %cluster.node, nats = %urls, "Cluster mode: following NATS.");
        let publisher = relay::Publisher::new(cluster.clone(), tasks.clone());
        hub.set_relay(Box::new(move |out| publisher.submit(out)));
        tasks.spawn(relay::follow(cluster.clone()));
        tasks.spawn(leases::keep(cluster.clone()));
        tasks.spawn(share_feed_statuses(cluster.clone()));
        tasks.spawn(show_link(cluster.clone(), link));
        cluster.publish_view();
        Ok(cluster)
    }

    /// Takes a (new) config's feeds and history size. The lease keeper starts
    /// and stops feeds to match what this node owns.
    pub(crate) fn apply(&self, feeds: &[FeedConfig], history: usize) {
        self.desired.send_replace(Arc::new(feeds.to_vec()));
        self.history
            .send_if_modified(|h| std::mem::replace(h, history) != history);
    }

    /// Has this node adopted the cluster's epoch? Before that, the hub's epoch
    /// is its own random one, which no other node would honour.
    pub(crate) fn epoch_known(&self) -> bool {
        *self.epoch_known.borrow()
    }

    /// Waits up to `wait` for the cluster's epoch; true once it is known.
    pub(crate) async fn wait_for_epoch(&self, wait: Duration) -> bool {
        let mut known = self.epoch_known.subscribe();
        tokio::select! {
            r = tokio::time::timeout(wait, known.wait_for(|k| *k)) => r.is_ok_and(|r| r.is_ok()),
            _ = self.cancel.cancelled() => false,
        }
    }

    /// A JetStream context whose requests give up after `timeout`.
    fn jetstream(&self, timeout: Duration) -> jetstream::Context {
        let mut js = jetstream::new(self.client.clone());
        js.set_timeout(timeout);
        js
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream, or brings its per-subject limit in line with
    /// `history.size`; returns the cluster's epoch.
    async fn ensure_stream(&self, js: &jetstream::Context) -> anyhow::Result<String> {
        let per_subject = (*self.history.borrow()).max(1) as i64;
        let config = jetstream::stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            max_messages_per_subject: per_subject,
            storage: jetstream::stream::StorageType::File,
            discard: jetstream::stream::DiscardPolicy::Old,
            duplicate_window: Duration::from_secs(30),
            description: Some("tickerd: recent updates of every topic".into()),
            ..Default::default()
        };
        let stream = js.get_or_create_stream(config.clone()).await?;
        let info = stream.cached_info();
        if info.config.max_messages_per_subject != per_subject {
            js.update_stream(config).await?;
            info!(per_subject, "Cluster stream: history limit updated.");
        }
        Ok(format!("{:x}", info.created.unix_timestamp_nanos()))
    }

    /// Publishes `$sys.cluster` if this node's view changed.
    fn update_view(&self, f: impl FnOnce(&mut View)) {
        let changed = {
            let mut view = self.view.lock_or_recover();
            let before = view.clone();
            f(&mut view);
            *view != before
        };
        if changed {
            self.publish_view();
        }
    }

    fn publish_view(&self) {
        let view = self.view.lock_or_recover().clone();
        if let Err(e) = self.hub.publish(CLUSTER_TOPIC, &view) {
            warn!(error = %e, "Could not publish the cluster view.");
        }
    }

    /// Appends the `tickerd_cluster_*` families in Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let m = &self.metrics;
        let rows: [(&str, &str, &str, &Counter); 8] = [
            (
                "tickerd_cluster_connected",
                "gauge",
                "1 while the link to NATS is up.",
                &m.connected,
            ),
            (
                "tickerd_cluster_nodes",
                "gauge",
                "Nodes seen within the last lease.",
                &m.nodes,
            ),
            (
                "tickerd_cluster_owned_feeds",
                "gauge",
                "Feeds this node owns and runs.",
                &m.owned_feeds,
            ),
            (
                "tickerd_cluster_feeds_acquired_total",
                "counter",
                "Feed leases this node acquired.",
                &m.acquired,
            ),
            (
                "tickerd_cluster_originated_total",
                "counter",
                "Updates this node sequenced into the stream.",
                &m.originated,
            ),
            (
                "tickerd_cluster_relayed_total",
                "counter",
                "Updates taken from the stream into this node's hub.",
                &m.relayed,
            ),
            (
                "tickerd_cluster_conflicts_total",
                "counter",
                "Publishes re-sequenced after another node took the seq.",
                &m.conflicts,
            ),
            (
                "tickerd_cluster_publish_failures_total",
                "counter",
                "Updates NATS did not take in time (dropped).",
                &m.publish_failures,
            ),
        ];
        render_rows(out, &rows);
    }
}

/// Sends this node's `$sys.feeds` updates to the other nodes, and publishes
/// theirs here with a `node` field. Only updates without `node` (this node's
/// own) are sent, so nothing echoes back. Best effort: a status lost while the
/// link is down is sent again by the next report.
async fn share_feed_statuses(cluster: Arc<Cluster>) {
    let Ok(mut local) = cluster.hub.subscribe([FEEDS_TOPIC]) else {
        return;
    };
    let mine = format!("tickerd.feeds.{}", cluster.node);
    let mut remote = match cluster.client.subscribe("tickerd.feeds.*").await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "Feed statuses of other nodes will not be shown here.");
            return;
        }
    };
    loop {
        tokio::select! {
            update = local.next() => {
                let Some(update) = update else { return };
                if update.data().get("node").is_none() {
                    let body = update.data().to_string();
                    let _ = cluster.client.publish(mine.clone(), body.into()).await;
                }
            }
            message = remote.next() => {
                let Some(message) = message else { return };
                let Some(node) = message.subject.strip_prefix("tickerd.feeds.") else { continue };
                if node == &*cluster.node {
                    continue;
                }
                let Ok(serde_json::Value::Object(mut status)) = serde_json::from_slice(&message.payload) else {
                    continue;
                };
                status.insert("node".into(), node.into());
                match status.get("feed").and_then(|f| f.as_str()).map(str::to_string) {
                    Some(feed) if crate::topic::validate_topic(&crate::feeds::feed_topic(&feed)).is_ok() => {
                        crate::feeds::publish_status(&cluster.hub, &feed, &status);
                    }
                    _ => {
                        let _ = cluster.hub.publish(FEEDS_TOPIC, &status);
                    }
                }
            }
            _ = cluster.cancel.cancelled() => return,
        }
    }
}
