//! What one `[[panel]]` is: its kinds, alert levels, thresholds, formats and
//! the keys each kind takes. Reading a panel table into a [`Panel`] and
//! checking it is `check.rs`'s.

use serde::{Deserialize, Serialize};

use crate::config::Location;

/// What a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    /// One field of one topic as a big number.
    Value,
    /// The automatic page's tile, for one topic or one per topic of a pattern.
    Tile,
    /// Rows for a pattern, chosen `columns`, sortable.
    Table,
    /// A scrolling ticker tape over a pattern.
    Tape,
    /// A line chart of one or more fields of one topic over a time `window`.
    Chart,
    /// A dial: one value against `min`/`max`.
    Gauge,
    /// A horizontal bar: one value against `min`/`max`.
    Bar,
    /// Feed health (state, last ok, errors, stale), from `$sys.feeds`.
    Feeds,
    /// A heading (`label`) and/or a short note (`text`).
    Text,
}

impl PanelKind {
    /// The kind names, as written in config.
    pub const NAMES: [&'static str; 9] = [
        "value", "tile", "table", "tape", "chart", "gauge", "bar", "feeds", "text",
    ];
}

/// How bad a value is when it crosses a threshold; colours come from the theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine (green).
    Ok,
    /// Worth a look (blue).
    Info,
    /// Warning (amber).
    Warn,
    /// Critical (red).
    Crit,
}

/// One `{ above = 80, level = "warn" }`: a value above (or below) the bound
/// takes the level. The last matching threshold in the list wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Threshold {
    /// Applies when the value is greater than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Applies when the value is less than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// The level it gives.
    pub level: Level,
}

/// One `[[panel]]`, as sent to browsers. Which keys a kind takes is checked
/// after parsing (see [`Panel::allowed`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Panel {
    /// What it shows.
    pub kind: PanelKind,
    /// One topic (`stocks.AAPL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A pattern of topics (`stocks.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The field shown: a dot path (`a.b`) or JSON Pointer (`/a/b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Several fields (a chart's lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The panel's caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How values are written: `number:2`, `percent`, `bytes`, `duration`,
    /// `time` and the other formats of `tickerd.js` (see [`FORMATS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Written after the value (`°C`, `req/s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Grid columns the panel takes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<u32>,
    /// Alert levels by value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// A chart's time window, e.g. `"15m"` (default `"5m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The window in milliseconds, filled in by validation for the browser.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// Lower end of a gauge or bar (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper end of a gauge or bar (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A table's columns: field names, `topic` for the topic itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// A text panel's note: plain text with `inline code`, **bold** and
    /// [links](https://example.com).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Which feeds a `feeds` panel lists, by health (default: all of them,
    /// failing first, then running, then stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<Vec<FeedHealth>>,
    /// Where its `topic` (or `pattern`, else the panel) is written, for
    /// warnings about it (not part of equality, not sent to browsers).
    #[serde(skip)]
    pub(crate) location: Option<Location>,
}

/// The formats a panel may name (the base name, before any `:arg`).
pub const FORMATS: [&str; 13] = [
    "auto", "number", "percent", "ratio", "signed", "bytes", "duration", "time", "ago", "currency",
    "compact", "json", "text",
];

impl Panel {
    /// Keys every kind takes.
    pub(super) const COMMON: [&'static str; 3] = ["kind", "label", "span"];

    /// The keys `kind` takes beyond the keys every panel takes (`kind`, `label`, `span`).
    pub fn allowed(kind: PanelKind) -> &'static [&'static str] {
        match kind {
            PanelKind::Value => &["topic", "field", "format", "unit", "thresholds"],
            PanelKind::Tile => &["topic", "pattern", "field", "format", "unit", "thresholds"],
            PanelKind::Table => &[
                "topic",
                "pattern",
                "columns",
                "format",
                "thresholds",
                "field",
            ],
            PanelKind::Tape => &["pattern", "field", "format", "unit"],
            PanelKind::Chart => &[
                "topic",
                "field",
                "fields",
                "format",
                "unit",
                "window",
                "thresholds",
                "min",
                "max",
            ],
            PanelKind::Gauge | PanelKind::Bar => &[
                "topic",
                "field",
                "format",
                "unit",
                "min",
                "max",
                "thresholds",
            ],
            PanelKind::Feeds => &["pattern", "show"],
            PanelKind::Text => &["text"],
        }
    }
}

/// Every key any panel kind takes.
pub(super) const PANEL_KEYS: [&str; 16] = [
    "kind",
    "topic",
    "pattern",
    "field",
    "fields",
    "label",
    "format",
    "unit",
    "span",
    "thresholds",
    "window",
    "min",
    "max",
    "columns",
    "text",
    "show",
];

pub(super) fn kind_name(kind: PanelKind) -> &'static str {
    PanelKind::NAMES[kind as usize]
}

/// A feed's health as a `feeds` panel groups it (its `show` key), in the order
/// the panel lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedHealth {
    /// Failed, backing off, or stale: listed first.
    Failing,
    /// Running (or starting) and fresh.
    Running,
    /// Stopped (disabled, or done).
    Stopped,
}
