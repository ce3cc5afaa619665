//! The HTTP routes (docs/protocol.md, "HTTP") over real sockets.

mod support;

use serde_json::json;
use support::{get_json, within, Server, EMPTY};

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

/// How a route of the table below is called.
#[derive(Clone, Copy)]
enum Auth {
    /// The read token, as `Authorization: Bearer`.
    Read,
    /// The publish token, as `Authorization: Bearer`.
    Publish,
    No,
}

/// Every route, how it is called, and the query parameters it takes
/// (`None`: a page or asset, which takes any).
const ROUTES: &[(&str, &str, Auth, Option<&[&str]>)] = &[
    ("GET", "/", Auth::No, None),
    ("GET", "/auto", Auth::No, None),
    ("GET", "/tickerd.js", Auth::No, None),
    ("GET", "/tickerd.d.ts", Auth::No, None),
    ("GET", "/ws", Auth::Read, Some(&["token"])),
    (
        "GET",
        "/sse",
        Auth::Read,
        Some(&["topics", "since", "epoch", "max_rate", "delta", "token"]),
    ),
    (
        "GET",
        "/api/topics",
        Auth::Read,
        Some(&["pattern", "token"]),
    ),
    ("GET", "/api/topics/{topic}", Auth::Read, Some(&["token"])),
    (
        "GET",
        "/api/topics/{topic}/history",
        Auth::Read,
        Some(&["limit", "token"]),
    ),
    ("GET", "/api/feeds", Auth::Read, Some(&["token"])),
    ("POST", "/api/publish", Auth::Publish, Some(&[])),
    ("POST", "/api/publish/{topic}", Auth::Publish, Some(&[])),
    ("DELETE", "/api/topics/{topic}", Auth::Publish, Some(&[])),
    ("GET", "/healthz", Auth::No, Some(&[])),
    ("GET", "/metrics", Auth::No, Some(&[])),
    (
        "POST",
        "/api/v2/write",
        Auth::Publish,
        Some(&["bucket", "org", "orgID", "precision"]),
    ),
    (
        "POST",
        "/write",
        Auth::Publish,
        Some(&["db", "rp", "precision", "consistency"]),
    ),
    ("POST", "/api/v1/write", Auth::Publish, Some(&[])),
    ("POST", "/v1/metrics", Auth::Publish, Some(&[])),
];

/// Every `METHOD /path` the README names in code spans, without a query.
fn readme_routes() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            let words: Vec<&str> = span.split_whitespace().collect();
            words.len() == 2
                && ["GET", "POST", "DELETE"].contains(&words[0])
                && words[1].starts_with('/')
        })
        // `GET /api/topics/{topic}/history?limit=N`: the route is the path.
        .map(|span| span.split('?').next().unwrap().to_string())
        .collect()
}

/// A request of `method` to `path` on `s`, with the token `auth` asks for.
fn request(s: &Server, method: &str, path: &str, auth: Auth) -> reqwest::RequestBuilder {
    let http = reqwest::Client::new();
    let path = path.replace("{topic}", "q.t");
    let r = match method {
        "GET" => http.get(s.http(&path)),
        "POST" => http
            .post(s.http(&path))
            .body(r#"[{"topic":"q.u","data":1}]"#),
        "DELETE" => http.delete(s.http(&path)),
        other => panic!("no {other} here"),
    };
    match auth {
        Auth::Read => r.bearer_auth("rt"),
        Auth::Publish => r.bearer_auth("pt"),
        Auth::No => r,
    }
}

/// Every route refuses a query parameter it does not take: 400 with a JSON
/// `{"error"}` that names it and lists the ones the route takes (with a
/// did-you-mean for a typo); `?token=` passes wherever the read token is read
/// from the query; pages and assets take any query (`?v=` busts a cache).
/// The table holds every route the README names.
#[tokio::test]
async fn every_route_refuses_unknown_query_parameters() {
    let s = Server::start(
        "[server]\ntoken = \"rt\"\npublish_token = \"pt\"\n[dashboard]\nenabled = true\n",
    )
    .await;
    s.ticker.hub().publish("q.t", &json!(1)).unwrap();
    for route in readme_routes() {
        assert!(
            ROUTES.iter().any(|(m, p, ..)| format!("{m} {p}") == route),
            "the README names `{route}`: add it to ROUTES"
        );
    }
    for &(method, path, auth, known) in ROUTES {
        let r = within(request(&s, method, &format!("{path}?bogus=1"), auth).send())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let Some(known) = known else {
            assert_eq!(status, 200, "{method} {path}?bogus=1: {body}");
            continue;
        };
        assert_eq!(status, 400, "{method} {path}?bogus=1: {body}");
        let error: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{method} {path}?bogus=1 is not JSON: {body}"));
        let msg = error["error"].as_str().unwrap();
        assert!(msg.contains("`bogus`"), "{method} {path}: {msg}");
        for name in known {
            assert!(msg.contains(&format!("`{name}`")), "{method} {path}: {msg}");
        }
    }
    // The read token in the query: a guarded route answers.
    let (status, body) = get_json(&s.http("/api/topics?token=rt")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_json(&s.http("/api/topics?patern=q.*&token=rt")).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("did you mean `pattern`?"), "{msg}");
    let ws = format!("ws://{}/ws?token=rt", s.addr);
    let c = support::Client::connect(&ws).await;
    assert_eq!(c.hello["type"], "hello");
}

/// `GET /api/topics?pattern=P` gives each matching topic's row with its
/// latest value: `topic`, `feed`, `seq`, `ts`, `stale`, `subscribers` and
/// `data`, the `seq`, `ts` and `data` of one update.
#[tokio::test]
async fn listing_by_pattern_carries_values() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("stocks.AAPL", &json!({"price": 1})).unwrap();
    hub.publish("stocks.AAPL", &json!({"price": 2})).unwrap();
    hub.publish("stocks.MSFT", &json!([3])).unwrap();
    hub.publish("host.cpu", &json!(0.5)).unwrap();
    let (status, list) = get_json(&s.http("/api/topics?pattern=stocks.*")).await;
    assert_eq!(status, 200, "{list}");
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    for (row, (topic, seq, data)) in rows.iter().zip([
        ("stocks.AAPL", 2, json!({"price": 2})),
        ("stocks.MSFT", 1, json!([3])),
    ]) {
        for key in ["topic", "feed", "seq", "ts", "stale", "subscribers", "data"] {
            assert!(row.get(key).is_some(), "no `{key}` in {row}");
        }
        assert_eq!(row["topic"], topic, "{row}");
        assert_eq!(row["seq"], seq, "{row}");
        assert_eq!(row["data"], data, "{row}");
        let latest = hub.latest(topic).unwrap();
        assert_eq!(row["ts"], latest.ts(), "{row}");
    }
}

/// `GET /api/topics/{topic}/history?limit=N` keeps the last N; a `limit` that
/// is not a whole number, a repeated one, and a `{topic}` that does not decode
/// (on every route that takes one) are answered 400 as JSON `{"error"}`
/// saying what is wrong, never axum's plain text.
#[tokio::test]
async fn history_limit_and_path_errors_are_json() {
    let s = Server::start("[server]\npublish_token = \"pt\"\n[history]\nsize = 10\n").await;
    for i in 0..5 {
        s.ticker.hub().publish("h.t", &json!(i)).unwrap();
    }
    let (status, list) = get_json(&s.http("/api/topics/h.t/history?limit=2")).await;
    assert_eq!(status, 200, "{list}");
    let seqs: Vec<&serde_json::Value> =
        list.as_array().unwrap().iter().map(|u| &u["seq"]).collect();
    assert_eq!(seqs, [4, 5]);
    for (query, says) in [
        ("limit=abc", "`limit` must be a whole number"),
        ("limit=-1", "`limit` must be a whole number"),
        ("limit=1&limit=2", "limit"),
    ] {
        let (status, body) = get_json(&s.http(&format!("/api/topics/h.t/history?{query}"))).await;
        assert_eq!(status, 400, "?{query}: {body}");
        let msg = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("?{query} is not a JSON error: {body}"));
        assert!(msg.contains(says), "?{query}: {msg}");
    }
    let routes = ROUTES.iter().filter(|(_, p, ..)| p.contains("{topic}"));
    for &(method, path, auth, _) in routes {
        let path = path.replace("{topic}", "%FF");
        let r = within(request(&s, method, &path, auth).send())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{method} {path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{method} {path} is not JSON: {body}"));
        assert!(error["error"].is_string(), "{method} {path}: {body}");
    }
}
