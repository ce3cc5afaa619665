//! What every layer above the feeds shares: the [`AppState`] that the router,
//! sessions and reload hold, the [`Settings`] that connections read (swapped
//! whole on reload), per-peer connection counts, and the [`ApiError`] that an
//! HTTP client is answered with.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::{Config, Dashboard, DashboardConfig, LimitsConfig};
use crate::delivery::Pacer;
use crate::feeds::FeedSupervisor;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::sync::{MutexExt, RwLockExt};

/// The part of the config that connections and HTTP handlers read; swapped
/// whole on reload.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) limits: LimitsConfig,
    pub(crate) heartbeat: Duration,
    pub(crate) flush_interval: Duration,
    /// `server.shutdown_timeout`: read when a shutdown begins, so a reload
    /// changes it for the next one.
    pub(crate) shutdown_timeout: Duration,
    /// `server.token` and `[[access]]`: who may connect and read what.
    pub(crate) access: crate::auth::Access,
    pub(crate) publish_token: Option<String>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) dashboard: DashboardConfig,
    /// The dashboards of `dashboards_dir`, by name.
    pub(crate) dashboards: Arc<BTreeMap<String, Dashboard>>,
    pub(crate) web_dir: Option<PathBuf>,
    /// Each feed's `ttl`, by feed name (feeds without one are absent).
    pub(crate) ttls: std::collections::HashMap<String, Duration>,
    /// `server.trusted_proxies`: peers whose forwarded headers name the client
    /// (see `server::forwarded`).
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
}

impl Settings {
    pub(crate) fn from_config(c: &Config) -> Self {
        Settings {
            limits: c.limits.clone(),
            heartbeat: c.server.heartbeat,
            flush_interval: c.server.flush_interval,
            shutdown_timeout: c.server.shutdown_timeout,
            access: crate::auth::Access::from_config(c),
            publish_token: c.server.publish_token.clone(),
            allowed_origins: c.server.allowed_origins.clone(),
            dashboard: c.dashboard.clone(),
            dashboards: Arc::new(c.dashboards.clone()),
            web_dir: c.server.web_dir.clone(),
            ttls: c
                .feeds
                .iter()
                .filter_map(|f| Some((f.name.clone(), f.ttl?)))
                .collect(),
            // Validated with the config: an entry that does not parse never gets here.
            trusted_proxies: c
                .server
                .trusted_proxies
                .iter()
                .filter_map(|t| crate::config::parse_cidr(t).ok())
                .collect(),
        }
    }
}

/// State shared by the router, sessions, feeds and reload.
pub(crate) struct AppState {
    pub(crate) hub: Hub,
    /// Writes `/ws` connections' paced frames (see `crate::delivery::Pacer`).
    pub(crate) pacer: Pacer,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: RwLock<Arc<Settings>>,
    pub(crate) config: tokio::sync::Mutex<Config>,
    /// Held from load to apply, so that two reloads (a file event and SIGHUP)
    /// never apply an older load after a newer one.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    pub(crate) feeds: Arc<FeedSupervisor>,
    /// `[cluster]` mode's link to NATS; it decides which feeds run here.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Cancelled on shutdown: stops feeds and closes sessions with 1001.
    pub(crate) cancel: CancellationToken,
    /// Every session and feed task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Open WebSocket connections per peer IP (`limits.max_connections_per_ip`).
    pub(crate) peers: PeerCounts,
    /// Open HTTP connections (not upgraded) per peer IP, capped at
    /// `limits.max_connections_per_ip` at accept.
    pub(crate) http_peers: PeerCounts,
    /// Applied to every config loaded from the file, at start and on reload.
    pub(crate) adjust: Adjust,
    /// `[server.tls]`'s certificate, when serving TLS: the listener's
    /// handshakes read it, a reload swaps it.
    pub(crate) tls: Option<Arc<crate::config::ServedCert>>,
}

/// A change applied to every loaded config (command-line overrides).
#[derive(Clone, Default)]
pub(crate) struct Adjust(pub(crate) Option<Arc<AdjustFn>>);

pub(crate) type AdjustFn = dyn Fn(&mut Config) + Send + Sync;

impl Adjust {
    pub(crate) fn apply(&self, mut config: Config) -> Config {
        if let Some(f) = &self.0 {
            f(&mut config);
        }
        config
    }
}

impl std::fmt::Debug for Adjust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Adjust(Some)"
        } else {
            "Adjust(None)"
        })
    }
}

impl AppState {
    /// The settings in force now (new connections take them).
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings.read_or_recover().clone()
    }
}

/// Open connections per peer IP, for `limits.max_connections_per_ip` (one
/// count for WebSockets, one for HTTP connections not upgraded). A std
/// `Mutex`: held for one map operation, never across `.await`, and only at
/// connect and disconnect.
#[derive(Debug, Default)]
pub(crate) struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

impl PeerCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock_or_recover()
    }

    /// Counts one more connection from `ip` unless it already has `max`.
    pub(crate) fn try_add(&self, ip: IpAddr, max: usize) -> bool {
        let mut peers = self.lock();
        let n = peers.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts one connection from `ip` fewer.
    pub(crate) fn remove(&self, ip: IpAddr) {
        let mut peers = self.lock();
        if let Some(n) = peers.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&ip);
            }
        }
    }
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(&'static str),
    NotFound(&'static str),
    TooLarge(usize),
    Unavailable(&'static str),
    /// The server holds as much as it may (`[limits] max_topics`): 507.
    Full(String),
    /// The request (its body) did not arrive in time (408).
    Timeout(&'static str),
    /// An extractor refused the request (a path that does not decode, a
    /// query that does not parse): its status and text, answered as JSON.
    Rejected(StatusCode, String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_string()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.to_string()),
            ApiError::TooLarge(max) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {max} bytes"),
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.to_string()),
            ApiError::Full(m) => (StatusCode::INSUFFICIENT_STORAGE, m),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m.to_string()),
            ApiError::Rejected(status, m) => (status, m),
        };
        tracing::debug!(%status, %message, "Request refused.");
        (status, Json(json!({"error": message}))).into_response()
    }
}
