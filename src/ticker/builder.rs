//! [`TickerBuilder`]: where the config comes from (file, text, value or the
//! built-in default), which custom kinds it may name, and the start itself:
//! hub, store, cluster link and feeds, in that order.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    apply_feeds, log_warnings, publish_config_ok, publish_dashboards, sweep_expired, Ticker,
};
use crate::cluster::Cluster;
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::delivery::Pacer;
use crate::feeds::{Feed, FeedSupervisor, Kinds};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::state::{Adjust, AppState, Settings};

/// Builds a [`Ticker`].
#[derive(Debug, Default)]
pub struct TickerBuilder {
    config: Option<Config>,
    toml: Option<String>,
    path: Option<PathBuf>,
    kinds: Kinds,
    cancel: Option<CancellationToken>,
    adjust: Adjust,
}

/// Why a ticker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The config is invalid.
    #[error("invalid config:\n{0}")]
    Config(#[from] ConfigErrors),
    /// `[cluster]` could not be set up (e.g. its credentials file is unreadable).
    /// An unreachable NATS is not an error: it is retried in the background.
    #[error("cluster: {0}")]
    Cluster(#[source] std::io::Error),
    /// [`TickerBuilder::start_listening`] could not bind `server.listen`.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why it could not be bound (e.g. already in use).
        source: std::io::Error,
    },
    /// `[history] path`: the durable store cannot be opened or read (its path
    /// and the reason are in the message).
    #[error("{0}")]
    Store(#[from] crate::hub::StoreError),
}

impl TickerBuilder {
    /// Uses this config (no file is watched).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Parses this TOML text as the config at start (after every [`kind`] is
    /// registered, so custom kinds are known). No file is read or watched:
    /// `feeds_dir` is ignored.
    ///
    /// [`kind`]: TickerBuilder::kind
    pub fn config_toml(mut self, text: impl Into<String>) -> Self {
        self.toml = Some(text.into());
        self
    }

    /// Loads the config from `path` at start; [`Ticker::reload`] re-reads it and
    /// [`Ticker::watch`] follows edits.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Registers a feed kind of your own: `[[feed]]` tables with `kind = name`
    /// are built by `make` from their options (every key but `name`, `kind`,
    /// `topic`, `enabled`, `stale_after`, `transform`, `max_item_bytes`,
    /// `history`, `ttl` and `on_remove`), deserialized into `O`: your own
    /// `#[derive(Deserialize)]` struct, or [`toml::Table`] to take them raw.
    ///
    /// `make` runs each time the feed starts: at start, and on a reload that
    /// changed the feed's table. Options that do not deserialize, or an `Err`
    /// from `make`, mark the feed `failed` on `$sys.feeds` until its config
    /// changes; an `Err` from [`Feed::run`] is retried with backoff.
    pub fn kind<O, F, M>(mut self, name: &str, make: M) -> Self
    where
        O: serde::de::DeserializeOwned,
        F: Feed,
        M: Fn(O) -> anyhow::Result<F> + Send + Sync + 'static,
    {
        self.kinds.register(name, make);
        self
    }

    /// Shuts the ticker down when `token` is cancelled (the host's own token).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Changes every config this ticker loads, at start and on each reload, before
    /// it is applied: e.g. command-line overrides that must survive a reload.
    pub fn adjust(mut self, f: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.adjust = Adjust(Some(Arc::new(f)));
        self
    }

    /// Loads the config (if a path was given), starts the feeds and returns the
    /// running ticker. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// The config file or text is invalid.
    pub async fn start(self) -> Result<Ticker, StartError> {
        let config = self.load()?;
        self.launch(config).await
    }

    /// Like [`TickerBuilder::start`], but first binds the config's
    /// `server.listen` and only then starts feeds and the cluster link: a port
    /// in use fails before any feed runs a program or claims a lease. Serve the
    /// listener with [`Ticker::serve`].
    ///
    /// # Errors
    /// The config is invalid, or its address cannot be bound.
    pub async fn start_listening(self) -> Result<(Ticker, TcpListener), StartError> {
        let config = self.load()?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        Ok((self.launch(config).await?, listener))
    }

    /// The config to start with (file, text, value or built-in), checked
    /// against the registered kinds, and adjusted.
    fn load(&self) -> Result<Config, StartError> {
        let config = match (&self.path, &self.toml, &self.config) {
            (Some(path), _, _) => Config::load_with(path, &self.kinds)?,
            (None, Some(text), _) => Config::parse(text, Path::new("<config>"), None, &self.kinds)?,
            (None, None, Some(c)) => c.clone(),
            (None, None, None) => Config::builtin_with(&self.kinds),
        };
        let config = self.adjust.apply(config);
        log_warnings(&config);
        Ok(config)
    }

    /// Builds the hub, the cluster link (if any) and the feeds of `config`.
    async fn launch(self, config: Config) -> Result<Ticker, StartError> {
        // A config given as a value was not loaded from files: its pair is
        // checked here, by the same rule as a loaded one.
        let tls = match &config.server.tls {
            Some(tls) => match crate::config::certified_key(tls) {
                Ok(pair) => Some(Arc::new(crate::config::ServedCert::new(pair))),
                Err((_, message)) => {
                    return Err(StartError::Config(ConfigErrors(vec![ConfigError {
                        location: None,
                        feed: None,
                        message,
                    }])))
                }
            },
            None => None,
        };
        let kinds = self.kinds;
        let metrics = Arc::new(Metrics::default());
        let cancel = self
            .cancel
            .map_or_else(CancellationToken::new, |t| t.child_token());
        let hub = Hub::with_shutdown(config.history.size, metrics.clone(), cancel.clone());
        hub.set_max_topics(config.limits.max_topics);
        hub.set_max_history(config.limits.max_history);
        let tasks = TaskTracker::new();
        if let Some(dir) = &config.history.path {
            hub.open_store(
                dir,
                config.history.sync,
                config.history.sync_interval,
                &tasks,
                cancel.clone(),
            )?;
        }
        let feeds = FeedSupervisor::new(hub.clone(), kinds, cancel.clone(), tasks.clone());
        let cluster = match &config.cluster {
            Some(c) => Some(
                Cluster::start(
                    c,
                    config.history.size,
                    hub.clone(),
                    feeds.clone(),
                    cancel.clone(),
                    &tasks,
                )
                .await
                .map_err(StartError::Cluster)?,
            ),
            None => None,
        };
        let pacer = Pacer::start(&tasks, &cancel);
        tasks.spawn(hub.close_all_on_shutdown());
        let shared = Arc::new(AppState {
            hub,
            pacer,
            metrics,
            settings: RwLock::new(Arc::new(Settings::from_config(&config))),
            config: tokio::sync::Mutex::new(config.clone()),
            reloading: tokio::sync::Mutex::new(()),
            feeds,
            cluster,
            cancel,
            tasks,
            peers: Default::default(),
            http_peers: Default::default(),
            adjust: self.adjust,
            tls,
        });
        shared
            .hub
            .set_feeds(config.feeds.iter().map(|f| f.name.clone()));
        // Restored from the store: the status topics of feeds that left the
        // config while the server was down.
        for t in shared.hub.topics() {
            let feed = t
                .topic
                .strip_prefix(crate::feeds::FEEDS_TOPIC)
                .and_then(|r| r.strip_prefix('.'));
            if feed.is_some_and(|f| config.feed(f).is_none()) {
                shared.hub.delete_topic(&t.topic);
            }
        }
        let diff = apply_feeds(&shared, &[], &config).await;
        publish_dashboards(&shared, &config.dashboards);
        publish_config_ok(&shared, &config, &diff, &[]);
        shared.tasks.spawn(sweep_expired(shared.clone()));
        Ok(Ticker { shared })
    }
}
