//! The `nats` feed against a real nats-server (started per test on 127.0.0.1):
//! a wildcard subject mirrored into topics, the payload rule, bad payloads, a
//! server restart, and wrong credentials.
//!
//! Needs `nats-server` (`scripts/test.sh` installs it).

mod support;

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
    c.subscribe(&["n.>", "$sys.feeds"]).await;
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
    c.subscribe(&["a.*", "$sys.feeds"]).await;
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
