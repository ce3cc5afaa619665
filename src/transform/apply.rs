//! Applying a feed's transform steps to an item: the pure functions, and the
//! per-topic [`Memory`] of the previous sample that `rate` and `change` keep.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use tokio::time::Instant;

use super::{Transform, MAX_TOPICS};
use crate::topic::field;

/// The previous sample a `rate` or `change` step compares against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    value: f64,
    at: Instant,
}

/// Per topic, per step: the previous sample of each stateful step.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    topics: HashMap<String, Vec<Option<Sample>>>,
}

impl Memory {
    /// The samples of `topic`, one slot per step of a `steps`-long list.
    pub(crate) fn of(&mut self, topic: &str, steps: usize) -> &mut Vec<Option<Sample>> {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= MAX_TOPICS {
                self.topics.clear();
            }
            self.topics.insert(topic.to_string(), vec![None; steps]);
        }
        self.topics.get_mut(topic).expect("inserted above")
    }
}

/// Applies `steps` in order to `item`; `memory` holds one slot per step for the
/// item's topic (see [`Memory::of`]).
///
/// # Errors
/// The item is not an object, or a step's field is missing or not a number:
/// the message names the step and the field.
pub(crate) fn apply(
    steps: &[Transform],
    memory: &mut [Option<Sample>],
    mut item: Value,
    now: Instant,
) -> Result<Value, String> {
    if !item.is_object() {
        return Err(format!(
            "transform needs an object item, not {}",
            kind_of(&item)
        ));
    }
    for (step, slot) in steps.iter().zip(memory.iter_mut()) {
        item = step.apply(slot, item, now)?;
    }
    Ok(item)
}

impl Transform {
    fn apply(
        &self,
        slot: &mut Option<Sample>,
        mut item: Value,
        now: Instant,
    ) -> Result<Value, String> {
        match self {
            Transform::Rate { field, to } => {
                let value = number(&item, field, "rate")?;
                let rate = match *slot {
                    Some(prev) if now > prev.at => {
                        let secs = (now - prev.at).as_secs_f64();
                        // A counter that went down was reset: it counted up from zero.
                        let delta = if value >= prev.value {
                            value - prev.value
                        } else {
                            value
                        };
                        Some(delta / secs)
                    }
                    Some(_) => return Ok(put(item, to, None)),
                    None => None,
                };
                *slot = Some(Sample { value, at: now });
                Ok(put(item, to, rate))
            }
            Transform::Change {
                field,
                against,
                pct,
                to,
            } => {
                let value = number(&item, field, self.op())?;
                let reference = match against {
                    Some(r) => Some(number(&item, r, self.op())?),
                    None => slot.replace(Sample { value, at: now }).map(|s| s.value),
                };
                let change = reference.and_then(|r| match pct {
                    false => Some(value - r),
                    true if r != 0.0 => Some((value - r) / r.abs() * 100.0),
                    true => None,
                });
                Ok(put(item, to, change))
            }
            Transform::Round { field, digits, to } => {
                let value = number(&item, field, "round")?;
                let scale = 10f64.powi(*digits as i32);
                let rounded = (value * scale).round() / scale;
                if to == field {
                    set_in_place(&mut item, field, rounded);
                    Ok(item)
                } else {
                    Ok(put(item, to, Some(rounded)))
                }
            }
            Transform::Rename(pairs) => {
                let obj = object(&mut item);
                for (old, new) in pairs {
                    let v = obj
                        .remove(old)
                        .ok_or_else(|| format!("rename: item has no field `{old}`"))?;
                    obj.insert(new.clone(), v);
                }
                Ok(item)
            }
            Transform::Select(keep) => {
                let obj = object(&mut item);
                obj.retain(|k, _| keep.contains(k));
                Ok(item)
            }
        }
    }

    /// Does this step compare against the topic's previous item?
    pub fn is_stateful(&self) -> bool {
        matches!(
            self,
            Transform::Rate { .. } | Transform::Change { against: None, .. }
        )
    }

    fn op(&self) -> &'static str {
        match self {
            Transform::Rate { .. } => "rate",
            Transform::Change { pct: false, .. } => "change",
            Transform::Change { pct: true, .. } => "change_pct",
            Transform::Round { .. } => "round",
            Transform::Rename(_) => "rename",
            Transform::Select(_) => "select",
        }
    }
}

/// The item's field `path` as a number (a JSON number, or a string holding one).
fn number(item: &Value, path: &str, op: &str) -> Result<f64, String> {
    match field(item, path) {
        None => Err(format!("{op}: item has no field `{path}`")),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("{op}: field `{path}` is not a finite number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("{op}: field `{path}` = {s:?} is not a number")),
        Some(other) => Err(format!(
            "{op}: field `{path}` is {}, not a number",
            kind_of(other)
        )),
    }
}

/// Sets top-level `to` to the number (`null` when absent or not finite).
fn put(mut item: Value, to: &str, v: Option<f64>) -> Value {
    let v = v
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number);
    object(&mut item).insert(to.to_string(), v);
    item
}

/// Replaces the value at `path` (top-level key or dotted path, as found by
/// [`field`]) with `v`.
fn set_in_place(item: &mut Value, path: &str, v: f64) {
    let new = Number::from_f64(v).map_or(Value::Null, Value::Number);
    if let Some(slot) = item.get_mut(path) {
        *slot = new;
        return;
    }
    let mut cur = Some(item);
    for key in path.split('.') {
        cur = cur.and_then(|c| c.get_mut(key));
    }
    if let Some(slot) = cur {
        *slot = new;
    }
}

fn object(item: &mut Value) -> &mut Map<String, Value> {
    if !item.is_object() {
        *item = Value::Object(Map::new());
    }
    item.as_object_mut().expect("an object")
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
