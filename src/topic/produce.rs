//! Can a [`TopicTemplate`] produce a topic that a [`Pattern`] matches? The one
//! rule behind the config's warning for a dashboard panel that no feed can
//! feed (`stocks.APPL` against `stocks.{symbol}` of AAPL and MSFT).

use super::{Pattern, Piece, Seg, TopicTemplate};

/// What a placeholder of a template can be filled with, for
/// [`TopicTemplate::can_produce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill<'a> {
    /// Any one segment: an item's field, whatever its value.
    Segment,
    /// One of these segments: the feed knows its set (a synthetic feed's
    /// `symbols` for `{symbol}`).
    OneOf(&'a [String]),
    /// One or more segments: a broker's source name (`{mqtt_topic}`), whose
    /// separators become dots.
    Segments,
}

/// One segment of a template, as far as matching can tell.
enum TSeg<'a> {
    /// Fixed text.
    Literal(String),
    /// One segment built from text and one-segment placeholders.
    One(Vec<Part<'a>>),
    /// One or more segments of anything.
    Many,
}

/// A piece of a [`TSeg::One`].
enum Part<'a> {
    Text(String),
    Field(Fill<'a>),
}

impl TopicTemplate {
    /// True when some item could make this template produce a topic that
    /// `pattern` matches. `fill(name)` says what the placeholder `{name}` can
    /// be; a segment that mixes text with a several-segment placeholder is
    /// taken as any segments (the answer leans to "yes": it backs a warning,
    /// which must not cry wolf). A template never produces a `$` topic.
    pub fn can_produce<'a>(&self, pattern: &Pattern, fill: &dyn Fn(&str) -> Fill<'a>) -> bool {
        let segs = self.segments(fill);
        let width = pattern.parsed.segs.len() + 1;
        // (template segment, pattern segment) pairs already known to fail:
        // several `Many` segments would otherwise retry the same splits.
        let mut failed = vec![false; (segs.len() + 1) * width];
        walk(&segs, &pattern.parsed.segs, 0, 0, width, &mut failed)
    }

    /// This template's segments, with each placeholder's [`Fill`].
    fn segments<'a>(&self, fill: &dyn Fn(&str) -> Fill<'a>) -> Vec<TSeg<'a>> {
        let mut raw: Vec<Vec<Part<'a>>> = vec![Vec::new()];
        let mut many = vec![false];
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => {
                    for (i, part) in t.split('.').enumerate() {
                        if i > 0 {
                            raw.push(Vec::new());
                            many.push(false);
                        }
                        if !part.is_empty() {
                            raw.last_mut()
                                .expect("one segment")
                                .push(Part::Text(part.into()));
                        }
                    }
                }
                Piece::Field(name) => match fill(name) {
                    Fill::Segments => *many.last_mut().expect("one segment") = true,
                    f => raw.last_mut().expect("one segment").push(Part::Field(f)),
                },
            }
        }
        raw.into_iter()
            .zip(many)
            .map(|(parts, many)| match parts.as_slice() {
                _ if many => TSeg::Many,
                [Part::Text(t)] => TSeg::Literal(t.clone()),
                _ => TSeg::One(parts),
            })
            .collect()
    }
}

/// Can template segments `t..` produce a topic that pattern segments `p..`
/// match?
fn walk(
    t: &[TSeg<'_>],
    p: &[Seg],
    ti: usize,
    pi: usize,
    width: usize,
    failed: &mut [bool],
) -> bool {
    if failed[ti * width + pi] {
        return false;
    }
    let ok = match (t.get(ti), p.get(pi)) {
        (None, None) => true,
        // `>` takes one or more segments: every template segment makes one.
        (Some(_), Some(Seg::Rest)) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(TSeg::Many), Some(_)) => {
            // The pattern's segment is one of many: stop here, or go on.
            walk(t, p, ti + 1, pi + 1, width, failed) || walk(t, p, ti, pi + 1, width, failed)
        }
        (Some(seg), Some(pseg)) => {
            segment_fits(seg, pseg) && walk(t, p, ti + 1, pi + 1, width, failed)
        }
    };
    if !ok {
        failed[ti * width + pi] = true;
    }
    ok
}

/// Can one template segment be a segment that `pseg` (`*` or a literal) takes?
fn segment_fits(seg: &TSeg<'_>, pseg: &Seg) -> bool {
    match (seg, pseg) {
        (TSeg::Many, _) | (_, Seg::Rest) => true,
        (TSeg::Literal(l), Seg::Literal(want)) => l.as_str() == &**want,
        (TSeg::Literal(_), Seg::One) => true,
        (TSeg::One(parts), Seg::One) => parts
            .iter()
            .all(|p| !matches!(p, Part::Field(Fill::OneOf(v)) if v.is_empty())),
        (TSeg::One(parts), Seg::Literal(want)) => spells(parts, want),
    }
}

/// Can `parts` spell exactly `word`?
fn spells(parts: &[Part<'_>], word: &str) -> bool {
    match parts.split_first() {
        None => word.is_empty(),
        Some((Part::Text(t), rest)) => word
            .strip_prefix(t.as_str())
            .is_some_and(|w| spells(rest, w)),
        Some((Part::Field(Fill::OneOf(values)), rest)) => values.iter().any(|v| {
            !v.is_empty()
                && word
                    .strip_prefix(v.as_str())
                    .is_some_and(|w| spells(rest, w))
        }),
        // Any non-empty run of segment characters (a word is made of them).
        Some((Part::Field(_), rest)) => (1..=word.len())
            .filter(|&n| word.is_char_boundary(n))
            .any(|n| spells(rest, &word[n..])),
    }
}
