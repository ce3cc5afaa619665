//! Unit tests of config loading: every error collected, with its line.

use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, Path::new("c.toml"))
}

#[test]
fn builtin_config_is_valid() {
    let c = Config::builtin();
    assert!(c.feeds.iter().any(|f| f.kind == "synthetic"));
    assert!(c.feeds.iter().any(|f| f.kind == "system"));
    let names: Vec<&str> = c.dashboards.keys().map(String::as_str).collect();
    assert_eq!(names, ["host", "markets"]);
}

/// A feed's `max_item_bytes` overrides `[limits]`'s, which every other
/// feed takes; a bad value names its line, and a budget smaller than a
/// frame is refused.
#[test]
fn max_item_bytes_resolves_per_feed_and_is_checked() {
    let text = r#"
[limits]
max_item_bytes = 4096

[[feed]]
name = "own"
kind = "system"
topic = "a"
max_item_bytes = 100

[[feed]]
name = "default"
kind = "system"
topic = "b"
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.feed("own").unwrap().max_item_bytes, Some(100));
    assert_eq!(c.feed("default").unwrap().max_item_bytes, Some(4096));
    let bad =
        "[[feed]]\nname = \"x\"\nkind = \"system\"\ntopic = \"a\"\nmax_item_bytes = \"1MB\"\n";
    let errs = parse(bad).unwrap_err().to_string();
    assert!(
        errs.contains("c.toml:5:") && errs.contains("max_item_bytes"),
        "{errs}"
    );
    let small = "[limits]\nmax_frame_bytes = 65536\nmax_buffered_bytes = 1000\n";
    let errs = parse(small).unwrap_err().to_string();
    assert!(
        errs.contains("max_buffered_bytes = 1000 must be at least"),
        "{errs}"
    );
}

#[test]
fn every_error_is_collected_with_line_and_feed() {
    let text = r#"
[[feed]]
name = "a"
kind = "synthetic"
topic = "s.{symbol}"
symbols = ["X"]
intervl = "1s"

[[feed]]
name = "b"
kind = "nope"
topic = "t"

[[feed]]
name = "a"
kind = "system"
topic = "bad..topic"
"#;
    let errs = parse(text).unwrap_err();
    let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|e| e.starts_with("c.toml:7: feed \"a\": unknown field `intervl`")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("c.toml:11: feed \"b\": unknown kind")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("c.toml:17: feed \"a\":") && e.contains("empty segment")),
        "{text:?}"
    );
    assert_eq!(errs.0.len(), 3, "{text:?}");
}

/// The broker kinds' value checks name the line of the key at fault, and a
/// password in a URL is never echoed back.
#[test]
fn broker_kinds_are_checked_with_lines() {
    let text = r#"
[[feed]]
name = "m"
kind = "mqtt"
topic = "iot.{mqtt_topic}"
url = "mqtt://u:pw@127.0.0.1:1883"
subscribe = ["a/#/b"]
qos = 2
ca_file = "ca.pem"

[[feed]]
name = "r"
kind = "redis"
topic = "r.{redis_channel}"
url = "https://u:hunter2@127.0.0.1"
streams = ["s"]

[[feed]]
name = "n"
kind = "nats"
topic = "n.{nats_subject}"
url = "nats://127.0.0.1:4222"
subject = "a.>.b"
password = "p"
durable = "my.consumer"
"#;
    let errs = parse(text).unwrap_err();
    let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
    for (line, needle) in [
        (6, "not in `url`"),
        (7, "topic filter \"a/#/b\" is not valid"),
        (8, "qos 2 is not supported"),
        (9, "`ca_file` is for mqtts:// URLs"),
        (15, "url scheme `https`"),
        (16, "`streams` is for mode = \"stream\""),
        (23, "subject \"a.>.b\" is not valid"),
        (24, "`user` and `password` go together"),
        (25, "`durable` needs `stream`"),
        (25, "durable \"my.consumer\" is not a valid JetStream name"),
    ] {
        let prefix = format!("c.toml:{line}: ");
        assert!(
            text.iter()
                .any(|e| e.starts_with(&prefix) && e.contains(needle)),
            "{prefix}{needle} in {text:?}"
        );
    }
    assert!(!text.iter().any(|e| e.contains("hunter2")), "{text:?}");
    let ok = parse(
        "[[feed]]\nname = \"r\"\nkind = \"redis\"\ntopic = \"r.{redis_stream}\"\n\
         url = \"redis://127.0.0.1:6379\"\nmode = \"stream\"\nstreams = [\"s\"]\n",
    )
    .unwrap();
    assert_eq!(ok.feeds[0].kind, "redis");
}

#[test]
fn durations_and_unknown_sections_are_checked() {
    assert!(parse("[server]\nheartbeat = \"soon\"\n").is_err());
    assert!(parse("[sever]\n").is_err());
    let c = parse("[server]\nheartbeat = \"250ms\"\n").unwrap();
    assert_eq!(c.server.heartbeat, Duration::from_millis(250));
    assert_eq!(c.server.flush_interval, Duration::from_millis(25));
    assert!(parse("[server]\nflush_interval = \"2s\"\n").is_err());
    let c = parse("[server]\nflush_interval = \"0s\"\n").unwrap();
    assert!(c.server.flush_interval.is_zero());
}

/// `[server] shutdown_timeout` defaults to 10 s, takes a duration, and zero
/// is refused at its line with an example of a right value.
#[test]
fn shutdown_timeout_is_a_positive_duration() {
    assert_eq!(
        parse("").unwrap().server.shutdown_timeout,
        Duration::from_secs(10)
    );
    let c = parse("[server]\nshutdown_timeout = \"3s\"\n").unwrap();
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(3));
    let e = parse("[server]\nshutdown_timeout = \"0s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":2:") && e.contains("greater than zero, e.g. \"10s\""),
        "{e}"
    );
}

#[test]
fn a_feeds_history_is_a_count_or_an_age_within_max_history() {
    let feed =
        |h: &str| format!("[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\nhistory = {h}\n");
    assert_eq!(
        parse(&feed("500")).unwrap().feeds[0].history,
        Some(FeedHistory::Count(500))
    );
    assert_eq!(
        parse(&feed("\"15m\"")).unwrap().feeds[0].history,
        Some(FeedHistory::Age(Duration::from_secs(900)))
    );
    let errs = parse(&feed("20000")).unwrap_err().to_string();
    assert!(
        errs.starts_with(
            "c.toml:5: feed \"s\": history = 20000 is above [limits] max_history (10000)"
        ),
        "{errs}"
    );
    let errs = parse(&feed("\"soon\"")).unwrap_err().to_string();
    assert!(
        errs.starts_with("c.toml:5: feed \"s\": `history` must be a count"),
        "{errs}"
    );
    let errs = parse(&feed("true")).unwrap_err().to_string();
    assert!(errs.contains("must be a count"), "{errs}");
}

#[test]
fn moving_a_feed_is_not_a_change() {
    let a = parse("[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
    let b = parse("\n\n[[feed]]\nname=\"s\"\nkind=\"system\"\ntopic=\"h.m\"\n").unwrap();
    assert_eq!(a.feeds[0], b.feeds[0]);
    assert_ne!(a.feeds[0].location.line, b.feeds[0].location.line);
}
