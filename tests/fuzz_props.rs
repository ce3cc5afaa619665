//! Property tests standing in for `cargo fuzz` (which needs a nightly
//! toolchain): the parsers that see hostile input never panic, and topic
//! matching and permission containment obey their laws.
//!
//! Each block runs a fixed, small number of cases so the suite stays fast; set
//! `PROPTEST_CASES` to run longer (see SECURITY.md):
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz_props`.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};
use tickerd::protocol::{parse_request, ErrorCode, Request};
use tickerd::topic::{validate_topic, Pattern, TopicTemplate};
use tickerd::Config;

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn cases(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "subscribe",
            "unsubscribe",
            "topics",
            "ping",
            "a.*",
            ">"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["op", "topics", "since", "epoch", "id", "x"])
                    .prop_map(str::to_string),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid topic: 1..5 segments of `[A-Za-z0-9_-]`, optionally `$`-prefixed.
fn topic() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec("[A-Za-z0-9_-]{1,6}", 1..5),
    )
        .prop_map(|(sys, segs)| format!("{}{}", if sys { "$" } else { "" }, segs.join(".")))
}

proptest! {
    #![proptest_config(cases(512))]

    /// The client-message parser never panics on arbitrary text.
    #[test]
    fn parse_request_never_panics_on_text(text in ".{0,200}") {
        let _ = parse_request(&text);
    }

    /// On arbitrary JSON it never panics, echoes an object's `id`, and accepts
    /// a subscribe only with a non-empty list of strings.
    #[test]
    fn parse_request_handles_any_json(v in json_value()) {
        let (id, req) = parse_request(&v.to_string());
        if let Value::Object(o) = &v {
            prop_assert_eq!(id, o.get("id").cloned());
        } else {
            prop_assert!(id.is_none());
            prop_assert_eq!(req.clone().unwrap_err().code, ErrorCode::BadRequest);
        }
        if let Ok(Request::Subscribe { topics, .. } | Request::Unsubscribe { topics }) = req {
            prop_assert!(!topics.is_empty());
        }
    }

    /// A well-formed subscribe always parses, whatever the topics' text.
    #[test]
    fn well_formed_subscribe_parses(topics in prop::collection::vec(".{0,20}", 1..5), id in json_value()) {
        let text = json!({"op": "subscribe", "topics": topics, "id": id}).to_string();
        let (got_id, req) = parse_request(&text);
        prop_assert_eq!(got_id, Some(id));
        let ok = matches!(req, Ok(Request::Subscribe { topics: ref t, .. }) if *t == topics);
        prop_assert!(ok, "{:?}", req);
    }

    /// Topic, pattern and template parsing never panic on arbitrary text, and
    /// matching never panics on arbitrary (even invalid) topics.
    #[test]
    fn topic_parsing_never_panics(text in "(.|[.*>$]){0,64}", other in ".{0,32}") {
        let _ = validate_topic(&text);
        if let Ok(p) = Pattern::parse(&text) {
            let _ = p.matches(&other);
            let _ = p.matches(&text);
        }
        if let Ok(t) = TopicTemplate::parse(&text) {
            let _ = t.fill(&json!({"x": other}));
        }
    }

    /// A valid topic, read as a pattern, is literal and matches exactly itself.
    #[test]
    fn literal_pattern_matches_exactly_its_topic(t in topic(), u in topic()) {
        prop_assert!(validate_topic(&t).is_ok());
        let p = Pattern::parse(&t).unwrap();
        prop_assert!(p.is_literal());
        prop_assert!(p.matches(&t));
        prop_assert_eq!(p.matches(&u), t == u);
    }

    /// `>` matches every topic but the server's own; `*` in place of any one
    /// segment still matches (unless it replaces a `$` first segment).
    #[test]
    fn wildcards_obey_nats_rules(t in topic(), i in any::<prop::sample::Index>()) {
        let gt = Pattern::parse(">").unwrap();
        prop_assert_eq!(gt.matches(&t), !t.starts_with('$'));
        let mut segs: Vec<&str> = t.split('.').collect();
        let i = i.index(segs.len());
        let replaced_system = i == 0 && segs[0].starts_with('$');
        segs[i] = "*";
        let star = Pattern::parse(&segs.join(".")).unwrap();
        prop_assert_eq!(star.matches(&t), !replaced_system);
        if segs.len() > 1 {
            let rest = Pattern::parse(&format!("{}.>", segs[..segs.len() - 1].join("."))).unwrap();
            prop_assert_eq!(rest.matches(&t), !(i == 0 && replaced_system));
        }
    }
}

/// A pattern of 1..=3 segments over a small alphabet (`$s` only first, `>`
/// only last), or `None` if the draw is not a valid pattern.
fn small_pattern() -> impl Strategy<Value = Option<Pattern>> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "$s", "*", ">"]), 1..=3)
        .prop_map(|segs| Pattern::parse(&segs.join(".")).ok())
}

/// Every topic of 1..=5 segments over `a`, `b`, `c` (a segment no pattern
/// names) with `$s`, `$t` also allowed first: enough to decide containment
/// for patterns of up to 3 segments over that alphabet.
fn all_small_topics() -> Vec<String> {
    let mut out: Vec<Vec<&str>> = ["a", "b", "c", "$s", "$t"]
        .iter()
        .map(|s| vec![*s])
        .collect();
    let mut all = out.clone();
    for _ in 1..5 {
        out = out
            .iter()
            .flat_map(|t| {
                ["a", "b", "c"]
                    .iter()
                    .map(move |s| [t.as_slice(), &[*s]].concat())
            })
            .collect();
        all.extend(out.iter().cloned());
    }
    all.into_iter().map(|t| t.join(".")).collect()
}

proptest! {
    #![proptest_config(cases(512))]

    /// `covered_by` (the permission check) agrees with brute force: a pattern
    /// is covered exactly when every topic it matches is matched by a grant.
    #[test]
    fn containment_agrees_with_brute_force(
        p in small_pattern(),
        grants in prop::collection::vec(small_pattern(), 0..4),
    ) {
        let Some(p) = p else { return Ok(()) };
        let grants: Vec<Pattern> = grants.into_iter().flatten().collect();
        let topics = all_small_topics();
        let brute = topics
            .iter()
            .filter(|t| p.matches(t))
            .all(|t| grants.iter().any(|g| g.matches(t)));
        prop_assert_eq!(p.covered_by(&grants), brute, "{} within {:?}", p, grants);
    }
}

/// A valid config exercising every section this branch reads.
const SAMPLE: &str = r#"[server]
listen = "127.0.0.1:0"
token = "t"
publish_token = "p"
allowed_origins = ["https://a.example"]
heartbeat = "20s"

[limits]
max_connections = 10
max_subscriptions = 5
max_frame_bytes = 1024
queue = 8
max_connections_per_ip = 2
header_timeout = "1s"
max_header_bytes = 8192

[[access]]
token = "ro"
patterns = ["stocks.>", "$sys.feeds"]

[[feed]]
name = "stocks"
kind = "synthetic"
topic = "stocks.{symbol}"
symbols = ["A", "B"]
interval = "500ms"
"#;

proptest! {
    #![proptest_config(cases(256))]

    /// Config loading never panics on arbitrary text.
    #[test]
    fn config_never_panics_on_text(text in "(.|\n|[\\[\\]=\"{}.$]){0,300}") {
        let _ = Config::from_toml(&text, Path::new("c.toml"));
    }

    /// Nor on a valid config with bytes deleted, inserted or lines repeated:
    /// it loads or reports errors, each with a location.
    #[test]
    fn config_never_panics_on_mutations(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(vec!["[", "]", "=", "\"", "\n", ".", "{", "}", "0", "-1", "$", "*", ">", "x", "é", "99999999999999999999"])), 1..6),
    ) {
        let mut text = SAMPLE.to_string();
        for (at, op, piece) in edits {
            let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let pos = boundaries[at.index(boundaries.len())];
            match op {
                0 => text.insert_str(pos, piece),
                1 => {
                    if let Some(c) = text[pos..].chars().next() {
                        text.replace_range(pos..pos + c.len_utf8(), "");
                    }
                }
                _ => {
                    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
                    let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
                    let line = text[start..end].to_string();
                    text.insert_str(start, &line);
                }
            }
        }
        if let Err(errors) = Config::from_toml(&text, Path::new("c.toml")) {
            prop_assert!(!errors.0.is_empty());
            prop_assert!(errors.0.iter().all(|e| e.location.is_some()));
        }
    }

    /// Limits are accepted exactly when they are in range.
    #[test]
    fn limits_are_validated(per_ip in 0u64..5, header in 0u64..20_000, max_conn in 0u64..3) {
        let text = format!(
            "[limits]\nmax_connections_per_ip = {per_ip}\nmax_header_bytes = {header}\nmax_connections = {max_conn}\n"
        );
        let ok = Config::from_toml(&text, Path::new("c.toml")).is_ok();
        prop_assert_eq!(ok, per_ip > 0 && header >= 8192 && max_conn > 0);
    }
}

/// The sample itself is valid, so the mutation test starts from a real config.
#[test]
fn sample_config_is_valid() {
    let c = Config::from_toml(SAMPLE, Path::new("c.toml")).unwrap();
    assert_eq!(c.access.len(), 1);
    assert_eq!(c.limits.max_connections_per_ip, 2);
}
