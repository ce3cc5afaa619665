//! Unit tests of `protocol`.

use super::*;
use serde_json::json;

/// A topic list longer than the limit keeps its first rows, within the
/// limit, and says it was cut; a short one is whole and says nothing.
#[test]
fn topics_replies_fit_the_frame_limit() {
    let rows: Vec<TopicInfo> = (0..100)
        .map(|i| TopicInfo {
            topic: format!("t.{i:03}"),
            feed: None,
            seq: i,
            ts: 0,
            stale: false,
            subscribers: 0,
            feed_removed: false,
        })
        .collect();
    let whole = topics(Some(&json!(1)), &rows, usize::MAX);
    let v: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(v["topics"].as_array().unwrap().len(), 100);
    assert!(v.get("truncated").is_none());
    let cut = topics(Some(&json!(1)), &rows, 1000);
    assert!(cut.len() <= 1000, "{} bytes", cut.len());
    let v: serde_json::Value = serde_json::from_str(&cut).unwrap();
    let kept = v["topics"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 100);
    assert_eq!(kept[0]["topic"], "t.000");
    assert_eq!(v["truncated"], true);
    let one_more = topics(Some(&json!(1)), &rows[..kept.len() + 1], 1000);
    assert!(one_more.len() > 1000 || one_more.contains("truncated"));
}

#[test]
fn parses_requests_and_keeps_ids() {
    let (id, req) = parse_request(r#"{"op":"subscribe","topics":["a.*"],"id":1}"#);
    assert_eq!(id, Some(json!(1)));
    assert!(matches!(req, Ok(Request::Subscribe { ref topics, .. }) if topics == &["a.*"]));
    let (id, req) = parse_request(r#"{"op":"nope","id":"x"}"#);
    assert_eq!(id, Some(json!("x")));
    assert_eq!(req.unwrap_err().code, ErrorCode::UnknownOp);
    for bad in [
        "nope",
        "[1]",
        r#"{"id":1}"#,
        r#"{"op":1}"#,
        r#"{"op":"subscribe"}"#,
        r#"{"op":"subscribe","topics":[]}"#,
        r#"{"op":"subscribe","topics":[1]}"#,
        r#"{"op":"subscribe","topics":["a"],"since":{"a":-1}}"#,
    ] {
        assert_eq!(
            parse_request(bad).1.unwrap_err().code,
            ErrorCode::BadRequest,
            "{bad}"
        );
    }
}

/// Every op of `OPS` has a parser, and refuses a field it does not take
/// with the field's name and the op's list; `op` and `id` are taken by all.
#[test]
fn every_op_refuses_unknown_fields() {
    for (op, fields) in OPS {
        let (_, req) = parse_request(&json!({"op": op, "id": 1}).to_string());
        if let Err(e) = req {
            assert_eq!(e.code, ErrorCode::BadRequest, "{op}: {e:?}");
        }
        let (id, req) = parse_request(&json!({"op": op, "id": 1, "bogus": 1}).to_string());
        assert_eq!(id, Some(json!(1)));
        let e = req.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{op}");
        assert!(e.message.contains("`bogus`"), "{op}: {}", e.message);
        for field in *fields {
            assert!(
                e.message.contains(&format!("`{field}`")),
                "{op}: {}",
                e.message
            );
        }
    }
    let (_, req) = parse_request(r#"{"op":"subscribe","topics":["a"],"maxrate":2}"#);
    assert_eq!(
        req.unwrap_err().message,
        "unknown field `maxrate` in subscribe; did you mean `max_rate`? \
         (expected `op`, `id`, `topics`, `since`, `epoch`, `max_rate` or `delta`)"
    );
}

#[test]
fn update_frames_are_valid_json() {
    let f = encode_update("stocks.AAPL", 42, 7, r#"{"price":1.5}"#);
    let v: Value = serde_json::from_str(f.as_str()).unwrap();
    assert_eq!(
        v,
        json!({"type":"update","topic":"stocks.AAPL","seq":42,"ts":7,"data":{"price":1.5}})
    );
    let s: Value = serde_json::from_str(snapshot_of(f.as_str()).as_str()).unwrap();
    assert_eq!(s["snapshot"], json!(true));
    assert_eq!(s["seq"], json!(42));
}
