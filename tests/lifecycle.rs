//! Topics that end: `DELETE /api/topics/{topic}`, the `gone` frame, the freed
//! `max_topics` slot, the durable store forgetting the topic, and a later
//! publish starting over at seq 1 — over real sockets.

mod support;

use serde_json::{json, Value};
use support::{get_json, within, Server};

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
    assert_eq!(status, 400, "full: {body}");
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
