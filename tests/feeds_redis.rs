//! The `redis` feed against a real redis-server (started per test on 127.0.0.1
//! in a temp directory, append-only file on): pub/sub channels and patterns,
//! bad payloads, a server restart, streams resuming across a restart with
//! nothing lost or repeated, and a wrong password.
//!
//! Needs `redis-server` (`scripts/test.sh` installs it).

mod support;

use redis::AsyncCommands;
use serde_json::{json, Value};
use support::brokers::Broker;
use support::feeds::{states_until, status_until};
use support::{within, Client, Server};

/// A config with one redis feed `name` on `broker`, plus `extra` keys.
fn config(name: &str, broker: &Broker, topic: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"{name}\"\nkind = \"redis\"\n\
         topic = \"{topic}\"\nurl = \"{}\"\n{extra}\n",
        broker.url()
    )
}

/// A fresh connection to `broker` for the test's own commands.
async fn connect(broker: &Broker) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(broker.url()).unwrap();
    within(client.get_multiplexed_async_connection())
        .await
        .unwrap()
}

/// The data of the next update of `topic`.
async fn next_value(c: &mut Client, topic: &str) -> Value {
    c.update_of(topic).await["data"].clone()
}

/// A channel and a pattern subscription publish to topics built from the
/// channel (`{redis_channel}`, `:` mapped to `.`); a malformed payload and one
/// over 1 MiB are counted item errors while the feed keeps publishing; when
/// the server restarts the feed shows `backoff`, then `running`, and publishes.
#[tokio::test]
async fn pubsub_channels_patterns_bad_payloads_and_restart() {
    let mut broker = Broker::redis(&[]).await;
    let server = Server::start(&config(
        "px",
        &broker,
        "r.{redis_channel}",
        "channels = [\"prices:AAPL\"]\npatterns = [\"fx:*\"]\n",
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["r.>", "$sys.feeds"]).await;
    status_until(&mut c, "px", |s| s["state"] == "running").await;
    let mut con = connect(&broker).await;

    let _: i64 = con.publish("prices:AAPL", r#"{"p":187.5}"#).await.unwrap();
    assert_eq!(
        next_value(&mut c, "r.prices.AAPL").await,
        json!({"p": 187.5})
    );
    let _: i64 = con.publish("fx:EURUSD", "1.08").await.unwrap();
    assert_eq!(
        next_value(&mut c, "r.fx.EURUSD").await,
        json!({"value": 1.08})
    );

    let _: i64 = con.publish("prices:AAPL", "{oops").await.unwrap();
    let big = vec![b'1'; (1 << 20) + 1];
    let _: i64 = con.publish("prices:AAPL", big).await.unwrap();
    let _: i64 = con.publish("prices:AAPL", r#"{"p":188}"#).await.unwrap();
    assert_eq!(
        next_value(&mut c, "r.prices.AAPL").await,
        json!({"p": 188}),
        "the feed goes on after bad payloads"
    );
    let s = status_until(&mut c, "px", |s| s["errors"].as_u64() >= Some(2)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("exceeds max_item_bytes"),
        "{s}"
    );

    broker.restart().await;
    status_until(&mut c, "px", |s| s["state"] == "backoff").await;
    status_until(&mut c, "px", |s| s["state"] == "running").await;
    let mut con = connect(&broker).await;
    let _: i64 = con.publish("fx:GBPUSD", "1.27").await.unwrap();
    assert_eq!(
        next_value(&mut c, "r.fx.GBPUSD").await,
        json!({"value": 1.27})
    );
}

/// Stream mode starts at the stream's end (an older entry is not replayed),
/// publishes each entry's fields (JSON values decoded), counts an oversized
/// entry as an item error, and across a server restart, with entries added
/// right after it (while the feed waits out its backoff), delivers every entry
/// exactly once, in order.
#[tokio::test]
async fn streams_resume_across_a_restart_without_loss_or_repeats() {
    let mut broker = Broker::redis(&[]).await;
    let mut con = connect(&broker).await;
    let add = |n: i64| {
        redis::cmd("XADD")
            .arg("orders")
            .arg("*")
            .arg("n")
            .arg(n)
            .clone()
    };
    let _: String = add(0).query_async(&mut con).await.unwrap();
    let server = Server::start(&config(
        "orders",
        &broker,
        "o.{redis_stream}",
        "mode = \"stream\"\nstreams = [\"orders\"]\n",
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["o.*", "$sys.feeds"]).await;
    status_until(&mut c, "orders", |s| s["state"] == "running").await;

    for n in 1..=3 {
        let _: String = add(n).query_async(&mut con).await.unwrap();
    }
    let big = vec![b'x'; (1 << 20) + 1];
    let _: String = con.xadd("orders", "*", &[("blob", big)]).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(next_value(&mut c, "o.orders").await["n"].as_i64().unwrap());
    }
    status_until(&mut c, "orders", |s| {
        s["errors"] == 1
            && s["error"]
                .as_str()
                .unwrap_or("")
                .contains("exceeds max_item_bytes")
    })
    .await;

    broker.restart().await;
    // Added while the feed waits out its backoff (it reconnects no sooner than
    // 50 ms after noticing): it must read on from the last id it delivered.
    status_until(&mut c, "orders", |s| s["state"] == "backoff").await;
    let mut con = connect(&broker).await;
    for n in 4..=6 {
        let _: String = add(n).query_async(&mut con).await.unwrap();
    }
    status_until(&mut c, "orders", |s| s["state"] == "running").await;
    let _: String = add(7).query_async(&mut con).await.unwrap();
    while seen.last() != Some(&7) {
        seen.push(next_value(&mut c, "o.orders").await["n"].as_i64().unwrap());
    }
    assert_eq!(
        seen,
        [1, 2, 3, 4, 5, 6, 7],
        "nothing lost, nothing repeated"
    );
}

/// A wrong password is a clear error on `$sys.feeds` that never shows it; a
/// password in the URL is redacted wherever the URL is shown, and works.
#[tokio::test]
async fn wrong_password_is_a_clear_error() {
    let broker = Broker::redis(&["--requirepass", "s3cret-pw"]).await;
    let port = broker.port;
    let mut text = config(
        "bad",
        &broker,
        "a.{redis_channel}",
        "channels = [\"auth\"]\npassword = \"wrong-pw\"\n",
    );
    text.push_str(&format!(
        "\n[[feed]]\nname = \"good\"\nkind = \"redis\"\ntopic = \"a.{{redis_channel}}\"\n\
         url = \"redis://:s3cret-pw@127.0.0.1:{port}\"\nchannels = [\"auth\"]\n"
    ));
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["a.*", "$sys.feeds.*"]).await;
    let s = states_until(&mut c, &[("bad", "backoff"), ("good", "running")])
        .await
        .remove(0);
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("cannot connect"), "{s}");
    assert!(
        error.to_lowercase().contains("pass") || error.contains("auth"),
        "says why: {s}"
    );
    assert!(!error.contains("wrong-pw"), "{s}");

    let client = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{port}")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = con.publish("auth", "1").await.unwrap();
    assert_eq!(next_value(&mut c, "a.auth").await, json!({"value": 1}));
}

/// The pub/sub example of `feeds/redis.toml`, run as written against a real
/// server: its own "try it" commands each publish exactly one update (no
/// channel is also matched by one of its patterns, which would deliver every
/// message twice).
#[tokio::test]
async fn the_example_publishes_each_message_once() {
    let broker = Broker::redis(&[]).await;
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/feeds/redis.toml")).unwrap();
    let pubsub = example
        .split("[[feed]]")
        .find(|f| f.contains("name = \"redis-prices\""))
        .expect("the example has its pub/sub feed")
        .replace("enabled = false", "enabled = true")
        .replace("redis://127.0.0.1:6379", &broker.url());
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]{pubsub}"
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["quotes.*", "$sys.feeds"]).await;
    status_until(&mut c, "redis-prices", |s| s["state"] == "running").await;
    let mut con = connect(&broker).await;
    // The example's "try it" lines, then a marker on each name: the update
    // after each message is the marker, never the message again.
    for (channel, first, marker) in [
        ("prices:AAPL", r#"{"price":187.5}"#, r#"{"price":1}"#),
        ("fx:EURUSD", "1.0842", "2"),
    ] {
        let topic = format!("quotes.{}", channel.split(':').nth(1).unwrap());
        for payload in [first, marker] {
            let _: i64 = con.publish(channel, payload).await.unwrap();
            let got = next_value(&mut c, &topic).await;
            let want: Value = serde_json::from_str(payload).unwrap();
            let want = if want.is_object() {
                want
            } else {
                json!({"value": want})
            };
            assert_eq!(got, want, "{channel}: each message once, in order");
        }
    }
}
