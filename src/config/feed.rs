//! `[[feed]]` tables: the common keys and the checks that turn a raw table into
//! a [`FeedConfig`]. A kind's own options are checked by the kind itself, through
//! [`FeedKinds`] (each kind's file in `feeds/` owns its options type). A
//! `FeedConfig` compares by value: hot reload diffs feeds that way.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::{ConfigError, Location};
use crate::topic::TopicTemplate;

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
#[non_exhaustive]
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
    /// What the feed does: a built-in kind's name or a registered custom one.
    pub kind: String,
    /// The kind's options: every key of the table but the common ones, with
    /// relative paths resolved against the config's directory.
    pub options: toml::Table,
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

/// Which part of a `[[feed]]` table a problem with its kind's options is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Blame {
    /// This key (the error names its line).
    Key(String),
    /// The options as a whole: the line of `kind`.
    Kind,
    /// The whole table: its `[[feed]]` line (a custom kind's options).
    Table,
}

/// The feed kinds a config may name, and the check of each kind's options.
/// The config loader asks it about every `[[feed]]`, built-in or custom kind
/// alike; the feed registry (`feeds::Kinds`) answers.
pub(crate) trait FeedKinds {
    /// Checks the options of a feed of `kind` (resolving relative paths in
    /// them against `base_dir`): `None` when no such kind exists, else every
    /// problem found.
    fn check(
        &self,
        kind: &str,
        options: &mut toml::Table,
        base_dir: &Path,
    ) -> Option<Vec<(Blame, String)>>;

    /// The kinds an unknown kind's message lists, e.g. `"synthetic, http"`.
    fn expected(&self) -> String;
}

/// A raw `[[feed]]` table whose keys and values keep their positions.
pub(super) type RawFeed = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// Turns one raw table into a [`FeedConfig`], collecting every error. A
/// `history` count above `max_history` (`[limits]`) is refused at its line.
pub(super) fn parse_feed(
    raw: RawFeed,
    file: &Path,
    text: &str,
    base_dir: &Path,
    kinds: &dyn FeedKinds,
    max_history: usize,
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
        Some(n) if !super::is_name(n) => error(
            line_of("name"),
            format!("name {n:?} must match [a-z0-9_-]+"),
        ),
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
        Some(toml::Value::Integer(n)) if (0..=max_history as i64).contains(n) => {
            Some(FeedHistory::Count(*n as usize))
        }
        Some(toml::Value::Integer(n)) if *n > 0 => {
            error(
                line_of("history"),
                format!(
                    "history = {n} is above [limits] max_history ({max_history}): \
                     keep at most {max_history} updates, or raise [limits] max_history"
                ),
            );
            None
        }
        Some(toml::Value::String(s)) if humantime::parse_duration(s).is_ok() => {
            match parse_duration(s) {
                Ok(d) => Some(FeedHistory::Age(d)),
                Err(e) => {
                    error(line_of("history"), format!("history: {e}"));
                    None
                }
            }
        }
        Some(v) => {
            error(
                line_of("history"),
                format!(
                    "`history` must be a count of updates (e.g. 500, at most [limits] \
                     max_history = {max_history}) or a duration (e.g. \"15m\"), not {v}"
                ),
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
    let mut options: toml::Table = table
        .iter()
        .filter(|(k, _)| !COMMON_KEYS.contains(&k.get_ref().as_str()))
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect();
    let kind = match table.get("kind").map(|v| v.get_ref()) {
        Some(toml::Value::String(k)) => {
            let kind_loc = line_of("kind");
            match kinds.check(k, &mut options, base_dir) {
                None => {
                    let expected = kinds.expected();
                    let names: Vec<&str> = expected.split(", ").collect();
                    let hint = crate::transform::did_you_mean(k, &names);
                    error(
                        kind_loc,
                        format!("unknown kind {k:?}{hint} (expected one of {expected})"),
                    );
                    None
                }
                Some(problems) if problems.is_empty() => Some(k.clone()),
                Some(problems) => {
                    for (blame, msg) in problems {
                        let loc = match blame {
                            Blame::Key(key) => line_of(&key),
                            Blame::Kind => kind_loc.clone(),
                            Blame::Table => feed_loc.clone(),
                        };
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
            options,
            transform,
            max_item_bytes,
            location: feed_loc,
        }),
        _ => Err(errors),
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
