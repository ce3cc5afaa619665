//! A resume fixture shared by the `/ws` and `/sse` tests: many busy topics
//! whose retained backlogs together pass the outbox's conflation bound, and
//! the check that each backlog arrived whole and in order.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use tickerd::Hub;

/// Topics `busy.0` .. `busy.{n-1}`, each published `updates` times.
pub fn publish_busy(hub: &Hub, topics: usize, updates: u64) -> Vec<String> {
    let names: Vec<String> = (0..topics).map(|i| format!("busy.{i}")).collect();
    for n in 1..=updates {
        for t in &names {
            hub.publish(t, &json!({ "n": n })).unwrap();
        }
    }
    names
}

/// `since` for each of `topics`: the seq the client last saw.
pub fn since_each(topics: &[String], seq: u64) -> HashMap<String, u64> {
    topics.iter().map(|t| (t.clone(), seq)).collect()
}

/// Collects update frames until every topic of `since` has reached `last`;
/// `next` reads the transport's next frame (JSON).
pub async fn collect_until_last(
    since: &HashMap<String, u64>,
    last: u64,
    mut next: impl AsyncFnMut() -> Value,
) -> BTreeMap<String, Vec<Value>> {
    let mut got: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    while since
        .keys()
        .any(|t| got.get(t).and_then(|f| f.last()).map(|u| &u["seq"]) != Some(&json!(last)))
    {
        let frame = next().await;
        if frame["type"] == "update" {
            let topic = frame["topic"].as_str().unwrap().to_string();
            got.entry(topic).or_default().push(frame);
        }
    }
    got
}

/// Every topic of `since` got each retained update after its `since`, up to
/// `last`, exactly once, in order, none of them a snapshot.
pub fn assert_whole(got: &BTreeMap<String, Vec<Value>>, since: &HashMap<String, u64>, last: u64) {
    for (topic, from) in since {
        let frames = &got[topic];
        let seqs: Vec<u64> = frames.iter().map(|u| u["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (from + 1..=last).collect();
        assert_eq!(
            seqs, want,
            "{topic}: the backlog must arrive whole and in order"
        );
        assert!(
            frames.iter().all(|u| u.get("snapshot").is_none()),
            "{topic}: resumed updates are not snapshots"
        );
    }
}
