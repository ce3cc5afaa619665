//! Field-level deltas: JSON merge patches (RFC 7386) between two values of a
//! topic, for subscriptions with `"delta": true` (see `super::shaping`).
//!
//! [`diff`] builds a patch that [`apply`] (and `applyMergePatch` in
//! `web/tickerd.js`) turns back into the new value exactly; where no merge
//! patch can say it (the value is not an object, or the new value has a
//! `null` member, which a merge patch would read as "delete"), it answers
//! `None` and the full value is sent.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`, or `None` when only the full
/// value can (see the module docs).
pub(crate) fn diff(old: &Value, new: &Value) -> Option<Value> {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return None;
    };
    diff_objects(old, new).map(Value::Object)
}

fn diff_objects(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut patch = Map::new();
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, value) in new {
        match (old.get(key), value) {
            (Some(before), _) if before == value => {}
            (Some(Value::Object(before)), Value::Object(after)) => {
                patch.insert(key.clone(), Value::Object(diff_objects(before, after)?));
            }
            (_, Value::Null) => return None,
            (_, value) if has_null_member(value) => return None,
            (_, value) => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    Some(patch)
}

/// Does an object (at any depth through objects) hold a `null` member? A
/// merge patch applied to it would drop that member.
fn has_null_member(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| v.is_null() || has_null_member(v)),
        _ => false,
    }
}

/// Applies a merge patch (RFC 7386, section 2) to `target`, as `web/tickerd.js`
/// and `tickerd::client` do to rebuild whole values from deltas.
#[cfg(any(test, feature = "client"))]
pub(crate) fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        unreachable!("made an object above");
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            apply(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_carry_only_changes_and_apply_back() {
        let old =
            json!({"symbol": "AAPL", "price": 1.0, "gone": 1, "deep": {"a": 1, "b": [1, null]}});
        let new = json!({"symbol": "AAPL", "price": 1.5, "deep": {"a": 1, "b": [2, null]}, "n": {"x": 1}});
        let patch = diff(&old, &new).unwrap();
        assert_eq!(
            patch,
            json!({"gone": null, "price": 1.5, "deep": {"b": [2, null]}, "n": {"x": 1}})
        );
        let mut back = old.clone();
        apply(&mut back, &patch);
        assert_eq!(back, new);
        assert_eq!(diff(&new, &new), Some(json!({})));
    }

    #[test]
    fn what_a_merge_patch_cannot_say_is_none() {
        assert_eq!(diff(&json!(1), &json!(2)), None);
        assert_eq!(diff(&json!({"a": 1}), &json!([1])), None);
        assert_eq!(diff(&json!({"a": 1}), &json!({"a": null})), None);
        assert_eq!(diff(&json!({"a": 1}), &json!({"a": {"b": null}})), None);
        assert!(diff(&json!({"a": 1}), &json!({"a": [null]})).is_some());
    }
}
