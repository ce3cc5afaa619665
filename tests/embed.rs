//! The embedding API as a host program uses it, over real sockets: config from
//! TOML text, a custom kind with typed options (validated with the whole
//! config), typed snapshots, in-process subscriptions, and shutdown under the
//! host's own cancellation token.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use support::{eventually, within, Client};
use tickerd::{Feed, FeedContext, StartError, Ticker, TickerBuilder};
use tokio_util::sync::CancellationToken;

/// Runs of the `ticks` kind alive now (only `host_cancellation_...` runs one).
static LIVE: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicksOptions {
    #[serde(with = "humantime_serde")]
    every: Duration,
    label: String,
}

/// Publishes `{"label", "n"}` every `every`.
struct Ticks(TicksOptions);

impl Feed for Ticks {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        LIVE.fetch_add(1, Ordering::SeqCst);
        struct Dec;
        impl Drop for Dec {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _dec = Dec;
        let mut n = 0;
        let mut tick = tokio::time::interval(self.0.every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
            n += 1;
            ctx.publish(&json!({"label": self.0.label, "n": n}))?;
        }
    }
}

fn with_ticks(b: TickerBuilder) -> TickerBuilder {
    b.kind("ticks", |o: TicksOptions| Ok(Ticks(o)))
}

#[derive(Debug, Deserialize, PartialEq)]
struct Tick {
    label: String,
    n: u64,
}

/// Options of a custom kind that do not fit its options type refuse the
/// config at start, naming file, line and feed, like a built-in kind's typo.
#[tokio::test]
async fn custom_kind_options_are_validated_with_the_whole_config() {
    let text = "[[feed]]\nname = \"t\"\nkind = \"ticks\"\ntopic = \"t.x\"\nevery = \"10ms\"\nlable = \"typo\"\n";
    let err = with_ticks(Ticker::builder().config_toml(text))
        .start()
        .await
        .unwrap_err();
    let StartError::Config(errors) = err else {
        panic!("expected a config error: {err}");
    };
    let msg = errors.to_string();
    assert!(
        msg.contains("<config>:1: feed \"t\": invalid options: unknown field `lable`"),
        "{msg}"
    );
}

/// An in-process subscription gets the snapshot of existing matching topics
/// first, then live updates, picks up new topics by wildcard, ignores topics
/// it does not match, reads values typed, and unsubscribes when dropped.
#[tokio::test]
async fn in_process_subscription_streams_updates_and_unsubscribes_on_drop() {
    let ticker = Ticker::builder()
        .config_toml("[history]\nsize = 4\n")
        .start()
        .await
        .unwrap();
    let hub = ticker.hub();
    hub.publish("app.a", &json!({"label": "a", "n": 1}))
        .unwrap();
    let base = hub.metrics().subscriptions.load(Ordering::Relaxed);
    let mut sub = hub.subscribe(["app.*"]).unwrap();
    assert!(hub.subscribe(["bad..pattern"]).is_err());
    assert_eq!(
        hub.metrics().subscriptions.load(Ordering::Relaxed),
        base + 1
    );

    let snap = within(sub.next()).await.unwrap();
    assert!(snap.is_snapshot());
    assert_eq!((snap.topic(), snap.seq()), ("app.a", 1));
    hub.publish("other.x", &1).unwrap();
    hub.publish("app.b", &json!({"label": "b", "n": 7}))
        .unwrap();
    let live = within(sub.recv()).await.unwrap();
    assert!(!live.is_snapshot());
    assert_eq!(
        live.topic(),
        "app.b",
        "a new topic by wildcard; other.x skipped"
    );
    assert_eq!(
        live.data_as::<Tick>().unwrap(),
        Tick {
            label: "b".into(),
            n: 7
        }
    );
    assert!(live.ts() > 0);
    let typed: Option<Tick> = hub.latest_as("app.a").unwrap();
    assert_eq!(typed.map(|t| t.n), Some(1));
    assert_eq!(hub.latest("nope").map(|u| u.seq()), None);
    assert!(
        hub.latest_as::<u64>("app.a").is_err(),
        "a shape mismatch is an error"
    );

    drop(sub);
    assert_eq!(hub.metrics().subscriptions.load(Ordering::Relaxed), base);
}

/// A custom kind from TOML text runs; when the host cancels its own token,
/// the feed stops, WebSocket clients of the nested router get Close 1001,
/// in-process streams end, and the host's server returns.
#[tokio::test]
async fn host_cancellation_stops_feeds_closes_sessions_and_ends_streams() {
    let host = CancellationToken::new();
    let text = "[[feed]]\nname = \"t\"\nkind = \"ticks\"\ntopic = \"ticks.{label}\"\nevery = \"20ms\"\nlabel = \"x\"\n";
    let ticker = with_ticks(Ticker::builder().config_toml(text))
        .cancellation(host.clone())
        .start()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "host" }))
        .nest("/live", ticker.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = host.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });

    let mut client = Client::connect(&format!("ws://{addr}/live/ws")).await;
    client.subscribe(&["ticks.*"]).await;
    let u = client.update_of("ticks.x").await;
    assert_eq!(u["data"]["label"], "x");
    let mut stream = ticker.hub().subscribe(["ticks.x"]).unwrap();
    within(stream.next()).await.unwrap();
    assert_eq!(LIVE.load(Ordering::SeqCst), 1);

    host.cancel();
    assert_eq!(client.closed().await, Some(1001));
    within(server).await.unwrap().unwrap();
    within(ticker.stopped(Duration::from_secs(3))).await;
    assert_eq!(LIVE.load(Ordering::SeqCst), 0, "the feed stopped");
    // The stream drains what was queued, then ends.
    within(async { while stream.next().await.is_some() {} }).await;
    eventually("the ticker's own token is cancelled", || {
        std::future::ready(ticker.shutdown_token().is_cancelled())
    })
    .await;
}

/// A subscription that is not polled while many updates are published holds
/// a bounded queue: it then yields at most `Subscription::QUEUE` + one per
/// topic, with seq strictly increasing per topic and ending at the latest.
#[tokio::test]
async fn a_slow_subscription_is_conflated() {
    let ticker = Ticker::builder().config_toml("").start().await.unwrap();
    let hub = ticker.hub();
    let mut sub = hub.subscribe(["c.>"]).unwrap();
    let total = tickerd::Subscription::QUEUE as u64 * 3;
    for i in 1..=total {
        hub.publish(if i % 2 == 0 { "c.even" } else { "c.odd" }, &i)
            .unwrap();
    }
    let mut last = std::collections::HashMap::new();
    let mut got = 0;
    while last.get("c.even") != Some(&total) || last.get("c.odd") != Some(&(total - 1)) {
        let u = within(sub.recv()).await.unwrap();
        let prev = last.insert(
            u.topic().to_string(),
            u.seq() * 2 - (u.topic() == "c.odd") as u64,
        );
        assert!(
            prev < last.get(u.topic()).copied(),
            "seq increases per topic"
        );
        assert_eq!(u.data_as::<u64>().unwrap(), last[u.topic()]);
        got += 1;
    }
    assert!(
        got <= tickerd::Subscription::QUEUE + 2,
        "{got} updates delivered"
    );
}

/// A deleted topic reaches an in-process subscription as an update it can
/// see (`Update::is_gone`), in order after the topic's updates, like the
/// `gone` frame a WebSocket client gets; a republish starts over at seq 1.
#[tokio::test]
async fn a_deleted_topic_is_delivered_as_gone() {
    let ticker = Ticker::builder().config_toml("").start().await.unwrap();
    let hub = ticker.hub();
    let mut sub = hub.subscribe(["g.*"]).unwrap();
    hub.publish("g.a", &1).unwrap();
    let first = within(sub.recv()).await.unwrap();
    assert!(!first.is_gone());
    assert!(hub.delete_topic("g.a"));
    let gone = within(sub.recv()).await.unwrap();
    assert_eq!(gone.topic(), "g.a");
    assert!(gone.is_gone(), "{gone:?}");
    assert!(gone.data().is_null());
    hub.publish("g.a", &2).unwrap();
    let again = within(sub.recv()).await.unwrap();
    assert_eq!((again.seq(), again.is_gone()), (1, false));
}

/// Reads the next text frame of a WebSocket over a Unix socket as JSON.
async fn recv_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
) -> serde_json::Value {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A host serving the router over something other than TCP (a Unix socket
/// here) gets every frame from the connection's own writer (writes from the
/// publishing side need the TCP socket): updates still arrive once and in
/// order, through bursts, quiet spells and a reply in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_serving_over_a_unix_socket_gets_every_update_in_order() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let ticker = Ticker::builder().config_toml("").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let app = axum::Router::new().nest("/live", ticker.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (mut ws, _) = within(tokio_tungstenite::client_async(
        "ws://localhost/live/ws",
        stream,
    ))
    .await
    .unwrap();
    assert_eq!(recv_json(&mut ws).await["type"], "hello");
    let subscribe = |id: &str, topic: &str| {
        Message::text(json!({"op": "subscribe", "topics": [topic], "id": id}).to_string())
    };
    ws.send(subscribe("a", "u.*")).await.unwrap();
    assert_eq!(recv_json(&mut ws).await["id"], "a");
    let hub = ticker.hub().clone();
    let publisher = tokio::spawn(async move {
        for round in 0..6 {
            for i in 0..10 {
                hub.publish(["u.x", "u.y"][i % 2], &json!({"round": round, "i": i}))
                    .unwrap();
            }
            // A quiet spell between bursts (the shape of the stream).
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let mut last = std::collections::HashMap::new();
    let (mut updates, mut acked) = (0, false);
    while updates < 60 || !acked {
        let v = recv_json(&mut ws).await;
        if v["type"] == "ack" {
            assert_eq!(v["id"], "b");
            acked = true;
            continue;
        }
        let seq = v["seq"].as_u64().unwrap();
        let prev = last.insert(v["topic"].to_string(), seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "once and in order: {v}");
        updates += 1;
        if updates == 25 {
            ws.send(subscribe("b", "none.*")).await.unwrap();
        }
    }
    within(publisher).await.unwrap();
    ticker.shutdown();
}
