//! Declarative per-feed transforms (`transform = [...]` on any `[[feed]]`):
//! `rate`, `change`, `change_pct`, `round`, `rename` and `select`, applied in
//! order to every item after its topic is filled and before it is published.
//!
//! This module owns the TOML shape of a transform (parsed into [`Transform`]
//! with messages that say what would be right) and the pure functions that apply
//! them. The only state is per topic (the previous sample of a `rate` or
//! `change`), kept by the caller in a [`Memory`] and handed in with the clock,
//! so every step is testable without a feed. A transform never fails the feed:
//! an item it cannot apply to (a field missing or not a number) is that item's
//! error, counted like any other.
//!
//! There is deliberately no expression language: each step does one thing.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use tokio::time::Instant;

use crate::topic::field;

pub(crate) use crate::nearest::{did_you_mean, nearest};

/// The operation keys a transform table may name (exactly one per table).
const OPERATIONS: [&str; 6] = ["rate", "change", "change_pct", "round", "rename", "select"];

/// Most decimal digits `round` keeps (f64 holds about 15 significant digits).
const MAX_DIGITS: u32 = 12;

/// Most topics one feed keeps transform state for; past it the state starts
/// over (a `rate` or `change` is `null` once more for each topic), so a feed
/// that fans out over unbounded topics cannot grow memory without end.
const MAX_TOPICS: usize = 65_536;

/// One step of a feed's `transform` list.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// `{ rate = "bytes", as = "bytes_per_s" }`: per-second rate of a counter
    /// field against the previous item of the same topic; a counter that went
    /// down was reset, and counts from zero. `null` on a topic's first item.
    Rate {
        /// The counter field (a dotted path reaches nested fields).
        field: String,
        /// Output field; default `<field>_rate`.
        to: String,
    },
    /// `{ change = "price" }` / `{ change_pct = "price", against = "open" }`:
    /// the difference (or percent difference) against the previous value of
    /// the same topic, or against another field of the same item.
    Change {
        /// The field whose change is computed.
        field: String,
        /// A reference field in the same item instead of the previous value.
        against: Option<String>,
        /// Percent of the reference rather than an absolute difference.
        pct: bool,
        /// Output field; default `<field>_change` / `<field>_change_pct`.
        to: String,
    },
    /// `{ round = "price", digits = 2 }`: rounds half away from zero.
    Round {
        /// The field to round.
        field: String,
        /// Decimal digits kept (0 to 12); default 0.
        digits: u32,
        /// Output field; default the field itself.
        to: String,
    },
    /// `{ rename = { old = "new" } }`: renames top-level fields.
    Rename(Vec<(String, String)>),
    /// `{ select = ["a", "b"] }`: keeps only these top-level fields (those
    /// present; a missing one is no error).
    Select(Vec<String>),
}

impl Transform {
    /// Parses a feed's `transform` value: an array of tables, each naming one
    /// operation. Every problem is reported, each naming its step.
    ///
    /// # Errors
    /// One message per problem, e.g. `transform[2]: `round` takes `digits`, not `digit``.
    pub fn parse_list(value: &toml::Value) -> Result<Vec<Transform>, Vec<String>> {
        let toml::Value::Array(steps) = value else {
            return Err(vec![
                "`transform` must be an array of tables, e.g. [{ round = \"price\", digits = 2 }]"
                    .into(),
            ]);
        };
        let mut out = Vec::with_capacity(steps.len());
        let mut errors = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match Transform::parse(step) {
                Ok(t) => out.push(t),
                Err(e) => errors.push(format!("transform[{i}]: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn parse(step: &toml::Value) -> Result<Transform, String> {
        let toml::Value::Table(t) = step else {
            return Err(format!(
                "each step must be a table naming one of {}",
                OPERATIONS.join(", ")
            ));
        };
        let ops: Vec<&str> = OPERATIONS
            .iter()
            .copied()
            .filter(|op| t.contains_key(*op))
            .collect();
        let op = match ops.as_slice() {
            [op] => *op,
            [] => {
                // A key that is no operation's option is a misspelt operation.
                let options = ["as", "against", "digits"];
                let unknown = t.keys().find(|k| !options.contains(&k.as_str()));
                return Err(match unknown {
                    Some(k) => format!(
                        "unknown operation `{k}`{} (expected one of {})",
                        did_you_mean(k, &OPERATIONS),
                        OPERATIONS.join(", ")
                    ),
                    None => format!(
                        "names no operation (expected one of {})",
                        OPERATIONS.join(", ")
                    ),
                });
            }
            many => {
                return Err(format!(
                    "names {} operations; write one step per table",
                    many.join(" and ")
                ))
            }
        };
        let allowed: &[&str] = match op {
            "rate" => &["as"],
            "change" | "change_pct" => &["as", "against"],
            "round" => &["as", "digits"],
            _ => &[],
        };
        if let Some(k) = t
            .keys()
            .find(|k| *k != op && !allowed.contains(&k.as_str()))
        {
            return Err(if allowed.is_empty() {
                format!("`{op}` takes no other key, not `{k}`")
            } else {
                let hint = did_you_mean(k, allowed);
                format!("`{op}` takes {}, not `{k}`{hint}", quoted(allowed))
            });
        }
        let name = |key: &str| -> Result<Option<String>, String> {
            match t.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{key}` must be a non-empty field name")),
            }
        };
        let subject = || -> Result<String, String> {
            name(op)?.ok_or_else(|| format!("`{op}` must be a non-empty field name"))
        };
        let default_to =
            |field: &str, suffix: &str| format!("{}_{suffix}", field.replace('.', "_"));
        Ok(match op {
            "rate" => {
                let field = subject()?;
                let to = name("as")?.unwrap_or_else(|| default_to(&field, "rate"));
                Transform::Rate { field, to }
            }
            "change" | "change_pct" => {
                let field = subject()?;
                let pct = op == "change_pct";
                let to = name("as")?.unwrap_or_else(|| default_to(&field, op));
                let against = name("against")?;
                Transform::Change {
                    field,
                    against,
                    pct,
                    to,
                }
            }
            "round" => {
                let field = subject()?;
                let digits = match t.get("digits") {
                    None => 0,
                    Some(toml::Value::Integer(d)) if (0..=i64::from(MAX_DIGITS)).contains(d) => {
                        *d as u32
                    }
                    Some(_) => {
                        return Err(format!(
                            "`digits` must be a whole number from 0 to {MAX_DIGITS}"
                        ))
                    }
                };
                let to = name("as")?.unwrap_or_else(|| field.clone());
                Transform::Round { field, digits, to }
            }
            "rename" => {
                let toml::Value::Table(map) = &t["rename"] else {
                    return Err("`rename` must be a table of old = \"new\" names".into());
                };
                if map.is_empty() {
                    return Err("`rename` names no field".into());
                }
                let mut pairs = Vec::with_capacity(map.len());
                for (old, new) in map {
                    match new {
                        toml::Value::String(n) if !n.is_empty() => {
                            pairs.push((old.clone(), n.clone()))
                        }
                        _ => {
                            return Err(format!(
                                "rename `{old}`: the new name must be a non-empty string"
                            ))
                        }
                    }
                }
                Transform::Rename(pairs)
            }
            _ => {
                let fields = match &t["select"] {
                    toml::Value::Array(a) if !a.is_empty() => a
                        .iter()
                        .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                };
                Transform::Select(fields.ok_or(
                    "`select` must be a non-empty list of field names, e.g. [\"symbol\", \"price\"]",
                )?)
            }
        })
    }
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

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

#[cfg(test)]
mod tests;
