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

/// `can_produce(template, pattern)` with every placeholder any one segment.
fn produces(template: &str, pattern: &str) -> bool {
    let t = TopicTemplate::parse(template).unwrap();
    t.can_produce(&Pattern::parse(pattern).unwrap(), &|_| Fill::Segment)
}

/// A template can produce a topic a pattern matches when each segment fits:
/// fixed text only its own word, a placeholder any one segment (a word that
/// fits the text around it), `>` one or more segments; never a `$` topic.
#[test]
fn templates_produce_what_a_pattern_matches() {
    assert!(produces("stocks.{symbol}", "stocks.*"));
    assert!(produces("stocks.{symbol}", "stocks.APPL"));
    assert!(produces("stocks.{symbol}", "stocks.>"));
    assert!(produces("stocks.{symbol}", ">"));
    assert!(produces("stocks.{symbol}", "*.*"));
    assert!(!produces("stocks.{symbol}", "stock.*"));
    assert!(!produces("stocks.{symbol}", "stocks"));
    assert!(!produces("stocks.{symbol}", "stocks.*.price"));
    assert!(!produces("stocks.{symbol}", "stocks.AAPL.>"));
    assert!(produces("host.metrics", "host.metrics"));
    assert!(produces("host.metrics", "host.*"));
    assert!(!produces("host.metrics", "host.metric"));
    assert!(!produces("host.metrics", "$sys.>"));
    assert!(produces("q.{id}_x", "q.7_x"));
    assert!(!produces("q.{id}_x", "q._x"));
    assert!(!produces("q.{id}_x", "q.7_y"));
    assert!(produces("host.{labels.instance}.cpu", "host.web-1.cpu"));
}

/// A placeholder whose values the feed knows (`Fill::OneOf`) fits only those;
/// one that spans segments (`Fill::Segments`, `{mqtt_topic}`) fits one or more.
#[test]
fn known_values_and_several_segments_sharpen_the_answer() {
    let symbols = ["AAPL".to_string(), "MSFT".to_string()];
    let t = TopicTemplate::parse("stocks.{symbol}").unwrap();
    let known = |_: &str| Fill::OneOf(&symbols);
    let can = |p: &str| t.can_produce(&Pattern::parse(p).unwrap(), &known);
    assert!(can("stocks.AAPL") && can("stocks.*") && can("stocks.>"));
    assert!(!can("stocks.APPL"));
    let none: [String; 0] = [];
    assert!(
        !t.can_produce(&Pattern::parse("stocks.*").unwrap(), &|_| Fill::OneOf(
            &none
        ))
    );

    let t = TopicTemplate::parse("iot.{mqtt_topic}").unwrap();
    let spans = |name: &str| {
        if name == "mqtt_topic" {
            Fill::Segments
        } else {
            Fill::Segment
        }
    };
    let can = |p: &str| t.can_produce(&Pattern::parse(p).unwrap(), &spans);
    assert!(can("iot.sensors.kitchen.temp") && can("iot.*") && can("iot.*.*.temp"));
    assert!(!can("iot") && !can("sensors.kitchen"));
    let t = TopicTemplate::parse("{nats_subject}.last").unwrap();
    let can = |p: &str| t.can_produce(&Pattern::parse(p).unwrap(), &|_| Fill::Segments);
    assert!(can("a.b.c.last") && can("x.last") && !can("last") && !can("a.b.first"));
}

/// What a reload asks of a changed feed's templates (every placeholder may
/// span segments, as a broker variable does): which of its topics the
/// template can still produce.
#[test]
fn templates_know_which_topics_they_can_produce() {
    let can = |template: &str, topic: &str| {
        let t = TopicTemplate::parse(template).unwrap();
        t.can_produce(&Pattern::parse(topic).unwrap(), &|_| Fill::Segments)
    };
    assert!(can("idx2.{symbol}", "idx2.AAPL"));
    assert!(can("idx2.{symbol}", "idx2.fx.EURUSD"));
    for other in ["index.AAPL", "idx2", "xidx2.A", "$sys.feeds"] {
        assert!(!can("idx2.{symbol}", other), "{other}");
    }
    assert!(can("h.{host}.cpu", "h.web-1.cpu"));
    assert!(!can("h.{host}.cpu", "h.web-1.mem") && !can("h.{host}.cpu", "h.cpu"));
    assert!(can("p.{a}_{b}", "p.x_y_z"));
    assert!(can("weather.now", "weather.now") && !can("weather.now", "weather.now.x"));
    assert!(can("{nats_subject}", "a.b.c"));
}
