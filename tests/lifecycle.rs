//! Topics that end: `DELETE /api/topics/{topic}`, the `gone` frame, the freed
//! `max_topics` slot, the durable store forgetting the topic, and a later
//! publish starting over at seq 1 — over real sockets.

mod support;

use std::collections::HashMap;

use serde_json::{json, Value};
use support::{eventually, get_json, topic_rows, within, write_atomic, Server};

const TOKEN: &str = "pt";

fn config(extra: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"{TOKEN}\"\n{extra}")
}

async fn delete(s: &Server, topic: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().delete(s.http(&format!("/api/topics/{topic}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    within(req.send()).await.unwrap().status().as_u16()
}

async fn publish(s: &Server, topic: &str, data: Value) -> (u16, Value) {
    let r = within(
        reqwest::Client::new()
            .post(s.http(&format!("/api/publish/{topic}")))
            .bearer_auth(TOKEN)
            .body(data.to_string())
            .send(),
    )
    .await
    .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// DELETE needs the publish token (401 without, 403 wrong) and answers 404 for
/// a topic that does not exist; a deleted topic's subscribers get
/// `{"type":"gone"}` on their open connection, it leaves `/api/topics` and
/// `/api/topics/{topic}` answers 404; published again it starts over at seq 1
/// and reaches the same wildcard subscriber, as a live update.
#[tokio::test]
async fn delete_sends_gone_then_404_and_a_republish_starts_at_seq_1() {
    let s = Server::start(&config("")).await;
    let hub = s.ticker.hub();
    for i in 1..=3 {
        hub.publish("orders.x", &json!({"n": i})).unwrap();
    }
    let mut c = s.client().await;
    c.subscribe(&["orders.*"]).await;
    assert_eq!(c.update_of("orders.x").await["seq"], 3);

    assert_eq!(delete(&s, "orders.x", None).await, 401);
    assert_eq!(delete(&s, "orders.x", Some("wrong")).await, 403);
    assert_eq!(delete(&s, "orders.none", Some(TOKEN)).await, 404);
    assert_eq!(delete(&s, "orders.x", Some(TOKEN)).await, 204);

    let gone = c.recv_until(|v| v["type"] != "update").await;
    assert_eq!(gone, json!({"type": "gone", "topic": "orders.x"}));
    let (status, _) = get_json(&s.http("/api/topics/orders.x")).await;
    assert_eq!(status, 404);
    let (_, list) = get_json(&s.http("/api/topics")).await;
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["topic"] == "orders.x"),
        "{list}"
    );
    assert_eq!(delete(&s, "orders.x", Some(TOKEN)).await, 404);

    let (status, body) = publish(&s, "orders.x", json!({"n": "again"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], 1);
    let u = c.update_of("orders.x").await;
    assert_eq!(u["seq"], 1);
    assert_eq!(u["data"], json!({"n": "again"}));
    assert!(u.get("snapshot").is_none());
}

/// A client that missed the `gone` (it was away) and resumes with a `since`
/// past the new topic's seq gets the new topic's snapshot, not silence.
#[tokio::test]
async fn a_resume_past_a_restarted_topic_gets_the_snapshot() {
    let s = Server::start(&config("")).await;
    let hub = s.ticker.hub();
    for i in 1..=5 {
        hub.publish("orders.y", &json!(i)).unwrap();
    }
    assert!(hub.delete_topic("orders.y"));
    hub.publish("orders.y", &json!("new")).unwrap();
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    c.send(json!({"op":"subscribe","topics":["orders.y"],"since":{"orders.y": 5},"epoch": epoch}))
        .await;
    let u = c.update_of("orders.y").await;
    assert_eq!(u["snapshot"], true, "{u}");
    assert_eq!(u["seq"], 1);
    assert_eq!(u["data"], "new");
}

/// Deleting a topic frees its `[limits] max_topics` slot.
#[tokio::test]
async fn delete_frees_a_max_topics_slot() {
    let s = Server::start(&config("[limits]\nmax_topics = 1\n")).await;
    let (status, _) = publish(&s, "a.one", json!(1)).await;
    assert_eq!(status, 200);
    let (status, body) = publish(&s, "a.two", json!(2)).await;
    assert_eq!(status, 507, "full: {body}");
    assert_eq!(delete(&s, "a.one", Some(TOKEN)).await, 204);
    let (status, body) = publish(&s, "a.two", json!(2)).await;
    assert_eq!(status, 200, "the slot is free again: {body}");
}

/// With `[history] path`, a deleted topic is deleted from the store too: after
/// a restart on the same directory it is still gone, while the other topic
/// came back.
#[tokio::test]
async fn a_deleted_topic_stays_deleted_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let text = config("[history]\npath = \"data\"\nsync = \"always\"\n");
    let mut s = Server::start_in(dir, &text).await;
    publish(&s, "keep.me", json!(1)).await;
    publish(&s, "drop.me", json!(2)).await;
    assert_eq!(delete(&s, "drop.me", Some(TOKEN)).await, 204);
    // `always`: this publish is answered once committed, and the deletion was
    // queued before it, so it is committed too.
    publish(&s, "keep.me", json!(3)).await;
    s.ticker.shutdown();
    s.ticker.stopped(std::time::Duration::from_secs(10)).await;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    assert_eq!(dir.path(), path);

    let s = Server::start_in(dir, &text).await;
    let hub = s.ticker.hub();
    assert_eq!(hub.latest("keep.me").map(|u| u.seq()), Some(2));
    assert!(
        hub.latest("drop.me").is_none(),
        "deleted topics stay deleted"
    );
}

const TWO_FEEDS: &str = r#"
[[feed]]
name = "kept"
kind = "synthetic"
topic = "k.{symbol}"
symbols = ["K"]
interval = "50ms"

[[feed]]
name = "dropped"
kind = "synthetic"
topic = "d.{symbol}"
symbols = ["D"]
interval = "50ms"
on_remove = "delete"
"#;

/// When feeds leave the config, `on_remove = "keep"` (the default) leaves
/// their topics listed with `"feed_removed": true`, and `on_remove = "delete"`
/// deletes them: their subscribers get `gone` and they leave `/api/topics`.
#[tokio::test]
async fn removed_feeds_keep_marked_or_delete_their_topics() {
    let s = Server::start(&config(TWO_FEEDS)).await;
    let mut c = s.client().await;
    c.subscribe(&["d.*"]).await;
    c.update_of("d.D").await;
    eventually("k.K is published", || async {
        topic_rows(&s).await.contains_key("k.K")
    })
    .await;
    assert!(topic_rows(&s).await["k.K"].get("feed_removed").is_none());

    write_atomic(&s.config_path, config(""));
    s.ticker.reload().await.expect("valid config");
    let gone = c.recv_until(|v| v["type"] != "update").await;
    assert_eq!(gone, json!({"type": "gone", "topic": "d.D"}));
    let after = topic_rows(&s).await;
    assert!(!after.contains_key("d.D"), "{after:?}");
    assert_eq!(after["k.K"]["feed_removed"], true, "{after:?}");
    assert_eq!(after["k.K"]["feed"], "kept");
}

/// `[limits] topic_ttl`: a published topic not updated for that long is
/// deleted (its subscriber gets `gone`); a feed's `ttl` does the same for the
/// feed's topics (here a `whole` file read once and then left alone).
#[tokio::test]
async fn topics_expire_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.json");
    std::fs::write(&doc, r#"[{"s":"X"}]"#).unwrap();
    let text = config(&format!(
        "[limits]\ntopic_ttl = \"1s\"\n\
         [[feed]]\nname = \"once\"\nkind = \"file\"\nmode = \"whole\"\ntopic = \"f.{{s}}\"\npath = \"{}\"\nttl = \"3s\"\n",
        doc.display()
    ));
    let s = Server::start_in(dir, &text).await;
    s.ticker.hub().publish("p.once", &json!(1)).unwrap();
    let mut c = s.client().await;
    c.subscribe(&["p.once", "f.*"]).await;
    // Each topic: an update (its snapshot), then `gone`.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    while seen
        .values()
        .filter(|v| v.last().is_some_and(|t| t == "gone"))
        .count()
        < 2
    {
        let m = c
            .recv_until(|v| v["type"] == "update" || v["type"] == "gone")
            .await;
        seen.entry(m["topic"].as_str().unwrap().to_string())
            .or_default()
            .push(m["type"].as_str().unwrap().to_string());
    }
    assert_eq!(seen["p.once"], ["update", "gone"], "{seen:?}");
    assert_eq!(seen["f.X"], ["update", "gone"], "{seen:?}");
    let r = topic_rows(&s).await;
    assert!(!r.contains_key("f.X") && !r.contains_key("p.once"), "{r:?}");
}

/// `prune = true` on a `whole` file feed: a topic whose item left the
/// document is deleted (`gone`), the others stay; `prune` without
/// `mode = "whole"` is a config error naming the key.
#[tokio::test]
async fn whole_file_prune_deletes_topics_that_left_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.json");
    std::fs::write(&doc, r#"[{"s":"X","v":1},{"s":"Y","v":2}]"#).unwrap();
    let feed = format!(
        "[[feed]]\nname = \"set\"\nkind = \"file\"\nmode = \"whole\"\ntopic = \"w.{{s}}\"\npath = \"{}\"\nprune = true\n",
        doc.display()
    );
    let s = Server::start_in(dir, &config(&feed)).await;
    let mut c = s.client().await;
    c.subscribe(&["w.*"]).await;
    eventually("both topics exist", || async {
        let r = topic_rows(&s).await;
        r.contains_key("w.X") && r.contains_key("w.Y")
    })
    .await;
    write_atomic(&doc, r#"[{"s":"X","v":3}]"#);
    let gone = c.recv_until(|v| v["type"] == "gone").await;
    assert_eq!(gone["topic"], "w.Y");
    eventually("w.X is updated and w.Y is gone", || async {
        let r = topic_rows(&s).await;
        !r.contains_key("w.Y") && r.get("w.X").is_some_and(|x| x["seq"] == 2)
    })
    .await;

    let bad = config(&feed.replace("mode = \"whole\"\n", ""));
    let err = tickerd::Config::from_toml(&bad, std::path::Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("prune") && err.contains("mode = \"whole\""),
        "{err}"
    );
}

/// `$sys.feeds.{name}` holds each feed's latest status, so a client that
/// subscribes late to `$sys.feeds.*` gets every feed's status at once (one
/// snapshot per feed) while `$sys.feeds` keeps one update per change; a feed
/// removed by a reload has its status topic deleted (`gone`).
#[tokio::test]
async fn every_feed_has_a_status_topic_for_late_subscribers() {
    let s = Server::start(&config(TWO_FEEDS)).await;
    eventually("both feeds run", || async {
        let (_, feeds) = get_json(&s.http("/api/feeds")).await;
        feeds
            .as_array()
            .is_some_and(|f| f.len() == 2 && f.iter().all(|x| x["state"] == "running"))
    })
    .await;
    let mut c = s.client().await;
    c.subscribe(&["$sys.feeds.*"]).await;
    let mut snapshots = HashMap::new();
    while snapshots.len() < 2 {
        let u = c.recv_until(|v| v["type"] == "update").await;
        assert_eq!(u["snapshot"], true, "{u}");
        let topic = u["topic"].as_str().unwrap().to_string();
        assert_eq!(
            topic,
            format!("$sys.feeds.{}", u["data"]["feed"].as_str().unwrap())
        );
        snapshots.insert(topic, u["data"].clone());
    }
    assert!(
        snapshots.contains_key("$sys.feeds.kept") && snapshots.contains_key("$sys.feeds.dropped")
    );
    let (status, latest) = get_json(&s.http("/api/topics/$sys.feeds.kept")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["data"]["feed"], "kept");

    write_atomic(
        &s.config_path,
        config(&TWO_FEEDS[..TWO_FEEDS.find("[[feed]]\nname = \"dropped\"").unwrap()]),
    );
    s.ticker.reload().await.expect("valid config");
    let gone = c.recv_until(|v| v["type"] == "gone").await;
    assert_eq!(gone["topic"], "$sys.feeds.dropped");
    let (status, _) = get_json(&s.http("/api/topics/$sys.feeds.dropped")).await;
    assert_eq!(status, 404);
}
