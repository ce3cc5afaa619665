//! Unit tests of the hub: delivery, relayed updates, history and resume.

use super::*;
use crate::config::FeedHistory;
use crate::frame::Text;
use crate::protocol;
use serde_json::{json, Value};

fn drain(outbox: &Outbox) -> Vec<Value> {
    let mut out = Vec::new();
    outbox.take(&mut out);
    out.iter()
        .map(|f| serde_json::from_str(f.text()).unwrap())
        .collect()
}

fn hub_with_sub(history: usize) -> (Hub, Arc<Outbox>, SubscriberId) {
    let hub = Hub::new(history, Arc::default());
    let outbox = Arc::new(Outbox::new(1024, hub.metrics().clone()));
    let id = hub.add_subscriber(outbox.clone());
    (hub, outbox, id)
}

#[test]
fn snapshot_then_live_and_no_duplicates_across_patterns() {
    let (hub, outbox, id) = hub_with_sub(10);
    hub.publish("stocks.AAPL", &json!({"p": 1})).unwrap();
    let pats = [
        Pattern::parse("stocks.*").unwrap(),
        Pattern::parse("stocks.AAPL").unwrap(),
    ];
    assert_eq!(hub.add_patterns(id, &pats, &Resume::default()), 2);
    hub.publish("stocks.AAPL", &json!({"p": 2})).unwrap();
    let got = drain(&outbox);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["snapshot"], json!(true));
    assert_eq!(got[0]["seq"], json!(1));
    assert_eq!(got[1]["seq"], json!(2));
    assert!(got[1].get("snapshot").is_none());
}

/// Relayed frames keep the origin's seq, ts and bytes; one at or below the
/// topic's seq is skipped; a new epoch starts relayed topics over.
#[test]
fn relayed_updates_keep_origin_seq_and_skip_repeats() {
    let (hub, outbox, id) = hub_with_sub(10);
    hub.add_patterns(id, &[Pattern::parse("a.*").unwrap()], &Resume::default());
    let frame = protocol::encode_update("a.b", 7, 1234, "{\"v\":1}");
    let src = Source::default();
    assert!(hub
        .insert_relayed("a.b", 7, 1234, frame.clone(), &src)
        .unwrap());
    assert!(!hub
        .insert_relayed("a.b", 7, 1234, frame.clone(), &src)
        .unwrap());
    assert!(!hub
        .insert_relayed("a.b", 6, 1, frame.clone(), &src)
        .unwrap());
    let got = drain(&outbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["seq"], json!(7));
    assert_eq!(got[0]["ts"], json!(1234));
    assert_eq!(hub.latest_frame("a.b").unwrap(), frame.as_str());

    hub.publish("$sys.x", &json!(1)).unwrap();
    assert!(hub.set_epoch("cluster-1"));
    assert!(!hub.set_epoch("cluster-1"));
    assert_eq!(&*hub.epoch(), "cluster-1");
    assert!(
        hub.latest_frame("a.b").is_none(),
        "relayed topics start over"
    );
    assert!(
        hub.latest_frame("$sys.x").is_some(),
        "$ topics are this node's own"
    );
    assert!(hub.insert_relayed("a.b", 1, 5, frame, &src).unwrap());
}

#[test]
fn new_topics_reach_matching_wildcards_from_their_first_update() {
    let (hub, outbox, id) = hub_with_sub(10);
    hub.add_patterns(id, &[Pattern::parse("host.>").unwrap()], &Resume::default());
    hub.publish("host.cpu", &json!(1)).unwrap();
    hub.publish("other.cpu", &json!(1)).unwrap();
    let got = drain(&outbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["topic"], json!("host.cpu"));
    assert_eq!(got[0]["seq"], json!(1));
}

#[test]
fn a_feeds_history_by_count_or_age_replaces_the_global_size() {
    let hub = Hub::new(2, Arc::default());
    hub.set_max_history(50);
    let count = Source {
        history: Some(FeedHistory::Count(10)),
        ..Source::default()
    };
    for i in 0..20 {
        hub.publish_from(&count, "c.x", &json!(i)).unwrap();
    }
    assert_eq!(hub.history("c.x", 1000).unwrap().len(), 10);
    let capped = Source {
        history: Some(FeedHistory::Count(500)),
        ..Source::default()
    };
    for i in 0..80 {
        hub.publish_from(&capped, "m.x", &json!(i)).unwrap();
    }
    assert_eq!(
        hub.history("m.x", 1000).unwrap().len(),
        50,
        "max_history caps it"
    );
    let age = Source {
        history: Some(FeedHistory::Age(Duration::from_secs(10))),
        ..Source::default()
    };
    // One update per second of publish time: 10 s keep 11 (the bounds included).
    for i in 1..=30u64 {
        let frame = Text::from(format!(
            r#"{{"type":"update","topic":"a.x","seq":{i},"ts":{},"data":{i}}}"#,
            i * 1000
        ));
        hub.insert_relayed("a.x", i, i * 1000, frame, &age).unwrap();
    }
    let kept = hub.history("a.x", 1000).unwrap();
    assert_eq!(kept.len(), 11, "{kept:?}");
    assert!(kept[0].contains(r#""seq":20"#), "{}", kept[0]);
    for i in 0..5 {
        hub.publish("g.x", &json!(i)).unwrap();
    }
    assert_eq!(hub.history("g.x", 1000).unwrap().len(), 2, "[history] size");
}

#[test]
fn resume_replays_history_or_falls_back_to_snapshot() {
    let (hub, outbox, id) = hub_with_sub(3);
    for i in 1..=5 {
        hub.publish("a.b", &json!(i)).unwrap();
    }
    let p = [Pattern::parse("a.b").unwrap()];
    let resume = Resume {
        since: HashMap::from([("a.b".to_string(), 3)]),
    };
    hub.add_patterns(id, &p, &resume);
    let seqs: Vec<Value> = drain(&outbox).iter().map(|v| v["seq"].clone()).collect();
    assert_eq!(seqs, [json!(4), json!(5)]);
    hub.unsubscribe(id, &p);
    let resume = Resume {
        since: HashMap::from([("a.b".to_string(), 1)]),
    };
    hub.add_patterns(id, &p, &resume);
    let got = drain(&outbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["snapshot"], json!(true));
    assert_eq!(got[0]["seq"], json!(5));
}

#[test]
fn unsubscribe_keeps_topics_other_patterns_match() {
    let (hub, outbox, id) = hub_with_sub(0);
    hub.publish("a.b", &json!(0)).unwrap();
    let star = Pattern::parse("a.*").unwrap();
    let lit = Pattern::parse("a.b").unwrap();
    hub.add_patterns(id, &[star.clone(), lit.clone()], &Resume::default());
    drain(&outbox);
    hub.unsubscribe(id, &[star]);
    hub.publish("a.b", &json!(1)).unwrap();
    assert_eq!(drain(&outbox).len(), 1);
    hub.unsubscribe(id, &[lit]);
    hub.publish("a.b", &json!(2)).unwrap();
    assert!(drain(&outbox).is_empty());
    assert_eq!(hub.metrics().subscriptions.load(Ordering::Relaxed), 0);
    assert_eq!(hub.latest("a.b").map(Update::into_data), Some(json!(2)));
}

/// Snapshots are shared like updates: every subscriber that joins a topic
/// between two of its updates gets the same snapshot frame (one allocation),
/// so a subscriber that never reads holds handles, not copies; the next
/// update makes a new one.
#[test]
fn snapshot_frames_are_shared_by_every_subscriber() {
    let hub = Hub::new(10, Arc::default());
    hub.publish("a.x", &json!({"p": 1})).unwrap();
    let join = || {
        let outbox = Arc::new(Outbox::new(1024, hub.metrics().clone()));
        let id = hub.add_subscriber(outbox.clone());
        hub.add_patterns(id, &[Pattern::parse("a.*").unwrap()], &Resume::default());
        let mut frames = Vec::new();
        outbox.take(&mut frames);
        assert_eq!(frames.len(), 1);
        frames.remove(0)
    };
    let (one, two) = (join(), join());
    assert!(
        one.text().as_str().contains(r#""snapshot":true"#),
        "{}",
        one.text().as_str()
    );
    assert_eq!(
        one.text().as_str().as_ptr(),
        two.text().as_str().as_ptr(),
        "one shared frame"
    );
    hub.publish("a.x", &json!({"p": 2})).unwrap();
    let three = join();
    assert!(
        three.text().as_str().contains(r#""p":2"#),
        "{}",
        three.text().as_str()
    );
}

/// A topic's subscriber set gives back what a crowd made it grow to once the
/// crowd has left (a `HashSet` keeps its capacity otherwise: 20,000 topics
/// each sized for 200 subscribers held ~45 MB after they had all gone).
#[test]
fn a_topic_gives_back_the_room_a_crowd_of_subscribers_took() {
    let hub = Hub::new(10, Arc::default());
    hub.publish("a.x", &json!(1)).unwrap();
    let ids: Vec<SubscriberId> = (0..200)
        .map(|_| {
            let outbox = Arc::new(Outbox::new(16, hub.metrics().clone()));
            let id = hub.add_subscriber(outbox);
            hub.add_patterns(id, &[Pattern::parse("a.*").unwrap()], &Resume::default());
            id
        })
        .collect();
    let topic = hub.read_topics().get("a.x").cloned().unwrap();
    assert!(topic.lock().subscribers.capacity() >= 200);
    for (n, id) in ids.into_iter().enumerate() {
        if n % 2 == 0 {
            hub.unsubscribe(id, &[Pattern::parse("a.*").unwrap()]);
        } else {
            hub.remove_subscriber(id);
        }
    }
    let st = topic.lock();
    assert!(st.subscribers.is_empty());
    assert!(
        st.subscribers.capacity() < 64,
        "{}",
        st.subscribers.capacity()
    );
}

/// Every subscriber of a pattern holds the hub's one parse of it, with no
/// spare room in its list: each of 10,000 idle connections on `bench.*` held
/// two parses of its own (~256 bytes) and room for four patterns (~144 bytes).
/// Both ways in share: [`Hub::shared_patterns`] (what a connection calls
/// before keeping its rules) and [`Hub::add_patterns`] given a fresh parse.
#[test]
fn subscribers_of_a_pattern_share_one_parse_of_it() {
    let hub = Hub::new(10, Arc::default());
    hub.publish("a.x", &json!(1)).unwrap();
    let subscribe = |patterns: Vec<Pattern>| {
        let outbox = Arc::new(Outbox::new(16, hub.metrics().clone()));
        let id = hub.add_subscriber(outbox);
        hub.add_patterns(id, &patterns, &Resume::default());
        id
    };
    let parse = || vec![Pattern::parse("a.*").unwrap()];
    let first = subscribe(parse());
    let shared = hub.shared_patterns(parse());
    let second = subscribe(shared.clone());
    let third = subscribe(parse());
    let held = hub.patterns_of(first).remove(0);
    assert!(shared[0].shares_parse_with(&held));
    for id in [second, third] {
        assert!(hub.patterns_of(id)[0].shares_parse_with(&held), "{id}");
    }
    let reg = hub.registry();
    for id in [first, second, third] {
        let patterns = &reg.subscribers[&id].patterns;
        assert_eq!(patterns.capacity(), patterns.len(), "{id}");
    }
}

/// When the hub's ticker shuts down, every subscriber's outbox is stopped
/// with 1001: those registered before (by `close_all_on_shutdown`) and one
/// that registers afterwards (by `add_subscriber` itself).
#[tokio::test]
async fn shutdown_closes_every_outbox_with_1001_even_one_added_after() {
    let token = CancellationToken::new();
    let hub = Hub::with_shutdown(8, Arc::new(Metrics::default()), token.clone());
    let sweep = tokio::spawn(hub.close_all_on_shutdown());
    let before = Arc::new(Outbox::new(8, hub.metrics().clone()));
    hub.add_subscriber(before.clone());
    assert_eq!(before.closing(), None);
    token.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(30), sweep)
        .await
        .expect("the sweep ends once it has closed them")
        .unwrap();
    let bye = Some(Closing::Code(1001, protocol::SHUTDOWN_REASON));
    assert_eq!(before.closing(), bye);
    let after = Arc::new(Outbox::new(8, hub.metrics().clone()));
    hub.add_subscriber(after.clone());
    assert_eq!(after.closing(), bye);
}
