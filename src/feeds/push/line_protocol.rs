//! The InfluxDB line protocol parser:
//! `measurement[,tag=value...] field=value[,field=value...] [timestamp]`,
//! one point a line, with the protocol's escaping rules (`\,`, `\ ` and `\=`
//! in keys and tag values, `\"` and `\\` in string fields) and every field
//! type: float (`1.5`, `1`, `-2e3`), integer (`1i`), unsigned (`1u`), string
//! (`"text"`) and boolean (`t`, `true`, `F`, `FALSE`, ...).
//!
//! Each point becomes one item `{"measurement", "tags", "fields", "time"}`
//! (`time` in ms since the epoch, from the timestamp in the write's
//! precision, or now when a line has none). The parser walks each line's
//! bytes once and allocates only the item's own strings (an escaped token is
//! unescaped into its string as it is copied): no allocation per byte.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The unit of a write's timestamps (`precision=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// Nanoseconds (the default).
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes (v1 only).
    M,
    /// Hours (v1 only).
    H,
}

impl Precision {
    /// Parses a `precision=` value: v2's `ns`, `us`, `ms`, `s`, and v1's
    /// `n`, `u`, `ms`, `s`, `m`, `h`.
    ///
    /// # Errors
    /// The value is none of those (the text names them).
    pub(crate) fn parse(text: &str) -> Result<Precision, String> {
        Ok(match text {
            "ns" | "n" => Precision::Ns,
            "us" | "u" | "µ" | "µs" => Precision::Us,
            "ms" => Precision::Ms,
            "s" => Precision::S,
            "m" => Precision::M,
            "h" => Precision::H,
            other => {
                return Err(format!(
                    "precision `{other}` is not one InfluxDB knows: use ns, us, ms or s \
                     (v1 also n, u, m, h)"
                ))
            }
        })
    }

    /// A timestamp in this unit, in ms since the epoch.
    fn to_ms(self, t: i64) -> i64 {
        match self {
            Precision::Ns => t.div_euclid(1_000_000),
            Precision::Us => t.div_euclid(1_000),
            Precision::Ms => t,
            Precision::S => t.saturating_mul(1_000),
            Precision::M => t.saturating_mul(60_000),
            Precision::H => t.saturating_mul(3_600_000),
        }
    }
}

/// Parses every line of `body`, calling `point(item, line_len)` for each
/// point. Empty lines and `#` comments are skipped.
///
/// # Errors
/// The first bad line: `line N: what is wrong: 'the line'`; nothing after it
/// is parsed (the caller publishes nothing of a body with a bad line).
pub(crate) fn parse_body(
    body: &[u8],
    precision: Precision,
    now_ms: i64,
    mut point: impl FnMut(Value, usize),
) -> Result<(), String> {
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = line.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else { continue };
        let line = &line[start..];
        if line[0] == b'#' {
            continue;
        }
        match parse_line(line, precision, now_ms) {
            Ok(item) => point(item, line.len()),
            Err(why) => {
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]);
                return Err(format!("line {}: {why}: '{shown}'", n + 1));
            }
        }
    }
    Ok(())
}

/// One line's point as its item.
fn parse_line(line: &[u8], precision: Precision, now_ms: i64) -> Result<Value, String> {
    let mut at = 0;
    let measurement = token(line, &mut at, b", ")?;
    if measurement.is_empty() {
        return Err("missing measurement".into());
    }
    let mut tags = Map::new();
    while line.get(at) == Some(&b',') {
        at += 1;
        let key = token(line, &mut at, b"=, ")?;
        if line.get(at) != Some(&b'=') || key.is_empty() {
            return Err("a tag must be `key=value`".into());
        }
        at += 1;
        let value = token(line, &mut at, b", ")?;
        if value.is_empty() {
            return Err(format!("tag `{key}` has no value"));
        }
        tags.insert(key.into_owned(), Value::String(value.into_owned()));
    }
    skip_spaces(line, &mut at);
    let mut fields = Map::new();
    loop {
        let key = token(line, &mut at, b"=, ")?;
        if line.get(at) != Some(&b'=') || key.is_empty() {
            return Err("missing fields (expected `field=value` after the tags)".into());
        }
        at += 1;
        let value = field_value(line, &mut at).map_err(|e| format!("field `{key}`: {e}"))?;
        fields.insert(key.into_owned(), value);
        if line.get(at) == Some(&b',') {
            at += 1;
        } else {
            break;
        }
    }
    skip_spaces(line, &mut at);
    let time = if at < line.len() {
        let text = std::str::from_utf8(&line[at..]).unwrap_or("");
        let text = text.trim_end();
        let t: i64 = text
            .parse()
            .map_err(|_| format!("timestamp `{text}` is not a whole number"))?;
        precision.to_ms(t)
    } else {
        now_ms
    };
    let mut item = Map::with_capacity(4);
    item.insert(
        "measurement".into(),
        Value::String(measurement.into_owned()),
    );
    item.insert("tags".into(), Value::Object(tags));
    item.insert("fields".into(), Value::Object(fields));
    item.insert("time".into(), Value::from(time));
    Ok(Value::Object(item))
}

fn skip_spaces(line: &[u8], at: &mut usize) {
    while line.get(*at) == Some(&b' ') {
        *at += 1;
    }
}

/// The token at `at`, up to the first unescaped byte of `stops` (or the end);
/// a backslash before any byte of `stops`, `=` or `\` takes that byte
/// literally. Borrowed unless it held an escape.
fn token<'a>(line: &'a [u8], at: &mut usize, stops: &[u8]) -> Result<Cow<'a, str>, String> {
    let start = *at;
    let mut escaped = false;
    while let Some(&b) = line.get(*at) {
        if b == b'\\' && line.get(*at + 1).is_some_and(|n| is_escapable(*n, stops)) {
            escaped = true;
            *at += 2;
            continue;
        }
        if stops.contains(&b) {
            break;
        }
        *at += 1;
    }
    let raw = std::str::from_utf8(&line[start..*at]).map_err(|_| "not UTF-8".to_string())?;
    if !escaped {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars
                .clone()
                .next()
                .filter(|n| n.is_ascii() && is_escapable(*n as u8, stops))
            {
                out.push(n);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    Ok(Cow::Owned(out))
}

fn is_escapable(b: u8, stops: &[u8]) -> bool {
    stops.contains(&b) || b == b'=' || b == b'\\' || b == b' ' || b == b','
}

/// A field's value at `at`, which ends at `,`, ` ` or the line's end.
fn field_value(line: &[u8], at: &mut usize) -> Result<Value, String> {
    if line.get(*at) == Some(&b'"') {
        return string_value(line, at);
    }
    let start = *at;
    while let Some(&b) = line.get(*at) {
        if b == b',' || b == b' ' {
            break;
        }
        *at += 1;
    }
    let text = std::str::from_utf8(&line[start..*at]).map_err(|_| "not UTF-8".to_string())?;
    let bad = || {
        format!(
            "`{text}` is not a field value (a float `1.5`, an integer `1i`, an unsigned `1u`, \
             a string `\"text\"` or a boolean `true`/`false`)"
        )
    };
    match text {
        "" => Err("has no value".into()),
        "t" | "T" | "true" | "True" | "TRUE" => Ok(Value::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => Ok(Value::Bool(false)),
        _ => {
            if let Some(i) = text.strip_suffix('i') {
                i.parse::<i64>().map(Value::from).map_err(|_| bad())
            } else if let Some(u) = text.strip_suffix('u') {
                u.parse::<u64>().map(Value::from).map_err(|_| bad())
            } else {
                let f: f64 = text.parse().map_err(|_| bad())?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(bad)
            }
        }
    }
}

/// A string field at `at` (on its opening quote): up to the closing quote,
/// with `\"` and `\\` unescaped.
fn string_value(line: &[u8], at: &mut usize) -> Result<Value, String> {
    *at += 1;
    let start = *at;
    let mut escaped = false;
    loop {
        match line.get(*at) {
            None => return Err("string has no closing quote".into()),
            Some(b'\\') if matches!(line.get(*at + 1), Some(b'"' | b'\\')) => {
                escaped = true;
                *at += 2;
            }
            Some(b'"') => break,
            Some(_) => *at += 1,
        }
    }
    let raw = std::str::from_utf8(&line[start..*at]).map_err(|_| "not UTF-8".to_string())?;
    *at += 1;
    if !escaped {
        return Ok(Value::String(raw.to_string()));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n @ ('"' | '\\')) = chars.clone().next() {
                out.push(n);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(line: &str, p: Precision) -> Result<Value, String> {
        let mut got = Vec::new();
        parse_body(line.as_bytes(), p, 42, |v, _| got.push(v))?;
        Ok(got.pop().expect("one point"))
    }

    /// Every field type, tags, escapes and the timestamp in ms.
    #[test]
    fn a_line_becomes_its_item() {
        let v = one(
            r#"cpu\ load,host=a\,b,re\=g=eu f=1.5,i=-3i,u=7u,s="say \"hi\" \\ ok",b=t,g=FALSE 1700000000123456789"#,
            Precision::Ns,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"measurement": "cpu load", "tags": {"host": "a,b", "re=g": "eu"},
                   "fields": {"f": 1.5, "i": -3, "u": 7, "s": "say \"hi\" \\ ok", "b": true, "g": false},
                   "time": 1_700_000_000_123i64})
        );
    }

    /// Each precision scales the timestamp; a line without one gets now.
    #[test]
    fn precisions_and_missing_time() {
        for (p, t) in [
            (Precision::S, "1700000000"),
            (Precision::Ms, "1700000000000"),
            (Precision::Us, "1700000000000000"),
            (Precision::Ns, "1700000000000000000"),
        ] {
            assert_eq!(
                one(&format!("m v=1 {t}"), p).unwrap()["time"],
                1_700_000_000_000i64
            );
        }
        assert_eq!(one("m v=1", Precision::Ns).unwrap()["time"], 42);
        assert_eq!(one("m v=1 2", Precision::H).unwrap()["time"], 7_200_000);
    }

    /// A bad line is named by number, with what is wrong.
    #[test]
    fn a_bad_line_is_named() {
        let body = b"m v=1\n\n# comment\nm,host=a\nm v=2\n";
        let err = parse_body(body, Precision::Ns, 0, |_, _| {}).unwrap_err();
        assert!(err.starts_with("line 4: missing fields"), "{err}");
        let err = parse_body(b"m v=abc", Precision::Ns, 0, |_, _| {}).unwrap_err();
        assert!(
            err.contains("line 1: field `v`: `abc` is not a field value"),
            "{err}"
        );
        let err = parse_body(b"m v=\"open", Precision::Ns, 0, |_, _| {}).unwrap_err();
        assert!(err.contains("no closing quote"), "{err}");
        assert!(Precision::parse("x").is_err());
    }
}
