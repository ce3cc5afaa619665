//! The HTTP routes (docs/protocol.md, "HTTP") over real sockets.

mod support;

use serde_json::json;
use support::{get_json, Server, EMPTY};

/// `/healthz` answers `200 ok`.
#[tokio::test]
async fn healthz() {
    let s = Server::start(EMPTY).await;
    let r = reqwest::get(s.http("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

/// `/api/topics` lists topics; `/api/topics/{topic}` gives the latest frame or 404.
#[tokio::test]
async fn topics_and_snapshots() {
    let s = Server::start(EMPTY).await;
    s.ticker
        .hub()
        .publish("stocks.AAPL", &json!({"price": 5}))
        .unwrap();
    let (status, list) = get_json(&s.http("/api/topics")).await;
    assert_eq!(status, 200);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"] == "stocks.AAPL")
        .unwrap()
        .clone();
    assert_eq!(row["seq"], 1);
    assert_eq!(row["stale"], false);
    let (status, one) = get_json(&s.http("/api/topics/stocks.AAPL")).await;
    assert_eq!(status, 200);
    assert_eq!(one["type"], "update");
    assert_eq!(one["data"], json!({"price": 5}));
    let (status, _) = get_json(&s.http("/api/topics/nope.none")).await;
    assert_eq!(status, 404);
}

/// Publishing needs `publish_token`: absent → 404; then 401, 403, 413, 400, and 200.
#[tokio::test]
async fn publish_route() {
    let http = reqwest::Client::new();
    let off = Server::start(EMPTY).await;
    let r = http
        .post(off.http("/api/publish/a.b"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "no publish_token: the route does not exist"
    );

    let s = Server::start("[server]\npublish_token = \"pub\"\n[limits]\nmax_frame_bytes = 1000\n")
        .await;
    let url = s.http("/api/publish/orders.new");
    let r = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(&url)
        .bearer_auth("pub")
        .body(format!("\"{}\"", "x".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http
        .post(&url)
        .bearer_auth("pub")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(s.http("/api/publish/bad..topic"))
        .bearer_auth("pub")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(s.http("/api/publish/$sys.feeds"))
        .bearer_auth("pub")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut c = s.client().await;
    c.subscribe(&["orders.*"]).await;
    let r = http
        .post(&url)
        .bearer_auth("pub")
        .body(r#"{"id":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["seq"], 1);
    let u = c.update_of("orders.new").await;
    assert_eq!(u["data"], json!({"id": 1}));
}
