//! The `sse` feed against a real local event stream (an axum streaming body
//! driven by the test): multi-line data, fan-out, comments, a bad event, a
//! stream that ends (reconnect with `Last-Event-ID`), text format, and a 500.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use futures_util::StreamExt as _;
use support::feeds::{serve, status_until};
use support::{within, Server};
use tokio::sync::{mpsc, Mutex};

#[derive(Clone)]
struct Upstream {
    /// Chunks to stream; `None` ends the current response.
    chunks: Arc<Mutex<mpsc::UnboundedReceiver<Option<String>>>>,
    /// The `Last-Event-ID` of each request.
    got: mpsc::UnboundedSender<Option<String>>,
}

async fn events(State(s): State<Upstream>, headers: HeaderMap) -> Response {
    let id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.got.send(id).unwrap();
    // The response streams while it holds the command queue.
    let rx = s.chunks.clone().lock_owned().await;
    let body = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), rx)),
            Some(None) | None => None,
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn fixed() -> Response {
    let body = stream::iter(["data: hello\n\n", "data: world\n\n"].map(Ok::<_, std::io::Error>))
        .chain(stream::pending());
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Events fan out by `{s}` (multi-line data joined, comments skipped), a bad
/// event is only an item error, and a stream that ends shows `backoff`, then
/// reconnects with the last event id and keeps publishing.
#[tokio::test]
async fn streams_events_and_resumes_with_last_event_id() {
    let (tx, rx) = mpsc::unbounded_channel();
    let (got_tx, mut got) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/events", get(events))
        .with_state(Upstream {
            chunks: Arc::new(Mutex::new(rx)),
            got: got_tx,
        });
    let addr = serve(app).await;
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"ev\"\nkind = \"sse\"\ntopic = \"s.{{s}}\"\nurl = \"http://{addr}/events\"\n"
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["s.*", "$sys.feeds"]).await;
    assert_eq!(
        within(got.recv()).await.unwrap(),
        None,
        "first connect has no id"
    );

    let send = |s: &str| tx.send(Some(s.to_string())).unwrap();
    send(": hi\nretry: 100\nevent: quote\nid: 7\ndata: [{\"s\":\"A\",\n");
    send("data: \"v\":1},\ndata: {\"s\":\"B\",\"v\":2}]\n\n");
    assert_eq!(c.update_of("s.A").await["data"]["v"], 1);
    assert_eq!(c.update_of("s.B").await["data"]["v"], 2);
    send("data: garbage\n\ndata: {\"s\":\"A\",\"v\":3}\n\n");
    assert_eq!(c.update_of("s.A").await["data"]["v"], 3);

    tx.send(None).unwrap();
    let s = status_until(&mut c, "ev", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains("ended"), "{s}");
    assert!(
        s["errors"].as_u64().unwrap() >= 2,
        "the bad event counts: {s}"
    );
    assert_eq!(within(got.recv()).await.unwrap().as_deref(), Some("7"));
    status_until(&mut c, "ev", |s| s["state"] == "running").await;
    send("data: {\"s\":\"A\",\"v\":4}\n\n");
    assert_eq!(c.update_of("s.A").await["data"]["v"], 4);
}

/// `format = "text"` publishes each event's data as `{"value": ..}`; an upstream that
/// answers 500 is a failed connect, shown as `backoff`.
#[tokio::test]
async fn text_format_and_server_error() {
    let app = axum::Router::new().route("/fixed", get(fixed)).route(
        "/broken",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    );
    let addr = serve(app).await;
    let server = Server::start(&format!(
        r#"[server]
listen = "127.0.0.1:0"

[[feed]]
name = "words"
kind = "sse"
topic = "w.last"
url = "http://{addr}/fixed"
format = "text"

[[feed]]
name = "broken"
kind = "sse"
topic = "b"
url = "http://{addr}/broken"
"#
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["w.last", "$sys.feeds"]).await;
    c.recv_until(|v| v["topic"] == "w.last" && v["data"]["value"] == "world")
        .await;
    let s = status_until(&mut c, "broken", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains("500"), "{s}");
}

/// A stream that goes silent (the connection stays open, nothing arrives) is
/// dropped after `timeout` and reconnected, instead of hanging the feed.
#[tokio::test]
async fn a_silent_stream_is_reconnected_after_its_timeout() {
    let (got_tx, mut got) = mpsc::unbounded_channel::<()>();
    let app = axum::Router::new().route(
        "/quiet",
        get(move || {
            let got = got_tx.clone();
            async move {
                got.send(()).unwrap();
                fixed().await
            }
        }),
    );
    let addr = serve(app).await;
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"q\"\nkind = \"sse\"\ntopic = \"q.t\"\nformat = \"text\"\nurl = \"http://{addr}/quiet\"\ntimeout = \"300ms\"\n"
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    within(got.recv()).await.unwrap();
    let s = status_until(&mut c, "q", |s| s["state"] == "backoff").await;
    assert!(
        s["error"].as_str().unwrap().contains("no data for 300ms"),
        "{s}"
    );
    within(got.recv()).await.expect("it connects again");
}
