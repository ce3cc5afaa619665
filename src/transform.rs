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

mod apply;
#[cfg(test)]
mod tests;

pub(crate) use apply::{apply, Memory};
