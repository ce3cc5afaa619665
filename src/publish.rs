//! Publishing many updates in one request: `POST /api/publish` (a JSON array
//! of `{"topic","data"}`, with the publish token) and the WebSocket `publish`
//! op (for tokens whose `[[access]]` grants `publish` patterns).
//!
//! Every item is checked and published on its own, in order, and gets one
//! result: `{"topic","seq","ts"}` or `{"topic","error"}`. One bad item does
//! not stop the others. The checks are those of `POST /api/publish/{topic}`:
//! the topic's grammar, no `$` topics, `[limits] max_topics`, and (cluster
//! mode, `[history] sync = "always"`) the wait for the update to be taken.

use serde_json::Value;

use crate::hub::{Hub, PublishError};
use crate::protocol::ItemResult;
use crate::topic;

/// One item of a bulk publish, checked for shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) topic: String,
    pub(crate) data: Value,
}

/// The items of a bulk body: a non-empty array. Each element is an object
/// with exactly `topic` (a string) and `data` (any JSON value); one that is
/// not is that item's error, naming what is wrong.
pub(crate) fn parse_items(body: Value) -> Result<Vec<Result<Item, ItemResult>>, String> {
    let Value::Array(items) = body else {
        return Err("the body must be a JSON array of {\"topic\",\"data\"} objects".into());
    };
    if items.is_empty() {
        return Err("the array is empty: nothing to publish".into());
    }
    Ok(items.into_iter().map(parse_item).collect())
}

/// One `{"topic","data"}` object.
pub(crate) fn parse_item(item: Value) -> Result<Item, ItemResult> {
    let Value::Object(mut obj) = item else {
        return Err(ItemResult::refused(
            None,
            "an item must be an object {\"topic\",\"data\"}",
        ));
    };
    let topic = match obj.remove("topic") {
        Some(Value::String(t)) => t,
        Some(_) => return Err(ItemResult::refused(None, "`topic` must be a string")),
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
    Ok(Item { topic, data })
}

/// Publishes every item that `may_publish` allows, in order; one result per
/// item.
pub(crate) async fn publish_all(
    hub: &Hub,
    items: Vec<Result<Item, ItemResult>>,
    may_publish: impl Fn(&str) -> bool,
) -> Vec<ItemResult> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let item = match item {
            Ok(i) => i,
            Err(refused) => {
                results.push(refused);
                continue;
            }
        };
        results.push(publish_one(hub, item, &may_publish).await);
    }
    results
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
    match hub.publish_and_wait(name, &item.data).await {
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
    use serde_json::json;

    #[test]
    fn items_are_checked_one_by_one() {
        assert!(parse_items(json!({"topic": "a"})).is_err());
        assert!(parse_items(json!([])).is_err());
        let items = parse_items(json!([
            {"topic": "a.b", "data": 1},
            {"topic": "a.c", "data": null, "extra": 2},
            {"data": 1},
            7
        ]))
        .unwrap();
        assert_eq!(
            items[0],
            Ok(Item {
                topic: "a.b".into(),
                data: json!(1)
            })
        );
        let err = serde_json::to_value(items[1].clone().unwrap_err()).unwrap();
        assert_eq!(err["topic"], "a.c");
        assert!(err["error"].as_str().unwrap().contains("`extra`"), "{err}");
        assert!(items[2].is_err() && items[3].is_err());
    }
}
