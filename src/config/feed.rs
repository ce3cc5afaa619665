//! `[[feed]]` tables: the common keys, one options struct per built-in kind, and
//! the checks that turn a raw table into a [`FeedConfig`].
//!
//! Every kind's struct has `deny_unknown_fields`, so a misspelt key is an error
//! that names its line. Kind structs derive `PartialEq`: hot reload diffs feeds by
//! value (see `reload`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Location};
use crate::topic::TopicTemplate;

/// How a document's body is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Parse the body as JSON (the default).
    #[default]
    Json,
    /// Take the body as one JSON string.
    Text,
}

/// `synthetic`: random-walk prices, one update per symbol each tick.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticOptions {
    /// Symbols to simulate, e.g. `["AAPL", "MSFT"]`.
    pub symbols: Vec<String>,
    /// Opening price of every symbol.
    #[serde(default = "default_start")]
    pub start: f64,
    /// Standard deviation of each tick's relative move.
    #[serde(default = "default_volatility")]
    pub volatility: f64,
    /// Time between ticks.
    #[serde(default = "secs::<1>", with = "humantime_serde")]
    pub interval: Duration,
}

/// `system`: this host's CPU, memory, load and uptime.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemOptions {
    /// Time between samples.
    #[serde(default = "secs::<2>", with = "humantime_serde")]
    pub interval: Duration,
}

/// `http`: polls a URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// The URL to request (`http` or `https`).
    pub url: String,
    /// The request method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, if any.
    pub body: Option<String>,
    /// Longest a request may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub timeout: Duration,
    /// Time between polls.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub interval: Duration,
    /// JSON Pointer (RFC 6901) into the document.
    pub extract: Option<String>,
    /// How the body is read.
    #[serde(default)]
    pub format: Format,
}

/// How a `command` feed runs its program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandMode {
    /// Run it every `interval`; its whole stdout is one document.
    #[default]
    Interval,
    /// Keep it running; each stdout line is one document.
    Stream,
}

/// `command`: runs a program (argv, no shell).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOptions {
    /// Program and arguments.
    pub command: Vec<String>,
    /// `interval` (default) or `stream`.
    #[serde(default)]
    pub mode: CommandMode,
    /// Time between runs, in `interval` mode.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub interval: Duration,
    /// Longest one run may take, in `interval` mode; it is killed after that.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub timeout: Duration,
    /// JSON Pointer (RFC 6901) into the document.
    pub extract: Option<String>,
    /// How stdout is read.
    #[serde(default)]
    pub format: Format,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `websocket`: subscribes to an upstream WebSocket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
    /// The URL (`ws` or `wss`).
    pub url: String,
    /// Text messages sent after each connect (e.g. a subscribe request).
    #[serde(default)]
    pub send: Vec<String>,
    /// Extra handshake headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON Pointer (RFC 6901) into each message.
    pub extract: Option<String>,
    /// How each message is read.
    #[serde(default)]
    pub format: Format,
}

/// `sse`: subscribes to an upstream `text/event-stream`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseOptions {
    /// The URL (`http` or `https`).
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON Pointer (RFC 6901) into each event's data.
    pub extract: Option<String>,
    /// How each event's data is read.
    #[serde(default)]
    pub format: Format,
    /// Longest silence (not a byte, keep-alive comments included) before the
    /// stream counts as dead and is reconnected: a half-open TCP connection
    /// otherwise hangs the feed for good. Default 60 s.
    #[serde(default = "SseOptions::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl SseOptions {
    fn default_timeout() -> Duration {
        Duration::from_secs(60)
    }
}

/// How a `file` feed reads its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// Each appended line is one document.
    #[default]
    Tail,
    /// The whole content is one document, read on every change.
    Whole,
}

/// `file`: watches a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The file; a relative path is relative to the config file's directory.
    pub path: PathBuf,
    /// `tail` (default) or `whole`.
    #[serde(default)]
    pub mode: FileMode,
    /// JSON Pointer (RFC 6901) into each document.
    pub extract: Option<String>,
    /// How each document is read.
    #[serde(default)]
    pub format: Format,
    /// `whole` mode: after each read, delete this feed's topics that the
    /// document no longer has.
    #[serde(default)]
    pub prune: bool,
}

/// A secret from the config (a password, a token): deserialized as a plain
/// string, shown as `***` by `Debug`, so printing a config never leaks it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `mqtt`: subscribes to topic filters on an MQTT 3.1.1 broker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttOptions {
    /// The broker, `mqtt://host:port` (default port 1883) or `mqtts://host:port`
    /// (TLS, default port 8883). Credentials go in `username`/`password`.
    pub url: String,
    /// Topic filters, e.g. `["sensors/+/temp", "plant/#"]`.
    pub subscribe: Vec<String>,
    /// Subscription QoS: 0 (at most once) or 1 (at least once; with the
    /// persistent session, messages sent while tickerd was away arrive on
    /// reconnect). Default 1.
    #[serde(default = "MqttOptions::default_qos")]
    pub qos: u8,
    /// The MQTT client id; default `tickerd-<feed name>`. The broker keeps the
    /// session under it, so it must be stable and unique per broker.
    pub client_id: Option<String>,
    /// `true` starts a fresh session on every connect (the broker forgets
    /// subscriptions and queued messages). Default `false`: a persistent session.
    #[serde(default)]
    pub clean_session: bool,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (with `username`); never logged.
    pub password: Option<Secret>,
    /// For `mqtts://`: a PEM file of CA certificates to trust instead of the
    /// public web roots (a broker with a private CA); relative to the config
    /// file's directory.
    pub ca_file: Option<PathBuf>,
    /// MQTT keep-alive: the client pings when idle this long; the broker drops
    /// a client silent for 1.5 times it. Default 30 s.
    #[serde(default = "secs::<30>", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// JSON Pointer (RFC 6901) into each payload.
    pub extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub format: Format,
}

impl MqttOptions {
    fn default_qos() -> u8 {
        1
    }
}

/// How a `redis` feed reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// SUBSCRIBE to `channels` and PSUBSCRIBE to `patterns`.
    #[default]
    Pubsub,
    /// XREAD `streams`, resuming after the last entry delivered.
    Stream,
}

/// `redis`: Redis pub/sub channels or streams.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisOptions {
    /// The server, `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// `pubsub` (default) or `stream`.
    #[serde(default)]
    pub mode: RedisMode,
    /// Channels to SUBSCRIBE to (`pubsub` mode).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Glob patterns to PSUBSCRIBE to (`pubsub` mode), e.g. `prices:*`.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Stream keys to XREAD (`stream` mode).
    #[serde(default)]
    pub streams: Vec<String>,
    /// User name (Redis 6 ACL); overrides one in `url`.
    pub username: Option<String>,
    /// Password; overrides one in `url`; never logged.
    pub password: Option<Secret>,
    /// JSON Pointer (RFC 6901) into each payload.
    pub extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub format: Format,
}

/// `nats`: a NATS core subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsOptions {
    /// The server, `nats://host:port` (or `tls://host:port`).
    pub url: String,
    /// The subject, wildcards allowed: `prices.*`, `plant.>`.
    pub subject: String,
    /// User (with `password`).
    pub user: Option<String>,
    /// Password (with `user`); never logged.
    pub password: Option<Secret>,
    /// Token authentication; never logged.
    pub token: Option<Secret>,
    /// A JetStream stream that stores `subject` (with `durable`).
    pub stream: Option<String>,
    /// A durable JetStream consumer (with `stream`): tickerd acknowledges each
    /// message once published, so messages stored while it was away or
    /// disconnected arrive when it reconnects, once each. Created on first use
    /// (delivering messages newer than that); an existing one is used as is.
    pub durable: Option<String>,
    /// JSON Pointer (RFC 6901) into each payload.
    pub extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub format: Format,
}

/// `prometheus`: evaluates a PromQL query through the HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusOptions {
    /// The Prometheus server's base URL, e.g. `http://127.0.0.1:9090` (basic
    /// auth in the URL is sent, and shown as `***` in logs and errors).
    pub url: String,
    /// The PromQL instant query, e.g. `rate(node_cpu_seconds_total[1m])`.
    pub query: String,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest one query may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub timeout: Duration,
    /// Time between queries.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub interval: Duration,
}

/// How a `postgres` feed publishes a `numeric` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumericAs {
    /// As a JSON number (may lose digits past f64's precision; the default).
    #[default]
    Float,
    /// As the exact decimal string.
    String,
}

/// How a `postgres` feed publishes `timestamp` / `timestamptz` columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampAs {
    /// Milliseconds since the Unix epoch (the default).
    #[default]
    Ms,
    /// An RFC 3339 string in UTC, e.g. `2024-05-01T12:00:00.000Z`.
    Rfc3339,
}

/// `postgres`: LISTEN/NOTIFY channels, or a SELECT run every `interval`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// Connection string without a password: a URL such as
    /// `postgres://tickerd@127.0.0.1:5432/market`, or `key=value` pairs such
    /// as `host=/run/postgresql user=tickerd dbname=market`.
    pub url: String,
    /// Environment variable holding the password (e.g. `"PGPASSWORD"`).
    pub password_env: Option<String>,
    /// Channels to LISTEN on; each notification's payload is one document.
    #[serde(default)]
    pub listen: Vec<String>,
    /// A query run every `interval`; each row is one item, columns as fields.
    pub query: Option<String>,
    /// Time between queries (`query` mode).
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a connect or one query may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub timeout: Duration,
    /// `numeric` columns as `"float"` (default) or `"string"`.
    #[serde(default)]
    pub numeric: NumericAs,
    /// Timestamp columns as `"ms"` (default) or `"rfc3339"`.
    #[serde(default)]
    pub timestamps: TimestampAs,
    /// JSON Pointer (RFC 6901) into each notification's payload.
    pub extract: Option<String>,
    /// How each notification's payload is read.
    #[serde(default)]
    pub format: Format,
}

/// A feed's kind and its kind-specific options.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedKind {
    /// `kind = "synthetic"`
    Synthetic(SyntheticOptions),
    /// `kind = "system"`
    System(SystemOptions),
    /// `kind = "http"`
    Http(HttpOptions),
    /// `kind = "command"`
    Command(CommandOptions),
    /// `kind = "websocket"`
    WebSocket(WebSocketOptions),
    /// `kind = "sse"`
    Sse(SseOptions),
    /// `kind = "file"`
    File(FileOptions),
    /// `kind = "mqtt"`
    Mqtt(MqttOptions),
    /// `kind = "redis"`
    Redis(RedisOptions),
    /// `kind = "nats"`
    Nats(NatsOptions),
    /// `kind = "prometheus"`
    Prometheus(PrometheusOptions),
    /// `kind = "postgres"`
    Postgres(PostgresOptions),
    /// A kind registered from Rust (see `Ticker::builder().kind(..)`); its options
    /// are the table's remaining keys.
    Custom {
        /// The registered kind name.
        kind: String,
        /// Every key of the table except the common ones.
        options: toml::Table,
    },
}

impl FeedKind {
    /// The kind's name as written in config.
    pub fn name(&self) -> &str {
        match self {
            FeedKind::Synthetic(_) => "synthetic",
            FeedKind::System(_) => "system",
            FeedKind::Http(_) => "http",
            FeedKind::Command(_) => "command",
            FeedKind::WebSocket(_) => "websocket",
            FeedKind::Sse(_) => "sse",
            FeedKind::File(_) => "file",
            FeedKind::Mqtt(_) => "mqtt",
            FeedKind::Redis(_) => "redis",
            FeedKind::Nats(_) => "nats",
            FeedKind::Prometheus(_) => "prometheus",
            FeedKind::Postgres(_) => "postgres",
            FeedKind::Custom { kind, .. } => kind,
        }
    }
}

/// The built-in kind names, as accepted in `kind = ".."`.
pub const BUILTIN_KINDS: [&str; 12] = [
    "synthetic",
    "system",
    "http",
    "command",
    "websocket",
    "sse",
    "file",
    "mqtt",
    "redis",
    "nats",
    "prometheus",
    "postgres",
];

/// How many updates the topics of one feed keep (`history = 500` or
/// `history = "15m"`), in place of `[history] size`: e.g. enough for a
/// dashboard chart's window. Bounded by `[limits] max_history` either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedHistory {
    /// The last N updates.
    Count(usize),
    /// The updates of this last span of time.
    Age(Duration),
}

/// One validated `[[feed]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    /// Unique name, `[a-z0-9_-]+`.
    pub name: String,
    /// Where each item is published.
    pub topic: TopicTemplate,
    /// `false` keeps the feed defined but not running.
    pub enabled: bool,
    /// No update for this long marks the feed's topics stale.
    pub stale_after: Option<Duration>,
    /// Updates its topics keep, when not `[history] size`.
    pub history: Option<FeedHistory>,
    /// A topic of this feed not updated for this long is deleted.
    pub ttl: Option<Duration>,
    /// What happens to the feed's topics when it is removed from the config.
    pub on_remove: OnRemove,
    /// What the feed does.
    pub kind: FeedKind,
    /// `transform = [...]`: steps applied to every item, in order (any kind).
    pub transform: Vec<crate::transform::Transform>,
    /// Largest item it reads from its source; `None` until loaded, then its own
    /// `max_item_bytes` or `[limits] max_item_bytes`.
    pub max_item_bytes: Option<usize>,
    /// Where it was defined (not part of equality: moving a feed is no change).
    pub location: Location,
}

const COMMON_KEYS: [&str; 10] = [
    "name",
    "kind",
    "topic",
    "enabled",
    "stale_after",
    "transform",
    "max_item_bytes",
    "history",
    "ttl",
    "on_remove",
];

/// A feed's `on_remove`: what happens to its topics when the feed leaves the
/// config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnRemove {
    /// They stay, with their last value, marked `"feed_removed": true` in the
    /// topic list (the default).
    #[default]
    Keep,
    /// They are deleted (subscribers get `gone`).
    Delete,
}

fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}
fn default_start() -> f64 {
    100.0
}
fn default_volatility() -> f64 {
    0.01
}
fn default_method() -> String {
    "GET".to_string()
}

/// A raw `[[feed]]` table whose keys and values keep their positions.
pub(super) type RawFeed = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// Turns one raw table into a [`FeedConfig`], collecting every error.
pub(super) fn parse_feed(
    raw: RawFeed,
    file: &Path,
    text: &str,
    base_dir: &Path,
    custom_kinds: &dyn Fn(&str) -> bool,
) -> Result<FeedConfig, Vec<ConfigError>> {
    let at = |span: std::ops::Range<usize>| Location::new(file, text, span.start);
    let feed_loc = at(raw.span());
    let table = raw.into_inner();
    let line_of = |key: &str| {
        table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map_or_else(|| feed_loc.clone(), |(k, _)| at(k.span()))
    };
    let name = match table.get("name").map(|v| v.get_ref()) {
        Some(toml::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut errors = Vec::new();
    let mut error = |loc: Location, msg: String| {
        errors.push(ConfigError {
            location: Some(loc),
            feed: name.clone(),
            message: msg,
        })
    };
    match &name {
        None => error(feed_loc.clone(), "missing `name` (a string)".into()),
        Some(n)
            if n.is_empty()
                || !n.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                }) =>
        {
            error(
                line_of("name"),
                format!("name {n:?} must match [a-z0-9_-]+"),
            )
        }
        _ => {}
    }
    let topic = match table.get("topic").map(|v| v.get_ref()) {
        Some(toml::Value::String(s)) => match TopicTemplate::parse(s) {
            Ok(t) => Some(t),
            Err(e) => {
                error(line_of("topic"), e.to_string());
                None
            }
        },
        Some(_) => {
            error(line_of("topic"), "`topic` must be a string".into());
            None
        }
        None => {
            error(feed_loc.clone(), "missing `topic`".into());
            None
        }
    };
    let enabled = match table.get("enabled").map(|v| v.get_ref()) {
        None => true,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => {
            error(line_of("enabled"), "`enabled` must be true or false".into());
            true
        }
    };
    let stale_after = match table.get("stale_after").map(|v| v.get_ref()) {
        None => None,
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                error(line_of("stale_after"), format!("stale_after: {e}"));
                None
            }
        },
        Some(_) => {
            error(
                line_of("stale_after"),
                "`stale_after` must be a duration string such as \"30s\"".into(),
            );
            None
        }
    };
    let transform = match table.get("transform").map(|v| v.get_ref()) {
        None => Vec::new(),
        Some(v) => crate::transform::Transform::parse_list(v).unwrap_or_else(|msgs| {
            for msg in msgs {
                error(line_of("transform"), msg);
            }
            Vec::new()
        }),
    };
    let max_item_bytes = match table.get("max_item_bytes").map(|v| v.get_ref()) {
        None => None,
        Some(toml::Value::Integer(n)) if *n > 0 => usize::try_from(*n).ok(),
        Some(_) => {
            error(
                line_of("max_item_bytes"),
                "`max_item_bytes` must be a whole number of bytes greater than zero, \
                 such as 1048576"
                    .into(),
            );
            None
        }
    };
    let history = match table.get("history").map(|v| v.get_ref()) {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => Some(FeedHistory::Count(*n as usize)),
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Ok(d) => Some(FeedHistory::Age(d)),
            Err(e) => {
                error(line_of("history"), format!("history: {e}"));
                None
            }
        },
        Some(_) => {
            error(
                line_of("history"),
                "`history` must be a count (e.g. 500) or a duration string (e.g. \"15m\")".into(),
            );
            None
        }
    };
    let ttl = match table.get("ttl").map(|v| v.get_ref()) {
        None => None,
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                error(line_of("ttl"), "ttl must be greater than zero".into());
                None
            }
            Err(e) => {
                error(line_of("ttl"), format!("ttl: {e}"));
                None
            }
        },
        Some(_) => {
            error(
                line_of("ttl"),
                "`ttl` must be a duration string such as \"10m\"".into(),
            );
            None
        }
    };
    let on_remove = match table.get("on_remove").map(|v| v.get_ref()) {
        None => OnRemove::Keep,
        Some(toml::Value::String(s)) if s == "keep" => OnRemove::Keep,
        Some(toml::Value::String(s)) if s == "delete" => OnRemove::Delete,
        Some(_) => {
            error(
                line_of("on_remove"),
                "`on_remove` must be \"keep\" or \"delete\"".into(),
            );
            OnRemove::Keep
        }
    };
    let options: toml::Table = table
        .iter()
        .filter(|(k, _)| !COMMON_KEYS.contains(&k.get_ref().as_str()))
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect();
    let kind = match table.get("kind").map(|v| v.get_ref()) {
        Some(toml::Value::String(k)) => {
            let kind_loc = line_of("kind");
            match parse_kind(k, options, base_dir) {
                Ok(kind) => Some(kind),
                Err(KindError::Unknown(options)) if custom_kinds(k) => Some(FeedKind::Custom {
                    kind: k.clone(),
                    options,
                }),
                Err(KindError::Unknown(_)) => {
                    error(
                        kind_loc,
                        format!(
                            "unknown kind {k:?} (expected one of {})",
                            BUILTIN_KINDS.join(", ")
                        ),
                    );
                    None
                }
                Err(KindError::Invalid(msgs)) => {
                    for (key, msg) in msgs {
                        let loc = key.as_deref().map_or_else(|| kind_loc.clone(), &line_of);
                        error(loc, msg);
                    }
                    None
                }
            }
        }
        Some(_) => {
            error(line_of("kind"), "`kind` must be a string".into());
            None
        }
        None => {
            error(feed_loc.clone(), "missing `kind`".into());
            None
        }
    };
    match (name, topic, kind) {
        (Some(name), Some(topic), Some(kind)) if errors.is_empty() => Ok(FeedConfig {
            name,
            topic,
            enabled,
            stale_after,
            history,
            ttl,
            on_remove,
            kind,
            transform,
            max_item_bytes,
            location: feed_loc,
        }),
        _ => Err(errors),
    }
}

enum KindError {
    /// Not a built-in kind; gives the options back for a custom kind.
    Unknown(toml::Table),
    /// `(key the error is about, message)` pairs.
    Invalid(Vec<(Option<String>, String)>),
}

fn parse_kind(kind: &str, options: toml::Table, base_dir: &Path) -> Result<FeedKind, KindError> {
    let mut problems = Vec::new();
    let kind = match kind {
        "synthetic" => de(options, &mut problems).map(FeedKind::Synthetic),
        "system" => de(options, &mut problems).map(FeedKind::System),
        "http" => de(options, &mut problems).map(FeedKind::Http),
        "command" => de(options, &mut problems).map(FeedKind::Command),
        "websocket" => de(options, &mut problems).map(FeedKind::WebSocket),
        "sse" => de(options, &mut problems).map(FeedKind::Sse),
        "mqtt" => de::<MqttOptions>(options, &mut problems).map(|mut m| {
            m.ca_file = m.ca_file.map(|p| base_dir.join(p));
            FeedKind::Mqtt(m)
        }),
        "redis" => de(options, &mut problems).map(FeedKind::Redis),
        "nats" => de(options, &mut problems).map(FeedKind::Nats),
        "prometheus" => de(options, &mut problems).map(FeedKind::Prometheus),
        "postgres" => de(options, &mut problems).map(FeedKind::Postgres),
        "file" => de::<FileOptions>(options, &mut problems).map(|mut f| {
            if f.path.is_relative() {
                f.path = base_dir.join(&f.path);
            }
            FeedKind::File(f)
        }),
        _ => return Err(KindError::Unknown(options)),
    };
    if let Some(k) = &kind {
        problems.extend(check_kind(k));
    }
    match kind {
        Some(k) if problems.is_empty() => Ok(k),
        _ => Err(KindError::Invalid(problems)),
    }
}

/// Deserializes a table's keys into `T` (a kind's options, a `[server]`
/// section). On an error it names the key the error is about, drops that key
/// and tries again, so one pass reports every bad key; the value built without
/// the bad keys (if any) still gets its value checks. Each message carries a
/// hint from [`explain`]; a "missing field" for a key that was there but bad is
/// not reported twice.
pub(super) fn de<T: serde::de::DeserializeOwned>(
    mut options: toml::Table,
    problems: &mut Vec<(Option<String>, String)>,
) -> Option<T> {
    let mut dropped: Vec<String> = Vec::new();
    for _ in 0..=options.len() {
        match toml::Value::Table(options.clone()).try_into::<T>() {
            Ok(v) => return Some(v),
            Err(e) => {
                let msg = e.message().trim().to_string();
                if dropped
                    .iter()
                    .any(|k| msg == format!("missing field `{k}`"))
                {
                    return None;
                }
                let key = blamed_key(&msg, &options);
                let value = key.as_ref().and_then(|k| options.get(k));
                problems.push((key.clone(), explain(&msg, key.as_deref(), value)));
                match key {
                    Some(k) if options.remove(&k).is_some() => dropped.push(k),
                    _ => return None,
                }
            }
        }
    }
    None
}

/// A serde message made actionable: what a duration looks like, a list written
/// as a string shown as the list it should be, the nearest valid name for an
/// unknown one.
pub(super) fn explain(msg: &str, key: Option<&str>, value: Option<&toml::Value>) -> String {
    if msg.contains("expected a duration") {
        return format!("{msg}; use a string like \"5s\", \"250ms\", \"1m\"");
    }
    if msg.contains("expected a sequence") {
        if let (Some(k), Some(toml::Value::String(s))) = (key, value) {
            let list: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
            return format!(
                "`{k}` must be a list, not a string: write {k} = [{}]",
                list.join(", ")
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        if let Some(near) = nearest(name, &candidates) {
            let expected = expected.trim_start_matches(", ");
            return format!("unknown field `{name}`; did you mean `{near}`? ({expected})");
        }
    }
    msg.to_string()
}

/// The candidate closest to `name`, when it is close enough to be a typo.
pub(super) fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The key a serde message is about: serde quotes key names in backticks
/// (`unknown field `intervl``) and values in quotes or backticks (`invalid value:
/// string "often"`), so try names first, then values.
fn blamed_key(msg: &str, options: &toml::Table) -> Option<String> {
    let quoted: Vec<&str> = msg.split(['`', '"']).skip(1).step_by(2).collect();
    if let Some(k) = quoted.iter().find(|q| options.contains_key(**q)) {
        return Some(k.to_string());
    }
    options
        .iter()
        .find(|(_, v)| {
            let shown = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            quoted.contains(&shown.as_str())
        })
        .map(|(k, _)| k.clone())
}

/// Value checks beyond types: URLs, pointers, positive intervals.
fn check_kind(kind: &FeedKind) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut bad = |key: &str, msg: String| out.push((Some(key.to_string()), msg));
    let check_interval = |d: &Duration, key: &str, bad: &mut dyn FnMut(&str, String)| {
        if d.is_zero() {
            bad(key, format!("`{key}` must be greater than zero"));
        }
    };
    let check_extract = |e: &Option<String>, bad: &mut dyn FnMut(&str, String)| {
        if let Some(p) = e {
            if !p.is_empty() && !p.starts_with('/') {
                bad(
                    "extract",
                    format!(
                        "extract {p:?} is not a JSON Pointer (it must be empty or start with `/`)"
                    ),
                );
            }
        }
    };
    let check_url =
        |u: &str, schemes: &[&str], bad: &mut dyn FnMut(&str, String)| match reqwest::Url::parse(u)
        {
            Ok(url) if schemes.contains(&url.scheme()) => {}
            Ok(url) => bad(
                "url",
                format!(
                    "url scheme `{}` is not one of {}",
                    url.scheme(),
                    schemes.join(", ")
                ),
            ),
            Err(e) => bad("url", format!("url {u:?}: {e}")),
        };
    let check_headers = |h: &BTreeMap<String, String>, bad: &mut dyn FnMut(&str, String)| {
        for (k, v) in h {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                bad(
                    "headers",
                    format!("header {k:?} is not a valid HTTP header"),
                );
            }
        }
    };
    match kind {
        FeedKind::Synthetic(s) => {
            check_interval(&s.interval, "interval", &mut bad);
            if s.symbols.is_empty() {
                bad("symbols", "`symbols` must list at least one symbol".into());
            }
            if !(s.start.is_finite() && s.start > 0.0) {
                bad("start", "`start` must be a positive number".into());
            }
            if !(s.volatility.is_finite() && s.volatility >= 0.0) {
                bad("volatility", "`volatility` must be zero or more".into());
            }
        }
        FeedKind::System(s) => check_interval(&s.interval, "interval", &mut bad),
        FeedKind::Http(h) => {
            check_url(&h.url, &["http", "https"], &mut bad);
            check_interval(&h.interval, "interval", &mut bad);
            check_interval(&h.timeout, "timeout", &mut bad);
            check_extract(&h.extract, &mut bad);
            check_headers(&h.headers, &mut bad);
            if http::Method::from_bytes(h.method.as_bytes()).is_err() {
                bad(
                    "method",
                    format!("method {:?} is not an HTTP method", h.method),
                );
            }
        }
        FeedKind::Command(c) => {
            if c.command.first().is_none_or(|p| p.is_empty()) {
                bad(
                    "command",
                    "`command` must be a non-empty list: [program, args...]".into(),
                );
            }
            check_interval(&c.interval, "interval", &mut bad);
            check_interval(&c.timeout, "timeout", &mut bad);
            check_extract(&c.extract, &mut bad);
        }
        FeedKind::WebSocket(w) => {
            check_url(&w.url, &["ws", "wss"], &mut bad);
            check_extract(&w.extract, &mut bad);
            check_headers(&w.headers, &mut bad);
        }
        FeedKind::Sse(s) => {
            check_url(&s.url, &["http", "https"], &mut bad);
            check_extract(&s.extract, &mut bad);
            check_headers(&s.headers, &mut bad);
        }
        FeedKind::File(f) => {
            check_extract(&f.extract, &mut bad);
            if f.prune && f.mode != FileMode::Whole {
                bad(
                    "prune",
                    "`prune = true` needs `mode = \"whole\"` (a tailed file has no full set of topics)".into(),
                );
            }
        }
        FeedKind::Mqtt(m) => {
            check_extract(&m.extract, &mut bad);
            check_mqtt(m, &mut bad);
        }
        FeedKind::Redis(r) => {
            check_extract(&r.extract, &mut bad);
            check_redis(r, &mut bad);
        }
        FeedKind::Nats(n) => {
            check_extract(&n.extract, &mut bad);
            check_nats(n, &mut bad);
        }
        FeedKind::Prometheus(p) => {
            check_url(&p.url, &["http", "https"], &mut bad);
            check_interval(&p.interval, "interval", &mut bad);
            check_interval(&p.timeout, "timeout", &mut bad);
            check_headers(&p.headers, &mut bad);
            if p.query.trim().is_empty() {
                bad(
                    "query",
                    "`query` must be a PromQL expression, e.g. \"up\"".into(),
                );
            }
        }
        FeedKind::Postgres(p) => {
            check_interval(&p.interval, "interval", &mut bad);
            check_interval(&p.timeout, "timeout", &mut bad);
            check_extract(&p.extract, &mut bad);
            for (key, msg) in check_postgres(p) {
                bad(key, msg);
            }
        }
        FeedKind::Custom { .. } => {}
    }
    out
}

/// Checks a broker URL: parses, has one of `schemes` and a host. The URL is
/// shown with its password redacted.
fn check_broker_url(u: &str, schemes: &[&str], bad: &mut dyn FnMut(&str, String)) {
    match reqwest::Url::parse(u) {
        Ok(url) if !schemes.contains(&url.scheme()) => bad(
            "url",
            format!(
                "url scheme `{}` is not one of {}",
                url.scheme(),
                schemes.join(", ")
            ),
        ),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => bad(
            "url",
            format!(
                "url {:?} has no host (write e.g. {}://127.0.0.1)",
                redact_url(u),
                schemes[0]
            ),
        ),
        Ok(_) => {}
        Err(e) => bad("url", format!("url {:?}: {e}", redact_url(u))),
    }
}

fn check_mqtt(m: &MqttOptions, bad: &mut dyn FnMut(&str, String)) {
    check_broker_url(&m.url, &["mqtt", "mqtts"], bad);
    if let Ok(url) = reqwest::Url::parse(&m.url) {
        if !url.username().is_empty() || url.password().is_some() {
            bad(
                "url",
                "put MQTT credentials in `username` and `password`, not in `url`".into(),
            );
        }
    }
    if m.ca_file.is_some() && !m.url.starts_with("mqtts:") {
        bad("ca_file", "`ca_file` is for mqtts:// URLs".into());
    }
    if m.subscribe.is_empty() {
        bad(
            "subscribe",
            "`subscribe` must list at least one topic filter, e.g. [\"sensors/#\"]".into(),
        );
    }
    for f in &m.subscribe {
        let levels: Vec<&str> = f.split('/').collect();
        let ok = !f.is_empty()
            && levels.iter().enumerate().all(|(i, l)| {
                (*l == "#" && i == levels.len() - 1)
                    || *l == "+"
                    || !(l.contains('#') || l.contains('+'))
            });
        if !ok {
            bad(
                "subscribe",
                format!(
                    "topic filter {f:?} is not valid: `+` must be a whole level, `#` the whole last level"
                ),
            );
        }
    }
    if m.qos > 1 {
        bad("qos", format!("qos {} is not supported: use 0 or 1", m.qos));
    }
    if m.client_id.as_deref() == Some("") {
        bad("client_id", "`client_id` must not be empty".into());
    }
    if m.password.is_some() && m.username.is_none() {
        bad("password", "`password` needs `username`".into());
    }
    if m.keep_alive < Duration::from_secs(1) {
        bad("keep_alive", "`keep_alive` must be at least 1s".into());
    }
}

fn check_redis(r: &RedisOptions, bad: &mut dyn FnMut(&str, String)) {
    check_broker_url(&r.url, &["redis"], bad);
    match r.mode {
        RedisMode::Pubsub => {
            if r.channels.is_empty() && r.patterns.is_empty() {
                bad(
                    "mode",
                    "mode \"pubsub\" needs `channels` and/or `patterns`".into(),
                );
            }
            if !r.streams.is_empty() {
                bad(
                    "streams",
                    "`streams` is for mode = \"stream\" (this feed is in mode \"pubsub\")".into(),
                );
            }
        }
        RedisMode::Stream => {
            if r.streams.is_empty() {
                bad("mode", "mode \"stream\" needs `streams`".into());
            }
            for key in ["channels", "patterns"] {
                let set = if key == "channels" {
                    &r.channels
                } else {
                    &r.patterns
                };
                if !set.is_empty() {
                    bad(
                        key,
                        format!(
                            "`{key}` is for mode = \"pubsub\" (this feed is in mode \"stream\")"
                        ),
                    );
                }
            }
        }
    }
    for (key, names) in [
        ("channels", &r.channels),
        ("patterns", &r.patterns),
        ("streams", &r.streams),
    ] {
        if names.iter().any(String::is_empty) {
            bad(key, format!("`{key}` must not hold an empty name"));
        }
    }
}

fn check_nats(n: &NatsOptions, bad: &mut dyn FnMut(&str, String)) {
    check_broker_url(&n.url, &["nats", "tls"], bad);
    let tokens: Vec<&str> = n.subject.split('.').collect();
    let ok = tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.chars().any(char::is_whitespace)
            && (*t != ">" || i == tokens.len() - 1)
            && (t.len() == 1 || !(t.contains('*') || t.contains('>')))
    });
    if !ok {
        bad(
            "subject",
            format!(
                "subject {:?} is not valid: dot-separated tokens, `*` a whole token, `>` the whole last token",
                n.subject
            ),
        );
    }
    match (&n.user, &n.password) {
        (Some(_), None) => bad("user", "`user` and `password` go together".into()),
        (None, Some(_)) => bad("password", "`user` and `password` go together".into()),
        _ => {}
    }
    match (&n.stream, &n.durable) {
        (Some(_), None) => bad(
            "stream",
            "`stream` needs `durable` (a consumer name)".into(),
        ),
        (None, Some(_)) => bad(
            "durable",
            "`durable` needs `stream` (the JetStream stream)".into(),
        ),
        _ => {}
    }
    for (key, name) in [("stream", &n.stream), ("durable", &n.durable)] {
        if let Some(name) = name {
            if name.is_empty()
                || name.contains(['.', '*', '>', '/', '\\'])
                || name.contains(char::is_whitespace)
            {
                bad(
                    key,
                    format!("{key} {name:?} is not a valid JetStream name (no spaces, `.`, `*`, `>`, `/`)"),
                );
            }
        }
    }
    if n.token.is_some() && n.user.is_some() {
        bad(
            "token",
            "use either `token` or `user`/`password`, not both".into(),
        );
    }
}

/// Parses a humantime duration and refuses zero.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{s:?} must be greater than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{s:?} is not a duration ({e}); write e.g. \"500ms\", \"5s\", \"1m\""
        )),
    }
}

/// `url` with any password replaced by `***`, for errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) if u.has_host() => u.to_string(),
        // Unparsable, or no host to hold credentials (`u:pw@host` reads as a
        // path): drop whatever sits between the scheme and the last `@`.
        _ => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_string(),
        },
    }
}

/// Checks what the config types cannot: the URL parses and holds no
/// password, exactly one mode is chosen, channel names are identifiers.
/// Returns `(key, message)` pairs.
pub(crate) fn check_postgres(o: &PostgresOptions) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match <tokio_postgres::Config as std::str::FromStr>::from_str(&o.url) {
        Err(e) => out.push((
            "url",
            format!(
                "url is not a PostgreSQL connection string ({e}); \
                 write e.g. \"postgres://tickerd@127.0.0.1:5432/market\""
            ),
        )),
        Ok(c) if c.get_password().is_some() => out.push((
            "url",
            "url must not hold a password: put it in an environment variable \
             and name that with `password_env = \"PGPASSWORD\"`"
                .into(),
        )),
        Ok(_) => {}
    }
    if o.password_env.as_deref() == Some("") {
        out.push((
            "password_env",
            "`password_env` must name an environment variable".into(),
        ));
    }
    match (o.listen.is_empty(), &o.query) {
        (true, None) => out.push((
            "listen",
            "set `listen = [\"channel\"]` (LISTEN/NOTIFY) or `query = \"SELECT ..\"` (polling)"
                .into(),
        )),
        (false, Some(_)) => out.push((
            "query",
            "`listen` and `query` are two modes: use one feed for each".into(),
        )),
        (_, Some(q)) if q.trim().is_empty() => {
            out.push(("query", "`query` must be a SELECT statement".into()))
        }
        _ => {}
    }
    for channel in &o.listen {
        if channel.is_empty() || channel.len() > 63 || channel.contains('\0') {
            out.push((
                "listen",
                format!("channel {channel:?} must be 1 to 63 bytes (a PostgreSQL identifier)"),
            ));
        }
    }
    if o.query.is_some() && (o.extract.is_some() || o.format != Default::default()) {
        out.push((
            "extract",
            "`extract` and `format` read notification payloads; in `query` mode each row is \
             already an item"
                .into(),
        ));
    }
    out
}
