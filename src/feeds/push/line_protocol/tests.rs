//! Unit tests of `line_protocol`: the item of a line, its text against the
//! JSON of its `Value`, and what a topic placeholder finds in it.

use serde_json::{json, Value};

use super::*;
use crate::topic::field;

/// The item of the one point of `line`: its text as published, and its
/// `Value` (what a feed with `transform` steps reads).
fn one(line: &str, p: Precision) -> Result<(String, Value), String> {
    let mut got = Vec::new();
    parse_body(line.as_bytes(), p, 42, |point, _| {
        let text = serde_json::to_string(point).unwrap();
        let value = serde_json::to_value(point).unwrap();
        got.push((text, value));
    })?;
    Ok(got.pop().expect("one point"))
}

/// Every field type, tags, escapes and the timestamp in ms.
#[test]
fn a_line_becomes_its_item() {
    let (_, v) = one(
        r#"cpu\ load,host=a\,b,re\=g=eu f=1.5,i=-3i,u=7u,s="say \"hi\" \\ ok",b=t,g=FALSE 1700000000123456789"#,
        Precision::Ns,
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"measurement": "cpu load", "tags": {"host": "a,b", "re=g": "eu"},
               "fields": {"f": 1.5, "i": -3, "u": 7, "s": "say \"hi\" \\ ok", "b": true, "g": false},
               "time": 1_700_000_000_123i64})
    );
}

/// Each precision scales the timestamp; a line without one gets now.
#[test]
fn precisions_and_missing_time() {
    for (p, t) in [
        (Precision::S, "1700000000"),
        (Precision::Ms, "1700000000000"),
        (Precision::Us, "1700000000000000"),
        (Precision::Ns, "1700000000000000000"),
    ] {
        assert_eq!(
            one(&format!("m v=1 {t}"), p).unwrap().1["time"],
            1_700_000_000_000i64
        );
    }
    assert_eq!(one("m v=1", Precision::Ns).unwrap().1["time"], 42);
    assert_eq!(one("m v=1 2", Precision::H).unwrap().1["time"], 7_200_000);
}

/// A bad line is named by number, with what is wrong; `NaN` and `inf`
/// (floats to Rust, no number to JSON) are refused as they always were.
#[test]
fn a_bad_line_is_named() {
    let body = b"m v=1\n\n# comment\nm,host=a\nm v=2\n";
    let err = parse_body(body, Precision::Ns, 0, |_, _| {}).unwrap_err();
    assert!(err.starts_with("line 4: missing fields"), "{err}");
    let err = parse_body(b"m v=abc", Precision::Ns, 0, |_, _| {}).unwrap_err();
    assert!(
        err.contains("line 1: field `v`: `abc` is not a field value"),
        "{err}"
    );
    let err = parse_body(b"m v=\"open", Precision::Ns, 0, |_, _| {}).unwrap_err();
    assert!(err.contains("no closing quote"), "{err}");
    for bad in ["NaN", "nan", "inf", "-inf", "Infinity"] {
        let err = one(&format!("m v={bad}"), Precision::Ns).unwrap_err();
        assert!(
            err.contains(&format!("`{bad}` is not a field value")),
            "{err}"
        );
    }
    assert!(Precision::parse("x").is_err());
}

/// The text published for a point is, byte for byte, the JSON of the
/// `Value` a `transform` feed gets (and of the tree the parser used to
/// build): JSON escapes in keys, tag values and string fields (quotes,
/// backslashes, control characters, unicode), every field type at its
/// limits, keys sorted and a repeated key's last value, every precision.
#[test]
fn the_text_is_the_json_of_its_value() {
    let lines = [
        r#"cpu\ load,host=a\,b,re\=g=eu f=1.5,i=-3i,u=7u,s="say \"hi\" \\ ok",b=t,g=FALSE 1700000000123456789"#,
        "m,z=1,a=2,m=3 v=1",
        "m,k=first,k=last v=1,v=2i,a=\"x\"",
        "q\"uote,ta\"g=va\"l\\ue s=\"tab\there, nl\\\\n \u{1}\u{1f}\"",
        "uni,città=Zürich,emoji=🚀 s=\"日本語 \u{2028}\",é=2u",
        "big i=-9223372036854775808i,j=9223372036854775807i,u=18446744073709551615u",
        "fl a=1e308,b=-0.0,c=5e-324,d=0.1,e=12,f=1.5E3,g=-2e-3,h=100000000000000000000",
        "bools a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE",
        "neg v=1 -1500",
        "back\\\\slash,t\\\\k=v\\\\ x=\"\\\\\\\"\"",
    ];
    let precisions = [
        Precision::Ns,
        Precision::Us,
        Precision::Ms,
        Precision::S,
        Precision::M,
        Precision::H,
    ];
    for line in lines {
        for p in precisions {
            let (text, value) = one(line, p).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(text, serde_json::to_string(&value).unwrap(), "{line}");
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, value, "{line}: the text reads back as its value");
        }
    }
    let (_, v) = one(lines[2], Precision::Ns).unwrap();
    assert_eq!(v["tags"], json!({"k": "last"}));
    assert_eq!(v["fields"], json!({"a": "x", "v": 2}));
    let (text, _) = one(lines[3], Precision::Ns).unwrap();
    assert!(
        text.contains(r#""q\"uote""#) && text.contains(r#"tab\there, nl\\n \u0001\u001f"#),
        "{text}"
    );
    let (_, v) = one(lines[5], Precision::Ns).unwrap();
    assert_eq!(v["fields"]["i"].as_i64(), Some(i64::MIN));
    assert_eq!(v["fields"]["u"].as_u64(), Some(u64::MAX));
    let (_, v) = one(lines[8], Precision::S).unwrap();
    assert_eq!(v["time"], -1_500_000);
}

/// A topic placeholder finds in a point what it finds in the point's
/// `Value` (`topic::field`): top-level keys, `tags.k` and `fields.k` (the
/// last of a repeated key), objects as no segment, and nothing deeper.
#[test]
fn placeholders_find_what_the_value_has() {
    let mut checked = 0;
    parse_body(
        b"m,host=h1,k=a,k=b f=1.5,i=7i,u=8u,s=\"x\",b=t 1700000000000000000",
        Precision::Ns,
        0,
        |point, _| {
            let value = serde_json::to_value(point).unwrap();
            for path in [
                "measurement",
                "time",
                "tags",
                "fields",
                "tags.host",
                "tags.k",
                "tags.nope",
                "fields.f",
                "fields.i",
                "fields.u",
                "fields.s",
                "fields.b",
                "tags.host.x",
                "time.x",
                "nope",
                "nope.x",
            ] {
                let want = field(&value, path).map(Found::of);
                assert_eq!(point.found(path), want, "{path}");
                checked += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(checked, 16);
}
