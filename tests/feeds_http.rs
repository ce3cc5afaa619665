//! The `http` feed against a real local axum upstream: method, headers and body
//! sent, `extract` and `{field}` fan-out, text format, and the faults (500, a
//! garbage body, a slow upstream, a refused connection) shown on `$sys.feeds`
//! with recovery.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use support::feeds::{refused_addr, serve, status_until};
use support::Server;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Garbage,
    Slow,
}

#[derive(Clone)]
struct Upstream {
    mode: Arc<Mutex<Mode>>,
    /// (method, x-key header, body) of the last request.
    last: Arc<Mutex<Option<(String, String, String)>>>,
}

async fn quotes(
    State(s): State<Upstream>,
    method: Method,
    headers: HeaderMap,
    body: String,
) -> Response {
    *s.last.lock().unwrap() = Some((
        method.to_string(),
        headers
            .get("x-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body,
    ));
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Ok => {
            axum::Json(json!({"data": [{"s": "A", "v": 1}, {"s": "B", "v": 2}]})).into_response()
        }
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::Garbage => "<html>not json</html>".into_response(),
        Mode::Slow => {
            // Far slower than the feed's timeout: the upstream's own
            // behaviour, not test synchronisation.
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}".into_response()
        }
    }
}

async fn upstream() -> (String, Upstream) {
    let state = Upstream {
        mode: Arc::new(Mutex::new(Mode::Ok)),
        last: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/quotes", any(quotes))
        .route("/text", get(|| async { "hello world" }))
        .with_state(state.clone());
    (format!("http://{}", serve(app).await), state)
}

/// Polls with the configured method, header and body, fans `/data` out by
/// `{s}`; a 500, a garbage body and a timeout each show as `backoff` with their
/// error, and the feed returns to `running` once the upstream is healthy.
#[tokio::test]
async fn polls_fans_out_and_recovers_from_faults() {
    let (base, up) = upstream().await;
    let server = Server::start(&format!(
        r#"[server]
listen = "127.0.0.1:0"

[[feed]]
name = "quotes"
kind = "http"
topic = "h.{{s}}"
url = "{base}/quotes"
method = "POST"
headers = {{ x-key = "k1" }}
body = '{{"q":1}}'
interval = "100ms"
timeout = "2s"
extract = "/data"
"#
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["h.*", "$sys.feeds"]).await;
    assert_eq!(c.update_of("h.A").await["data"]["v"], 1);
    assert_eq!(c.update_of("h.B").await["data"]["v"], 2);
    let last = up.last.lock().unwrap().clone().unwrap();
    assert_eq!(
        last,
        (
            "POST".to_string(),
            "k1".to_string(),
            r#"{"q":1}"#.to_string()
        )
    );

    for (mode, error) in [
        (Mode::Fail, "500"),
        (Mode::Garbage, "not JSON"),
        (Mode::Slow, "timed out"),
    ] {
        *up.mode.lock().unwrap() = mode;
        // Wait for this fault's own error: on a loaded machine an earlier
        // fault's backoff may still be reported first.
        let s = status_until(&mut c, "quotes", |s| {
            s["state"] == "backoff" && s["error"].as_str().is_some_and(|e| e.contains(error))
        })
        .await;
        assert_eq!(s["state"], "backoff", "{error}: {s}");
        *up.mode.lock().unwrap() = Mode::Ok;
        status_until(&mut c, "quotes", |s| s["state"] == "running").await;
        c.update_of("h.A").await;
    }
}

/// A refused connection is an error of the poll, shown on `$sys.feeds`; with
/// `format = "text"` the body is published as `{"value": "<body>"}`.
#[tokio::test]
async fn refused_connection_and_text_format() {
    let (base, _up) = upstream().await;
    let gone = refused_addr();
    let server = Server::start(&format!(
        r#"[server]
listen = "127.0.0.1:0"

[[feed]]
name = "gone"
kind = "http"
topic = "gone"
url = "http://{}/"
interval = "100ms"

[[feed]]
name = "words"
kind = "http"
topic = "t.words"
url = "{base}/text"
format = "text"
interval = "100ms"
"#,
        gone.addr
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["t.words", "$sys.feeds"]).await;
    assert_eq!(
        c.update_of("t.words").await["data"],
        serde_json::json!({"value": "hello world"})
    );
    let s = status_until(&mut c, "gone", |s| s["state"] == "backoff").await;
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{s}"
    );
}
