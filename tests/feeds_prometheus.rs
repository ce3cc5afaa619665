//! The `prometheus` feed against a real Prometheus 2.42 (Debian's, started by
//! the test in a temp dir) that scrapes a tiny `/metrics` the test serves:
//! series fan out over topics by label, a series lacking the topic's label is a
//! counted item error, a bad query shows Prometheus' reason, and the feed
//! recovers when Prometheus restarts.

mod support;

use std::sync::{Arc, Mutex};

use axum::routing::get;
use support::databases::Prometheus;
use support::feeds::{serve, status_until};
use support::Server;

/// The gauges the scrape target serves: `(host label or none, value)`.
type Gauges = Arc<Mutex<Vec<(Option<&'static str>, f64)>>>;

/// Serves `app_cpu` gauges in the Prometheus text format; returns its address
/// and the values to change.
async fn target() -> (std::net::SocketAddr, Gauges) {
    let gauges: Gauges = Arc::new(Mutex::new(vec![
        (Some("web-1"), 0.5),
        (Some("web-2"), 0.75),
    ]));
    let shared = gauges.clone();
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let gauges = shared.lock().unwrap().clone();
            async move {
                let mut body = String::from("# TYPE app_cpu gauge\n");
                for (i, (host, v)) in gauges.iter().enumerate() {
                    match host {
                        Some(h) => body.push_str(&format!("app_cpu{{host=\"{h}\"}} {v}\n")),
                        None => body.push_str(&format!("app_cpu{{core=\"{i}\"}} {v}\n")),
                    }
                }
                body
            }
        }),
    );
    (serve(app).await, gauges)
}

fn feed(prom: &Prometheus, name: &str, topic: &str, query: &str) -> String {
    format!(
        r#"
[[feed]]
name = "{name}"
kind = "prometheus"
topic = "{topic}"
url = "{url}"
query = '{query}'
interval = "200ms"
"#,
        url = prom.url()
    )
}

fn config(feeds: &[String]) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n{}", feeds.concat())
}

/// One item per series: `host.{labels.host}.cpu` fans the query out, the
/// value is a number and follows the scraped gauge, the labels are fields.
#[tokio::test]
async fn series_fan_out_over_topics() {
    let (addr, gauges) = target().await;
    let prom = Prometheus::start(addr).await;
    prom.wait_for("app_cpu").await;
    let server = Server::start(&config(&[feed(
        &prom,
        "cpu",
        "host.{labels.host}.cpu",
        "app_cpu",
    )]))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["host.*.cpu"]).await;
    let web1 = c.update_of("host.web-1.cpu").await["data"].clone();
    assert_eq!(web1["value"], 0.5, "{web1}");
    assert_eq!(web1["host"], "web-1");
    assert_eq!(web1["job"], "app");
    assert_eq!(web1["labels"]["__name__"], "app_cpu");
    assert!(
        web1["timestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "{web1}"
    );
    assert_eq!(c.update_of("host.web-2.cpu").await["data"]["value"], 0.75);

    gauges.lock().unwrap()[0].1 = 0.9;
    c.recv_until(|v| v["topic"] == "host.web-1.cpu" && v["data"]["value"] == 0.9)
        .await;
}

/// A series without the label the topic needs is dropped as a counted error
/// while the other series keep flowing; a query Prometheus refuses is an
/// error of the poll with Prometheus' `errorType` and message.
#[tokio::test]
async fn bad_series_and_bad_queries_are_errors() {
    let (addr, gauges) = target().await;
    gauges.lock().unwrap().push((None, 1.0));
    let prom = Prometheus::start(addr).await;
    prom.wait_for("app_cpu{core=\"2\"}").await;
    let server = Server::start(&config(&[
        feed(&prom, "cpu", "host.{host}.cpu", "app_cpu"),
        feed(&prom, "broken", "x", "rate(app_cpu["),
    ]))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["host.*.cpu", "$sys.feeds"]).await;
    let s = status_until(&mut c, "cpu", |s| s["errors"].as_u64() >= Some(1)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(
        s["error"].as_str().unwrap().contains("no field `host`"),
        "{s}"
    );
    c.update_of("host.web-1.cpu").await;

    let s = status_until(&mut c, "broken", |s| s["state"] == "backoff").await;
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("bad_data") && error.contains("parse error"),
        "{error}"
    );
}

/// Prometheus going away is an error shown on `$sys.feeds`; once it is back
/// (same port, same data) the feed runs and publishes again.
#[tokio::test]
async fn recovers_when_prometheus_restarts() {
    let (addr, gauges) = target().await;
    let mut prom = Prometheus::start(addr).await;
    prom.wait_for("app_cpu").await;
    let server = Server::start(&config(&[feed(&prom, "cpu", "host.{host}.cpu", "app_cpu")])).await;
    let mut c = server.client().await;
    c.subscribe(&["host.*.cpu", "$sys.feeds"]).await;
    c.update_of("host.web-1.cpu").await;

    prom.stop();
    let s = status_until(&mut c, "cpu", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains(&prom.url()), "{s}");
    gauges.lock().unwrap()[0].1 = 0.25;
    prom.restart().await;
    status_until(&mut c, "cpu", |s| s["state"] == "running").await;
    c.recv_until(|v| v["topic"] == "host.web-1.cpu" && v["data"]["value"] == 0.25)
        .await;
}

/// A feed whose first queries are refused shows why, with the cause
/// ("Connection refused", not only "error sending request"); once Prometheus
/// answers with no series, that replaces the stale error: the feed is
/// `starting` and says "no series for query ..." instead of staying silent.
#[tokio::test]
async fn refused_then_no_series_says_so() {
    let nothing = support::feeds::refused_addr();
    let mut prom = Prometheus::start(nothing.addr).await;
    prom.stop();
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"none\"\nkind = \"prometheus\"\n\
         topic = \"none\"\nurl = \"{}\"\nquery = \"no_such_metric_anywhere\"\ninterval = \"200ms\"\n",
        prom.url()
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let refused = status_until(&mut c, "none", |s| s["state"] == "backoff").await;
    let error = refused["error"].as_str().unwrap().to_lowercase();
    assert!(error.contains("connection refused"), "{refused}");

    prom.restart().await;
    let empty = status_until(&mut c, "none", |s| {
        s["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no series for query \"no_such_metric_anywhere\""))
    })
    .await;
    assert_eq!(empty["state"], "starting", "{empty}");
}
