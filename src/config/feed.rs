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
            FeedKind::Custom { kind, .. } => kind,
        }
    }
}

/// The built-in kind names, as accepted in `kind = ".."`.
pub const BUILTIN_KINDS: [&str; 7] = [
    "synthetic",
    "system",
    "http",
    "command",
    "websocket",
    "sse",
    "file",
];

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
    /// A topic of this feed not updated for this long is deleted.
    pub ttl: Option<Duration>,
    /// What happens to the feed's topics when it is removed from the config.
    pub on_remove: OnRemove,
    /// What the feed does.
    pub kind: FeedKind,
    /// Where it was defined (not part of equality: moving a feed is no change).
    pub location: Location,
}

const COMMON_KEYS: [&str; 7] = [
    "name",
    "kind",
    "topic",
    "enabled",
    "stale_after",
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
            ttl,
            on_remove,
            kind,
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

/// Deserializes a kind's options. On an error it names the key the error is
/// about, drops that key and tries again, so one pass reports every bad key; the
/// value built without the bad keys (if any) still gets its value checks.
fn de<T: serde::de::DeserializeOwned>(
    mut options: toml::Table,
    problems: &mut Vec<(Option<String>, String)>,
) -> Option<T> {
    for _ in 0..=options.len() {
        match toml::Value::Table(options.clone()).try_into::<T>() {
            Ok(v) => return Some(v),
            Err(e) => {
                let msg = e.message().trim().to_string();
                let key = blamed_key(&msg, &options);
                problems.push((key.clone(), msg));
                match key {
                    Some(k) if options.remove(&k).is_some() => {}
                    _ => return None,
                }
            }
        }
    }
    None
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
        FeedKind::Custom { .. } => {}
    }
    out
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
