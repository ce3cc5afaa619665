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

/// A pattern at `/api/topics/{topic}` is a 400 that says patterns are not
/// taken there and points to `?pattern=`, which lists what the pattern matches;
/// a plain topic still answers as before.
#[tokio::test]
async fn patterns_are_pointed_to_the_list_route() {
    let s = Server::start(EMPTY).await;
    for t in ["stocks.AAPL", "stocks.MSFT", "host.cpu"] {
        s.ticker.hub().publish(t, &json!(1)).unwrap();
    }
    let (status, body) = get_json(&s.http("/api/topics/stocks.*")).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("is a pattern"), "{msg}");
    assert!(msg.contains("GET /api/topics?pattern=stocks.*"), "{msg}");
    let (status, list) = get_json(&s.http("/api/topics?pattern=stocks.*")).await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["stocks.AAPL", "stocks.MSFT"]);
    let (status, body) = get_json(&s.http("/api/topics?pattern=a..b")).await;
    assert_eq!(status, 400, "{body}");
    let (status, one) = get_json(&s.http("/api/topics/host.cpu")).await;
    assert_eq!((status, &one["data"]), (200, &json!(1)));
}

/// The publish token is taken only as `Authorization: Bearer`: `?token=`
/// gets 401 with a message saying so (as SECURITY.md documents).
#[tokio::test]
async fn publish_token_is_not_taken_from_the_query() {
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n").await;
    let http = reqwest::Client::new();
    let r = http
        .post(s.http("/api/publish/a.b?token=pt"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Authorization: Bearer <publish_token> is required"),
        "{body}"
    );
    let r = http
        .post(s.http("/api/publish/a.b"))
        .bearer_auth("pt")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
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
