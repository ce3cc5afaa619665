//! serde's messages about a config value, in plain words: every table that is
//! deserialized into a typed struct (a section, a kind's options, a dashboard
//! panel) goes through [`de`], so each bad key is reported once, named, with
//! what was written and what would be right (`volatility: expected a number,
//! e.g. 0.1, not the string "0.1"` rather than `invalid type: string "0.1",
//! expected f64`), and an unknown name gets the nearest valid one.

use crate::transform::nearest;

/// Deserializes a table's keys into `T` (a kind's options, a `[server]`
/// section). On an error it names the key the error is about, drops that key
/// and tries again, so one pass reports every bad key; the value built without
/// the bad keys (if any) still gets its value checks. Each message comes from
/// [`explain`] and names its key; a "missing field" for a key that was there
/// but bad is not reported twice.
pub(crate) fn de<T: serde::de::DeserializeOwned>(
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
                // toml says where (`in `thresholds.level``); serde's message
                // alone only quotes names and values.
                let path = error_path(&e);
                let key = path
                    .as_deref()
                    .and_then(|p| p.split('.').next())
                    .filter(|k| options.contains_key(*k))
                    .map(str::to_string)
                    .or_else(|| blamed_key(&msg, &options));
                let named = match (&path, &key) {
                    (Some(p), Some(k)) if p.starts_with(k.as_str()) => Some(p.as_str()),
                    _ => key.as_deref(),
                };
                let value = key.as_ref().and_then(|k| options.get(k));
                problems.push((key.clone(), explain(&msg, named, value)));
                match key {
                    Some(k) if options.remove(&k).is_some() => dropped.push(k),
                    _ => return None,
                }
            }
        }
    }
    None
}

/// A serde message made actionable, naming `key` when it is known: a wrong
/// type or value says what was expected in plain words with an example and
/// what was written ([`in_words`]), a list written as a string is shown as the
/// list it should be, an unknown name or value gets the nearest valid one.
pub(super) fn explain(msg: &str, key: Option<&str>, value: Option<&toml::Value>) -> String {
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
        return unknown_name("field", rest);
    }
    let words = match msg.strip_prefix("unknown variant `") {
        Some(rest) => unknown_name("value", rest),
        None => in_words(msg).unwrap_or_else(|| msg.to_string()),
    };
    match key {
        Some(k) => format!("{k}: {words}"),
        None => words,
    }
}

/// `unknown field `name`, expected one of `a`, `b`` (`rest` is what follows
/// the first backtick) as `unknown field `name`; did you mean `a`? (expected
/// one of `a`, `b`)` when one is near, else as serde has it; `what` is
/// `field` or `value`.
fn unknown_name(what: &str, rest: &str) -> String {
    let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let expected = expected.trim_start_matches(", ");
    match nearest(name, &candidates) {
        Some(near) => format!("unknown {what} `{name}`; did you mean `{near}`? ({expected})"),
        // serde's own words, which list every valid name.
        None => format!("unknown {what} `{rest}"),
    }
}

/// `invalid type: string "0.1", expected f64` as `expected a number, e.g. 0.1,
/// not the string "0.1"`; `invalid value: ...` likewise. `None` for any other
/// message, or an expectation with no plain name (a custom type's own words).
pub(super) fn in_words(msg: &str) -> Option<String> {
    let (wrong_type, rest) = match msg.strip_prefix("invalid type: ") {
        Some(rest) => (true, rest),
        None => (false, msg.strip_prefix("invalid value: ")?),
    };
    let (found, expected) = rest.rsplit_once(", expected ")?;
    // What was written, unquoted: the example when it converts.
    let written = found
        .strip_prefix("string ")
        .and_then(|s| s.strip_prefix('"')?.strip_suffix('"'))
        .or_else(|| {
            let n = found.split_once(" `")?.1;
            n.strip_suffix('`')
        });
    let example = |fallback: &'static str, fits: &dyn Fn(&str) -> bool| -> String {
        written
            .filter(|w| fits(w))
            .map_or_else(|| fallback.to_string(), str::to_string)
    };
    let whole = |max: Option<u64>| {
        let ex = example("100", &|w| {
            w.parse::<u64>().is_ok_and(|n| max.is_none_or(|m| n <= m))
        });
        match max {
            Some(m) => format!("a whole number from 0 to {m}, e.g. {ex}"),
            None => format!("a whole number (0 or more), e.g. {ex}"),
        }
    };
    let right = match expected {
        "f64" | "f32" => format!(
            "a number, e.g. {}",
            example("0.5", &|w| w.parse::<f64>().is_ok_and(f64::is_finite))
        ),
        "u8" => whole(Some(u8::MAX.into())),
        "u16" => whole(Some(u16::MAX.into())),
        "u32" => whole(Some(u32::MAX.into())),
        "u64" | "u128" | "usize" => whole(None),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => format!(
            "a whole number, e.g. {}",
            example("100", &|w| w.parse::<i64>().is_ok())
        ),
        "a string" | "path string" | "a borrowed string" => {
            format!("a string, e.g. \"{}\"", example("text", &|_| true))
        }
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list, e.g. [\"a\", \"b\"]".to_string(),
        "a map" => "a table, e.g. { name = \"value\" }".to_string(),
        s if s.starts_with("struct ") => "a table, e.g. { name = \"value\" }".to_string(),
        "a duration" => "a duration like \"500ms\", \"5s\" or \"1m\"".to_string(),
        _ => return None,
    };
    let found = found_in_words(found, wrong_type);
    Some(format!("expected {right}, not {found}"))
}

/// serde's "unexpected" part (`string "x"`, `integer `5``, `sequence`) as a
/// user would say it. A value of the right type but a wrong value is shown as
/// written; one of the wrong type says its type too.
fn found_in_words(found: &str, wrong_type: bool) -> String {
    if let Some(s) = found.strip_prefix("string ") {
        return match wrong_type {
            true => format!("the string {s}"),
            false => s.to_string(),
        };
    }
    for (serde_name, word) in [
        ("integer `", "the number"),
        ("floating point `", "the number"),
        ("boolean `", "the boolean"),
    ] {
        if let Some(v) = found.strip_prefix(serde_name) {
            let v = v.trim_end_matches('`');
            return match wrong_type {
                true => format!("{word} {v}"),
                false => v.to_string(),
            };
        }
    }
    match found {
        "sequence" => "a list".to_string(),
        "map" => "a table".to_string(),
        other => other.to_string(),
    }
}

/// The dotted path of the value a deserialization error is about, which toml
/// writes after the message (`in `thresholds.level``), when it does.
fn error_path(e: &toml::de::Error) -> Option<String> {
    let shown = e.to_string();
    let line = shown.lines().rev().find_map(|l| l.strip_prefix("in `"))?;
    Some(line.strip_suffix('`')?.to_string())
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
