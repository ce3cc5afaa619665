//! What the broker kinds (`mqtt`, `redis`, `nats`) share: the payload rule, the
//! size bound on one payload, the name a message arrived on as topic-template
//! variables, and URL redaction for errors and logs.
//!
//! The payload rule: with `format = "json"` (the default) a payload that starts
//! with `{` or `[` must be JSON; any other payload is a JSON scalar if it parses
//! as one (`21.5`, `true`, `"on"`), else plain text. `extract` and array fan-out
//! apply as for every kind ([`Pipeline`]); an item that is not an object is
//! wrapped as `{"value": item}`, so `21.5` publishes `{"value":21.5}`. With
//! `format = "text"` the whole payload is `{"value": "<text>"}`, its line
//! ending trimmed, as for every kind (`extract::text_document`).
//!
//! This module never opens a connection: each kind owns its client in its file.

use serde_json::Value;

use super::options::Format;
use super::{FeedContext, Pipeline};

/// The name a message arrived on (an MQTT topic, a Redis channel or stream, a
/// NATS subject), offered to the topic template as `{<var>}` (the whole name,
/// its separator mapped to `.`) and `{<level>N}` (its N-th part, from 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceName<'a> {
    /// The variable for the whole name, e.g. `mqtt_topic`.
    pub(crate) var: &'static str,
    /// The prefix of the per-part variables, e.g. `mqtt_level`.
    pub(crate) level: &'static str,
    /// The name's own separator: `/` for MQTT, `:` for Redis, `.` for NATS.
    pub(crate) separator: char,
    /// The name itself.
    pub(crate) name: &'a str,
}

impl SourceName<'_> {
    /// The value of template variable `field`, if it is one of ours.
    pub(crate) fn lookup(&self, field: &str) -> Option<String> {
        if field == self.var {
            return Some(self.name.replace(self.separator, "."));
        }
        let n: usize = field.strip_prefix(self.level)?.parse().ok()?;
        self.name
            .split(self.separator)
            .nth(n.checked_sub(1)?)
            .map(str::to_string)
    }
}

/// Decodes one payload into items by the payload rule (see the module docs).
///
/// # Errors
/// Too large, not UTF-8, malformed JSON, or `extract` points at nothing.
pub(crate) fn payload_items(
    pipeline: &Pipeline,
    format: Format,
    payload: &[u8],
    max_item_bytes: usize,
) -> Result<Vec<Value>, String> {
    super::limit::check_len(payload.len(), max_item_bytes).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8".to_string())?;
    let doc = match format {
        Format::Text => super::extract::text_document(text),
        Format::Json => {
            let trimmed = text.trim();
            if trimmed.starts_with(['{', '[']) {
                serde_json::from_str(trimmed).map_err(|e| {
                    let mut shown: String = trimmed.chars().take(80).collect();
                    if shown.len() < trimmed.len() {
                        shown.push('…');
                    }
                    format!("payload is not JSON ({e}): {shown:?}")
                })?
            } else {
                serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(text.to_string()))
            }
        }
    };
    Ok(wrap_scalars(pipeline.items_from(doc)?))
}

/// Items as objects: one that is not is wrapped as `{"value": item}`.
pub(crate) fn wrap_scalars(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(_) => item,
            other => serde_json::json!({ "value": other }),
        })
        .collect()
}

/// Publishes one message: decodes its payload, fills the template with the
/// item's fields and `name`'s variables. A bad payload or item is counted and
/// reported (naming `name`), never fatal.
pub(crate) fn publish_message(
    ctx: &FeedContext,
    pipeline: &Pipeline,
    format: Format,
    name: SourceName<'_>,
    payload: &[u8],
) {
    match payload_items(pipeline, format, payload, ctx.max_item_bytes()) {
        Ok(items) => {
            for item in &items {
                let _ = ctx.publish_with(item, &|f| name.lookup(f));
            }
        }
        Err(e) => {
            ctx.item_error(format!("message on {:?}: {e}", name.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The payload rule: JSON objects as they are, scalars and plain text
    /// wrapped as `{"value": ..}`, malformed JSON and oversized payloads refused.
    #[test]
    fn payload_rule() {
        const MAX: usize = 1 << 20;
        let p = Pipeline::new(None, Format::Json);
        let items = |b: &[u8]| payload_items(&p, Format::Json, b, MAX);
        assert_eq!(items(br#"{"t":1}"#).unwrap(), vec![json!({"t":1})]);
        assert_eq!(items(b"21.5").unwrap(), vec![json!({"value":21.5})]);
        assert_eq!(items(b"on").unwrap(), vec![json!({"value":"on"})]);
        assert_eq!(
            items(b"[1,{\"a\":2}]").unwrap(),
            vec![json!({"value":1}), json!({"a":2})]
        );
        assert!(items(b"{\"t\":").unwrap_err().contains("not JSON"));
        assert!(items(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        let big = vec![b'1'; MAX + 1];
        assert!(items(&big)
            .unwrap_err()
            .contains("exceeds max_item_bytes = 1048576"));
        let text = payload_items(&p, Format::Text, b"{x\r\n", MAX).unwrap();
        assert_eq!(text, vec![json!({"value":"{x"})]);
    }

    /// Source names fill `{var}` (separator mapped to `.`) and `{levelN}`.
    #[test]
    fn source_name_variables() {
        let n = SourceName {
            var: "mqtt_topic",
            level: "mqtt_level",
            separator: '/',
            name: "sensors/room1/temp",
        };
        assert_eq!(n.lookup("mqtt_topic").unwrap(), "sensors.room1.temp");
        assert_eq!(n.lookup("mqtt_level2").unwrap(), "room1");
        assert_eq!(n.lookup("mqtt_level0"), None);
        assert_eq!(n.lookup("mqtt_level4"), None);
        assert_eq!(n.lookup("symbol"), None);
    }

    /// A password in a URL never reaches a message.
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            crate::feeds::options::redact_url("redis://u:hunter2@127.0.0.1:6379/0"),
            "redis://u:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            crate::feeds::options::redact_url("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            crate::feeds::options::redact_url("redis://u:hunter2@"),
            "redis://***@"
        );
        assert_eq!(
            crate::feeds::options::redact_url("u:hunter2@host"),
            "***@host"
        );
    }
}
