//! The NATS link: its events logged without flooding, its state shown in
//! `$sys.cluster` and `/metrics` as it changes, and a wait for it to come up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::Cluster;
use crate::sync::MutexExt;

/// How often a NATS link that keeps failing is logged again.
const LINK_LOG_EVERY: Duration = Duration::from_secs(30);

/// Logs the NATS link's events with its URL: failures at WARN, at most once per
/// [`LINK_LOG_EVERY`] (with how many were not logged), so a NATS that is down
/// does not flood the log; (re)connection at INFO.
pub(super) struct LinkLog {
    pub(super) urls: String,
    /// When a failure was last logged, and how many came since.
    pub(super) last: Mutex<(Option<std::time::Instant>, u64)>,
    /// Whether the link is up, as of the latest event.
    pub(super) up: watch::Sender<bool>,
}

impl LinkLog {
    pub(super) fn note(&self, event: async_nats::Event) {
        use async_nats::Event;
        let urls = &self.urls;
        let problem = match event {
            Event::Connected => {
                self.up.send_replace(true);
                *self.last.lock_or_recover() = (None, 0);
                info!(nats = %urls, "Connected to NATS.");
                return;
            }
            Event::Disconnected => {
                self.up.send_replace(false);
                "disconnected".to_string()
            }
            Event::ServerError(e) => format!("server error: {e}"),
            Event::ClientError(e) => format!("cannot connect: {e}"),
            other => {
                tracing::debug!(nats = %urls, event = %other, "NATS event.");
                return;
            }
        };
        let repeated = {
            let mut last = self.last.lock_or_recover();
            match last.0 {
                Some(at) if at.elapsed() < LINK_LOG_EVERY => {
                    last.1 += 1;
                    return;
                }
                _ => std::mem::replace(&mut *last, (Some(std::time::Instant::now()), 0)).1,
            }
        };
        warn!(nats = %urls, error = %problem, repeated, "NATS link problem; retrying.");
    }
}

/// Shows the link's state in `$sys.cluster` and `/metrics` as soon as it
/// changes: the lease keeper may be waiting on NATS requests that time out
/// when the link drops, and would report it only after them.
pub(super) async fn show_link(cluster: Arc<Cluster>, mut link: watch::Receiver<bool>) {
    loop {
        let up = *link.borrow_and_update();
        cluster
            .metrics
            .connected
            .store(u64::from(up), std::sync::atomic::Ordering::Relaxed);
        cluster.update_view(|v| {
            v.connected = up;
            if !up {
                v.feeds.values_mut().for_each(|o| *o = None);
            }
        });
        tokio::select! {
            changed = link.changed() => if changed.is_err() { return },
            _ = cluster.cancel.cancelled() => return,
        }
    }
}

/// Waits until `cluster`'s link is up; false when shutting down first.
pub(super) async fn until_connected(cluster: &Cluster) -> bool {
    loop {
        if cluster.connected() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cluster.cancel.cancelled() => return false,
        }
    }
}
