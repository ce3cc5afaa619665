//! The `mqtt` feed against a real mosquitto (started per test on 127.0.0.1 in
//! a temp directory): topics from the MQTT topic, the payload rule, bad
//! payloads, a broker restart, the persistent session (QoS 1 messages sent
//! while tickerd was away arrive once each), wrong credentials, and `mqtts://`
//! with a private CA.
//!
//! Needs `mosquitto`, `mosquitto_passwd` and `openssl` (`scripts/test.sh`
//! installs them).

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
        s["error"]
            .as_str()
            .unwrap()
            .contains("exceeds max_item_bytes"),
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
    c.subscribe(&["auth.*", "$sys.feeds.*"]).await;
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

/// Runs `openssl ARGS` in `dir`, failing the test if it fails.
async fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mqtts://` with `ca_file`: against a mosquitto TLS listener whose
/// certificate a private CA signed (made here with openssl), the feed that
/// trusts that CA connects and publishes; one that trusts only the public
/// roots is refused with a certificate error on `$sys.feeds`.
#[tokio::test]
async fn tls_with_a_private_ca() {
    let pki = tempfile::tempdir().unwrap();
    let p = pki.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=tickerd test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    openssl(p, &ca).await;
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(p, &csr).await;
    std::fs::write(p.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    )
    .await;

    let tls_port = support::brokers::free_port().await;
    let broker = Broker::mosquitto(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
        p.display()
    ))
    .await;
    let url = format!("mqtts://127.0.0.1:{tls_port}");
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[feed]]\nname = \"private\"\nkind = \"mqtt\"\ntopic = \"tls.{{mqtt_level2}}\"\n\
         url = \"{url}\"\nsubscribe = [\"tls/#\"]\nca_file = \"{}/ca.pem\"\n\n\
         [[feed]]\nname = \"public\"\nkind = \"mqtt\"\ntopic = \"tls.{{mqtt_level2}}\"\n\
         url = \"{url}\"\nsubscribe = [\"tls/#\"]\n",
        p.display()
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["tls.*", "$sys.feeds.*"]).await;
    let s = states_until(&mut c, &[("public", "backoff"), ("private", "running")])
        .await
        .remove(0);
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{s}"
    );
    let mut publisher = MqttPublisher::connect(broker.port, "test-pub-4").await;
    publisher.publish("tls/x", "1").await;
    assert_eq!(next_value(&mut c, "tls.x").await, json!({"value": 1}));
}
