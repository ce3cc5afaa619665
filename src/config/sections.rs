//! The main file's sections (`[server]`, `[limits]`, `[history]`,
//! `[dashboard]`, `[cluster]`, `[[access]]`): their shapes and defaults (the
//! checks beyond types are in `section_checks.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on: an IP address and a port (see [`parse_listen`]).
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Directory of extra `*.toml` feed files, relative to the config file.
    pub feeds_dir: PathBuf,
    /// Directory of dashboards, one `NAME.toml` per dashboard, relative to the
    /// config file; a missing directory holds none.
    pub dashboards_dir: PathBuf,
    /// When set, `/ws` and `/api` need it (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// When set, enables `POST /api/publish/{topic}` for this bearer token.
    pub publish_token: Option<String>,
    /// Browser origins allowed on `/ws`; absent allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// WebSocket Ping period; a client silent for two periods is dropped.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Under a steady stream, a connection's frames gather for up to this long
    /// and leave in one write: the latency added, traded for fewer syscalls
    /// (README "Performance"). A connection that was quiet writes at once.
    /// `"0s"` writes whenever something is ready. At most 1 s.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Serve `web/` from this directory instead of the embedded copy (development).
    pub web_dir: Option<PathBuf>,
    /// `[server.tls]`: serve `https://` and `wss://` with this certificate;
    /// absent (the default), plain HTTP.
    pub tls: Option<super::TlsConfig>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the
    /// client (CIDR networks such as `"127.0.0.1/32"`, checked by
    /// `parse_cidr`); from any other peer those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The longest a shutdown (SIGTERM, [`crate::Ticker::shutdown`]) may take
    /// in [`crate::Ticker::serve`]: clients closed, feeds stopped, the history
    /// store flushed. What is not done by then is abandoned, so a peer that
    /// does not read cannot hold the process.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            feeds_dir: PathBuf::from("feeds"),
            dashboards_dir: PathBuf::from("dashboards"),
            token: None,
            publish_token: None,
            allowed_origins: None,
            heartbeat: Duration::from_secs(20),
            flush_interval: Duration::from_millis(25),
            web_dir: None,
            tls: None,
            trusted_proxies: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Most WebSocket connections at once; more are answered 503.
    pub max_connections: usize,
    /// Most patterns one connection may hold.
    pub max_subscriptions: usize,
    /// Largest client frame; a larger one closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Outbound frames buffered per connection before conflation.
    pub queue: usize,
    /// Most WebSocket connections from one IP address; more are answered 503,
    /// so one host cannot take every slot of `max_connections`.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Largest request head (request line plus headers); larger is answered 431.
    /// At least 8192.
    pub max_header_bytes: usize,
    /// Most topics the server holds (`$sys.*` aside): a feed or publisher that
    /// makes up new topic names without end gets an error past it.
    pub max_topics: usize,
    /// Bytes of replies (acks, errors, pongs, topic lists) one connection may
    /// have waiting to be written; past it the connection is closed with 1008.
    /// At least `max_frame_bytes`.
    pub max_buffered_bytes: usize,
    /// Time a client has to send a request's whole body, once its headers are in.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Largest item a feed reads from its source (an HTTP or SSE body, a
    /// command's output or line, a file or line, a WebSocket message); larger
    /// is an error of that feed. A feed may set its own `max_item_bytes`.
    pub max_item_bytes: usize,
    /// Largest body a push feed's route takes (InfluxDB line protocol,
    /// Prometheus remote-write, OTLP), both as sent and once decompressed;
    /// larger is answered 413.
    pub max_push_bytes: usize,
    /// Most updates one topic keeps when its feed sets `history` (a count
    /// above it is an error; a `history` by age keeps at most this many).
    pub max_history: usize,
    /// Most retained updates one `subscribe` with `since` replays, over all
    /// its topics; the topics past it get their snapshot and are named in the
    /// ack's `resume.partial`.
    pub max_resume: usize,
    /// A topic published over HTTP or from code (no feed) that is not updated
    /// for this long is deleted; `None` (the default) keeps it. Feeds set
    /// their own `ttl`.
    #[serde(with = "humantime_serde")]
    pub topic_ttl: Option<Duration>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            max_subscriptions: 256,
            max_frame_bytes: 65_536,
            queue: 1024,
            max_connections_per_ip: 1000,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_topics: 100_000,
            max_buffered_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            max_item_bytes: 1024 * 1024,
            max_push_bytes: 16 * 1024 * 1024,
            max_history: 10_000,
            max_resume: 10_000,
            topic_ttl: None,
        }
    }
}

/// One `[[access]]` table: a token that may read only what `patterns` match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessConfig {
    /// The secret presented as `Authorization: Bearer` or `?token=`.
    pub token: String,
    /// Topic patterns this token may read; a subscription must fall within them.
    pub patterns: Vec<String>,
    /// Topic patterns this token may publish to with the WebSocket `publish`
    /// op; empty (the default): none.
    #[serde(default)]
    pub publish: Vec<String>,
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HistoryConfig {
    /// Updates kept per topic for resume; 0 keeps none.
    pub size: usize,
    /// Where topics, their latest values, history and the epoch are kept across
    /// restarts (a directory, relative to the config file). `None`: in memory
    /// only. Not allowed with `[cluster]`, which keeps history in JetStream.
    pub path: Option<PathBuf>,
    /// When updates reach the disk (`path` only).
    pub sync: SyncPolicy,
    /// With `sync = "interval"`: how often pending updates are committed; a
    /// crash loses at most this much.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            size: 100,
            path: None,
            sync: SyncPolicy::Interval,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// `[history] sync`: when the durable store commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// One commit per `sync_interval` for everything published in it; publishing
    /// never waits for the disk.
    #[default]
    Interval,
    /// Commit as soon as anything is published (commits group what arrives
    /// meanwhile); an HTTP publish is answered only once its update is on disk.
    Always,
}

/// `[dashboard]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Serve the dashboard at `/`.
    pub enabled: bool,
    /// The dashboard's title.
    pub title: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            title: "Live Ticker".to_string(),
        }
    }
}

/// One URL or a list of URLs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// NATS server URL(s).
    pub nats: OneOrMany,
    /// This node's name, unique in the cluster: `[a-z0-9_-]+`.
    pub node: String,
    /// NATS token authentication.
    #[serde(default)]
    pub token: Option<String>,
    /// NATS user (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// NATS password (with `user`).
    #[serde(default)]
    pub password: Option<String>,
    /// A NATS `.creds` file (JWT + NKey).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// How long a feed's ownership lasts without renewal: the owner renews it
    /// three times per lease; another node takes the feed over when it lapses.
    #[serde(default = "ClusterConfig::default_lease", with = "humantime_serde")]
    pub lease: Duration,
}

impl ClusterConfig {
    fn default_lease() -> Duration {
        Duration::from_secs(6)
    }

    /// The NATS URLs, as a list.
    pub fn urls(&self) -> Vec<String> {
        match &self.nats {
            OneOrMany::One(u) => vec![u.clone()],
            OneOrMany::Many(us) => us.clone(),
        }
    }
}

/// An IP address and a port, as `listen` and `--listen` take it.
///
/// A host name such as `localhost` is refused rather than resolved: a server
/// binds one known address, and what a name resolves to depends on the host.
///
/// # Errors
/// A message that echoes the value and shows a valid one.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port (a host name is not accepted); \
             write e.g. \"127.0.0.1:8080\", or \"0.0.0.0:8080\" for every interface"
        )
    })
}

/// One `trusted_proxies` entry: a network with its prefix length
/// (`"10.0.0.0/8"`, `"::1/128"`), or a single address (its own network).
///
/// # Errors
/// A message that echoes the value and shows valid ones.
pub(crate) fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let t = text.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!(
                "{text:?} is not an IP network; write an address with its prefix length, \
                 e.g. \"127.0.0.1/32\", \"10.0.0.0/8\" or \"::1/128\""
            )
        })
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}
