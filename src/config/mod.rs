//! Configuration: `config.toml` plus every `*.toml` in `feeds_dir` (README.md, "Configuration").
//!
//! Loading is two steps, as in Vector: serde reads raw tables (with
//! `deny_unknown_fields`, so typos fail), then validation turns them into a checked
//! [`Config`] and collects *every* error, each naming file, line and feed. A config
//! either loads whole or not at all: nothing here starts or stops anything.

mod feed;

pub use feed::{
    CommandMode, CommandOptions, FeedConfig, FeedKind, FileMode, FileOptions, Format, HttpOptions,
    OnRemove, SseOptions, SyntheticOptions, SystemOptions, WebSocketOptions, BUILTIN_KINDS,
};

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The config used when no `config.toml` is given or found: synthetic stock
/// tickers and this host's metrics, offline.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// Where something was written: file and 1-based line.
#[derive(Debug, Clone, Eq)]
pub struct Location {
    /// The file, as given or found.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl Location {
    fn new(file: &Path, text: &str, offset: usize) -> Self {
        let upto = &text.as_bytes()[..offset.min(text.len())];
        Location {
            file: file.to_path_buf(),
            line: upto.iter().filter(|b| **b == b'\n').count() + 1,
        }
    }
}

/// Locations never make two configs differ: moving a feed is not a change.
impl PartialEq for Location {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Where, when known.
    pub location: Option<Location>,
    /// The feed it is about, when it is about one.
    pub feed: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if let Some(feed) = &self.feed {
            write!(f, "feed \"{feed}\": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in a config; it is never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of extra `*.toml` feed files, relative to the config file.
    pub feeds_dir: PathBuf,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            feeds_dir: PathBuf::from("feeds"),
            token: None,
            publish_token: None,
            allowed_origins: None,
            heartbeat: Duration::from_secs(20),
            flush_interval: Duration::from_millis(25),
            web_dir: None,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
            topic_ttl: None,
        }
    }
}

/// One `[[access]]` table: a token that may read only what `patterns` match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The secret presented as `Authorization: Bearer` or `?token=`.
    pub token: String,
    /// Topic patterns this token may read; a subscription must fall within them.
    pub patterns: Vec<String>,
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMain {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    history: HistoryConfig,
    #[serde(default)]
    dashboard: DashboardConfig,
    cluster: Option<ClusterConfig>,
    #[serde(default)]
    access: Vec<AccessConfig>,
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeedsFile {
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
}

/// A loaded, validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[history]`
    pub history: HistoryConfig,
    /// `[dashboard]`
    pub dashboard: DashboardConfig,
    /// `[cluster]`, when present.
    pub cluster: Option<ClusterConfig>,
    /// `[[access]]` tables: tokens with limited read permissions.
    pub access: Vec<AccessConfig>,
    /// Every feed of the main file and of `feeds_dir`, in load order.
    pub feeds: Vec<FeedConfig>,
    /// The main file, when loaded from disk (what hot reload watches).
    pub path: Option<PathBuf>,
    /// The resolved feeds directory, when loaded from disk.
    pub feeds_dir: Option<PathBuf>,
}

/// Which kinds beyond the built-in ones a config may name.
pub type KindFilter<'a> = &'a dyn Fn(&str) -> bool;

impl Config {
    /// The built-in default config.
    pub fn builtin() -> Config {
        Config::from_toml(BUILTIN, Path::new("<built-in>"), None, &|_| false)
            .expect("the built-in config is valid")
    }

    /// Loads `path` and every `*.toml` of its feeds directory.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with_kinds(path, &|_| false)
    }

    /// Like [`Config::load`], also accepting the custom kinds `custom` approves.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub fn load_with_kinds(path: &Path, custom: KindFilter<'_>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| one_error(path, format!("cannot read: {e}")))?;
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let mut config = Config::from_toml(&text, path, Some(&base), custom)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses config text. With `base_dir`, `feeds_dir` is read relative to it;
    /// without, no feeds directory is read.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub fn from_toml(
        text: &str,
        file: &Path,
        base_dir: Option<&Path>,
        custom: KindFilter<'_>,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawMain = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        let mut errors = Vec::new();
        let here = Path::new(".");
        let mut feeds = Vec::new();
        collect_feeds(
            raw.feed,
            file,
            text,
            base_dir.unwrap_or(here),
            custom,
            &mut feeds,
            &mut errors,
        );
        let feeds_dir = base_dir.map(|b| b.join(&raw.server.feeds_dir));
        if let Some(dir) = &feeds_dir {
            for path in feed_files(dir).map_err(|e| one_error(dir, e))? {
                match std::fs::read_to_string(&path) {
                    Err(e) => errors.push(plain_error(&path, format!("cannot read: {e}"))),
                    Ok(text) => match toml::from_str::<RawFeedsFile>(&text) {
                        Err(e) => errors.extend(toml_error(&path, &text, &e).0),
                        Ok(f) => collect_feeds(
                            f.feed,
                            &path,
                            &text,
                            base_dir.unwrap_or(here),
                            custom,
                            &mut feeds,
                            &mut errors,
                        ),
                    },
                }
            }
        }
        let mut seen: HashMap<&str, &Location> = HashMap::new();
        for f in &feeds {
            if let Some(first) = seen.insert(&f.name, &f.location) {
                errors.push(ConfigError {
                    location: Some(f.location.clone()),
                    feed: Some(f.name.clone()),
                    message: format!("duplicate feed name (first defined at {first})"),
                });
            }
        }
        check_sections(&raw.server, &raw.limits, &raw.cluster, file, &mut errors);
        check_history(&raw.history, &raw.cluster, file, &mut errors);
        check_access(&raw.server, &raw.access, file, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut history = raw.history;
        if let (Some(path), Some(base)) = (&history.path, base_dir) {
            history.path = Some(base.join(path));
        }
        Ok(Config {
            server: raw.server,
            limits: raw.limits,
            history,
            dashboard: raw.dashboard,
            cluster: raw.cluster,
            access: raw.access,
            feeds,
            path: None,
            feeds_dir,
        })
    }

    /// The feed named `name`.
    pub fn feed(&self, name: &str) -> Option<&FeedConfig> {
        self.feeds.iter().find(|f| f.name == name)
    }
}

fn collect_feeds(
    raw: Vec<feed::RawFeed>,
    file: &Path,
    text: &str,
    base: &Path,
    custom: KindFilter<'_>,
    feeds: &mut Vec<FeedConfig>,
    errors: &mut Vec<ConfigError>,
) {
    for r in raw {
        match feed::parse_feed(r, file, text, base, custom) {
            Ok(f) => feeds.push(f),
            Err(e) => errors.extend(e),
        }
    }
}

/// The `*.toml` files of `dir`, sorted; a missing directory has none.
fn feed_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read feeds directory: {e}")),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn check_history(
    history: &HistoryConfig,
    cluster: &Option<ClusterConfig>,
    file: &Path,
    errors: &mut Vec<ConfigError>,
) {
    if history.path.is_some() && cluster.is_some() {
        errors.push(plain_error(
            file,
            "[history] path cannot be used with [cluster]: cluster mode keeps history in \
             JetStream; remove one of them"
                .into(),
        ));
    }
    if history.path.as_deref() == Some(Path::new("")) {
        errors.push(plain_error(
            file,
            "[history] path must not be empty (e.g. path = \"data\")".into(),
        ));
    }
    if history.sync_interval.is_zero() || history.sync_interval > Duration::from_secs(60) {
        errors.push(plain_error(
            file,
            "[history] sync_interval must be between 1ms and 60s (e.g. \"1s\")".into(),
        ));
    }
}

fn check_sections(
    server: &ServerConfig,
    limits: &LimitsConfig,
    cluster: &Option<ClusterConfig>,
    file: &Path,
    errors: &mut Vec<ConfigError>,
) {
    let mut bad = |msg: String| errors.push(plain_error(file, msg));
    if server.heartbeat.is_zero() {
        bad("[server] heartbeat must be greater than zero".into());
    }
    if server.flush_interval > Duration::from_secs(1) {
        bad("[server] flush_interval must be at most 1s".into());
    }
    for (name, v) in [
        ("max_connections", limits.max_connections),
        ("max_subscriptions", limits.max_subscriptions),
        ("max_frame_bytes", limits.max_frame_bytes),
        ("queue", limits.queue),
        ("max_connections_per_ip", limits.max_connections_per_ip),
    ] {
        if v == 0 {
            bad(format!("[limits] {name} must be greater than zero"));
        }
    }
    if limits.header_timeout.is_zero() {
        bad("[limits] header_timeout must be greater than zero".into());
    }
    if limits.max_header_bytes < 8192 {
        bad("[limits] max_header_bytes must be at least 8192".into());
    }
    for t in [&server.token, &server.publish_token].into_iter().flatten() {
        if t.is_empty() {
            bad("[server] tokens must not be empty strings".into());
        }
    }
    if let Some(c) = cluster {
        let name_ok = !c.node.is_empty()
            && c.node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            bad(format!(
                "[cluster] node {:?} must match [a-z0-9_-]+",
                c.node
            ));
        }
        if c.urls().is_empty() {
            bad("[cluster] nats needs at least one URL".into());
        }
        if c.lease < Duration::from_millis(300) {
            bad("[cluster] lease must be at least 300ms".into());
        }
        if c.password.is_some() != c.user.is_some() {
            bad("[cluster] user and password go together".into());
        }
    }
}

/// Each `[[access]]` token is non-empty, unique (also against `server.token`)
/// and has at least one valid pattern.
fn check_access(
    server: &ServerConfig,
    access: &[AccessConfig],
    file: &Path,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: Vec<&str> = server.token.iter().map(String::as_str).collect();
    for (i, a) in access.iter().enumerate() {
        let mut bad = |msg: String| {
            errors.push(plain_error(file, format!("[[access]] #{}: {msg}", i + 1)));
        };
        if a.token.is_empty() {
            bad("token must not be empty".into());
        } else if seen.contains(&a.token.as_str()) {
            bad("token is used twice (each token has one grant)".into());
        }
        seen.push(&a.token);
        if a.patterns.is_empty() {
            bad("patterns is empty (it would allow nothing)".into());
        }
        for p in &a.patterns {
            if let Err(e) = crate::topic::Pattern::parse(p) {
                bad(format!("pattern {e}"));
            }
        }
    }
}

fn plain_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        location: Some(Location {
            file: file.to_path_buf(),
            line: 1,
        }),
        feed: None,
        message,
    }
}

fn one_error(file: &Path, message: String) -> ConfigErrors {
    ConfigErrors(vec![plain_error(file, message)])
}

fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigErrors {
    let line = e
        .span()
        .map_or(1, |s| Location::new(file, text, s.start).line);
    ConfigErrors(vec![ConfigError {
        location: Some(Location {
            file: file.to_path_buf(),
            line,
        }),
        feed: None,
        message: e.message().trim().to_string(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml(text, Path::new("c.toml"), None, &|_| false)
    }

    #[test]
    fn builtin_config_is_valid() {
        let c = Config::builtin();
        assert!(c
            .feeds
            .iter()
            .any(|f| matches!(f.kind, FeedKind::Synthetic(_))));
        assert!(c
            .feeds
            .iter()
            .any(|f| matches!(f.kind, FeedKind::System(_))));
    }

    #[test]
    fn every_error_is_collected_with_line_and_feed() {
        let text = r#"
[[feed]]
name = "a"
kind = "synthetic"
topic = "s.{symbol}"
symbols = ["X"]
intervl = "1s"

[[feed]]
name = "b"
kind = "nope"
topic = "t"

[[feed]]
name = "a"
kind = "system"
topic = "bad..topic"
"#;
        let errs = parse(text).unwrap_err();
        let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("c.toml:7: feed \"a\": unknown field `intervl`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("c.toml:11: feed \"b\": unknown kind")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("c.toml:17: feed \"a\":") && e.contains("empty segment")),
            "{text:?}"
        );
        assert_eq!(errs.0.len(), 3, "{text:?}");
    }

    #[test]
    fn durations_and_unknown_sections_are_checked() {
        assert!(parse("[server]\nheartbeat = \"soon\"\n").is_err());
        assert!(parse("[sever]\n").is_err());
        let c = parse("[server]\nheartbeat = \"250ms\"\n").unwrap();
        assert_eq!(c.server.heartbeat, Duration::from_millis(250));
        assert_eq!(c.server.flush_interval, Duration::from_millis(25));
        assert!(parse("[server]\nflush_interval = \"2s\"\n").is_err());
        let c = parse("[server]\nflush_interval = \"0s\"\n").unwrap();
        assert!(c.server.flush_interval.is_zero());
    }

    #[test]
    fn moving_a_feed_is_not_a_change() {
        let a = parse("[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
        let b = parse("\n\n[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
        assert_eq!(a.feeds[0], b.feeds[0]);
        assert_ne!(a.feeds[0].location.line, b.feeds[0].location.line);
    }
}
