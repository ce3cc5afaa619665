//! The `mqtt` feed against a real mosquitto (started per test on 127.0.0.1 in
//! a temp directory): topics from the MQTT topic, the payload rule, bad
//! payloads, a broker restart, the persistent session (QoS 1 messages sent
//! while tickerd was away arrive once each), and wrong credentials.
//!
//! Needs `mosquitto` and `mosquitto_passwd` (`scripts/test.sh` installs them).

mod support;

use serde_json::{json, Value};
use support::brokers::{mosquitto_password_file, Broker, MqttPublisher};
use support::feeds::{states_until, status_until};
use support::{Client, Server};

/// A config with one mqtt feed `name` on `broker`, plus `extra` keys.
fn config(name: &str, broker: &Broker, topic: &str, filters: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"{name}\"\nkind = \"mqtt\"\n\
         topic = \"{topic}\"\nurl = \"{}\"\nsubscribe = {filters}\n{extra}\n",
        broker.url()
    )
}

/// The data of the next update of `topic`.
async fn next_value(c: &mut Client, topic: &str) -> Value {
    c.update_of(topic).await["data"].clone()
}

/// JSON payloads arrive as they are and a plain number as `{"value": ..}`, on
/// the topic built from the MQTT topic (`{mqtt_topic}`, `/` mapped to `.`); a
/// malformed payload and one over 1 MiB are counted item errors while the feed
/// keeps publishing; when the broker restarts, the feed shows `backoff`, comes
/// back `running` and publishes again.
#[tokio::test]
async fn topics_payloads_bad_messages_and_broker_restart() {
    let mut broker = Broker::mosquitto("").await;
    let server = Server::start(&config(
        "iot",
        &broker,
        "iot.{mqtt_topic}",
        "[\"sensors/+/temp\"]",
        "",
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["iot.>", "$sys.feeds"]).await;
    status_until(&mut c, "iot", |s| s["state"] == "running").await;
    let mut publisher = MqttPublisher::connect(broker.port, "test-pub-1").await;

    publisher
        .publish("sensors/room1/temp", r#"{"c":21.5}"#)
        .await;
    assert_eq!(
        next_value(&mut c, "iot.sensors.room1.temp").await,
        json!({"c": 21.5})
    );
    publisher.publish("sensors/room2/temp", "19").await;
    assert_eq!(
        next_value(&mut c, "iot.sensors.room2.temp").await,
        json!({"value": 19})
    );

    publisher.publish("sensors/room1/temp", r#"{"c":"#).await;
    publisher
        .publish("sensors/room1/temp", vec![b'7'; (1 << 20) + 1])
        .await;
    publisher.publish("sensors/room1/temp", r#"{"c":22}"#).await;
    assert_eq!(
        next_value(&mut c, "iot.sensors.room1.temp").await,
        json!({"c": 22}),
        "the feed goes on after bad payloads"
    );
    let s = status_until(&mut c, "iot", |s| s["errors"].as_u64() >= Some(2)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(
        s["error"].as_str().unwrap().contains("item limit"),
        "the last error is the oversized payload: {s}"
    );

    broker.restart().await;
    let s = status_until(&mut c, "iot", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains("127.0.0.1"), "{s}");
    status_until(&mut c, "iot", |s| s["state"] == "running").await;
    publisher.publish("sensors/room3/temp", "20.5").await;
    assert_eq!(
        next_value(&mut c, "iot.sensors.room3.temp").await,
        json!({"value": 20.5})
    );
}

/// The persistent session: while the feed is stopped (disabled by a config
/// reload), QoS 1 messages are published and the broker restarts; when the
/// feed is enabled again it receives each of them exactly once, in order,
/// then live ones (`{mqtt_level2}` picks the topic's second level).
#[tokio::test]
async fn messages_sent_while_away_arrive_once_after_reconnect() {
    let mut broker = Broker::mosquitto("").await;
    let text = config(
        "plant",
        &broker,
        "plant.{mqtt_level2}",
        "[\"plant/#\"]",
        "client_id = \"tickerd-plant-test\"\n",
    );
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["plant.*", "$sys.feeds"]).await;
    status_until(&mut c, "plant", |s| s["state"] == "running").await;
    let mut publisher = MqttPublisher::connect(broker.port, "test-pub-2").await;
    for n in 1..=3 {
        publisher.publish("plant/line1", n.to_string()).await;
    }
    for n in 1..=3 {
        assert_eq!(next_value(&mut c, "plant.line1").await, json!({"value": n}));
    }

    std::fs::write(
        &server.config_path,
        text.replace("mqtt\"", "mqtt\"\nenabled = false"),
    )
    .unwrap();
    status_until(&mut c, "plant", |s| s["state"] == "stopped").await;
    for n in 4..=6 {
        publisher.publish("plant/line1", n.to_string()).await;
    }
    broker.restart().await;
    drop(publisher);

    std::fs::write(&server.config_path, &text).unwrap();
    status_until(&mut c, "plant", |s| s["state"] == "running").await;
    let mut publisher = MqttPublisher::connect(broker.port, "test-pub-2").await;
    publisher.publish("plant/line1", "7").await;
    let mut seen = Vec::new();
    while seen.last() != Some(&7) {
        let v = next_value(&mut c, "plant.line1").await;
        seen.push(v["value"].as_i64().unwrap());
    }
    assert_eq!(seen, [4, 5, 6, 7], "nothing lost, nothing repeated");
}

/// A wrong password is a clear error on `$sys.feeds` (the feed retries in
/// `backoff`, and the password is never shown); the right one connects.
#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let secrets = tempfile::tempdir().unwrap();
    let passwords = mosquitto_password_file(secrets.path(), "tick", "right-pw").await;
    let broker = Broker::mosquitto(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ))
    .await;
    let mut text = config(
        "bad",
        &broker,
        "auth.{mqtt_level2}",
        "[\"auth/#\"]",
        "username = \"tick\"\npassword = \"wrong-pw\"\n",
    );
    text.push_str(&format!(
        "\n[[feed]]\nname = \"good\"\nkind = \"mqtt\"\ntopic = \"auth.{{mqtt_level2}}\"\n\
         url = \"{}\"\nsubscribe = [\"auth/#\"]\nusername = \"tick\"\npassword = \"right-pw\"\n",
        broker.url()
    ));
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["auth.*", "$sys.feeds"]).await;
    let s = states_until(&mut c, &[("bad", "backoff"), ("good", "running")])
        .await
        .remove(0);
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("refused the connection"), "{s}");
    assert!(!error.contains("wrong-pw"), "{s}");

    let mut options = rumqttc::MqttOptions::new("test-pub-3", "127.0.0.1", broker.port);
    options.set_credentials("tick", "right-pw");
    let (client, mut events) = rumqttc::AsyncClient::new(options, 4);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
        .publish("auth/x", rumqttc::QoS::AtLeastOnce, false, "1")
        .await
        .unwrap();
    assert_eq!(next_value(&mut c, "auth.x").await, json!({"value": 1}));
}
