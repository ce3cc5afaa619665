//! The `nats` feed against a real nats-server (started per test on 127.0.0.1):
//! a wildcard subject mirrored into topics, the payload rule, bad payloads, a
//! server restart, a durable JetStream consumer resuming across a stop and a
//! restart with nothing lost or repeated (no pull request left pending by a
//! stopped feed; a redelivered message it never published is published), and
//! wrong credentials.
//!
//! Needs `nats-server` (`scripts/test.sh` installs it).

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::brokers::Broker;
use support::feeds::{states_until, status_until};
use support::{within, Client, Server};

/// The data of the next update of `topic`.
async fn next_value(c: &mut Client, topic: &str) -> Value {
    c.update_of(topic).await["data"].clone()
}

/// A test-side NATS client.
async fn connect(url: &str) -> async_nats::Client {
    within(async_nats::connect(url)).await.unwrap()
}

/// Publishes and flushes, so the server has the message.
async fn publish(nats: &async_nats::Client, subject: &str, payload: &'static str) {
    nats.publish(subject.to_string(), payload.into())
        .await
        .unwrap();
    within(nats.flush()).await.unwrap();
}

/// `subject = "prices.>"` with `topic = "n.{nats_subject}"` mirrors subjects as
/// topics, and `{nats_level2}` picks one token; JSON and plain payloads follow
/// the payload rule; a malformed payload is a counted item error while the
/// feed keeps publishing; after a server restart the feed shows `backoff`,
/// then `running`, and publishes again.
#[tokio::test]
async fn subjects_payloads_bad_messages_and_restart() {
    let mut broker = Broker::nats(&[]).await;
    let url = broker.url();
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[feed]]\nname = \"px\"\nkind = \"nats\"\ntopic = \"n.{{nats_subject}}\"\n\
         url = \"{url}\"\nsubject = \"prices.>\"\n\n\
         [[feed]]\nname = \"sym\"\nkind = \"nats\"\ntopic = \"sym.{{nats_level2}}\"\n\
         url = \"{url}\"\nsubject = \"prices.*\"\n"
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["n.>", "$sys.feeds.*"]).await;
    let mut by_symbol = server.client().await;
    by_symbol.subscribe(&["sym.*"]).await;
    states_until(&mut c, &[("px", "running"), ("sym", "running")]).await;
    let nats = connect(&url).await;

    publish(&nats, "prices.AAPL", r#"{"p":187.5}"#).await;
    assert_eq!(
        next_value(&mut c, "n.prices.AAPL").await,
        json!({"p": 187.5})
    );
    assert_eq!(
        next_value(&mut by_symbol, "sym.AAPL").await,
        json!({"p": 187.5})
    );
    publish(&nats, "prices.fx.EURUSD", "up").await;
    assert_eq!(
        next_value(&mut c, "n.prices.fx.EURUSD").await,
        json!({"value": "up"})
    );

    publish(&nats, "prices.AAPL", "{oops").await;
    publish(&nats, "prices.AAPL", r#"{"p":188}"#).await;
    assert_eq!(
        next_value(&mut c, "n.prices.AAPL").await,
        json!({"p": 188}),
        "the feed goes on after a bad payload"
    );
    let s = status_until(&mut c, "px", |s| s["errors"].as_u64() >= Some(1)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(s["error"].as_str().unwrap().contains("not JSON"), "{s}");

    drop(nats);
    broker.restart().await;
    status_until(&mut c, "px", |s| s["state"] == "backoff").await;
    status_until(&mut c, "px", |s| s["state"] == "running").await;
    let nats = connect(&url).await;
    publish(&nats, "prices.MSFT", "410").await;
    assert_eq!(
        next_value(&mut c, "n.prices.MSFT").await,
        json!({"value": 410})
    );
}

/// A wrong password is a clear error on `$sys.feeds` (never showing it); the
/// right one connects and publishes.
#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let broker = Broker::nats(&["--user", "tick", "--pass", "right-pw"]).await;
    let url = broker.url();
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[feed]]\nname = \"bad\"\nkind = \"nats\"\ntopic = \"a.{{nats_level2}}\"\n\
         url = \"{url}\"\nsubject = \"auth.*\"\nuser = \"tick\"\npassword = \"wrong-pw\"\n\n\
         [[feed]]\nname = \"good\"\nkind = \"nats\"\ntopic = \"a.{{nats_level2}}\"\n\
         url = \"{url}\"\nsubject = \"auth.*\"\nuser = \"tick\"\npassword = \"right-pw\"\n"
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["a.*", "$sys.feeds.*"]).await;
    let s = states_until(&mut c, &[("bad", "backoff"), ("good", "running")])
        .await
        .remove(0);
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("cannot connect"), "{s}");
    assert!(error.contains("authorization"), "says why: {s}");
    assert!(!error.contains("wrong-pw"), "{s}");

    let nats = within(
        async_nats::ConnectOptions::new()
            .user_and_password("tick".into(), "right-pw".into())
            .connect(url.as_str()),
    )
    .await
    .unwrap();
    publish(&nats, "auth.x", "1").await;
    assert_eq!(next_value(&mut c, "a.x").await, json!({"value": 1}));
}

/// Publishes to JetStream and waits for the stream's ack, retrying while the
/// server is still recovering its streams after a restart.
async fn js_publish(js: &async_nats::jetstream::Context, subject: &str, payload: String) {
    let start = tokio::time::Instant::now();
    loop {
        let acked = match js
            .publish(subject.to_string(), payload.clone().into())
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if acked {
            return;
        }
        assert!(
            start.elapsed() < support::DEADLINE,
            "JetStream did not store {payload}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The durable consumer the `jp` feed uses, created by the test with a short
/// `ack_wait` (the feed uses an existing consumer as is), so a message handed
/// to a pull request that nobody reads comes back within the test's deadline.
async fn create_consumer(
    js: &async_nats::jetstream::Context,
    ack_wait: std::time::Duration,
) -> async_nats::jetstream::consumer::PullConsumer {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    let stream = within(js.create_stream(async_nats::jetstream::stream::Config {
        name: "PRICES".into(),
        subjects: vec!["jp.>".into()],
        ..Default::default()
    }))
    .await
    .unwrap();
    within(stream.create_consumer(pull::Config {
        durable_name: Some("tickerd-jp".into()),
        filter_subject: "jp.>".into(),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::New,
        ack_wait,
        ..Default::default()
    }))
    .await
    .unwrap()
}

/// The config of the `jp` feed on `url`: `topic = "j.{nats_level2}"`.
fn jp_config(url: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[feed]]\nname = \"jp\"\nkind = \"nats\"\ntopic = \"j.{{nats_level2}}\"\n\
         url = \"{url}\"\nsubject = \"jp.>\"\nstream = \"PRICES\"\ndurable = \"tickerd-jp\"\n"
    )
}

/// `text` with the feed disabled.
fn disabled(text: &str) -> String {
    text.replace("nats\"\n", "nats\"\nenabled = false\n")
}

/// Waits until the consumer has no pull request pending: a stopped feed left
/// none behind, so nothing is delivered to a reader that is gone.
async fn no_pull_pending(consumer: &mut async_nats::jetstream::consumer::PullConsumer) {
    let start = tokio::time::Instant::now();
    loop {
        let waiting = within(consumer.info()).await.unwrap().num_waiting;
        if waiting == 0 {
            return;
        }
        assert!(
            start.elapsed() < support::DEADLINE,
            "the stopped feed left {waiting} pull request(s) pending on its consumer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The next value published on `j.AAPL`.
async fn next_jp(c: &mut Client) -> i64 {
    next_value(c, "j.AAPL").await["value"].as_i64().unwrap()
}

/// With `stream` and `durable`, the feed reads through a durable JetStream
/// consumer: messages stored while the feed was stopped (disabled by a config
/// reload) and while the server restarted arrive once it runs again, and every
/// message arrives exactly once, in order. The stopped feed leaves no pull
/// request pending (message 4, published right after the stop, once went to
/// such a request and was lost); `ack_wait` is short, so a message handed to a
/// reader that is gone would still come back before the deadline.
#[tokio::test]
async fn jetstream_durable_consumer_resumes_without_loss_or_repeats() {
    let store = tempfile::tempdir().unwrap();
    let store_arg = store.path().to_str().unwrap();
    let mut broker = Broker::nats(&["-js", "-sd", store_arg]).await;
    let url = broker.url();
    let js = async_nats::jetstream::new(connect(&url).await);
    let mut consumer = create_consumer(&js, std::time::Duration::from_secs(2)).await;
    let text = jp_config(&url);
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["j.*", "$sys.feeds"]).await;
    status_until(&mut c, "jp", |s| s["state"] == "running").await;
    for n in 1..=3 {
        js_publish(&js, "jp.AAPL", n.to_string()).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(next_jp(&mut c).await);
    }

    support::write_atomic(&server.config_path, disabled(&text));
    status_until(&mut c, "jp", |s| s["state"] == "stopped").await;
    no_pull_pending(&mut consumer).await;
    for n in 4..=5 {
        js_publish(&js, "jp.AAPL", n.to_string()).await;
    }
    drop((js, consumer));
    broker.restart().await;
    let js = async_nats::jetstream::new(connect(&url).await);
    js_publish(&js, "jp.AAPL", "6".to_string()).await;
    support::write_atomic(&server.config_path, &text);
    status_until(&mut c, "jp", |s| s["state"] == "running").await;
    js_publish(&js, "jp.AAPL", "7".to_string()).await;
    while !(seen.contains(&4) && seen.contains(&7)) {
        seen.push(next_jp(&mut c).await);
    }
    assert_eq!(
        seen,
        [1, 2, 3, 4, 5, 6, 7],
        "nothing lost, nothing repeated"
    );
}

/// A message the feed never published is published when JetStream delivers
/// it again, even after newer ones: "already published" is what this feed
/// published, not "older than the last one seen". Message 2 goes to a pull
/// request of another reader while the feed is stopped (as it did to a stopped
/// feed's pending request), the restarted feed publishes 3, then message 2 is
/// handed back unacknowledged (a nak, so its redelivery comes after 3 without
/// waiting out `ack_wait`) and must arrive, once.
#[tokio::test]
async fn jetstream_redelivery_of_a_message_never_published_is_published() {
    let store = tempfile::tempdir().unwrap();
    let broker = Broker::nats(&["-js", "-sd", store.path().to_str().unwrap()]).await;
    let url = broker.url();
    let js = async_nats::jetstream::new(connect(&url).await);
    let mut consumer = create_consumer(&js, std::time::Duration::from_secs(30)).await;
    let text = jp_config(&url);
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["j.*", "$sys.feeds"]).await;
    status_until(&mut c, "jp", |s| s["state"] == "running").await;
    js_publish(&js, "jp.AAPL", "1".to_string()).await;
    assert_eq!(next_jp(&mut c).await, 1);

    support::write_atomic(&server.config_path, disabled(&text));
    status_until(&mut c, "jp", |s| s["state"] == "stopped").await;
    no_pull_pending(&mut consumer).await;
    let mut other = within(
        consumer
            .batch()
            .max_messages(1)
            .expires(support::DEADLINE)
            .messages(),
    )
    .await
    .unwrap();
    js_publish(&js, "jp.AAPL", "2".to_string()).await;
    let taken = within(other.next()).await.unwrap().unwrap();
    assert_eq!(&taken.payload[..], b"2");

    js_publish(&js, "jp.AAPL", "3".to_string()).await;
    support::write_atomic(&server.config_path, &text);
    assert_eq!(next_jp(&mut c).await, 3);
    within(taken.ack_with(async_nats::jetstream::AckKind::Nak(None)))
        .await
        .unwrap();
    assert_eq!(next_jp(&mut c).await, 2, "the redelivered message arrives");
    js_publish(&js, "jp.AAPL", "4".to_string()).await;
    assert_eq!(next_jp(&mut c).await, 4, "and only once");
}
