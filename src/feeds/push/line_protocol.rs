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
//! bytes once into a [`Point`] that borrows them (only an escaped token is
//! copied, unescaped, into its own string), reusing one point's lists for
//! every line of a write; the item's JSON is written from the point by its
//! `Serialize`, the one function that makes the item's shape (see
//! `push::PushItem`). No `Value` tree is built per point.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::PushItem;
use crate::topic::{field_by, Found};

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

/// One line's point, borrowing the line's bytes. Its tags and fields are
/// kept as an object's entries (`push::as_map`: sorted by key, the last of a
/// repeated key), so its text is the text of the `Value` it stands for.
#[derive(Debug)]
pub(crate) struct Point<'a> {
    measurement: Cow<'a, str>,
    tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    fields: Vec<(Cow<'a, str>, Field<'a>)>,
    /// Milliseconds since the epoch.
    time: i64,
}

/// A field's value, of its line protocol type.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    /// A float: always finite (`NaN` and `inf` are refused as they are not
    /// JSON numbers).
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

/// Parses every line of `body`, calling `point(point, line_len)` for each
/// point. Empty lines and `#` comments are skipped. The point handed over is
/// reused for the next line: take what it says before returning.
///
/// # Errors
/// The first bad line: `line N: what is wrong: 'the line'`; nothing after it
/// is parsed (the caller publishes nothing of a body with a bad line).
pub(crate) fn parse_body<'a>(
    body: &'a [u8],
    precision: Precision,
    now_ms: i64,
    mut point: impl FnMut(&Point<'a>, usize),
) -> Result<(), String> {
    let mut p = Point {
        measurement: Cow::Borrowed(""),
        tags: Vec::new(),
        fields: Vec::new(),
        time: 0,
    };
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = line.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else { continue };
        let line = &line[start..];
        if line[0] == b'#' {
            continue;
        }
        match p.read(line, precision, now_ms) {
            Ok(()) => point(&p, line.len()),
            Err(why) => {
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]);
                return Err(format!("line {}: {why}: '{shown}'", n + 1));
            }
        }
    }
    Ok(())
}

impl<'a> Point<'a> {
    /// Reads one line into this point (its lists cleared first).
    fn read(&mut self, line: &'a [u8], precision: Precision, now_ms: i64) -> Result<(), String> {
        self.tags.clear();
        self.fields.clear();
        let mut at = 0;
        self.measurement = token(line, &mut at, b", ")?;
        if self.measurement.is_empty() {
            return Err("missing measurement".into());
        }
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
            self.tags.push((key, value));
        }
        skip_spaces(line, &mut at);
        loop {
            let key = token(line, &mut at, b"=, ")?;
            if line.get(at) != Some(&b'=') || key.is_empty() {
                return Err("missing fields (expected `field=value` after the tags)".into());
            }
            at += 1;
            let value = field_value(line, &mut at).map_err(|e| format!("field `{key}`: {e}"))?;
            self.fields.push((key, value));
            if line.get(at) == Some(&b',') {
                at += 1;
            } else {
                break;
            }
        }
        skip_spaces(line, &mut at);
        self.time = if at < line.len() {
            let text = std::str::from_utf8(&line[at..]).unwrap_or("");
            let text = text.trim_end();
            let t: i64 = text
                .parse()
                .map_err(|_| format!("timestamp `{text}` is not a whole number"))?;
            precision.to_ms(t)
        } else {
            now_ms
        };
        super::as_map(&mut self.tags, |(k, _)| k);
        super::as_map(&mut self.fields, |(k, _)| k);
        Ok(())
    }
}

/// The item: `{"fields","measurement","tags","time"}`, its keys in the order
/// of serde_json's `Map` (sorted), as every map within it.
impl Serialize for Point<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Tags<'p, 'a>(&'p [(Cow<'a, str>, Cow<'a, str>)]);
        impl Serialize for Tags<'_, '_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        struct Fields<'p, 'a>(&'p [(Cow<'a, str>, Field<'a>)]);
        impl Serialize for Fields<'_, '_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("fields", &Fields(&self.fields))?;
        m.serialize_entry("measurement", &self.measurement)?;
        m.serialize_entry("tags", &Tags(&self.tags))?;
        m.serialize_entry("time", &self.time)?;
        m.end()
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Float(f) => s.serialize_f64(*f),
            Field::Int(i) => s.serialize_i64(*i),
            Field::UInt(u) => s.serialize_u64(*u),
            Field::Bool(b) => s.serialize_bool(*b),
            Field::Str(t) => s.serialize_str(t),
        }
    }
}

/// A place in a point's item, for [`field_by`].
#[derive(Clone, Copy)]
enum Node<'p, 'a> {
    Point(&'p Point<'a>),
    Tags(&'p [(Cow<'a, str>, Cow<'a, str>)]),
    Fields(&'p [(Cow<'a, str>, Field<'a>)]),
    Text(&'p str),
    Field(&'p Field<'a>),
    Time(i64),
}

impl<'p> Node<'p, '_> {
    /// The entry `key` of this node, if it is an object that has one.
    fn get(self, key: &str) -> Option<Self> {
        match self {
            Node::Point(p) => match key {
                "measurement" => Some(Node::Text(&p.measurement)),
                "tags" => Some(Node::Tags(&p.tags)),
                "fields" => Some(Node::Fields(&p.fields)),
                "time" => Some(Node::Time(p.time)),
                _ => None,
            },
            Node::Tags(tags) => super::entry(tags, key, |(k, _)| k).map(|(_, v)| Node::Text(v)),
            Node::Fields(fields) => {
                super::entry(fields, key, |(k, _)| k).map(|(_, v)| Node::Field(v))
            }
            Node::Text(_) | Node::Field(_) | Node::Time(_) => None,
        }
    }

    fn found(self) -> Found<'p> {
        match self {
            Node::Point(_) | Node::Tags(_) | Node::Fields(_) => Found::Other,
            Node::Text(t) => Found::Str(t),
            Node::Field(Field::Str(t)) => Found::Str(t),
            Node::Field(Field::Float(f)) => Found::float(*f),
            Node::Field(Field::Int(i)) => Found::Number((*i).into()),
            Node::Field(Field::UInt(u)) => Found::Number((*u).into()),
            Node::Field(Field::Bool(b)) => Found::Bool(*b),
            Node::Time(t) => Found::Number(t.into()),
        }
    }
}

impl PushItem for Point<'_> {
    fn found(&self, path: &str) -> Option<Found<'_>> {
        field_by(Node::Point(self), path, Node::get).map(Node::found)
    }
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
    unescape(&line[start..*at], escaped, |b| is_escapable(b, stops))
}

/// `raw` as text: borrowed when it held no escape, else with each backslash
/// before a byte `escapable` takes dropped (the byte kept literally). The one
/// unescaping of tokens and string fields alike.
fn unescape(
    raw: &[u8],
    escaped: bool,
    escapable: impl Fn(u8) -> bool,
) -> Result<Cow<'_, str>, String> {
    let raw = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
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
                .filter(|n| n.is_ascii() && escapable(*n as u8))
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
fn field_value<'a>(line: &'a [u8], at: &mut usize) -> Result<Field<'a>, String> {
    if line.get(*at) == Some(&b'"') {
        return string_value(line, at).map(Field::Str);
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
        "t" | "T" | "true" | "True" | "TRUE" => Ok(Field::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => Ok(Field::Bool(false)),
        _ => {
            if let Some(i) = text.strip_suffix('i') {
                i.parse::<i64>().map(Field::Int).map_err(|_| bad())
            } else if let Some(u) = text.strip_suffix('u') {
                u.parse::<u64>().map(Field::UInt).map_err(|_| bad())
            } else {
                // `NaN` and `inf` parse as floats but are no JSON number.
                let f: f64 = text.parse().map_err(|_| bad())?;
                f.is_finite().then_some(Field::Float(f)).ok_or_else(bad)
            }
        }
    }
}

/// A string field at `at` (on its opening quote): up to the closing quote,
/// with `\"` and `\\` unescaped. Borrowed unless it held an escape.
fn string_value<'a>(line: &'a [u8], at: &mut usize) -> Result<Cow<'a, str>, String> {
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
    let end = *at;
    *at += 1;
    unescape(&line[start..end], escaped, |b| matches!(b, b'"' | b'\\'))
}

#[cfg(test)]
mod tests;
