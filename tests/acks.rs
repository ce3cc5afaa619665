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
        json!({
            "ok": false,
            "reason": "since 99 for q.a is above its seq 2: snapshot sent",
            "partial": ["q.a"]
        })
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

/// A resume of many busy topics at once is delivered whole: 19 topics with
/// 100 retained updates each (1,900 frames, past the 1,024 frames a
/// connection queues before conflating) all arrive, in order, per topic, and
/// the ack says `ok`. Live updates follow the backlog.
#[tokio::test]
async fn a_large_resume_is_delivered_whole() {
    let s = Server::start("[history]\nsize = 100\n").await;
    let hub = s.ticker.hub();
    let topics = support::resume::publish_busy(hub, 19, 150);
    let since = support::resume::since_each(&topics, 50);
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    c.send(json!({"op": "subscribe", "topics": [">"], "since": since, "epoch": epoch, "id": 1}))
        .await;
    let ack = c.recv().await;
    assert_eq!(ack["resume"], json!({"ok": true}), "{ack}");
    let got = support::resume::collect_until_last(&since, 150, async || c.recv().await).await;
    support::resume::assert_whole(&got, &since, 150);

    hub.publish("busy.3", &json!({"n": 151})).unwrap();
    assert_eq!(c.update_of("busy.3").await["seq"], 151);
}

/// What cannot be resumed whole is named: a topic whose history no longer
/// reaches back, and the topics past `[limits] max_resume` (smallest backlogs
/// are served first), are listed in `resume.partial` and get their snapshot;
/// the others are replayed whole.
#[tokio::test]
async fn a_resume_that_cannot_be_whole_names_the_topics() {
    let s = Server::start("[history]\nsize = 100\n[limits]\nmax_resume = 150\n").await;
    let hub = s.ticker.hub();
    for n in 1..=200 {
        for t in ["r.a", "r.b", "r.c", "r.old"] {
            hub.publish(t, &json!(n)).unwrap();
        }
    }
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    // Backlogs: r.a 20, r.b 100, r.c 100 (past the budget of 150 once a and b
    // are in), r.old from seq 10 (its history starts at 101).
    let since = json!({"r.a": 180, "r.b": 100, "r.c": 100, "r.old": 10});
    c.send(json!({"op": "subscribe", "topics": ["r.*"], "since": since, "epoch": epoch, "id": 1}))
        .await;
    let ack = c.recv().await;
    assert_eq!(ack["resume"]["ok"], false, "{ack}");
    assert_eq!(ack["resume"]["partial"], json!(["r.c", "r.old"]), "{ack}");
    let reason = ack["resume"]["reason"].as_str().unwrap();
    assert!(reason.contains("no longer reaches back"), "{reason}");
    assert!(reason.contains("[limits] max_resume"), "{reason}");

    let (mut a, mut b, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
    while a.len() < 20 || b.len() < 100 || snapshots.len() < 2 {
        let u = c.recv().await;
        match (u["topic"].as_str().unwrap(), u.get("snapshot").is_some()) {
            (t, true) => snapshots.push((t.to_string(), u["seq"].as_u64().unwrap())),
            ("r.a", false) => a.push(u["seq"].as_u64().unwrap()),
            ("r.b", false) => b.push(u["seq"].as_u64().unwrap()),
            other => panic!("unexpected frame {other:?}: {u}"),
        }
    }
    assert_eq!(a, (181..=200).collect::<Vec<_>>());
    assert_eq!(b, (101..=200).collect::<Vec<_>>());
    snapshots.sort();
    assert_eq!(snapshots, [("r.c".into(), 200), ("r.old".into(), 200)]);
}
