//! Dashboards as config: every `NAME.toml` of `dashboards_dir` is the dashboard
//! `NAME`, a `title`, an optional grid width `columns` and `[[panel]]` tables.
//!
//! This module owns reading and checking those files into [`Dashboard`]s; it
//! never serves or publishes them (the server publishes the loaded set on
//! `$sys.dashboards` and the browser's `board.js` renders it). A panel is one
//! flat struct for every kind, checked per kind afterwards: the browser gets
//! the same JSON shape for every kind, and a key that a kind does not use is an
//! error naming the panel, just like an unknown key.
//!
//! `panel.rs` holds what a panel is (kinds, levels, thresholds, the keys each
//! kind takes), `check.rs` reads and checks one panel table, `reach.rs` warns
//! about panels no feed can feed; this file reads whole files and directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{ConfigError, Location};

mod check;
mod panel;

use check::{parse_panel, RawPanel};
pub use panel::{FeedHealth, Level, Panel, PanelKind, Threshold, FORMATS};

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
