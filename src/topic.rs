//! Topic names, subscription patterns and topic templates.
//!
//! Owns the topic grammar (docs/protocol.md, "Topics and patterns"): a topic is
//! dot-separated segments of
//! `[A-Za-z0-9_-]`; the server's own topics start with `$` (`$sys.feeds`). A
//! pattern may use `*` for exactly one segment and `>` as its last segment for one
//! or more (NATS semantics); a wildcard in the first segment never matches a `$`
//! topic. A [`TopicTemplate`] (`stocks.{symbol}`) is filled from a feed's item;
//! [`TopicTemplate::can_produce`] says whether it can ever make a topic that a
//! pattern matches.
//!
//! This module is pure: no I/O, no locks. Matching happens at subscribe time and
//! at topic creation, never per update (see `hub`).

use std::fmt;
use std::sync::Arc;

/// Longest topic or pattern accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// Why a topic, pattern or template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError(String);

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TopicError {}

/// A topic error with this message.
pub(crate) fn err(msg: impl Into<String>) -> TopicError {
    TopicError(msg.into())
}

/// True for a character allowed inside a segment.
fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Checks one literal segment; `first` allows the `$` prefix of server topics.
fn check_segment(seg: &str, first: bool, whole: &str) -> Result<(), TopicError> {
    let body = if first {
        seg.strip_prefix('$').unwrap_or(seg)
    } else {
        seg
    };
    if body.is_empty() {
        return Err(err(format!("`{whole}`: empty segment")));
    }
    if let Some(c) = body.chars().find(|c| !is_segment_char(*c)) {
        return Err(err(format!(
            "`{whole}`: character {c:?} is not allowed (segments are [A-Za-z0-9_-])"
        )));
    }
    Ok(())
}

/// Validates a concrete topic name such as `stocks.AAPL` or `$sys.feeds`.
///
/// # Errors
/// Returns a [`TopicError`] naming what is wrong.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(err("empty topic"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(err(format!("topic longer than {MAX_TOPIC_LEN} bytes")));
    }
    for (i, seg) in topic.split('.').enumerate() {
        check_segment(seg, i == 0, topic)?;
    }
    Ok(())
}

/// True for the server's own topics (`$sys.feeds`).
pub fn is_system(topic: &str) -> bool {
    topic.starts_with('$')
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// `>`: one or more trailing segments.
    Rest,
}

/// A parsed subscription pattern (`stocks.*`, `host.>`, `stocks.AAPL`).
///
/// Cheap to clone: clones share one parsed form. A connection's pattern is
/// held by the hub's registry and pattern index and by the connection's
/// `max_rate`/`delta` rules, and the hub hands every subscriber of a pattern
/// the copy it already holds, so ten thousand connections on `stocks.*` hold
/// one parse of it rather than one (or two) each.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    parsed: Arc<Parsed>,
}

/// What a [`Pattern`] shares among its clones.
#[derive(PartialEq, Eq, Hash)]
struct Parsed {
    text: Box<str>,
    segs: Box<[Seg]>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What the derived `Debug` printed when the fields were the
        // pattern's own: the sharing is not part of what a pattern is.
        f.debug_struct("Pattern")
            .field("text", &self.parsed.text)
            .field("segs", &self.parsed.segs)
            .finish()
    }
}

impl Pattern {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    /// Returns a [`TopicError`] for empty segments, bad characters, or a `>` that
    /// is not the last segment.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        if text.is_empty() {
            return Err(err("empty pattern"));
        }
        if text.len() > MAX_TOPIC_LEN {
            return Err(err(format!("pattern longer than {MAX_TOPIC_LEN} bytes")));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let last = parts.len() - 1;
        let mut segs = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            segs.push(match *part {
                "*" => Seg::One,
                ">" if i == last => Seg::Rest,
                ">" => return Err(err(format!("`{text}`: `>` must be the last segment"))),
                lit => {
                    check_segment(lit, i == 0, text)?;
                    Seg::Literal(lit.into())
                }
            });
        }
        Ok(Pattern {
            parsed: Arc::new(Parsed {
                text: text.into(),
                segs: segs.into(),
            }),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.parsed.text
    }

    /// Whether `other` is a clone of this very parse (not merely equal).
    #[cfg(test)]
    pub(crate) fn shares_parse_with(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.parsed, &other.parsed)
    }

    /// True when the pattern has no wildcard (it names one topic).
    pub fn is_literal(&self) -> bool {
        self.parsed
            .segs
            .iter()
            .all(|s| matches!(s, Seg::Literal(_)))
    }

    /// Does this pattern match `topic` (a valid topic name)?
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for (i, seg) in self.parsed.segs.iter().enumerate() {
            match seg {
                Seg::Rest => {
                    // One or more segments remain, and `$` topics are not matched
                    // by a wildcard in the first position.
                    return !(i == 0 && is_system(topic)) && parts.next().is_some();
                }
                Seg::One => match parts.next() {
                    Some(p) if !(i == 0 && p.starts_with('$')) => {}
                    _ => return false,
                },
                Seg::Literal(lit) => match parts.next() {
                    Some(p) if p == &**lit => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// How many search steps [`Pattern::covered_by`] may take before it answers
/// "not covered" (conservative): grants come from the config and are small, but
/// a subscription pattern comes from a client.
const COVER_BUDGET: u32 = 20_000;

impl Pattern {
    /// True when every topic this pattern can match is matched by at least one
    /// of `by` (the union of `by` contains this pattern).
    ///
    /// Exact, not a heuristic: patterns tell segments apart only by equality
    /// with the literals they name (and by the `$` rule at the first segment),
    /// so it is enough to walk the positions of a topic, trying at each one
    /// every literal a still-matching pattern of `by` names there plus one
    /// "fresh" segment named by none. A walk that ends matched by this pattern
    /// and by none of `by` is a counterexample. The walk is bounded by the
    /// longest pattern of `by` (past it, none of them can still match) and by a
    /// step budget; running out of budget answers `false`.
    pub fn covered_by(&self, by: &[Pattern]) -> bool {
        let alive: Vec<&Pattern> = by.iter().collect();
        let mut budget = COVER_BUDGET;
        !self.escapes(0, &alive, &mut budget)
    }

    /// Is there a topic matched by `self`, whose first `i` segments every
    /// pattern in `alive` (and no other of the grant) matched so far, that no
    /// pattern of `alive` matches?
    fn escapes(&self, i: usize, alive: &[&Pattern], budget: &mut u32) -> bool {
        if alive.is_empty() {
            // Every reachable state of a pattern has at least one completion.
            return true;
        }
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return true;
        }
        let open = matches!(self.parsed.segs.last(), Some(Seg::Rest));
        let fixed = if open {
            self.parsed.segs.len() - 1
        } else {
            self.parsed.segs.len()
        };
        let can_end = if open { i > fixed } else { i == fixed };
        if can_end && !alive.iter().any(|g| g.ends_at(i)) {
            return true;
        }
        // What this pattern allows at position `i`: one literal, or any segment.
        let literal = match self.parsed.segs.get(i) {
            Some(Seg::Literal(l)) => Some(&**l),
            Some(_) => None,
            None if open => None,
            None => return false,
        };
        let mut choices: Vec<Option<&str>> = match literal {
            Some(l) => vec![Some(l)],
            None => {
                let mut names: Vec<Option<&str>> = alive
                    .iter()
                    .filter_map(|g| match g.parsed.segs.get(i) {
                        // A wildcard never yields a `$` segment at the start.
                        Some(Seg::Literal(l)) if !(i == 0 && l.starts_with('$')) => {
                            Some(Some(&**l))
                        }
                        _ => None,
                    })
                    .collect();
                names.sort_unstable();
                names.dedup();
                names.push(None);
                names
            }
        };
        for choice in choices.drain(..) {
            let dollar = i == 0 && choice.is_some_and(|c| c.starts_with('$'));
            let mut next = Vec::with_capacity(alive.len());
            let mut covered = false;
            for g in alive {
                match g.parsed.segs.get(i) {
                    Some(Seg::Rest) if !dollar => covered = true,
                    Some(Seg::One) if !dollar => next.push(*g),
                    Some(Seg::Literal(l)) if choice == Some(&**l) => next.push(*g),
                    _ => {}
                }
            }
            if !covered && self.escapes(i + 1, &next, budget) {
                return true;
            }
        }
        false
    }

    /// True when this pattern matches topics of exactly `n` segments and has
    /// no `>` (used by [`Pattern::covered_by`]).
    fn ends_at(&self, n: usize) -> bool {
        self.parsed.segs.len() == n && !matches!(self.parsed.segs.last(), Some(Seg::Rest))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parsed.text)
    }
}

mod template;
use template::Piece;
pub use template::{field, TopicTemplate};
mod found;
pub(crate) use found::{field_by, Found};
mod produce;
pub use produce::Fill;

#[cfg(test)]
mod tests;
