//! Warnings for dashboard panels that no feed can feed: a panel's `topic` or
//! `pattern` that no topic of an enabled feed's template can match (a typo
//! such as `stocks.APPL`) would show nothing forever.
//!
//! What is compared (the rule itself is [`TopicTemplate::can_produce`]):
//! - only when the config has at least one `[[feed]]`: without feeds, every
//!   topic comes from publishers (the HTTP API, an embedding program), which
//!   the config cannot know;
//! - `$` topics (`$sys.feeds`) never warn: the server makes them;
//! - `feeds` and `text` panels name no topic of a feed;
//! - a placeholder is any one segment, except a synthetic feed's `{symbol}`
//!   (one of its `symbols`) and a broker's source name (`{mqtt_topic}`,
//!   `{nats_subject}`, `{redis_channel}`, `{redis_stream}`: one or more
//!   segments, as the feed maps the name's separators to dots).

use std::collections::BTreeMap;

use super::{Dashboard, PanelKind};
use crate::config::{ConfigError, FeedConfig};
use crate::topic::{is_system, Fill, Pattern};

/// The placeholders a broker kind fills with a message's whole source name,
/// which may span several segments (see `feeds/broker.rs`, `SourceName`).
const SOURCE_NAMES: [&str; 4] = [
    "mqtt_topic",
    "nats_subject",
    "redis_channel",
    "redis_stream",
];

/// A synthetic feed's `symbols` (the values of its `{symbol}`), when written.
fn synthetic_symbols(feed: &FeedConfig) -> Option<Vec<String>> {
    if feed.kind != "synthetic" {
        return None;
    }
    let list = feed.options.get("symbols")?.as_array()?;
    list.iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Can `feed`'s template make a topic that `pattern` matches?
fn feeds_it(feed: &FeedConfig, pattern: &Pattern) -> bool {
    let symbols = synthetic_symbols(feed);
    feed.topic.can_produce(pattern, &|name| {
        if SOURCE_NAMES.contains(&name) {
            return Fill::Segments;
        }
        match &symbols {
            Some(s) if name == "symbol" => Fill::OneOf(s),
            _ => Fill::Segment,
        }
    })
}

/// One warning per panel whose `topic` or `pattern` no enabled feed of `feeds`
/// can produce, at the line it is written on. Called wherever a config is
/// built, so `tickerd check` prints them and start and every reload log them.
pub(crate) fn unreachable_panels(
    dashboards: &BTreeMap<String, Dashboard>,
    feeds: &[FeedConfig],
) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    if feeds.is_empty() {
        return warnings;
    }
    for (name, dashboard) in dashboards {
        for (i, panel) in dashboard.panels.iter().enumerate() {
            if matches!(panel.kind, PanelKind::Feeds | PanelKind::Text) {
                continue;
            }
            let (key, text) = match (&panel.topic, &panel.pattern) {
                (Some(t), _) => ("topic", t),
                (None, Some(p)) => ("pattern", p),
                (None, None) => continue,
            };
            let Ok(pattern) = Pattern::parse(text) else {
                continue;
            };
            if is_system(text) || feeds.iter().any(|f| f.enabled && feeds_it(f, &pattern)) {
                continue;
            }
            warnings.push(ConfigError {
                location: panel
                    .location
                    .clone()
                    .or_else(|| Some(dashboard.location.clone())),
                feed: None,
                message: format!(
                    "dashboard \"{name}\": panel #{}: {key} \"{text}\" matches no topic an \
                     enabled feed makes ({}); check the spelling (ignore this if your own \
                     code or the publish API publishes it)",
                    i + 1,
                    describe(feeds, &pattern)
                ),
            });
        }
    }
    warnings
}

/// The enabled feeds' topics, and a disabled feed that would make a match.
fn describe(feeds: &[FeedConfig], pattern: &Pattern) -> String {
    let topics: Vec<String> = feeds
        .iter()
        .filter(|f| f.enabled)
        .map(
            |f| match synthetic_symbols(f).filter(|_| f.topic.as_str().contains("{symbol}")) {
                Some(s) => format!("{} for {}", f.topic.as_str(), s.join(", ")),
                None => f.topic.as_str().to_string(),
            },
        )
        .collect();
    let mut out = if topics.is_empty() {
        "no feed is enabled".to_string()
    } else {
        format!("feeds make {}", topics.join("; "))
    };
    if let Some(off) = feeds.iter().find(|f| !f.enabled && feeds_it(f, pattern)) {
        out.push_str(&format!(
            "; feed \"{}\" would, but it has enabled = false",
            off.name
        ));
    }
    out
}
