//! Dashboards as config: every `NAME.toml` of `dashboards_dir` is the dashboard
//! `NAME`, a `title`, an optional grid width `columns` and `[[panel]]` tables.
//!
//! This module owns reading and checking those files into [`Dashboard`]s; it
//! never serves or publishes them (the server publishes the loaded set on
//! `$sys.dashboards` and the browser's `board.js` renders it). A panel is one
//! flat struct for every kind, checked per kind afterwards: the browser gets
//! the same JSON shape for every kind, and a key that a kind does not use is an
//! error naming the panel, just like an unknown key.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{ConfigError, Location};
use crate::topic::{validate_topic, Pattern};

/// The widest grid a dashboard may ask for.
pub const MAX_COLUMNS: u32 = 24;

/// The most panels one dashboard may hold (each is a DOM subtree in every
/// open browser).
pub const MAX_PANELS: usize = 500;

/// The longest chart `window`.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One validated dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Dashboard {
    /// Shown as the page's heading and in the list at `/`.
    pub title: String,
    /// Grid width in columns (default 4); a panel's `span` takes some of them.
    pub columns: u32,
    /// The panels, in order.
    pub panels: Vec<Panel>,
    /// Where it was defined (not part of equality, not sent to browsers).
    #[serde(skip)]
    pub location: Location,
}

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
    /// A text panel's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
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
    const COMMON: [&'static str; 3] = ["kind", "label", "span"];

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
            PanelKind::Feeds => &["pattern"],
            PanelKind::Text => &["text"],
        }
    }
}

/// A raw `[[panel]]` table whose keys keep their positions.
type RawPanel = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// A dashboard file; an unknown top-level name is refused by
/// `Doc::check_top_level` (with the nearest name), not by serde, so it hides
/// no other error.
#[derive(Deserialize)]
struct RawDashboard {
    title: Option<Spanned<toml::Value>>,
    columns: Option<Spanned<toml::Value>>,
    #[serde(default)]
    panel: Vec<RawPanel>,
}

/// A dashboard name: its file name without `.toml`, `[A-Za-z0-9_-]+` (it is a
/// URL path segment).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses one dashboard file's text. `name` is the dashboard's name (for
/// messages); every error names `file:line`, the dashboard and the panel index.
///
/// # Errors
/// Every problem found.
pub fn parse_dashboard(name: &str, text: &str, file: &Path) -> Result<Dashboard, Vec<ConfigError>> {
    let at = |offset: usize| Location::new(file, text, offset);
    let error = |loc: Location, msg: String| ConfigError {
        location: Some(loc),
        feed: None,
        message: format!("dashboard \"{name}\": {msg}"),
    };
    let mut top = super::Doc::new(file, text);
    top.check_top_level(&["panel"], &["title", "columns"]);
    let mut errors: Vec<ConfigError> = (top.errors.into_iter())
        .map(|e| error(e.location.unwrap_or_else(|| at(0)), e.message))
        .collect();
    let raw: RawDashboard = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let loc = at(e.span().map_or(0, |s| s.start));
            let msg = super::explain::in_words(e.message().trim())
                .unwrap_or_else(|| e.message().trim().to_string());
            errors.push(error(loc, msg));
            return Err(errors);
        }
    };
    if !valid_name(name) {
        errors.push(error(
            at(0),
            "the file name must be [A-Za-z0-9_-]+.toml (it becomes the URL /d/NAME)".into(),
        ));
    }
    let title = match &raw.title {
        Some(t) => match t.get_ref() {
            toml::Value::String(s) if !s.trim().is_empty() => s.clone(),
            v => {
                let msg = format!("`title` must be a non-empty string, e.g. \"Markets\", not {v}");
                errors.push(error(at(t.span().start), msg));
                String::new()
            }
        },
        None => {
            let msg = "missing `title` (a string, e.g. title = \"Markets\")".to_string();
            errors.push(error(at(0), msg));
            String::new()
        }
    };
    let columns = match raw.columns.as_ref().map(|c| (c.get_ref(), c.span())) {
        None => 4,
        Some((toml::Value::Integer(n), _)) if (1..=i64::from(MAX_COLUMNS)).contains(n) => *n as u32,
        Some((v, span)) => {
            errors.push(error(
                at(span.start),
                format!("`columns` must be a whole number from 1 to {MAX_COLUMNS}, not {v}"),
            ));
            4
        }
    };
    if raw.panel.len() > MAX_PANELS {
        errors.push(error(
            at(0),
            format!(
                "{} panels; at most {MAX_PANELS} are allowed",
                raw.panel.len()
            ),
        ));
    }
    let mut panels = Vec::new();
    for (i, raw) in raw.panel.into_iter().enumerate() {
        match parse_panel(raw, columns, text, file) {
            Ok(p) => panels.push(p),
            Err(list) => errors.extend(
                list.into_iter()
                    .map(|(loc, msg)| error(loc, format!("panel #{}: {msg}", i + 1))),
            ),
        }
    }
    if !errors.is_empty() {
        // In line order, as a main file's are.
        errors.sort_by_key(|e| e.location.as_ref().map_or(0, |l| l.line));
        return Err(errors);
    }
    Ok(Dashboard {
        title,
        columns,
        panels,
        location: at(0),
    })
}

fn parse_panel(
    raw: RawPanel,
    columns: u32,
    text: &str,
    file: &Path,
) -> Result<Panel, Vec<(Location, String)>> {
    let at = |offset: usize| Location::new(file, text, offset);
    let panel_loc = at(raw.span().start);
    let table = raw.into_inner();
    let line_of = |key: &str| {
        table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map_or_else(|| panel_loc.clone(), |(k, _)| at(k.span().start))
    };
    let plain: toml::Table = table
        .iter()
        .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
        .collect();
    let mut problems = Vec::new();
    // The kind first: its own message names the kinds there are.
    let kind = match plain.get("kind") {
        None => return Err(vec![(panel_loc, "missing `kind`".into())]),
        Some(toml::Value::String(k)) => match PanelKind::NAMES.iter().position(|n| n == k) {
            Some(_) => toml::Value::String(k.clone())
                .try_into::<PanelKind>()
                .expect("a listed kind parses"),
            None => {
                return Err(vec![(
                    line_of("kind"),
                    format!(
                        "unknown kind {k:?}{} (expected one of {})",
                        crate::transform::did_you_mean(k, &PanelKind::NAMES),
                        PanelKind::NAMES.join(", ")
                    ),
                )])
            }
        },
        Some(_) => return Err(vec![(line_of("kind"), "`kind` must be a string".into())]),
    };
    let allowed = Panel::allowed(kind);
    let mut usable = plain.clone();
    for key in plain.keys() {
        let known = Panel::COMMON.contains(&key.as_str()) || allowed.contains(&key.as_str());
        if !known {
            let all_keys = PANEL_KEYS.contains(&key.as_str());
            let msg = if all_keys {
                format!(
                    "`{key}` is not used by a `{}` panel (it takes {})",
                    kind_name(kind),
                    allowed.join(", ")
                )
            } else {
                format!(
                    "unknown key `{key}` (a `{}` panel takes {}, label, span)",
                    kind_name(kind),
                    allowed.join(", ")
                )
            };
            problems.push((line_of(key), msg));
            usable.remove(key);
        }
    }
    let mut bad = Vec::new();
    let parsed = super::de::<Panel>(usable, &mut bad);
    for (key, msg) in bad {
        // A nested value (a threshold's level) is not blamed by name: find the
        // key whose value holds the quoted word.
        let key = key.or_else(|| {
            let quoted: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
            plain
                .iter()
                .find(|(_, v)| {
                    let shown = v.to_string();
                    quoted
                        .first()
                        .is_some_and(|q| shown.contains(&format!("\"{q}\"")))
                })
                .map(|(k, _)| k.clone())
        });
        let loc = key.as_deref().map_or_else(|| panel_loc.clone(), &line_of);
        let msg = match &key {
            Some(k) if !msg.contains(k.as_str()) => format!("{k}: {msg}"),
            _ => msg,
        };
        problems.push((loc, msg));
    }
    let Some(mut panel) = parsed else {
        return Err(problems);
    };
    check_panel(&mut panel, columns, &mut |key: &str, msg: String| {
        let loc = if key.is_empty() {
            panel_loc.clone()
        } else {
            line_of(key)
        };
        problems.push((loc, msg));
    });
    let key = if panel.topic.is_some() {
        "topic"
    } else {
        "pattern"
    };
    panel.location = Some(line_of(key));
    if problems.is_empty() {
        Ok(panel)
    } else {
        Err(problems)
    }
}

/// Every key any panel kind takes.
const PANEL_KEYS: [&str; 15] = [
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
];

fn kind_name(kind: PanelKind) -> &'static str {
    PanelKind::NAMES[kind as usize]
}

/// Value checks and each kind's required keys. `bad(key, message)`; an empty
/// key means the panel as a whole.
fn check_panel(p: &mut Panel, columns: u32, bad: &mut dyn FnMut(&str, String)) {
    let kind = kind_name(p.kind);
    if let Some(t) = &p.topic {
        if let Err(e) = validate_topic(t) {
            bad("topic", format!("topic {e}"));
        }
    }
    if let Some(pat) = &p.pattern {
        if let Err(e) = Pattern::parse(pat) {
            bad("pattern", format!("pattern {e}"));
        }
    }
    if p.topic.is_some() && p.pattern.is_some() {
        bad("pattern", "give `topic` or `pattern`, not both".into());
    }
    let needs_topic = matches!(
        p.kind,
        PanelKind::Value | PanelKind::Chart | PanelKind::Gauge | PanelKind::Bar
    );
    let needs_either = matches!(p.kind, PanelKind::Tile | PanelKind::Table);
    if needs_topic && p.topic.is_none() {
        bad("", format!("a `{kind}` panel needs `topic`"));
    }
    if needs_either && p.topic.is_none() && p.pattern.is_none() {
        bad("", format!("a `{kind}` panel needs `topic` or `pattern`"));
    }
    if p.kind == PanelKind::Tape && p.pattern.is_none() {
        bad(
            "",
            "a `tape` panel needs `pattern` (e.g. \"stocks.*\")".into(),
        );
    }
    if matches!(p.kind, PanelKind::Gauge | PanelKind::Bar) && p.field.is_none() {
        bad("", format!("a `{kind}` panel needs `field`"));
    }
    if p.kind == PanelKind::Chart {
        match (&p.field, &p.fields) {
            (None, None) => bad("", "a `chart` panel needs `field` or `fields`".into()),
            (Some(_), Some(_)) => bad("fields", "give `field` or `fields`, not both".into()),
            (_, Some(f)) if f.is_empty() || f.len() > 8 => {
                bad("fields", "`fields` must list 1 to 8 fields".into())
            }
            _ => {}
        }
        let window = p.window.as_deref().unwrap_or("5m");
        match super::feed::parse_duration(window) {
            Ok(d) if d > MAX_WINDOW => bad("window", "`window` must be at most 24h".into()),
            Ok(d) if d < Duration::from_secs(1) => {
                bad("window", "`window` must be at least 1s".into())
            }
            Ok(d) => p.window_ms = Some(d.as_millis() as u64),
            Err(e) => bad("window", format!("window: {e}")),
        }
    }
    if p.kind == PanelKind::Text && p.text.is_none() && p.label.is_none() {
        bad("", "a `text` panel needs `text` or `label`".into());
    }
    if let Some(f) = &p.format {
        let base = f.split(':').next().unwrap_or("");
        let arg = f.split_once(':').map(|(_, a)| a);
        let arg_ok = match (base, arg) {
            (_, None) => base != "currency",
            ("number" | "percent" | "ratio" | "signed", Some(a)) => {
                a.parse::<u8>().is_ok_and(|d| d <= 10)
            }
            ("currency", Some(a)) => a.len() == 3 && a.bytes().all(|b| b.is_ascii_uppercase()),
            _ => false,
        };
        if !FORMATS.contains(&base) || !arg_ok {
            bad(
                "format",
                format!(
                    "format {f:?} is not known (expected e.g. \"number:2\", \"percent\", \"bytes\", \"duration\", \"time\"; one of {})",
                    FORMATS.join(", ")
                ),
            );
        }
    }
    if let Some(s) = p.span {
        if s == 0 || s > columns {
            bad(
                "span",
                format!("`span` must be 1 to the dashboard's columns ({columns})"),
            );
        }
    }
    for t in &p.thresholds {
        if t.above.is_none() == t.below.is_none() {
            bad(
                "thresholds",
                "each threshold needs exactly one of `above` or `below`, e.g. { above = 80, level = \"warn\" }".into(),
            );
        }
        if t.above.or(t.below).is_some_and(|v| !v.is_finite()) {
            bad(
                "thresholds",
                "threshold bounds must be finite numbers".into(),
            );
        }
    }
    if let (Some(lo), Some(hi)) = (p.min, p.max) {
        if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            bad("max", "`max` must be greater than `min`".into());
        }
    }
    if let Some(c) = &p.columns {
        if c.is_empty() {
            bad("columns", "`columns` must list at least one field".into());
        }
    }
    let mut seen = HashSet::new();
    for f in p.fields.iter().flatten() {
        if !seen.insert(f) {
            bad("fields", format!("field {f:?} is listed twice"));
        }
    }
}

/// Reads every `*.toml` of `dir` as a dashboard named after its file. A missing
/// directory holds none.
pub(super) fn load_dir(dir: &Path, errors: &mut Vec<ConfigError>) -> BTreeMap<String, Dashboard> {
    let mut out = BTreeMap::new();
    let files = match super::toml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            errors.push(super::plain_error(
                dir,
                format!("dashboards directory: {e}"),
            ));
            return out;
        }
    };
    for path in files {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_bounded(&path) {
            Err(e) => errors.push(super::plain_error(&path, e)),
            Ok(text) => match parse_dashboard(&name, &text, &path) {
                Ok(d) => {
                    out.insert(name, d);
                }
                Err(e) => errors.extend(e),
            },
        }
    }
    out
}

/// The largest dashboard file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn read_bounded(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{len} bytes; a dashboard file may have at most {MAX_FILE_BYTES}"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

mod reach;
pub(super) use reach::unreachable_panels;

#[cfg(test)]
mod tests;
