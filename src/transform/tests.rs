//! Unit tests of `transform`.

use super::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

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
        "transform[1]: unknown operation `frobnicate` (expected one of rate, change, change_pct, round, rename, select)",
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
