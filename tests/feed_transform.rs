//! `transform` steps through a real feed: an `http` feed polls a local
//! upstream whose counter and price move on every request, and the published
//! items carry the rate, the change and the rounded, renamed, selected fields;
//! an item lacking a step's field is dropped as a counted error while the
//! others keep flowing.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::get;
use serde_json::{json, Value};
use support::feeds::{serve, status_until};
use support::Server;

/// Each request `n` (from 1) answers item `A` with `bytes = 1000 n` and
/// `price = 10.125 + 0.5 n`, and an item `B` without those fields.
async fn upstream() -> String {
    let count = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/q",
        get(move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                axum::Json(json!([
                    {"sym": "A", "n": n, "bytes": 1000 * n, "price": 10.125 + 0.5 * n as f64, "noise": 1},
                    {"sym": "B", "n": n},
                ]))
            }
        }),
    );
    format!("http://{}/q", serve(app).await)
}

/// The steps run in order on every item: `rate` per second of a counter,
/// `change` against the topic's previous price, `round`, `rename`, `select`;
/// the topic is filled from the item as the source sent it.
#[tokio::test]
async fn transforms_shape_a_real_feed() {
    let url = upstream().await;
    let server = Server::start(&format!(
        r#"[server]
listen = "127.0.0.1:0"

[[feed]]
name = "t"
kind = "http"
topic = "t.{{sym}}"
url = "{url}"
interval = "100ms"
transform = [
  {{ rate = "bytes", as = "bytes_per_s" }},
  {{ change = "price" }},
  {{ round = "price", digits = 2 }},
  {{ rename = {{ sym = "symbol" }} }},
  {{ select = ["symbol", "n", "price", "price_change", "bytes_per_s"] }},
]
"#
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["t.*", "$sys.feeds"]).await;
    let first = c.update_of("t.A").await["data"].clone();
    let n = first["n"].as_u64().unwrap();
    let later = c
        .recv_until(|v| v["topic"] == "t.A" && v["data"]["n"].as_u64() > Some(n))
        .await["data"]
        .clone();
    let m = later["n"].as_u64().unwrap();
    let keys: Vec<&str> = later
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["bytes_per_s", "n", "price", "price_change", "symbol"],
        "{later}"
    );
    assert_eq!(later["symbol"], "A");
    // 10.125 + 0.5 m rounded to 2 digits (half away from zero).
    let want = ((10.125 + 0.5 * m as f64) * 100.0).round() / 100.0;
    assert_eq!(later["price"], json!(want), "{later}");
    assert_eq!(
        later["price_change"],
        json!(0.5 * (m - n) as f64),
        "{later}"
    );
    assert!(later["bytes_per_s"].as_f64().unwrap() > 0.0, "{later}");
    if n == 1 {
        assert_eq!(first["bytes_per_s"], Value::Null, "{first}");
        assert_eq!(first["price_change"], Value::Null, "{first}");
    }

    let s = status_until(&mut c, "t", |s| s["errors"].as_u64() >= Some(1)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("rate: item has no field `bytes`"),
        "{s}"
    );
    c.update_of("t.A").await;
}
