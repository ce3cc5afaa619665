//! The embedding API: [`TickerBuilder`] starts a [`Ticker`], which owns the hub,
//! the running feeds and the settings that connections read.
//!
//! The standalone binary is a user of this API like any host application: it
//! builds a `Ticker`, serves its router, and calls [`Ticker::shutdown`] on a
//! signal. Reload (`Ticker::reload`, `Ticker::apply`) validates first and applies
//! only a whole valid config: limits, history, tokens and origins take effect for
//! new connections; feeds change by difference.

mod builder;

pub use builder::{StartError, TickerBuilder};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, ConfigErrors, Dashboard, FeedConfig};
use crate::feeds::{Diff, FeedStatus};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::reload::ConfigWatch;
use crate::state::{AppState, Settings};
use crate::sync::RwLockExt;

/// The topic carrying reload results.
pub const CONFIG_TOPIC: &str = "$sys.config";

/// The topic carrying every dashboard definition, as one JSON object
/// `{"NAME": {"title", "columns", "panels": [...]}}`: published at start and
/// after each reload that changed a dashboard. One topic rather than one per
/// dashboard, so a removed dashboard needs no tombstone and a page learns of
/// every change from a single subscription.
pub const DASHBOARDS_TOPIC: &str = "$sys.dashboards";

/// A running ticker: hub, feeds and the router that serves them.
#[derive(Clone)]
pub struct Ticker {
    pub(crate) shared: Arc<AppState>,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("hub", &self.shared.hub)
            .finish_non_exhaustive()
    }
}

impl Ticker {
    /// A builder; without a config it runs the built-in default.
    pub fn builder() -> TickerBuilder {
        TickerBuilder::default()
    }

    /// The hub: publish into topics and read snapshots from your own code.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// The process's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The router serving `/ws`, `/api/*`, `/metrics`, `/healthz` and the web
    /// assets. It carries its own state, so it fits any host `Router<S>`:
    /// `.nest("/live", ticker.router())` or `.merge(ticker.router())`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        crate::server::router(self.shared.clone())
    }

    /// The config in force.
    pub async fn config(&self) -> Config {
        self.shared.config.lock().await.clone()
    }

    /// Every feed's status.
    pub async fn feed_statuses(&self) -> Vec<FeedStatus> {
        self.shared.feeds.statuses().await
    }

    /// Serves the router on `listener` until shutdown, then waits (up to 3 s)
    /// for sessions and feeds to end. HTTP/1.1 with the hardening of `[limits]`
    /// (header timeout and size); see `server::listener`. To serve the router
    /// inside your own app instead, see [`Ticker::router`].
    ///
    /// # Errors
    /// The listener fails.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        crate::server::serve(self.shared.clone(), self.router::<()>(), listener).await?;
        self.stopped(Duration::from_secs(3)).await;
        Ok(())
    }

    /// Asks everything to stop: the server stops accepting, clients get Close
    /// 1001, feeds stop and their children are killed.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    /// A token cancelled when the ticker shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }

    /// After [`Ticker::shutdown`]: waits up to `deadline` for sessions and feeds.
    pub async fn stopped(&self, deadline: Duration) {
        self.shared.cancel.cancel();
        let shared = self.shared.clone();
        let wait = async move {
            shared.feeds.stop_all().await;
            shared.tasks.close();
            shared.tasks.wait().await;
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            warn!("Some tasks did not stop in time.");
        }
    }

    /// Re-reads the config file given to the builder and applies it. An invalid
    /// config changes nothing; either way the outcome is published on
    /// `$sys.config`. An empty (or whitespace-only) file is not ready yet (an
    /// editor truncated it and has not written yet): nothing changes, nothing is
    /// published, and the result is an empty [`Diff`].
    ///
    /// # Errors
    /// The new config is invalid (the old one keeps running), or the ticker was
    /// not started from a file.
    pub async fn reload(&self) -> Result<Diff, ConfigErrors> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let path = self.shared.config.lock().await.path.clone();
        let Some(path) = path else {
            return Err(ConfigErrors(vec![crate::config::ConfigError {
                location: None,
                feed: None,
                message: "this ticker was not started from a config file".into(),
            }]));
        };
        let kinds = self.shared.feeds.kinds().clone();
        let loaded = match Config::load_unless_blank(&path, &kinds) {
            Ok(None) => {
                // An editor truncates, then writes: its write is the next reload.
                info!(path = %path.display(), "Config file is empty; keeping the running config until it has content.");
                return Ok(Diff::default());
            }
            Ok(Some(c)) => Ok(self.shared.adjust.apply(c)),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(config) => {
                log_warnings(&config);
                Ok(self.apply_now(config).await)
            }
            Err(errors) => {
                self.shared
                    .metrics
                    .reload_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                warn!(errors = %errors, "Config reload refused; the running config is unchanged.");
                let _ = self.shared.hub.publish(
                    CONFIG_TOPIC,
                    &json!({"ok": false, "error": errors.to_string()}),
                );
                Err(errors)
            }
        }
    }

    /// Applies a validated config: settings for new connections, history size,
    /// and feeds by difference. Publishes the outcome on `$sys.config`.
    pub async fn apply(&self, config: Config) -> Diff {
        let _one_at_a_time = self.shared.reloading.lock().await;
        self.apply_now(config).await
    }

    /// [`Ticker::apply`] for a caller that holds `reloading`.
    async fn apply_now(&self, config: Config) -> Diff {
        let mut current = self.shared.config.lock().await;
        let mut restart_needed = Vec::new();
        if config.server.listen != current.server.listen {
            warn!(old = %current.server.listen, new = %config.server.listen, "server.listen changed: restart tickerd to apply it.");
            restart_needed.push("server.listen");
        }
        if config.cluster != current.cluster {
            warn!("[cluster] changed: restart tickerd to apply it.");
            restart_needed.push("cluster");
        }
        let (h, c) = (&config.history, &current.history);
        if (&h.path, h.sync, h.sync_interval) != (&c.path, c.sync, c.sync_interval) {
            warn!("[history] path, sync or sync_interval changed: restart tickerd to apply it.");
        }
        match (&config.server.tls, &self.shared.tls) {
            (Some(tls), Some(served)) if config.server.tls != current.server.tls => {
                // Checked when the config was loaded; a config given as a
                // value gets the same check here and keeps the pair in force.
                match crate::config::certified_key(tls) {
                    Ok(pair) => {
                        served.swap(pair);
                        info!(cert = %tls.cert.display(), "TLS certificate reloaded.");
                    }
                    Err((_, why)) => warn!(error = %why, "TLS certificate not reloaded."),
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                warn!("[server.tls] added or removed: restart tickerd to apply it.");
                restart_needed.push("server.tls");
            }
            _ => {}
        }
        *self.shared.settings.write_or_recover() = Arc::new(Settings::from_config(&config));
        self.shared.hub.set_history_size(config.history.size);
        self.shared.hub.set_max_topics(config.limits.max_topics);
        self.shared.hub.set_max_history(config.limits.max_history);
        self.shared
            .hub
            .set_feeds(config.feeds.iter().map(|f| f.name.clone()));
        let diff = apply_feeds(&self.shared, &current.feeds, &config).await;
        if config.dashboards != current.dashboards {
            info!(dashboards = config.dashboards.len(), "Dashboards changed.");
            publish_dashboards(&self.shared, &config.dashboards);
        }
        // Removed feeds' topics, and those a changed template no longer fills.
        crate::feeds::settle_topics(&self.shared.hub, &current.feeds, &config.feeds, &diff);
        self.shared
            .metrics
            .reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(added = ?diff.added, changed = ?diff.changed, removed = ?diff.removed, "Config reloaded.");
        publish_config_ok(&self.shared, &config, &diff, &restart_needed);
        *current = config;
        diff
    }

    /// The config file this ticker was started from, if any.
    pub async fn config_path(&self) -> Option<PathBuf> {
        self.shared.config.lock().await.path.clone()
    }

    /// Follows edits of the config file, its feeds directory and its
    /// dashboards directory (debounced; each burst is one [`Ticker::reload`])
    /// until shutdown. Spawn it as a task. Returns at once
    /// when the ticker was not started from a file
    /// ([`TickerBuilder::config_path`]).
    pub async fn watch(&self) {
        let (path, dir, dash, files) = {
            let c = self.shared.config.lock().await;
            (
                c.path.clone(),
                c.feeds_dir.clone(),
                c.dashboards_dir.clone(),
                read_files(&c),
            )
        };
        let Some(path) = path else { return };
        let Some(mut watch) = ConfigWatch::new(
            &path,
            dir.as_deref().unwrap_or(Path::new("")),
            dash.as_deref().unwrap_or(Path::new("")),
            &files,
        ) else {
            return;
        };
        let cancel = self.shutdown_token();
        loop {
            tokio::select! {
                got = watch.changed() => if got.is_none() { return },
                () = cancel.cancelled() => return,
            }
            debug!("Config files changed; reloading.");
            let _ = self.reload().await;
            let config = self.config().await;
            watch.follow_files(&read_files(&config));
            let Some(dir) = config.feeds_dir else {
                continue;
            };
            if watch.follow_feeds_dir(&dir) {
                let _ = self.reload().await;
            }
        }
    }
}

/// The files `config` reads besides its own and its directories' (watched for
/// changes): `[server.tls]`'s certificate and key.
fn read_files(config: &Config) -> Vec<PathBuf> {
    config
        .server
        .tls
        .iter()
        .flat_map(|t| [t.cert.clone(), t.key.clone()])
        .collect()
}

/// Hands `config`'s feeds to the cluster (which runs the ones this node owns)
/// or, on a single node, to the supervisor. Returns the change against `old`.
async fn apply_feeds(shared: &AppState, old: &[FeedConfig], config: &Config) -> Diff {
    match &shared.cluster {
        Some(cluster) => {
            cluster.apply(&config.feeds, config.history.size);
            crate::feeds::diff(old, &config.feeds)
        }
        None => shared.feeds.apply(&config.feeds).await,
    }
}

/// Logs what the config allows but is probably a mistake.
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        warn!(warning = %w, "Config warning.");
    }
}

/// Publishes every dashboard definition on [`DASHBOARDS_TOPIC`].
fn publish_dashboards(shared: &AppState, dashboards: &BTreeMap<String, Dashboard>) {
    if let Err(e) = shared.hub.publish(DASHBOARDS_TOPIC, dashboards) {
        warn!(error = %e, "Cannot publish the dashboards.");
    }
}

/// Deletes topics not updated for their `ttl` (a feed's) or `[limits]
/// topic_ttl` (topics without a feed), until shutdown: one task for all
/// topics, checking a tenth of the shortest ttl in force (within 250 ms..30 s).
async fn sweep_expired(shared: Arc<AppState>) {
    loop {
        let settings = shared.settings();
        let shortest = settings
            .ttls
            .values()
            .chain(settings.limits.topic_ttl.as_ref())
            .min()
            .copied();
        let period = shortest.map_or(Duration::from_secs(1), |d| {
            (d / 10).clamp(Duration::from_millis(250), Duration::from_secs(30))
        });
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        if shortest.is_none() {
            continue;
        }
        let now = crate::hub::now_ms();
        let expired = |ts: u64, ttl: Option<&Duration>| {
            ttl.is_some_and(|d| now.saturating_sub(ts) > d.as_millis() as u64)
        };
        let n = shared.hub.delete_where(|_, feed, ts| match feed {
            Some(f) => expired(ts, settings.ttls.get(f)),
            None => expired(ts, settings.limits.topic_ttl.as_ref()),
        });
        if n > 0 {
            info!(topics = n, "Expired topics deleted (ttl).");
        }
    }
}

/// `{"ok":true,...}` on `$sys.config`; `restart_needed` (present only when not
/// empty) names settings that changed but apply only after a restart.
fn publish_config_ok(shared: &AppState, config: &Config, diff: &Diff, restart_needed: &[&str]) {
    let mut msg = json!({"ok": true, "feeds": config.feeds.len(), "dashboards": config.dashboards.len(),
        "added": diff.added, "changed": diff.changed, "removed": diff.removed});
    if !restart_needed.is_empty() {
        msg["restart_needed"] = json!(restart_needed);
    }
    let _ = shared.hub.publish(CONFIG_TOPIC, &msg);
}
