//! Issue #17, "Clients beyond the browser tab", past SSE (tests/sse.rs):
//! bulk publishing (HTTP and the WebSocket `publish` op), subscriber counts,
//! per-subscription rates and field-level deltas, over real sockets.

mod support;

use serde_json::{json, Value};
use support::{eventually, get_json, Client, Server, EMPTY};

const PUBLISHER: &str = "[server]\npublish_token = \"pt\"\n";

async fn post_bulk(s: &Server, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(s.http("/api/publish"))
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = support::within(req.send()).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `POST /api/publish` takes an array of `{topic, data}`: one result per item,
/// in order; a bad item does not stop the others; the publish token's checks
/// and the body's are those of the single-topic route.
#[tokio::test]
async fn bulk_publish_gives_one_result_per_item() {
    let s = Server::start(&format!("{PUBLISHER}[limits]\nmax_frame_bytes = 4096\n")).await;
    let mut c = s.client().await;
    c.subscribe(&["bulk.*"]).await;
    let body = json!([
        {"topic": "bulk.a", "data": {"p": 1}},
        {"topic": "bulk..bad", "data": 1},
        {"topic": "$sys.x", "data": 1},
        {"topic": "bulk.b", "data": 2, "extra": true},
        {"topic": "bulk.a", "data": {"p": 2}},
    ]);
    let (status, results) = post_bulk(&s, Some("pt"), &body.to_string()).await;
    assert_eq!(status, 200, "{results}");
    let r = results.as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0]["topic"].as_str(), r[0]["seq"].as_u64()),
        (Some("bulk.a"), Some(1))
    );
    assert!(r[0]["ts"].as_u64().unwrap() > 0);
    assert!(
        r[1]["error"].as_str().unwrap().contains("empty segment"),
        "{}",
        r[1]
    );
    assert!(
        r[2]["error"].as_str().unwrap().contains("server's own"),
        "{}",
        r[2]
    );
    assert!(
        r[3]["error"].as_str().unwrap().contains("`extra`"),
        "{}",
        r[3]
    );
    assert_eq!(r[4]["seq"], 2);
    assert_eq!(c.update_of("bulk.a").await["data"], json!({"p": 1}));
    assert_eq!(c.update_of("bulk.a").await["data"], json!({"p": 2}));

    assert_eq!(post_bulk(&s, None, "[]").await.0, 401);
    assert_eq!(post_bulk(&s, Some("wrong"), "[]").await.0, 403);
    let (status, body) = post_bulk(&s, Some("pt"), "{\"topic\":\"a\"}").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(post_bulk(&s, Some("pt"), "[]").await.0, 400);
    assert_eq!(post_bulk(&s, Some("pt"), "nope").await.0, 400);
    let big = json!([{"topic": "bulk.c", "data": "x".repeat(5000)}]).to_string();
    assert_eq!(post_bulk(&s, Some("pt"), &big).await.0, 413);
    let plain = Server::start(EMPTY).await;
    assert_eq!(post_bulk(&plain, Some("pt"), "[]").await.0, 404);
}

/// The WebSocket `publish` op: only for tokens whose `[[access]]` grants
/// `publish` patterns, and only to topics they match; one result per item;
/// unknown fields are named.
#[tokio::test]
async fn websocket_publish_needs_a_publish_grant() {
    let s = Server::start(
        "[server]\ntoken = \"root\"\n\
         [[access]]\ntoken = \"pub\"\npatterns = [\"orders.>\"]\npublish = [\"orders.*\"]\n",
    )
    .await;
    let mut root = Client::connect(&format!("{}?token=root", s.ws_url())).await;
    root.send(json!({"op": "publish", "topic": "orders.x", "data": 1, "id": 1}))
        .await;
    let e = root.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{e}"
    );
    root.subscribe(&["orders.>"]).await;

    let mut p = Client::connect(&format!("{}?token=pub", s.ws_url())).await;
    p.send(json!({"op": "publish", "topic": "orders.x", "data": {"n": 1}, "id": 2}))
        .await;
    let r = p.recv().await;
    assert_eq!(r["type"], "published", "{r}");
    assert_eq!(r["id"], 2);
    assert_eq!(r["results"][0]["seq"], 1);
    assert_eq!(root.update_of("orders.x").await["data"], json!({"n": 1}));
    p.send(json!({"op": "publish", "items": [
        {"topic": "orders.y", "data": 1},
        {"topic": "orders.y.z", "data": 2},
        {"topic": "other", "data": 3},
    ], "id": 3}))
        .await;
    let r = p.recv().await;
    let results = r["results"].as_array().unwrap();
    assert_eq!(results[0]["seq"], 1, "{r}");
    assert!(
        results[1]["error"].as_str().unwrap().contains("forbidden"),
        "{r}"
    );
    assert!(
        results[2]["error"].as_str().unwrap().contains("forbidden"),
        "{r}"
    );
    p.send(json!({"op": "publish", "topic": "orders.x", "data": 1, "dta": 2, "id": 4}))
        .await;
    let e = p.recv().await;
    assert_eq!(e["code"], "bad_request", "{e}");
    assert!(e["message"].as_str().unwrap().contains("`dta`"), "{e}");
    p.send(json!({"op": "publish", "topic": "orders.x", "id": 5}))
        .await;
    assert_eq!(p.recv().await["code"], "bad_request");
}

/// `/api/topics` rows (and the `topics` reply) count each topic's
/// subscribers, and only count them.
#[tokio::test]
async fn topic_rows_count_subscribers() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("count.a", &json!(1)).unwrap();
    hub.publish("count.b", &json!(1)).unwrap();
    let mut one = s.client().await;
    one.subscribe(&["count.*"]).await;
    let mut two = s.client().await;
    two.subscribe(&["count.a"]).await;
    let row = |list: &Value, topic: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["topic"] == topic)
            .cloned()
            .unwrap()
    };
    let (_, list) = get_json(&s.http("/api/topics")).await;
    assert_eq!(row(&list, "count.a")["subscribers"], 2, "{list}");
    assert_eq!(row(&list, "count.b")["subscribers"], 1, "{list}");
    assert!(row(&list, "count.a").get("subscriber_ids").is_none());
    one.send(json!({"op": "topics", "id": 1})).await;
    let reply = one.recv_until(|v| v["type"] == "topics").await;
    assert_eq!(row(&reply["topics"], "count.a")["subscribers"], 2);
    drop(two);
    eventually("a closed connection is no longer counted", || async {
        let (_, list) = get_json(&s.http("/api/topics")).await;
        row(&list, "count.a")["subscribers"] == 1
    })
    .await;
}
