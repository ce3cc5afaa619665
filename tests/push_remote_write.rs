//! `remote_write` push feeds with Debian's real Prometheus: it scrapes
//! tickerd's own `/metrics` and remote-writes the samples back to tickerd
//! (`POST /api/v1/write`, snappy protobuf, basic auth with the publish token
//! as password); a WebSocket subscriber sees them as topics, only the series
//! the feed's `match` list selects. Bad input gets remote-write's plain-text
//! 400, no feed a 404 naming the kind.
//!
//! Needs `prometheus` (installed by `scripts/test.sh`).

mod support;

use serde_json::Value;
use support::databases::Prometheus;
use support::{within, Server, DEADLINE};

/// The feed: series of job `app` whose name starts `tickerd_`, and `up`.
const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n\n\
    [[feed]]\nname = \"prom\"\nkind = \"remote_write\"\n\
    match = ['job=\"app\"', '__name__=~\"up|tickerd_connections\"']\n\
    topic = \"prom.{name}.{labels.job}\"\n";

/// Prometheus scrapes tickerd and remote-writes to it: `up` and
/// `tickerd_connections` arrive as `{"name","labels","value","time"}`
/// topics; a series the `match` list leaves out (`scrape_duration_seconds`)
/// makes no topic.
#[tokio::test]
async fn prometheus_remote_writes_its_scrapes_of_tickerd() {
    let server = Server::start(CONFIG).await;
    let mut c = server.client().await;
    c.subscribe(&["prom.>"]).await;
    let remote = format!(
        "remote_write:\n  - url: {}\n    basic_auth:\n      username: prometheus\n      password: pt\n    \
         queue_config:\n      batch_send_deadline: 1s\n",
        server.http("/api/v1/write")
    );
    let _prom = Prometheus::start_with(server.addr, &remote).await;
    // Prometheus' first remote write waits for its WAL: a generous wait.
    let up = tokio::time::timeout(DEADLINE * 4, c.update_of("prom.up.app"))
        .await
        .expect("no remote-written `up` sample");
    let d = &up["data"];
    assert_eq!(d["name"], "up");
    assert_eq!(d["value"], 1.0);
    assert_eq!(d["labels"]["job"], "app");
    assert_eq!(d["labels"]["instance"], server.addr.to_string());
    assert!(d["labels"].get("__name__").is_none(), "{d}");
    assert!(d["time"].as_i64().unwrap() > 1_600_000_000_000, "{d}");
    let conns = c.update_of("prom.tickerd_connections.app").await;
    assert!(conns["data"]["value"].as_f64().unwrap() >= 1.0, "{conns}");
    let (status, _) =
        support::get_json(&server.http("/api/topics/prom.scrape_duration_seconds.app")).await;
    assert_eq!(status, 404, "a series outside `match` made a topic");
}

/// A body that is not snappy is a plain-text 400; without a `remote_write`
/// feed a write is 404 saying so; without a credential 401.
#[tokio::test]
async fn bad_writes_get_plain_text_errors() {
    let server = Server::start(CONFIG).await;
    let post = |body: &'static [u8], auth: Option<&'static str>, server: &Server| {
        let mut req = reqwest::Client::new()
            .post(server.http("/api/v1/write"))
            .header("content-encoding", "snappy")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = within(post(
        b"\xff\xff\xff\xff\xff not snappy",
        Some("Bearer pt"),
        &server,
    ))
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("snappy"), "{text}");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "not plain text: {text}"
    );
    let (status, _) = within(post(b"", None, &server)).await;
    assert_eq!(status, 401);
    let empty = Server::start("[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n").await;
    let (status, text) = within(post(b"\x00", Some("Bearer pt"), &empty)).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no remote_write feed"), "{text}");
}
