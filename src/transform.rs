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
                return Err(format!(
                    "names no operation (expected one of {})",
                    OPERATIONS.join(", ")
                ))
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
                format!("`{op}` takes {}, not `{k}`", quoted(allowed))
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
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    fn parse(toml_text: &str) -> Result<Vec<Transform>, Vec<String>> {
        let t: toml::Table = toml::from_str(toml_text).unwrap();
        Transform::parse_list(&t["transform"])
    }

    /// Runs `steps` over `items` for one topic, the items `SECOND` apart.
    fn run(steps: &[Transform], items: &[Value]) -> Vec<Result<Value, String>> {
        let mut memory = Memory::default();
        let start = Instant::now();
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let slots = memory.of("t", steps.len());
                apply(steps, slots, item.clone(), start + SECOND * i as u32)
            })
            .collect()
    }

    /// The TOML shape: one operation per table, defaults for `as`, modifiers.
    #[test]
    fn parses_the_toml_shape() {
        let steps = parse(
            r#"transform = [
                { rate = "bytes", as = "bytes_per_s" },
                { change = "price" },
                { change_pct = "price", against = "open", as = "pct" },
                { round = "price", digits = 2 },
                { rename = { old = "new" } },
                { select = ["a", "b"] },
            ]"#,
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Transform::Rate {
                    field: "bytes".into(),
                    to: "bytes_per_s".into()
                },
                Transform::Change {
                    field: "price".into(),
                    against: None,
                    pct: false,
                    to: "price_change".into()
                },
                Transform::Change {
                    field: "price".into(),
                    against: Some("open".into()),
                    pct: true,
                    to: "pct".into()
                },
                Transform::Round {
                    field: "price".into(),
                    digits: 2,
                    to: "price".into()
                },
                Transform::Rename(vec![("old".into(), "new".into())]),
                Transform::Select(vec!["a".into(), "b".into()]),
            ]
        );
        let nested = parse(r#"transform = [{ rate = "net.bytes" }]"#).unwrap();
        assert_eq!(
            nested,
            vec![Transform::Rate {
                field: "net.bytes".into(),
                to: "net_bytes_rate".into()
            }]
        );
    }

    /// Every mistake gets a message naming the step and what would be right.
    #[test]
    fn rejects_bad_steps_with_clear_messages() {
        let errors = parse(
            r#"transform = [
                { round = "p", digit = 2 },
                { frobnicate = "x" },
                { rate = "a", change = "b" },
                { round = "p", digits = 40 },
                { select = [] },
                { rename = { a = 1 } },
                "rate",
            ]"#,
        )
        .unwrap_err();
        let expect = [
            "transform[0]: `round` takes `as` or `digits`, not `digit`",
            "transform[1]: names no operation (expected one of rate, change, change_pct, round, rename, select)",
            "transform[2]: names rate and change operations; write one step per table",
            "transform[3]: `digits` must be a whole number from 0 to 12",
            "transform[4]: `select` must be a non-empty list",
            "transform[5]: rename `a`: the new name must be a non-empty string",
            "transform[6]: each step must be a table",
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(expect) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
        assert!(parse("transform = \"rate\"").unwrap_err()[0].contains("array of tables"));
    }

    /// `rate`: null first, then per-second deltas; a counter that went down is
    /// taken as reset (it counted from zero).
    #[test]
    fn rate_is_per_second_and_tolerates_resets() {
        let steps = parse(r#"transform = [{ rate = "bytes", as = "bps" }]"#).unwrap();
        let out = run(
            &steps,
            &[
                json!({"bytes": 100}),
                json!({"bytes": 300}),
                json!({"bytes": "700"}),
                json!({"bytes": 50}),
            ],
        );
        let bps: Vec<Value> = out.into_iter().map(|r| r.unwrap()["bps"].clone()).collect();
        assert_eq!(
            bps,
            vec![json!(null), json!(200.0), json!(400.0), json!(50.0)]
        );
        let missing = run(&steps, &[json!({"other": 1})]);
        assert_eq!(missing[0], Err("rate: item has no field `bytes`".into()));
    }

    /// Rates are per topic: two topics interleaved do not mix their counters.
    #[test]
    fn rate_state_is_per_topic() {
        let steps = parse(r#"transform = [{ rate = "n" }]"#).unwrap();
        let mut memory = Memory::default();
        let t0 = Instant::now();
        let mut at = |topic: &str, n: i64, secs: u32| {
            let slots = memory.of(topic, 1);
            apply(&steps, slots, json!({ "n": n }), t0 + SECOND * secs).unwrap()["n_rate"].clone()
        };
        assert_eq!(at("a", 10, 0), json!(null));
        assert_eq!(at("b", 1000, 0), json!(null));
        assert_eq!(at("a", 20, 2), json!(5.0));
        assert_eq!(at("b", 1100, 1), json!(100.0));
    }

    /// `change` / `change_pct` against the previous value of the topic, and
    /// against a reference field of the same item.
    #[test]
    fn change_against_previous_or_reference() {
        let steps = parse(r#"transform = [{ change = "p" }, { change_pct = "p" }]"#).unwrap();
        let out = run(
            &steps,
            &[json!({"p": 100}), json!({"p": 110}), json!({"p": 99})],
        );
        let got: Vec<(Value, Value)> = out
            .into_iter()
            .map(|r| {
                let v = r.unwrap();
                (v["p_change"].clone(), v["p_change_pct"].clone())
            })
            .collect();
        assert_eq!(got[0], (json!(null), json!(null)));
        assert_eq!(got[1], (json!(10.0), json!(10.0)));
        assert_eq!(got[2], (json!(-11.0), json!(-10.0)));

        let steps =
            parse(r#"transform = [{ change_pct = "p", against = "open", as = "pct" }]"#).unwrap();
        let out = run(
            &steps,
            &[json!({"p": 90, "open": 120}), json!({"p": 1, "open": 0})],
        );
        assert_eq!(out[0].as_ref().unwrap()["pct"], json!(-25.0));
        assert_eq!(
            out[1].as_ref().unwrap()["pct"],
            json!(null),
            "a zero reference has no percent"
        );
        let bad = run(&steps, &[json!({"p": 1, "open": true})]);
        assert_eq!(
            bad[0],
            Err("change_pct: field `open` is a boolean, not a number".into())
        );
    }

    /// `round` in place (nested too) or into another field.
    #[test]
    fn round_in_place_or_as() {
        let steps = parse(
            r#"transform = [{ round = "p", digits = 2 }, { round = "q.x" }, { round = "p", digits = 1, as = "p1" }]"#,
        )
        .unwrap();
        let out = run(&steps, &[json!({"p": 1.23456, "q": {"x": 2.5}})]);
        assert_eq!(out[0], Ok(json!({"p": 1.23, "q": {"x": 3.0}, "p1": 1.2})));
        assert!(run(&steps, &[json!({"p": "abc"})])[0]
            .as_ref()
            .unwrap_err()
            .contains("\"abc\""));
    }

    /// `rename` moves fields (missing is an error); `select` keeps only those listed.
    #[test]
    fn rename_and_select() {
        let steps = parse(
            r#"transform = [{ rename = { px = "price" } }, { select = ["price", "sym", "absent"] }]"#,
        )
        .unwrap();
        let out = run(
            &steps,
            &[
                json!({"px": 1, "sym": "A", "noise": [1]}),
                json!({"sym": "B"}),
            ],
        );
        assert_eq!(out[0], Ok(json!({"price": 1, "sym": "A"})));
        assert_eq!(out[1], Err("rename: item has no field `px`".into()));
        assert_eq!(
            run(&steps, &[json!([1, 2])])[0],
            Err("transform needs an object item, not an array".into())
        );
    }
}
