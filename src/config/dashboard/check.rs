//! Reading one `[[panel]]` table into a [`Panel`] and checking it: keys the
//! kind takes, each kind's required keys, formats, spans, thresholds and
//! windows. Every message names the key's line.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::panel::{kind_name, PANEL_KEYS};
use super::{Panel, PanelKind, FORMATS, MAX_WINDOW};
use crate::config::Location;
use crate::topic::{validate_topic, Pattern};

/// A raw `[[panel]]` table whose keys keep their positions.
pub(super) type RawPanel = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// One panel table of a dashboard `columns` wide, checked; each problem with
/// the line it is on.
pub(super) fn parse_panel(
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
    let parsed = crate::config::de::<Panel>(usable, &mut bad);
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
        match crate::config::feed::parse_duration(window) {
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
    if let Some(show) = &p.show {
        if show.is_empty() {
            bad(
                "show",
                "`show` must list at least one of \"failing\", \"running\", \"stopped\" (leave it out to list every feed)".into(),
            );
        }
    }
    let mut seen = HashSet::new();
    for f in p.fields.iter().flatten() {
        if !seen.insert(f) {
            bad("fields", format!("field {f:?} is listed twice"));
        }
    }
}
