//! Configuration: `config.toml`, every `*.toml` in `feeds_dir` (feeds) and
//! every `*.toml` in `dashboards_dir` (one dashboard each, see [`dashboard`]).
//!
//! Loading is two steps, as in Vector: serde reads raw tables whose keys keep
//! their positions, then validation turns each section and feed into a checked
//! [`Config`] and collects *every* error (one bad section hides nothing), each
//! naming file, line (the value's own), feed, and what would be right: the
//! typed structs have `deny_unknown_fields`, unknown names get the nearest valid
//! one, durations and lists get an example. A config either loads whole or not
//! at all: nothing here starts or stops anything. What is allowed but likely a
//! mistake is a warning ([`Config::warnings`]).

pub mod dashboard;
mod feed;

pub use dashboard::{Dashboard, Level, Panel, PanelKind, Threshold};

pub use crate::transform::Transform;
pub(crate) use feed::{de, Blame, FeedKinds};
pub use feed::{FeedConfig, FeedHistory, OnRemove};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The config used when no `config.toml` is given or found: synthetic stock
/// tickers and this host's metrics, offline.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// The dashboards of the built-in config: the shipped examples of
/// `dashboards/`, compiled in, so a run without any config file shows them.
pub const BUILTIN_DASHBOARDS: [(&str, &str); 2] = [
    ("host", include_str!("../../dashboards/host.toml")),
    ("markets", include_str!("../../dashboards/markets.toml")),
];

/// Where something was written: file and 1-based line.
#[derive(Debug, Clone, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Most updates one topic keeps when its feed sets `history` (a count
    /// above it is an error; a `history` by age keeps at most this many).
    pub max_history: usize,
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
            max_history: 10_000,
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

/// A table whose keys and values keep their positions in the text.
type RawTable = feed::RawFeed;

/// The main file's sections, each kept raw so that every key's line is known
/// and one bad section does not hide the errors of the others.
#[derive(Deserialize)]
struct RawMain {
    server: Option<RawTable>,
    limits: Option<RawTable>,
    history: Option<RawTable>,
    dashboard: Option<RawTable>,
    cluster: Option<RawTable>,
    #[serde(default)]
    access: Vec<RawTable>,
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
}

/// The top-level names of a main file.
const MAIN_SECTIONS: [&str; 7] = [
    "server",
    "limits",
    "history",
    "dashboard",
    "cluster",
    "access",
    "feed",
];

#[derive(Deserialize)]
struct RawFeedsFile {
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
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

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// One file being validated: where each key was written, and what is wrong.
struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
    /// `server` → its header's line, `server.listen` → the key's line.
    lines: HashMap<String, Location>,
    errors: Vec<ConfigError>,
}

impl<'a> Doc<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Doc {
            file,
            text,
            lines: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// Where `key` (`server.listen`) was written: its own line, else its
    /// section's, else line 1.
    fn at(&self, key: &str) -> Location {
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return l.clone();
            }
            match k.rsplit_once('.') {
                Some((head, _)) => k = head,
                None => {
                    return Location {
                        file: self.file.to_path_buf(),
                        line: 1,
                    }
                }
            }
        }
    }

    fn error(&mut self, key: &str, message: String) {
        let location = Some(self.at(key));
        self.errors.push(ConfigError {
            location,
            feed: None,
            message,
        });
    }

    /// Refuses top-level names that are not sections, suggesting the nearest.
    fn check_top_level(&mut self, sections: &[&str]) {
        let Ok(top) = toml::from_str::<BTreeMap<Spanned<String>, toml::Value>>(self.text) else {
            return; // the typed parse reports the syntax error
        };
        for (name, value) in &top {
            let name_str = name.get_ref().as_str();
            if sections.contains(&name_str) {
                continue;
            }
            let shown = |n: &str| match value {
                toml::Value::Table(_) => format!("[{n}]"),
                toml::Value::Array(a) if a.iter().all(toml::Value::is_table) => format!("[[{n}]]"),
                _ => format!("`{n}`"),
            };
            let hint = match feed::nearest(name_str, sections) {
                Some(near) => format!("; did you mean {}?", shown(near)),
                None => String::new(),
            };
            let all: Vec<String> = sections.iter().map(|s| shown(s)).collect();
            let location = Some(Location::new(self.file, self.text, name.span().start));
            self.errors.push(ConfigError {
                location,
                feed: None,
                message: format!(
                    "unknown section {}{hint} (expected one of {})",
                    shown(name_str),
                    all.join(", ")
                ),
            });
        }
    }

    /// [`Doc::section`] for an optional `[name]` table.
    fn named<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        raw: Option<RawTable>,
    ) -> Option<T> {
        raw.and_then(|r| self.section(name, &format!("[{name}]"), r))
    }

    /// Deserializes one section, recording where each of its keys is and an
    /// error (at the key's line) for each bad key. `label` names the section in
    /// messages (`[server]`, `[[access]] #2`).
    fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &str,
        label: &str,
        raw: RawTable,
    ) -> Option<T> {
        let (file, text) = (self.file, self.text);
        self.lines
            .insert(key.to_string(), Location::new(file, text, raw.span().start));
        let table: toml::Table = raw
            .into_inner()
            .into_iter()
            .map(|(k, v)| {
                let at = Location::new(file, text, k.span().start);
                self.lines.insert(format!("{key}.{}", k.get_ref()), at);
                (k.into_inner(), v.into_inner())
            })
            .collect();
        let mut problems = Vec::new();
        let value = feed::de::<T>(table, &mut problems);
        for (k, msg) in problems {
            match k {
                Some(k) if !msg.starts_with("unknown field") => {
                    self.error(&format!("{key}.{k}"), format!("{label} {k}: {msg}"))
                }
                Some(k) => self.error(&format!("{key}.{k}"), format!("{label} {msg}")),
                None => self.error(key, format!("{label} {msg}")),
            }
        }
        value
    }
}

/// A loaded, validated config.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// What is allowed but probably a mistake (a `feeds_dir` that does not
    /// exist): `tickerd check` prints these, the server logs them.
    pub warnings: Vec<ConfigError>,
    /// Every dashboard by name (its file name without `.toml`).
    pub dashboards: BTreeMap<String, Dashboard>,
    /// The resolved dashboards directory, when loaded from disk.
    pub dashboards_dir: Option<PathBuf>,
}

/// The kinds a config may name: the feed registry (`feeds::Kinds`).
pub(crate) type KindFilter<'a> = &'a dyn FeedKinds;

impl Config {
    /// The built-in default config, with `kinds` for its feeds.
    pub(crate) fn builtin_with(kinds: KindFilter<'_>) -> Config {
        let mut config = Config::parse(BUILTIN, Path::new("<built-in>"), None, kinds)
            .expect("the built-in config is valid");
        for (name, text) in BUILTIN_DASHBOARDS {
            let file = PathBuf::from(format!("<built-in>/dashboards/{name}.toml"));
            let d = dashboard::parse_dashboard(name, text, &file)
                .expect("the built-in dashboards are valid");
            config.dashboards.insert(name.to_string(), d);
        }
        config
    }

    /// Loads `path` and every `*.toml` of its feeds directory, with `kinds`.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub(crate) fn load_with(path: &Path, kinds: KindFilter<'_>) -> Result<Config, ConfigErrors> {
        let text = read_main(path)?;
        Config::parse_main(path, &text, kinds)
    }

    /// Like [`Config::load_with`], but `None` when the file is empty or
    /// only whitespace: an editor that truncates before writing leaves it so
    /// for a moment (it is read once, so the answer matches what was parsed).
    pub(crate) fn load_unless_blank(
        path: &Path,
        custom: KindFilter<'_>,
    ) -> Result<Option<Config>, ConfigErrors> {
        let text = read_main(path)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        Config::parse_main(path, &text, custom).map(Some)
    }

    /// Parses `text`, read from the main config file at `path`.
    fn parse_main(path: &Path, text: &str, custom: KindFilter<'_>) -> Result<Config, ConfigErrors> {
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let mut config = Config::parse(text, path, Some(&base), custom)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses config text, with `custom` for its feeds' kinds. With `base_dir`,
    /// `feeds_dir` and `dashboards_dir` are read relative to it; without,
    /// neither directory is read.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub(crate) fn parse(
        text: &str,
        file: &Path,
        base_dir: Option<&Path>,
        custom: KindFilter<'_>,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawMain = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        let mut doc = Doc::new(file, text);
        doc.check_top_level(&MAIN_SECTIONS);
        let server: ServerConfig = doc.named("server", raw.server).unwrap_or_default();
        let limits: LimitsConfig = doc.named("limits", raw.limits).unwrap_or_default();
        let history: HistoryConfig = doc.named("history", raw.history).unwrap_or_default();
        let dashboard: DashboardConfig = doc.named("dashboard", raw.dashboard).unwrap_or_default();
        let cluster: Option<ClusterConfig> = doc.named("cluster", raw.cluster);
        let access: Vec<AccessConfig> = raw
            .access
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                doc.section(&format!("access{i}"), &format!("[[access]] #{}", i + 1), r)
            })
            .collect();
        let here = Path::new(".");
        let mut feeds = Vec::new();
        let mut warnings = Vec::new();
        collect_feeds(
            raw.feed,
            file,
            text,
            base_dir.unwrap_or(here),
            custom,
            &mut feeds,
            &mut doc.errors,
        );
        let feeds_dir = base_dir.map(|b| b.join(&server.feeds_dir));
        if let Some(dir) = &feeds_dir {
            match feed_files(dir) {
                Err(e) => doc.error("server.feeds_dir", e),
                // Only when written: the default `feeds` may well be absent.
                Ok(None) if doc.lines.contains_key("server.feeds_dir") => {
                    warnings.push(ConfigError {
                        location: Some(doc.at("server.feeds_dir")),
                        feed: None,
                        message: format!(
                            "[server] feeds_dir = {:?} ({}): no such directory, 0 feeds from it",
                            server.feeds_dir.display().to_string(),
                            dir.display()
                        ),
                    })
                }
                Ok(None) => {}
                Ok(Some(files)) => {
                    for path in files {
                        load_feeds_file(&path, base_dir.unwrap_or(here), custom, &mut feeds)
                            .unwrap_or_else(|e| doc.errors.extend(e));
                    }
                }
            }
        }
        let mut seen: HashMap<&str, &Location> = HashMap::new();
        for f in &feeds {
            if let Some(first) = seen.insert(&f.name, &f.location) {
                doc.errors.push(ConfigError {
                    location: Some(f.location.clone()),
                    feed: Some(f.name.clone()),
                    message: format!(
                        "duplicate feed name: \"{}\" is already defined at {first}; \
                         feed names must be unique (rename or remove one)",
                        f.name
                    ),
                });
            }
        }
        let dashboards_dir = base_dir.map(|b| b.join(&server.dashboards_dir));
        let dashboards = match &dashboards_dir {
            Some(dir) => dashboard::load_dir(dir, &mut doc.errors),
            None => BTreeMap::new(),
        };
        for f in &feeds {
            if let Some(FeedHistory::Count(n)) = f.history {
                if n > limits.max_history {
                    doc.errors.push(ConfigError {
                        location: Some(f.location.clone()),
                        feed: Some(f.name.clone()),
                        message: format!(
                            "history = {n} is above [limits] max_history ({})",
                            limits.max_history
                        ),
                    });
                }
            }
        }
        check_sections(&server, &limits, &cluster, &mut doc);
        check_history(&history, &cluster, &mut doc);
        check_access(&server, &access, &mut doc);
        if !doc.errors.is_empty() {
            // In file order (the main file first), then by line.
            let mut files: Vec<PathBuf> = Vec::new();
            for e in &doc.errors {
                if let Some(l) = &e.location {
                    if !files.contains(&l.file) {
                        files.push(l.file.clone());
                    }
                }
            }
            let order = |e: &ConfigError| {
                e.location.as_ref().map_or((usize::MAX, 0), |l| {
                    let file = files.iter().position(|f| *f == l.file);
                    (file.unwrap_or(usize::MAX), l.line)
                })
            };
            doc.errors.sort_by_key(order);
            return Err(ConfigErrors(doc.errors));
        }
        // A feed without its own cap takes `[limits]`'s, resolved here so that
        // a change of either is a change of the feed (it restarts on reload).
        for f in &mut feeds {
            f.max_item_bytes.get_or_insert(limits.max_item_bytes);
        }
        let mut history = history;
        if let (Some(path), Some(base)) = (&history.path, base_dir) {
            history.path = Some(base.join(path));
        }
        Ok(Config {
            server,
            limits,
            history,
            dashboard,
            cluster,
            access,
            feeds,
            path: None,
            feeds_dir,
            warnings,
            dashboards,
            dashboards_dir,
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

/// The `*.toml` files of `dir`, sorted; `None` when it does not exist.
fn feed_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read directory {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(Some(files))
}

/// Like [`feed_files`], where a missing directory has none.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    feed_files(dir).map(Option::unwrap_or_default)
}

/// Adds the feeds of one file of `feeds_dir`.
///
/// # Errors
/// Every problem of that file.
fn load_feeds_file(
    path: &Path,
    base: &Path,
    custom: KindFilter<'_>,
    feeds: &mut Vec<FeedConfig>,
) -> Result<(), Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![plain_error(path, format!("cannot read: {e}"))])?;
    let raw: RawFeedsFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e).0)?;
    let mut doc = Doc::new(path, &text);
    doc.check_top_level(&["feed"]);
    collect_feeds(raw.feed, path, &text, base, custom, feeds, &mut doc.errors);
    match doc.errors.is_empty() {
        true => Ok(()),
        false => Err(doc.errors),
    }
}

/// `[history]` checks beyond types: `path` and `[cluster]` exclude each other.
fn check_history(history: &HistoryConfig, cluster: &Option<ClusterConfig>, doc: &mut Doc) {
    if history.path.is_some() && cluster.is_some() {
        doc.error(
            "history.path",
            "[history] path cannot be used with [cluster]: cluster mode keeps history in \
             JetStream; remove one of them"
                .into(),
        );
    }
    if history.path.as_deref() == Some(Path::new("")) {
        doc.error(
            "history.path",
            "[history] path must not be empty (e.g. path = \"data\")".into(),
        );
    }
    if history.sync_interval.is_zero() || history.sync_interval > Duration::from_secs(60) {
        doc.error(
            "history.sync_interval",
            "[history] sync_interval must be between 1ms and 60s (e.g. \"1s\")".into(),
        );
    }
}

/// Value checks of the sections beyond their types, each at its key's line.
fn check_sections(
    server: &ServerConfig,
    limits: &LimitsConfig,
    cluster: &Option<ClusterConfig>,
    doc: &mut Doc<'_>,
) {
    if server.heartbeat.is_zero() {
        doc.error(
            "server.heartbeat",
            "[server] heartbeat must be greater than zero, e.g. \"20s\"".into(),
        );
    }
    if server.flush_interval > Duration::from_secs(1) {
        doc.error(
            "server.flush_interval",
            "[server] flush_interval must be at most 1s, e.g. \"25ms\"".into(),
        );
    }
    for (name, v) in [
        ("max_connections", limits.max_connections),
        ("max_subscriptions", limits.max_subscriptions),
        ("max_frame_bytes", limits.max_frame_bytes),
        ("queue", limits.queue),
        ("max_connections_per_ip", limits.max_connections_per_ip),
        ("max_item_bytes", limits.max_item_bytes),
    ] {
        if v == 0 {
            doc.error(
                &format!("limits.{name}"),
                format!("[limits] {name} must be greater than zero"),
            );
        }
    }
    if limits.header_timeout.is_zero() {
        doc.error(
            "limits.header_timeout",
            "[limits] header_timeout must be greater than zero, e.g. \"10s\"".into(),
        );
    }
    if limits.body_timeout.is_zero() {
        doc.error(
            "limits.body_timeout",
            "[limits] body_timeout must be greater than zero, e.g. \"10s\"".into(),
        );
    }
    if limits.max_buffered_bytes < limits.max_frame_bytes {
        doc.error(
            "limits.max_buffered_bytes",
            format!(
                "[limits] max_buffered_bytes = {} must be at least max_frame_bytes = {}",
                limits.max_buffered_bytes, limits.max_frame_bytes
            ),
        );
    }
    if limits.max_header_bytes < 8192 {
        doc.error(
            "limits.max_header_bytes",
            "[limits] max_header_bytes must be at least 8192".into(),
        );
    }
    for (key, t) in [
        ("token", &server.token),
        ("publish_token", &server.publish_token),
    ] {
        if t.as_deref() == Some("") {
            doc.error(
                &format!("server.{key}"),
                format!(
                    "[server] {key} must not be an empty string (remove the line to disable it)"
                ),
            );
        }
    }
    if let Some(c) = cluster {
        let name_ok = !c.node.is_empty()
            && c.node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            doc.error(
                "cluster.node",
                format!("[cluster] node {:?} must match [a-z0-9_-]+", c.node),
            );
        }
        if c.urls().is_empty() {
            doc.error(
                "cluster.nats",
                "[cluster] nats needs at least one URL, e.g. \"nats://127.0.0.1:4222\"".into(),
            );
        }
        if c.lease < Duration::from_millis(300) {
            doc.error(
                "cluster.lease",
                "[cluster] lease must be at least 300ms".into(),
            );
        }
        if c.password.is_some() != c.user.is_some() {
            doc.error("cluster", "[cluster] user and password go together".into());
        }
    }
}

/// Each `[[access]]` token is non-empty, unique (also against `server.token`)
/// and has at least one valid pattern.
fn check_access(server: &ServerConfig, access: &[AccessConfig], doc: &mut Doc<'_>) {
    let mut seen: Vec<&str> = server.token.iter().map(String::as_str).collect();
    for (i, a) in access.iter().enumerate() {
        let mut bad = |key: &str, msg: String| {
            doc.error(
                &format!("access{i}.{key}"),
                format!("[[access]] #{}: {msg}", i + 1),
            );
        };
        if a.token.is_empty() {
            bad("token", "token must not be empty".into());
        } else if seen.contains(&a.token.as_str()) {
            bad(
                "token",
                "token is used twice (each token has one grant)".into(),
            );
        }
        seen.push(&a.token);
        if a.patterns.is_empty() {
            bad(
                "patterns",
                "patterns is empty (it would allow nothing)".into(),
            );
        }
        for p in &a.patterns {
            if let Err(e) = crate::topic::Pattern::parse(p) {
                bad("patterns", format!("pattern {e}"));
            }
        }
    }
}

/// The main config file's text.
fn read_main(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| one_error(path, format!("cannot read: {e}")))
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
        Config::from_toml(text, Path::new("c.toml"))
    }

    #[test]
    fn builtin_config_is_valid() {
        let c = Config::builtin();
        assert!(c.feeds.iter().any(|f| f.kind == "synthetic"));
        assert!(c.feeds.iter().any(|f| f.kind == "system"));
        let names: Vec<&str> = c.dashboards.keys().map(String::as_str).collect();
        assert_eq!(names, ["host", "markets"]);
    }

    /// A feed's `max_item_bytes` overrides `[limits]`'s, which every other
    /// feed takes; a bad value names its line, and a budget smaller than a
    /// frame is refused.
    #[test]
    fn max_item_bytes_resolves_per_feed_and_is_checked() {
        let text = r#"
[limits]
max_item_bytes = 4096

[[feed]]
name = "own"
kind = "system"
topic = "a"
max_item_bytes = 100

[[feed]]
name = "default"
kind = "system"
topic = "b"
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.feed("own").unwrap().max_item_bytes, Some(100));
        assert_eq!(c.feed("default").unwrap().max_item_bytes, Some(4096));
        let bad =
            "[[feed]]\nname = \"x\"\nkind = \"system\"\ntopic = \"a\"\nmax_item_bytes = \"1MB\"\n";
        let errs = parse(bad).unwrap_err().to_string();
        assert!(
            errs.contains("c.toml:5:") && errs.contains("max_item_bytes"),
            "{errs}"
        );
        let small = "[limits]\nmax_frame_bytes = 65536\nmax_buffered_bytes = 1000\n";
        let errs = parse(small).unwrap_err().to_string();
        assert!(
            errs.contains("max_buffered_bytes = 1000 must be at least"),
            "{errs}"
        );
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

    /// The broker kinds' value checks name the line of the key at fault, and a
    /// password in a URL is never echoed back.
    #[test]
    fn broker_kinds_are_checked_with_lines() {
        let text = r#"
[[feed]]
name = "m"
kind = "mqtt"
topic = "iot.{mqtt_topic}"
url = "mqtt://u:pw@127.0.0.1:1883"
subscribe = ["a/#/b"]
qos = 2
ca_file = "ca.pem"

[[feed]]
name = "r"
kind = "redis"
topic = "r.{redis_channel}"
url = "https://u:hunter2@127.0.0.1"
streams = ["s"]

[[feed]]
name = "n"
kind = "nats"
topic = "n.{nats_subject}"
url = "nats://127.0.0.1:4222"
subject = "a.>.b"
password = "p"
durable = "my.consumer"
"#;
        let errs = parse(text).unwrap_err();
        let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        for (line, needle) in [
            (6, "not in `url`"),
            (7, "topic filter \"a/#/b\" is not valid"),
            (8, "qos 2 is not supported"),
            (9, "`ca_file` is for mqtts:// URLs"),
            (15, "url scheme `https`"),
            (16, "`streams` is for mode = \"stream\""),
            (23, "subject \"a.>.b\" is not valid"),
            (24, "`user` and `password` go together"),
            (25, "`durable` needs `stream`"),
            (25, "durable \"my.consumer\" is not a valid JetStream name"),
        ] {
            let prefix = format!("c.toml:{line}: ");
            assert!(
                text.iter()
                    .any(|e| e.starts_with(&prefix) && e.contains(needle)),
                "{prefix}{needle} in {text:?}"
            );
        }
        assert!(!text.iter().any(|e| e.contains("hunter2")), "{text:?}");
        let ok = parse(
            "[[feed]]\nname = \"r\"\nkind = \"redis\"\ntopic = \"r.{redis_stream}\"\n\
             url = \"redis://127.0.0.1:6379\"\nmode = \"stream\"\nstreams = [\"s\"]\n",
        )
        .unwrap();
        assert_eq!(ok.feeds[0].kind, "redis");
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
    fn a_feeds_history_is_a_count_or_an_age_within_max_history() {
        let feed = |h: &str| {
            format!("[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\nhistory = {h}\n")
        };
        assert_eq!(
            parse(&feed("500")).unwrap().feeds[0].history,
            Some(FeedHistory::Count(500))
        );
        assert_eq!(
            parse(&feed("\"15m\"")).unwrap().feeds[0].history,
            Some(FeedHistory::Age(Duration::from_secs(900)))
        );
        let errs = parse(&feed("20000")).unwrap_err().to_string();
        assert!(
            errs.contains("history = 20000 is above [limits] max_history (10000)"),
            "{errs}"
        );
        let errs = parse(&feed("\"soon\"")).unwrap_err().to_string();
        assert!(errs.starts_with("c.toml:5: feed \"s\": history:"), "{errs}");
        let errs = parse(&feed("true")).unwrap_err().to_string();
        assert!(errs.contains("must be a count"), "{errs}");
    }

    #[test]
    fn moving_a_feed_is_not_a_change() {
        let a = parse("[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
        let b = parse("\n\n[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
        assert_eq!(a.feeds[0], b.feeds[0]);
        assert_ne!(a.feeds[0].location.line, b.feeds[0].location.line);
    }
}
