//! Unit tests of `dashboard`.

use super::*;

fn parse(text: &str) -> Result<Dashboard, Vec<String>> {
    parse_dashboard("ops", text, Path::new("d/ops.toml"))
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn every_kind_parses_with_its_keys() {
    let d = parse(
        r#"
title = "Ops"
columns = 6

[[panel]]
kind = "value"
topic = "host.metrics"
field = "cpu_pct"
format = "percent"
thresholds = [{ above = 80, level = "warn" }, { above = 95, level = "crit" }]

[[panel]]
kind = "tile"
pattern = "stocks.*"

[[panel]]
kind = "table"
pattern = "stocks.*"
columns = ["symbol", "price"]
span = 3

[[panel]]
kind = "tape"
pattern = "stocks.*"

[[panel]]
kind = "chart"
topic = "host.metrics"
fields = ["load1", "load5"]
window = "15m"

[[panel]]
kind = "gauge"
topic = "host.metrics"
field = "cpu_pct"
max = 100

[[panel]]
kind = "bar"
topic = "host.metrics"
field = "cpu_pct"

[[panel]]
kind = "feeds"

[[panel]]
kind = "text"
text = "Hello"
"#,
    )
    .unwrap();
    assert_eq!(d.columns, 6);
    assert_eq!(d.panels.len(), 9);
    assert_eq!(d.panels[4].window_ms, Some(900_000));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["panels"][0]["thresholds"][1]["level"], "crit");
    assert!(json.get("location").is_none());
}

#[test]
fn errors_name_line_panel_and_what_is_wrong() {
    let errs = parse(
        r#"title = "Ops"

[[panel]]
kind = "value"
topic = "host.metrics"
feild = "cpu"

[[panel]]
kind = "sparkle"

[[panel]]
kind = "chart"
topic = "host.metrics"
field = "x"
window = "soon"

[[panel]]
kind = "value"
topic = "a"
window = "1m"
format = "percnt"
"#,
    )
    .unwrap_err();
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("d/ops.toml:6: dashboard \"ops\": panel #1: unknown key `feild`"),
        "{errs:?}"
    );
    assert!(
        has("d/ops.toml:9: dashboard \"ops\": panel #2: unknown kind \"sparkle\""),
        "{errs:?}"
    );
    assert!(
        has("d/ops.toml:15: dashboard \"ops\": panel #3: window:"),
        "{errs:?}"
    );
    assert!(
        has("d/ops.toml:20: dashboard \"ops\": panel #4: `window` is not used by a `value` panel"),
        "{errs:?}"
    );
    assert!(
        has("d/ops.toml:21: dashboard \"ops\": panel #4: format \"percnt\""),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 5, "{errs:?}");
}

#[test]
fn required_keys_per_kind() {
    let errs = parse("title = \"x\"\n[[panel]]\nkind = \"gauge\"\n").unwrap_err();
    assert!(errs.iter().any(|e| e.contains("needs `topic`")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("needs `field`")), "{errs:?}");
    let errs = parse("title = \"x\"\ntitel = 1\n").unwrap_err();
    assert!(errs[0].starts_with("d/ops.toml:2:"), "{errs:?}");
    let errs =
        parse("title = \"x\"\n[[panel]]\nkind = \"tile\"\ntopic = \"a\"\nspan = 9\n").unwrap_err();
    assert!(errs[0].contains("`span` must be 1 to"), "{errs:?}");
    let errs = parse(
        "title = \"x\"\n[[panel]]\nkind = \"value\"\ntopic = \"a\"\nthresholds = [{ above = 1, level = \"bad\" }]\n",
    )
    .unwrap_err();
    assert!(errs[0].starts_with("d/ops.toml:5:"), "{errs:?}");
}

/// A `feeds` panel's `show` takes feed healths in any order; an empty list, an
/// unknown health and `show` on another kind are errors on its line.
#[test]
fn feeds_show_takes_healths() {
    let d =
        parse("title = \"x\"\n[[panel]]\nkind = \"feeds\"\nshow = [\"failing\", \"running\"]\n")
            .unwrap();
    assert_eq!(
        d.panels[0].show,
        Some(vec![FeedHealth::Failing, FeedHealth::Running])
    );
    let errs = parse("title = \"x\"\n[[panel]]\nkind = \"feeds\"\nshow = []\n").unwrap_err();
    assert!(
        errs[0].starts_with("d/ops.toml:4:") && errs[0].contains("`show` must list at least one"),
        "{errs:?}"
    );
    let errs =
        parse("title = \"x\"\n[[panel]]\nkind = \"feeds\"\nshow = [\"runing\"]\n").unwrap_err();
    assert!(
        errs[0].starts_with("d/ops.toml:4:") && errs[0].contains("running"),
        "{errs:?}"
    );
    let errs =
        parse("title = \"x\"\n[[panel]]\nkind = \"text\"\ntext = \"t\"\nshow = [\"failing\"]\n")
            .unwrap_err();
    assert!(
        errs[0].contains("`show` is not used by a `text` panel"),
        "{errs:?}"
    );
}
