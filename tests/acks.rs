//! What an `ack` adds when a request could not do all it asked: `resume` when
//! `since` could not be honoured (and why), `not_subscribed` when an
//! unsubscribe named patterns the connection did not hold. Additions only: the
//! plain ack is unchanged (tests/protocol.rs).

mod support;

use serde_json::{json, Value};
use support::{Client, Server};

/// Sends a subscribe with `since` (and `epoch` when given) and returns the ack.
async fn subscribe_since(c: &mut Client, since: Value, epoch: Option<Value>) -> Value {
    let mut req = json!({"op": "subscribe", "topics": ["q.a"], "since": since, "id": 7});
    if let Some(e) = epoch {
        req["epoch"] = e;
    }
    c.send(req).await;
    let ack = c.recv().await;
    assert_eq!(
        (&ack["type"], &ack["id"]),
        (&json!("ack"), &json!(7)),
        "{ack}"
    );
    ack
}

/// A resume with the current epoch is acked `{"ok":true}` and replays.
#[tokio::test]
async fn a_possible_resume_says_ok() {
    let s = Server::start("[history]\nsize = 10\n").await;
    for i in 1..=3 {
        s.ticker.hub().publish("q.a", &json!(i)).unwrap();
    }
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    let ack = subscribe_since(&mut c, json!({"q.a": 1}), Some(epoch)).await;
    assert_eq!(ack["resume"], json!({"ok": true}));
    assert_eq!(c.recv().await["seq"], 2);
}

/// `since` without an epoch, or with another server run's epoch, is acked
/// with `ok: false` and the reason; the snapshot follows.
#[tokio::test]
async fn a_missing_or_foreign_epoch_says_why() {
    let s = Server::start("[history]\nsize = 10\n").await;
    for i in 1..=3 {
        s.ticker.hub().publish("q.a", &json!(i)).unwrap();
    }
    let mut c = s.client().await;
    let ack = subscribe_since(&mut c, json!({"q.a": 1}), None).await;
    assert_eq!(ack["resume"]["ok"], false, "{ack}");
    let reason = ack["resume"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("no epoch given"), "{reason}");
    assert!(reason.ends_with("snapshots sent"), "{reason}");
    let snap = c.recv().await;
    assert_eq!((&snap["seq"], &snap["snapshot"]), (&json!(3), &json!(true)));

    let mut d = s.client().await;
    let ack = subscribe_since(&mut d, json!({"q.a": 1}), Some(json!("old-epoch"))).await;
    assert_eq!(ack["resume"]["ok"], false, "{ack}");
    let reason = ack["resume"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("epoch mismatch"), "{reason}");
    let snap = d.recv().await;
    assert_eq!((&snap["seq"], &snap["snapshot"]), (&json!(3), &json!(true)));
}

/// A `since` above the topic's seq is acked with the reason, and the client
/// gets the snapshot instead of nothing.
#[tokio::test]
async fn a_since_above_the_seq_gets_the_snapshot() {
    let s = Server::start("[history]\nsize = 10\n").await;
    s.ticker.hub().publish("q.a", &json!(1)).unwrap();
    s.ticker.hub().publish("q.a", &json!(2)).unwrap();
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    let ack = subscribe_since(&mut c, json!({"q.a": 99}), Some(epoch)).await;
    assert_eq!(
        ack["resume"],
        json!({"ok": false, "reason": "since 99 for q.a is above its seq 2: snapshot sent"})
    );
    let snap = c.recv().await;
    assert_eq!((&snap["seq"], &snap["snapshot"]), (&json!(2), &json!(true)));
}

/// Unsubscribing a topic that only a wildcard covers is acked with
/// `not_subscribed`, and delivery goes on; a held pattern is not listed.
#[tokio::test]
async fn unsubscribing_what_is_not_held_says_so() {
    let s = Server::start(support::EMPTY).await;
    let mut c = s.client().await;
    c.subscribe(&["stocks.*", "b.x"]).await;
    c.send(json!({"op": "unsubscribe", "topics": ["stocks.AAPL", "b.x"], "id": 3}))
        .await;
    assert_eq!(
        c.recv().await,
        json!({"type": "ack", "id": 3, "op": "unsubscribe", "topics": ["stocks.AAPL", "b.x"], "not_subscribed": ["stocks.AAPL"]})
    );
    s.ticker.hub().publish("stocks.AAPL", &json!(1)).unwrap();
    assert_eq!(c.update_of("stocks.AAPL").await["data"], 1);
}
