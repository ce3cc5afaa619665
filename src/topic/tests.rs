//! Unit tests of `topic`.

use super::*;
use serde_json::json;

#[test]
fn topics_validate() {
    for ok in ["a", "stocks.AAPL", "host.cpu-0", "$sys.feeds", "a_b.c-d.9"] {
        validate_topic(ok).unwrap();
    }
    for bad in [
        "", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "é", "a.$b", "$",
    ] {
        assert!(validate_topic(bad).is_err(), "{bad} should be invalid");
    }
}

#[test]
fn patterns_match_nats_style() {
    let p = |s| Pattern::parse(s).unwrap();
    assert!(p("stocks.*").matches("stocks.AAPL"));
    assert!(!p("stocks.*").matches("stocks.AAPL.x"));
    assert!(!p("stocks.*").matches("stocks"));
    assert!(p("host.>").matches("host.cpu"));
    assert!(p("host.>").matches("host.cpu.0"));
    assert!(!p("host.>").matches("host"));
    assert!(p(">").matches("a"));
    assert!(p("*.AAPL").matches("stocks.AAPL"));
    assert!(p("stocks.AAPL").matches("stocks.AAPL"));
    assert!(!p("stocks.AAPL").matches("stocks.MSFT"));
}

/// The cases shared with the JavaScript client's tests: both sides of
/// the wire apply one rule.
#[test]
fn shared_cases_hold() {
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/data/topic_cases.json")).unwrap();
    let p = |s: &serde_json::Value| Pattern::parse(s.as_str().unwrap()).unwrap();
    for c in cases["matches"].as_array().unwrap() {
        let topic = c["topic"].as_str().unwrap();
        validate_topic(topic).unwrap();
        assert_eq!(p(&c["pattern"]).matches(topic), c["match"] == true, "{c}");
    }
    for c in cases["covers"].as_array().unwrap() {
        let by = [p(&c["by"])];
        assert_eq!(p(&c["pattern"]).covered_by(&by), c["covers"] == true, "{c}");
    }
}

#[test]
fn wildcards_in_first_segment_skip_system_topics() {
    let p = |s| Pattern::parse(s).unwrap();
    assert!(!p(">").matches("$sys.feeds"));
    assert!(!p("*.feeds").matches("$sys.feeds"));
    assert!(p("$sys.feeds").matches("$sys.feeds"));
    assert!(p("$sys.*").matches("$sys.feeds"));
    assert!(p("$sys.>").matches("$sys.config"));
}

#[test]
fn bad_patterns_are_refused() {
    for bad in ["", "a.>.b", "a..b", "a.b*", "a.**", "a b"] {
        assert!(Pattern::parse(bad).is_err(), "{bad} should be invalid");
    }
}

#[test]
fn containment_is_exact_for_unions() {
    let p = |s: &str| Pattern::parse(s).unwrap();
    let ps = |v: &[&str]| v.iter().map(|s| p(s)).collect::<Vec<_>>();
    assert!(p("stocks.AAPL").covered_by(&ps(&["stocks.*"])));
    assert!(p("stocks.*").covered_by(&ps(&["stocks.>"])));
    assert!(!p("stocks.>").covered_by(&ps(&["stocks.*"])));
    assert!(p("a.>").covered_by(&ps(&["a.*", "a.*.>"])));
    assert!(!p("a.>").covered_by(&ps(&["a.*", "a.*.*"])));
    assert!(p(">").covered_by(&ps(&[">"])));
    assert!(p("*.x").covered_by(&ps(&["*.*"])));
    assert!(!p("*.x").covered_by(&ps(&["a.x"])));
    assert!(!p("$sys.feeds").covered_by(&ps(&[">"])));
    assert!(p("$sys.feeds").covered_by(&ps(&["$sys.>"])));
    assert!(!p("stocks.*").covered_by(&[]));
    assert!(p("a.b").covered_by(&ps(&["a.b", "c"])));
    assert!(!p("a.b.c").covered_by(&ps(&["a.b"])));
}

#[test]
fn templates_fill_from_fields() {
    let t = TopicTemplate::parse("stocks.{symbol}").unwrap();
    assert_eq!(t.fill(&json!({"symbol": "AAPL"})).unwrap(), "stocks.AAPL");
    assert!(t.fill(&json!({"price": 1})).is_err());
    assert!(t.fill(&json!({"symbol": "BRK.B"})).is_err());
    let t = TopicTemplate::parse("q.{id}_x").unwrap();
    assert_eq!(t.fill(&json!({"id": 7})).unwrap(), "q.7_x");
    assert!(TopicTemplate::parse("a.{").is_err());
    assert!(TopicTemplate::parse("a.}").is_err());
    assert!(TopicTemplate::parse("a.{}").is_err());
    assert!(TopicTemplate::parse("s.{sym bol}").is_err());
    assert!(TopicTemplate::parse("s.{sym-bol}").is_err());
    assert!(TopicTemplate::parse("$sys.x").is_err());
    assert!(TopicTemplate::parse("a..{b}").is_err());
    assert!(TopicTemplate::parse("fixed.topic").unwrap().is_fixed());
}

/// `{labels.instance}` reaches a nested field; a top-level key spelt with a
/// dot wins over the path; a missing step is a clear error.
#[test]
fn templates_reach_nested_fields() {
    let t = TopicTemplate::parse("host.{labels.instance}.cpu").unwrap();
    let item = json!({"labels": {"instance": "web-1"}, "value": 0.5});
    assert_eq!(t.fill(&item).unwrap(), "host.web-1.cpu");
    let dotted = json!({"labels.instance": "flat", "labels": {"instance": "deep"}});
    assert_eq!(t.fill(&dotted).unwrap(), "host.flat.cpu");
    let missing = t.fill(&json!({"labels": {"job": "x"}})).unwrap_err();
    assert!(missing.to_string().contains("labels.instance"), "{missing}");
    assert!(t.fill(&json!({"labels": "web-1"})).is_err());
    assert_eq!(field(&json!({"a": [1]}), "a.0"), None);
}

#[test]
fn templates_know_which_topics_they_can_produce() {
    let t = TopicTemplate::parse("idx2.{symbol}").unwrap();
    assert!(t.can_produce("idx2.AAPL"));
    // A placeholder may be a broker variable spanning segments.
    assert!(t.can_produce("idx2.fx.EURUSD"));
    for other in [
        "index.AAPL",
        "idx2",
        "idx2.",
        "idx2..A",
        "idx2.A.",
        "xidx2.A",
        "$sys.feeds",
    ] {
        assert!(!t.can_produce(other), "{other}");
    }
    let mid = TopicTemplate::parse("h.{host}.cpu").unwrap();
    assert!(mid.can_produce("h.web-1.cpu"));
    assert!(!mid.can_produce("h.web-1.mem") && !mid.can_produce("h.cpu"));
    let glued = TopicTemplate::parse("p.{a}_{b}").unwrap();
    assert!(glued.can_produce("p.x_y_z") && !glued.can_produce("p.xy"));
    let fixed = TopicTemplate::parse("weather.now").unwrap();
    assert!(fixed.can_produce("weather.now") && !fixed.can_produce("weather.now.x"));
    assert!(TopicTemplate::parse("{nats_subject}")
        .unwrap()
        .can_produce("a.b.c"));
}
