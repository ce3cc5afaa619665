//! Feed ownership: each enabled feed runs on the one node holding its key in the
//! `tickerd_feeds` KV bucket, whose `max_age` is the lease.
//!
//! Every quarter lease the keeper renews the keys it holds (compare-and-set on
//! the revision), tries to create the keys of feeds nobody holds, and announces
//! this node in `tickerd_nodes`. A key it cannot renew for half a lease is given
//! up locally (its feed stops) before the lease lapses in NATS, so two nodes
//! never run one feed; once it lapses another node creates it within a quarter
//! lease. On shutdown the keeper deletes its keys so others take over at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Store, UpdateErrorKind};
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Cluster, FEEDS_BUCKET, NODES_BUCKET};
use crate::config::FeedConfig;
use crate::hub::now_ms;

/// A feed key this node holds.
struct Held {
    revision: u64,
    renewed: Instant,
}

/// The two buckets, opened once the link is up.
struct Buckets {
    feeds: Store,
    nodes: Store,
}

/// Keeps this node's leases and runs the feeds it owns, until shutdown.
pub(super) async fn keep(cluster: Arc<Cluster>) {
    let mut desired = cluster.desired.subscribe();
    let mut owned: HashMap<String, Held> = HashMap::new();
    let mut buckets: Option<Buckets> = None;
    let started = now_ms();
    loop {
        let connected = cluster.connected();
        let configs = desired.borrow_and_update().clone();
        let mut owners = BTreeMap::new();
        let mut nodes = None;
        if connected && buckets.is_none() {
            match open(&cluster).await {
                Ok(b) => buckets = Some(b),
                Err(e) => warn!(error = %e, "Cluster KV buckets unavailable; retrying."),
            }
        }
        if let (true, Some(b)) = (connected, &buckets) {
            renew_and_claim(&cluster, b, &configs, &mut owned, &mut owners).await;
            nodes = announce(&cluster, b, started).await;
            if nodes.is_none() {
                // NATS answered but not as expected (e.g. it lost its store and
                // the buckets with it): open them again next round.
                buckets = None;
            }
        }
        // A lease not renewed for half its length may be lapsing in NATS: stop
        // its feed now, before another node can take it.
        owned.retain(|name, held| {
            let fresh = held.renewed.elapsed() < cluster.lease / 2;
            if !fresh {
                warn!(feed = %name, "Feed lease not renewed in time; stopping the feed here.");
            }
            fresh
        });
        if cluster.cancel.is_cancelled() {
            break;
        }
        let run: Vec<FeedConfig> = configs
            .iter()
            .filter(|c| !c.enabled || owned.contains_key(&c.name))
            .cloned()
            .collect();
        cluster.feeds.apply(&run).await;
        let m = &cluster.metrics;
        m.owned_feeds.store(owned.len() as u64, Ordering::Relaxed);
        // The link may have dropped while this round waited on NATS; its
        // state itself is shown as it changes (`show_link`).
        let connected = connected && cluster.connected();
        cluster.update_view(|v| {
            if let Some(nodes) = nodes {
                m.nodes.store(nodes.len() as u64, Ordering::Relaxed);
                v.nodes = nodes;
            }
            if connected {
                v.feeds = owners;
            } else {
                v.feeds.values_mut().for_each(|o| *o = None);
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(cluster.lease / 4) => {}
            _ = desired.changed() => {}
            _ = cluster.cancel.cancelled() => break,
        }
    }
    if let Some(b) = &buckets {
        release(&cluster, b, &owned).await;
    }
}

/// Opens (creating them if need be) the two buckets. Their streams are made
/// here rather than by `create_key_value`, which first asks for account info in
/// a shape newer than the nats-server 2.9 that Debian ships.
async fn open(cluster: &Cluster) -> anyhow::Result<Buckets> {
    let js = cluster.jetstream(Duration::from_secs(2));
    let open = async |bucket: &str| -> anyhow::Result<Store> {
        let config = stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: cluster.lease,
            // The server wants the duplicate window within max_age.
            duplicate_window: cluster.lease,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        };
        let s = js.get_or_create_stream(config.clone()).await?;
        if s.cached_info().config.max_age != cluster.lease {
            js.update_stream(config).await?;
        }
        Ok(js.get_key_value(bucket).await?)
    };
    Ok(Buckets {
        feeds: open(FEEDS_BUCKET).await?,
        nodes: open(NODES_BUCKET).await?,
    })
}

/// One round over the enabled feeds: renew what is held, claim what is free,
/// note every feed's owner; then give back keys of feeds the config dropped.
async fn renew_and_claim(
    cluster: &Cluster,
    b: &Buckets,
    configs: &[FeedConfig],
    owned: &mut HashMap<String, Held>,
    owners: &mut BTreeMap<String, Option<String>>,
) {
    let me = Bytes::from(cluster.node.to_string());
    for c in configs.iter().filter(|c| c.enabled) {
        let name = &c.name;
        if let Some(held) = owned.get_mut(name) {
            match b.feeds.update(name, me.clone(), held.revision).await {
                Ok(revision) => {
                    held.revision = revision;
                    held.renewed = Instant::now();
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    warn!(feed = %name, "Feed lease lost to another node; stopping the feed here.");
                    owned.remove(name);
                }
                Err(e) => debug!(feed = %name, error = %e, "Feed lease renewal failed."),
            }
        } else {
            match b.feeds.create(name, me.clone()).await {
                Ok(revision) => {
                    info!(feed = %name, "Feed lease acquired; starting the feed here.");
                    cluster.metrics.acquired.fetch_add(1, Ordering::Relaxed);
                    let renewed = Instant::now();
                    owned.insert(name.clone(), Held { revision, renewed });
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => debug!(feed = %name, error = %e, "Feed lease claim failed."),
            }
        }
        let owner = if owned.contains_key(name) {
            Some(cluster.node.to_string())
        } else {
            match b.feeds.get(name.as_str()).await {
                Ok(v) => v.map(|v| String::from_utf8_lossy(&v).into_owned()),
                Err(_) => None,
            }
        };
        owners.insert(name.clone(), owner);
    }
    let dropped: Vec<String> = owned
        .keys()
        .filter(|n| !configs.iter().any(|c| c.enabled && &c.name == *n))
        .cloned()
        .collect();
    for name in dropped {
        if let Some(held) = owned.remove(&name) {
            let _ = b
                .feeds
                .delete_expect_revision(&name, Some(held.revision))
                .await;
        }
    }
}

/// Renews this node's presence; returns every node present, sorted.
async fn announce(cluster: &Cluster, b: &Buckets, started: u64) -> Option<Vec<String>> {
    let me = serde_json::json!({ "started_ms": started }).to_string();
    if let Err(e) = b.nodes.put(&*cluster.node, me.into()).await {
        debug!(error = %e, "Node presence not renewed.");
        return None;
    }
    let keys = b.nodes.keys().await.ok()?;
    let mut nodes: Vec<String> = keys.try_collect().await.ok()?;
    nodes.sort();
    Some(nodes)
}

/// Gives back every held key (shutdown): other nodes take the feeds at once.
async fn release(cluster: &Cluster, b: &Buckets, owned: &HashMap<String, Held>) {
    let work = async {
        for (name, held) in owned {
            let _ = b
                .feeds
                .delete_expect_revision(name, Some(held.revision))
                .await;
        }
        let _ = b.nodes.delete(&*cluster.node).await;
    };
    if tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .is_err()
    {
        warn!("Could not give back feed leases in time; they lapse on their own.");
    }
}
