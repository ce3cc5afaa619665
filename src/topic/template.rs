//! [`TopicTemplate`]: a topic with `{field}` placeholders, filled per item.

use serde_json::Value;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Field(String),
}

/// The value at `path` in `item`: a top-level key of that exact name, else a
/// dotted path into nested objects (`labels.instance`). The one lookup behind
/// topic placeholders and feed transforms, so both read fields the same way.
pub fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    field_by(item, path, |v, key| v.get(key))
}

/// A topic with `{field}` placeholders, filled per item from its fields
/// (`{labels.instance}` reaches into nested objects, see [`field`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    pub(super) text: String,
    pub(super) pieces: Vec<Piece>,
}

impl TopicTemplate {
    /// Parses `stocks.{symbol}`; the result with every placeholder replaced by a
    /// plain word must be a valid topic that does not start with `$`.
    ///
    /// # Errors
    /// Returns a [`TopicError`] for unbalanced braces, field names that are not `[A-Za-z0-9_]+` or a
    /// template that cannot yield a valid topic.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Text(rest.to_string()));
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(err(format!("`{text}`: unmatched `}}`")));
                }
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Text(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let close = after
                        .find('}')
                        .ok_or_else(|| err(format!("`{text}`: unclosed `{{`")))?;
                    let field = &after[..close];
                    // `name`, or a dotted path to a nested field (`labels.instance`).
                    let bad_part = |part: &str| {
                        part.is_empty()
                            || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    };
                    if field.split('.').any(bad_part) {
                        return Err(err(format!(
                            "`{text}`: bad placeholder `{{{field}}}` (a placeholder names an \
                             item field: [A-Za-z0-9_]+, or a nested one as a dotted path, \
                             e.g. `{{symbol}}`, `{{labels.instance}}`)"
                        )));
                    }
                    pieces.push(Piece::Field(field.to_string()));
                    rest = &after[close + 1..];
                }
            }
        }
        let probe: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Field(_) => "x",
            })
            .collect();
        validate_topic(&probe).map_err(|e| err(format!("topic template {e}")))?;
        if is_system(&probe) {
            return Err(err(format!(
                "`{text}`: topics starting with `$` are the server's own"
            )));
        }
        Ok(TopicTemplate {
            text: text.to_string(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the template has no placeholder.
    pub fn is_fixed(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// Fills the placeholders from `item`'s fields (dotted paths reach nested
    /// objects).
    ///
    /// # Errors
    /// The item is not an object, lacks a field, or a field's value is not a
    /// single valid segment (strings, numbers and booleans are accepted).
    pub fn fill(&self, item: &Value) -> Result<String, TopicError> {
        self.fill_with(item, &|_| None)
    }

    /// Like [`TopicTemplate::fill`], but a placeholder that `vars` names (such as
    /// `{mqtt_topic}`, the name a broker message arrived on) takes that value
    /// instead of the item's field. A variable may span several segments
    /// (`sensors.room1.temp`); each must be valid.
    ///
    /// # Errors
    /// As [`TopicTemplate::fill`], and a variable that is not valid topic segments.
    pub fn fill_with(
        &self,
        item: &Value,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, TopicError> {
        let mut out = String::with_capacity(self.text.len() + 8);
        self.fill_into(&mut out, vars, &|path| field(item, path).map(Found::of))?;
        Ok(out)
    }

    /// [`TopicTemplate::fill_with`] of an item of any form, read through
    /// `lookup` (what each placeholder's path finds), the topic appended to
    /// `out`: a push write plans thousands of points this way, each read
    /// where it lies, all their topics in one buffer.
    ///
    /// # Errors
    /// As [`TopicTemplate::fill_with`]; `out` is then as it was.
    pub(crate) fn fill_into<'a>(
        &self,
        out: &mut String,
        vars: &dyn Fn(&str) -> Option<String>,
        lookup: &dyn Fn(&str) -> Option<Found<'a>>,
    ) -> Result<(), TopicError> {
        let start = out.len();
        let filled = self
            .fill_pieces(out, vars, lookup)
            .and_then(|()| validate_topic(&out[start..]));
        if filled.is_err() {
            out.truncate(start);
        }
        filled
    }

    /// Appends each piece's text to `out`; [`TopicTemplate::fill_into`]
    /// checks the whole topic and undoes a failed fill.
    fn fill_pieces<'a>(
        &self,
        out: &mut String,
        vars: &dyn Fn(&str) -> Option<String>,
        lookup: &dyn Fn(&str) -> Option<Found<'a>>,
    ) -> Result<(), TopicError> {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => {
                    if let Some(s) = vars(f) {
                        let bad = |seg: &str| seg.is_empty() || !seg.chars().all(is_segment_char);
                        if s.split('.').any(bad) {
                            return Err(err(format!(
                                "`{{{f}}}` = {s:?} is not valid topic segments \
                                 ([A-Za-z0-9_-], dot-separated)"
                            )));
                        }
                        out.push_str(&s);
                        continue;
                    }
                    let v = lookup(f).ok_or_else(|| {
                        err(format!("item has no field `{f}` for topic `{}`", self.text))
                    })?;
                    let at = out.len();
                    match v {
                        Found::Str(s) => out.push_str(s),
                        Found::Number(n) => {
                            use std::fmt::Write as _;
                            // Writing into a `String` cannot fail.
                            let _ = write!(out, "{n}");
                        }
                        Found::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        Found::Other => {
                            return Err(err(format!("field `{f}` is not a string or number")))
                        }
                    }
                    let s = &out[at..];
                    if s.is_empty() || !s.chars().all(is_segment_char) {
                        return Err(err(format!(
                            "field `{f}` = {s:?} is not a valid topic segment ([A-Za-z0-9_-])"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
