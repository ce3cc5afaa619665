//! Publishing many updates in one request: `POST /api/publish` (a JSON array
//! of `{"topic","data"}`, with the publish token) and the WebSocket `publish`
//! op (for tokens whose `[[access]]` grants `publish` patterns).
//!
//! Every item is checked and published on its own, in order, and gets one
//! result: `{"topic","seq","ts"}` or `{"topic","error"}`. One bad item does
//! not stop the others. The checks are those of `POST /api/publish/{topic}`:
//! the topic's grammar, no `$` topics, `[limits] max_topics`, and (cluster
//! mode, `[history] sync = "always"`) the wait for the update to be taken.
//!
//! `POST /api/publish/{topic}` publishes one value; its body is checked and
//! kept as text by [`compact_value`] (never built into a `Value`), then goes
//! through the same [`check_topic`] and hub publish as every item here.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::hub::{Hub, PublishError};
use crate::protocol::ItemResult;
use crate::topic;

/// One item of a bulk publish, checked for shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) topic: String,
    /// The item's `data`, one JSON value as compact text (see
    /// [`compact_value`]): never a `Value` tree, whatever its size.
    pub(crate) data: String,
}

/// The items of a bulk body, a non-empty JSON array, parsed one at a time as
/// they are taken (see [`Items`]). Each element is an object with exactly
/// `topic` (a string) and `data` (any JSON value); one that is not is that
/// item's error, naming what is wrong.
///
/// The whole body's syntax is checked first, without building anything
/// (`IgnoredAny`), so that a malformed body is refused before any of its
/// items is published; then the array is walked element by element. A body
/// costs its own bytes plus one item's text at a time, never a `Value` of
/// the whole array (which took ~45x the body) nor of one item.
///
/// # Errors
/// What is wrong with the body as a whole: not JSON, not an array, empty.
pub(crate) fn parse_items(body: &[u8]) -> Result<Items<'_>, String> {
    check_json(body)?;
    let start = skip_space(body, 0);
    if body.get(start) != Some(&b'[') {
        return Err("the body must be a JSON array of {\"topic\",\"data\"} objects".into());
    }
    let first = skip_space(body, start + 1);
    if body.get(first) == Some(&b']') {
        return Err("the array is empty: nothing to publish".into());
    }
    Ok(Items { body, at: first })
}

/// The elements of a bulk body's array, each read (and shape-checked by
/// [`parse_raw_item`]) only when it is taken: at most one item's text exists
/// at a time.
pub(crate) struct Items<'a> {
    body: &'a [u8],
    /// Where the next element starts; `body.len()` once the array ended.
    at: usize,
}

impl Iterator for Items<'_> {
    type Item = Result<Item, ItemResult>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.body.get(self.at..).filter(|r| !r.is_empty())?;
        // Only delimited here (`RawValue`): the element is read by
        // [`parse_raw_item`] without building a tree.
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
        let parsed = values.next();
        let end = self.at + values.byte_offset();
        // The body's syntax was checked whole: after an element comes `,`
        // (another follows) or `]` (the end).
        let after = skip_space(self.body, end);
        self.at = match self.body.get(after) {
            Some(b',') => skip_space(self.body, after + 1),
            _ => self.body.len(),
        };
        Some(match parsed? {
            Ok(raw) => parse_raw_item(raw),
            Err(e) => Err(ItemResult::refused(None, format!("not JSON: {e}"))),
        })
    }
}

/// Checks that `body` is one JSON text, without building anything
/// (`IgnoredAny`): what it costs is a scan of the bytes.
///
/// # Errors
/// `body is not JSON: ...`, with serde's line and column.
fn check_json(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("body is not JSON: not UTF-8 (at byte {})", e.valid_up_to()))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|e| format!("body is not JSON: {e}"))
}

/// A body that is one JSON value, checked (see [`check_json`]) and kept as
/// compact text: the whitespace between tokens removed, everything else
/// (strings, escapes, numbers as written) kept byte for byte.
///
/// Why not a `serde_json::Value`: a tree of small values costs up to ~26x
/// its text, so a large body at an operator-raised `max_frame_bytes` took
/// hundreds of MB while parsed. The text costs at most its own size; the
/// update's wire frame is built from it as from any serialized value.
/// Compact, because a frame is one line on every transport (`/sse` writes
/// it as one `data:` line).
///
/// # Errors
/// What [`check_json`] says.
pub(crate) fn compact_value(body: &[u8]) -> Result<String, String> {
    check_json(body)?;
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            // Within a string every byte is kept; only its end is looked for.
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            // Between tokens: the body was checked, so no two tokens depend
            // on the whitespace that separates them.
            continue;
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
    // Only ASCII whitespace outside strings was removed from UTF-8 text.
    String::from_utf8(out).map_err(|e| format!("body is not JSON: {e}"))
}

/// The index of the first byte at or after `at` that is not JSON whitespace.
fn skip_space(body: &[u8], at: usize) -> usize {
    let tail = body.get(at..).unwrap_or_default();
    at + tail
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// One `{"topic","data"}` object, already parsed (the WebSocket `publish`
/// op's items): checked by [`parse_raw_item`] like a bulk body's.
pub(crate) fn parse_item(item: Value) -> Result<Item, ItemResult> {
    match serde_json::value::to_raw_value(&item) {
        Ok(raw) => parse_raw_item(&raw),
        Err(e) => Err(ItemResult::refused(None, format!("not JSON: {e}"))),
    }
}

/// One `{"topic","data"}` object, from its JSON text: its fields are
/// delimited, `topic` read as a string and `data` kept as compact text, so
/// that a large item costs about its own size.
fn parse_raw_item(item: &RawValue) -> Result<Item, ItemResult> {
    let not_object = || ItemResult::refused(None, "an item must be an object {\"topic\",\"data\"}");
    if !item.get().starts_with('{') {
        return Err(not_object());
    }
    let mut obj: BTreeMap<String, &RawValue> =
        serde_json::from_str(item.get()).map_err(|_| not_object())?;
    let topic = match obj
        .remove("topic")
        .map(|t| serde_json::from_str::<String>(t.get()))
    {
        Some(Ok(t)) => t,
        Some(Err(_)) => return Err(ItemResult::refused(None, "`topic` must be a string")),
        None => return Err(ItemResult::refused(None, "missing `topic`")),
    };
    if let Some(field) = obj.keys().find(|k| *k != "data") {
        return Err(ItemResult::refused(
            Some(&topic),
            format!("unknown field `{field}` (an item has `topic` and `data`)"),
        ));
    }
    let Some(data) = obj.remove("data") else {
        return Err(ItemResult::refused(Some(&topic), "missing `data`"));
    };
    let data =
        compact_value(data.get().as_bytes()).map_err(|e| ItemResult::refused(Some(&topic), e))?;
    Ok(Item { topic, data })
}

/// Publishes every item that `may_publish` allows, in order, taking each
/// from `items` only when the one before it is published, and hands each
/// result to `result` as it comes (the HTTP route writes it straight into
/// its answer; nothing per item is kept here).
pub(crate) async fn publish_all(
    hub: &Hub,
    items: impl IntoIterator<Item = Result<Item, ItemResult>>,
    may_publish: impl Fn(&str) -> bool,
    mut result: impl FnMut(ItemResult),
) {
    for item in items {
        match item {
            Ok(i) => result(publish_one(hub, i, &may_publish).await),
            Err(refused) => result(refused),
        }
    }
}

/// Why a cluster node could not publish: NATS did not take the update.
pub(crate) const NOT_TAKEN: &str = "the cluster did not take the update";

/// Why a durable publish failed after the fact: the store did not commit it.
pub(crate) const NOT_COMMITTED: &str =
    "the update was published but the history store could not commit it";

/// A topic a client may publish to: valid, and not one of the server's own.
///
/// # Errors
/// What is wrong with the name.
pub(crate) fn check_topic(name: &str) -> Result<(), String> {
    topic::validate_topic(name).map_err(|e| e.to_string())?;
    if topic::is_system(name) {
        return Err("topics starting with `$` are the server's own".into());
    }
    Ok(())
}

async fn publish_one(hub: &Hub, item: Item, may_publish: &impl Fn(&str) -> bool) -> ItemResult {
    let name = item.topic.as_str();
    if let Err(e) = check_topic(name) {
        return ItemResult::refused(Some(name), e);
    }
    if !may_publish(name) {
        return ItemResult::refused(Some(name), "forbidden: this token may not publish there");
    }
    match hub.publish_json_and_wait(name, &item.data).await {
        Ok(p) => ItemResult::Published {
            topic: item.topic,
            seq: p.seq,
            ts: p.ts,
        },
        Err(e @ (PublishError::TooManyTopics { .. } | PublishError::InvalidTopic(_))) => {
            ItemResult::refused(Some(name), e.to_string())
        }
        Err(PublishError::Cluster { .. }) => ItemResult::refused(Some(name), NOT_TAKEN),
        Err(PublishError::NotStored(_)) => ItemResult::refused(Some(name), NOT_COMMITTED),
        Err(e) => ItemResult::refused(Some(name), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's shape is refused whole (not JSON, not an array, empty);
    /// each element is then its own item, checked on its own.
    #[test]
    fn items_are_checked_one_by_one() {
        let parse = |body: &str| parse_items(body.as_bytes()).map(Iterator::collect::<Vec<_>>);
        assert!(parse(r#"{"topic": "a"}"#)
            .unwrap_err()
            .contains("JSON array"));
        assert!(parse(" [ ] ").unwrap_err().contains("empty"));
        assert!(parse(r#"[{"topic": "a", "data": 1}"#)
            .unwrap_err()
            .starts_with("body is not JSON"));
        let items = parse(
            r#" [ {"topic": "a.b", "data": 1} ,
                {"topic": "a.c", "data": null, "extra": 2},{"data": 1}, 7 ,"s",[1, 2] ] "#,
        )
        .unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[0],
            Ok(Item {
                topic: "a.b".into(),
                data: "1".into()
            })
        );
        let spaced = parse(r#"[{"topic": "a.d", "data": { "x" : [1, "a b"] }}]"#).unwrap();
        assert_eq!(spaced[0].as_ref().unwrap().data, r#"{"x":[1,"a b"]}"#);
        let err = serde_json::to_value(items[1].clone().unwrap_err()).unwrap();
        assert_eq!(err["topic"], "a.c");
        assert!(err["error"].as_str().unwrap().contains("`extra`"), "{err}");
        assert!(items[2..].iter().all(Result::is_err));
    }

    /// A single value is kept as written, less the whitespace between its
    /// tokens (inside strings, escapes included, nothing changes); a body
    /// that is not one JSON value is refused with serde's position.
    #[test]
    fn a_value_is_kept_as_compact_text() {
        let body = " {\"a\" : [1 , 2.50e1,\n\t\"x y\\\" \\\\\"] ,\r\n \"\\u00e9\":null } ";
        let text = compact_value(body.as_bytes()).unwrap();
        assert_eq!(text, r#"{"a":[1,2.50e1,"x y\" \\"],"\u00e9":null}"#);
        let same: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            same,
            serde_json::from_str::<serde_json::Value>(body).unwrap()
        );
        assert_eq!(compact_value(b"7").unwrap(), "7");
        for bad in [&b"{\"a\":"[..], b"1 2", b"", b"\"\xff\""] {
            let err = compact_value(bad).unwrap_err();
            assert!(err.starts_with("body is not JSON"), "{err}");
        }
    }
}
