//! The WebSocket protocol (docs/protocol.md), over real sockets.

mod support;

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::{eventually, Server, EMPTY};
use tokio_tungstenite::tungstenite::Message;

/// `hello` is the first frame and carries the epoch, server and heartbeat.
#[tokio::test]
async fn hello_comes_first() {
    let s = Server::start(EMPTY).await;
    let c = s.client().await;
    assert_eq!(c.hello["epoch"], &*s.ticker.hub().epoch());
    assert!(c.hello["server"].as_str().unwrap().starts_with("tickerd/"));
    assert_eq!(c.hello["heartbeat_ms"], 20_000);
}

/// subscribe: the ack first, then the snapshot of each matching topic, then live updates.
#[tokio::test]
async fn ack_then_snapshots_then_live() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("stocks.AAPL", &json!({"price": 1})).unwrap();
    hub.publish("stocks.MSFT", &json!({"price": 2})).unwrap();
    let mut c = s.client().await;
    c.send(json!({"op": "subscribe", "topics": ["stocks.*", "host.cpu"], "id": 1}))
        .await;
    let ack = c.recv().await;
    assert_eq!(
        ack,
        json!({"type": "ack", "id": 1, "op": "subscribe", "topics": ["stocks.*", "host.cpu"]})
    );
    let mut snaps = HashMap::new();
    for _ in 0..2 {
        let u = c.recv().await;
        assert_eq!(u["type"], "update");
        assert_eq!(u["snapshot"], true);
        snaps.insert(
            u["topic"].as_str().unwrap().to_string(),
            u["data"]["price"].clone(),
        );
    }
    assert_eq!(snaps["stocks.AAPL"], 1);
    assert_eq!(snaps["stocks.MSFT"], 2);
    hub.publish("stocks.AAPL", &json!({"price": 3})).unwrap();
    let live = c.recv().await;
    assert_eq!(live["topic"], "stocks.AAPL");
    assert_eq!(live["seq"], 2);
    assert_eq!(live["data"]["price"], 3);
    assert!(live.get("snapshot").is_none());
    assert!(live["ts"].as_u64().unwrap() > 1_700_000_000_000);
}

/// A topic created after a wildcard subscription is delivered from its first update.
#[tokio::test]
async fn wildcards_pick_up_new_topics() {
    let s = Server::start(EMPTY).await;
    let mut c = s.client().await;
    c.subscribe(&["host.>"]).await;
    s.ticker.hub().publish("other.x", &json!(0)).unwrap();
    s.ticker.hub().publish("host.cpu.0", &json!(7)).unwrap();
    let u = c.recv().await;
    assert_eq!(
        (u["topic"].as_str(), u["seq"].as_u64()),
        (Some("host.cpu.0"), Some(1))
    );
    assert!(u.get("snapshot").is_none());
}

/// With `flush_interval = "0s"` the writer flushes whenever frames are ready:
/// a burst still arrives whole and in order.
#[tokio::test]
async fn zero_flush_interval_still_delivers_in_order() {
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nflush_interval = \"0s\"\n").await;
    let mut c = s.client().await;
    c.subscribe(&["burst.x"]).await;
    for i in 1..=50 {
        s.ticker.hub().publish("burst.x", &json!(i)).unwrap();
    }
    for i in 1..=50u64 {
        let u = c.update_of("burst.x").await;
        assert_eq!((u["seq"].as_u64(), u["data"].as_u64()), (Some(i), Some(i)));
    }
}

/// Overlapping patterns never deliver one update twice.
#[tokio::test]
async fn overlapping_patterns_deliver_once() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("a.b", &json!(1)).unwrap();
    let mut c = s.client().await;
    c.subscribe(&["a.*", "a.b", ">"]).await;
    let snap = c.recv().await;
    assert_eq!(
        (snap["seq"].as_u64(), &snap["snapshot"]),
        (Some(1), &json!(true))
    );
    // A later overlapping pattern sends no second snapshot.
    c.subscribe(&["a.>"]).await;
    hub.publish("a.b", &json!(2)).unwrap();
    hub.publish("z.z", &json!(3)).unwrap(); // a marker after a.b's second update
    let next = c.recv().await;
    assert_eq!(
        (next["topic"].as_str(), next["seq"].as_u64()),
        (Some("a.b"), Some(2))
    );
    let marker = c.recv().await;
    assert_eq!(marker["topic"], "z.z");
}

/// unsubscribe stops delivery of topics no remaining pattern matches.
#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    let mut c = s.client().await;
    c.subscribe(&["a.*", "b.x"]).await;
    c.send(json!({"op": "unsubscribe", "topics": ["a.*"], "id": 2}))
        .await;
    assert_eq!(
        c.recv().await,
        json!({"type": "ack", "id": 2, "op": "unsubscribe", "topics": ["a.*"]})
    );
    hub.publish("a.y", &json!(1)).unwrap();
    hub.publish("b.x", &json!(2)).unwrap();
    let u = c.recv().await;
    assert_eq!(u["topic"], "b.x", "a.y must not arrive after unsubscribe");
}

/// `topics` lists every topic with feed, seq and ts; `ping` gets `pong` with its id.
#[tokio::test]
async fn topics_and_ping() {
    let s = Server::start(EMPTY).await;
    s.ticker.hub().publish("x.y", &json!(1)).unwrap();
    s.ticker.hub().publish("x.y", &json!(2)).unwrap();
    let mut c = s.client().await;
    c.send(json!({"op": "topics", "id": 3})).await;
    let t = c.recv_until(|v| v["type"] == "topics").await;
    assert_eq!(t["id"], 3);
    let row = t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"] == "x.y")
        .unwrap()
        .clone();
    assert_eq!(row["seq"], 2);
    assert_eq!(row["feed"], Value::Null);
    assert!(row["ts"].as_u64().unwrap() > 0);
    c.send(json!({"op": "ping", "id": {"n": 4}})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "id": {"n": 4}}));
}

/// Resume with `since` and the current epoch replays retained updates after it.
#[tokio::test]
async fn resume_replays_history() {
    let s = Server::start("[history]\nsize = 5\n").await;
    let hub = s.ticker.hub();
    for i in 1..=8 {
        hub.publish("q.a", &json!(i)).unwrap();
    }
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    c.send(json!({"op": "subscribe", "topics": ["q.a"], "since": {"q.a": 5}, "epoch": epoch}))
        .await;
    assert_eq!(c.recv().await["type"], "ack");
    for want in 6..=8 {
        let u = c.recv().await;
        assert_eq!(u["seq"], want);
        assert!(
            u.get("snapshot").is_none(),
            "replayed updates carry no snapshot flag"
        );
    }
    hub.publish("q.a", &json!(9)).unwrap();
    assert_eq!(c.recv().await["seq"], 9);
}

/// Where history no longer reaches back, or the epoch is stale, the snapshot is sent.
#[tokio::test]
async fn resume_falls_back_to_snapshot() {
    let s = Server::start("[history]\nsize = 3\n").await;
    let hub = s.ticker.hub();
    for i in 1..=10 {
        hub.publish("q.a", &json!(i)).unwrap();
    }
    let mut c = s.client().await;
    let epoch = c.hello["epoch"].clone();
    c.send(json!({"op": "subscribe", "topics": ["q.a"], "since": {"q.a": 2}, "epoch": epoch}))
        .await;
    c.recv().await;
    let u = c.recv().await;
    assert_eq!(
        (u["seq"].as_u64(), &u["snapshot"]),
        (Some(10), &json!(true))
    );

    let mut stale = s.client().await;
    stale.send(json!({"op": "subscribe", "topics": ["q.a"], "since": {"q.a": 9}, "epoch": "old-epoch"})).await;
    stale.recv().await;
    let u = stale.recv().await;
    assert_eq!(
        (u["seq"].as_u64(), &u["snapshot"]),
        (Some(10), &json!(true)),
        "stale epoch is ignored"
    );

    let mut none = s.client().await;
    let hist0 = Server::start("[history]\nsize = 0\n").await;
    hist0.ticker.hub().publish("q.a", &json!(1)).unwrap();
    hist0.ticker.hub().publish("q.a", &json!(2)).unwrap();
    let mut h = hist0.client().await;
    let epoch = h.hello["epoch"].clone();
    h.send(json!({"op": "subscribe", "topics": ["q.a"], "since": {"q.a": 1}, "epoch": epoch}))
        .await;
    h.recv().await;
    let u = h.recv().await;
    assert_eq!(
        (u["seq"].as_u64(), &u["snapshot"]),
        (Some(2), &json!(true)),
        "history.size = 0 keeps none"
    );
    none.send(json!({"op": "ping"})).await;
    assert_eq!(none.recv().await["type"], "pong");
}

/// Every error code is a reply, and the connection stays open afterwards; at
/// the pattern limit, re-subscribing to held patterns is still acked.
#[tokio::test]
async fn errors_are_replies() {
    let s = Server::start("[limits]\nmax_subscriptions = 2\n").await;
    let mut c = s.client().await;
    let cases = [
        (Message::text("not json"), "bad_request", Value::Null),
        (
            Message::text(r#"{"op":"subscribe","topics":"a","id":7}"#),
            "bad_request",
            json!(7),
        ),
        (
            Message::text(r#"{"op":"fly","id":"f"}"#),
            "unknown_op",
            json!("f"),
        ),
        (
            Message::text(r#"{"op":"subscribe","topics":["a..b"],"id":8}"#),
            "invalid_topic",
            json!(8),
        ),
        (
            Message::text(r#"{"op":"subscribe","topics":["a.>.b"],"id":9}"#),
            "invalid_topic",
            json!(9),
        ),
        (
            Message::text(r#"{"op":"subscribe","topics":["a","b","c"],"id":10}"#),
            "too_many_subscriptions",
            json!(10),
        ),
        (Message::binary(vec![1u8, 2, 3]), "bad_request", Value::Null),
    ];
    for (msg, code, id) in cases {
        c.ws.send(msg).await.unwrap();
        let e = c.recv().await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e.get("id").cloned().unwrap_or(Value::Null), id, "{e}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    c.subscribe(&["a", "b"]).await;
    c.send(json!({"op": "subscribe", "topics": ["c"], "id": 11}))
        .await;
    assert_eq!(c.recv().await["code"], "too_many_subscriptions");
    // At the limit, naming patterns it already holds is no new subscription.
    c.subscribe(&["b", "a"]).await;
    c.send(json!({"op": "ping", "id": 12})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "id": 12}));
}

/// A frame over max_frame_bytes closes with 1009; invalid UTF-8 closes with 1007.
#[tokio::test]
async fn oversized_and_invalid_utf8_frames_close() {
    let s = Server::start("[limits]\nmax_frame_bytes = 1024\n").await;
    let mut c = s.client().await;
    c.send(json!({"op": "ping", "pad": "x".repeat(2000)})).await;
    assert_eq!(c.closed().await, Some(1009));

    let mut c = s.client().await;
    // A text frame whose payload is not UTF-8, written as a raw frame.
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0xfd],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.closed().await, Some(1007));
    // The server keeps serving.
    let mut ok = s.client().await;
    ok.send(json!({"op": "ping"})).await;
    assert_eq!(ok.recv().await["type"], "pong");
}

/// A client silent for two heartbeat periods is dropped; one that keeps
/// reading (and so answers Pings) stays connected all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_dropped() {
    let s = Server::start("[server]\nheartbeat = \"500ms\"\n").await;
    let mut silent = s.client().await;
    let mut alive = s.client().await;
    // `alive` keeps reading (tungstenite answers Pings while reading) until
    // told to stop; it must never see its connection end.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let keep = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return alive,
                m = alive.ws.next() => match m {
                    Some(Ok(_)) => continue,
                    other => panic!("the responsive client lost its connection: {other:?}"),
                },
            }
        }
    });
    // `silent` reads nothing (reading would answer the Pings) until the
    // server has given up on it: its connection count falls to one.
    let connections = || {
        s.ticker
            .metrics()
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(connections(), 2);
    eventually("the silent client is dropped", || {
        std::future::ready(connections() == 1)
    })
    .await;
    // Then only the Pings sent meanwhile and the end of the connection are
    // left to read (`closed` fails the test if it is still open).
    silent.closed().await;
    stop.send(()).unwrap();
    let mut alive = keep.await.unwrap();
    alive.send(json!({"op": "ping", "id": 1})).await;
    assert_eq!(
        alive.recv().await["type"],
        "pong",
        "a responsive client stays connected"
    );
}

/// max_connections: one more connection is refused before the upgrade.
#[tokio::test]
async fn max_connections_is_enforced() {
    let s = Server::start("[limits]\nmax_connections = 2\n").await;
    let _a = s.client().await;
    let _b = s.client().await;
    let err = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("expected HTTP 503, got {other}"),
    }
    drop(_a);
    support::eventually("a slot frees up", || async {
        tokio_tungstenite::connect_async(s.ws_url()).await.is_ok()
    })
    .await;
}

/// One valid request of each op, a field it does not take, and the known
/// field the reply should suggest (`None`: nothing is close).
fn requests_with_an_unknown_field() -> Vec<(&'static str, Value, &'static str, Option<&'static str>)>
{
    vec![
        (
            "subscribe",
            json!({"topics": ["a"]}),
            "maxrate",
            Some("max_rate"),
        ),
        (
            "unsubscribe",
            json!({"topics": ["a"]}),
            "topic",
            Some("topics"),
        ),
        ("topics", json!({}), "pattern", None),
        ("ping", json!({}), "payload", None),
        (
            "publish",
            json!({"topic": "a", "data": 1}),
            "dta",
            Some("data"),
        ),
        ("refresh", json!({"token": "t"}), "tokn", Some("token")),
    ]
}

/// The ops the server knows, read from its `unknown_op` reply ("expected
/// subscribe, ... or refresh"), so that a new op cannot skip the rule below.
async fn ops_of(c: &mut support::Client) -> Vec<String> {
    c.send(json!({"op": "no-such-op", "id": "ops"})).await;
    let e = c.recv().await;
    assert_eq!(e["code"], "unknown_op", "{e}");
    let msg = e["message"].as_str().unwrap();
    let list = msg.rsplit_once("expected ").expect("the ops are listed").1;
    list.trim_end_matches(')')
        .replace(" or ", ", ")
        .split(", ")
        .map(|op| op.trim_matches('`').to_string())
        .collect()
}

/// Every op refuses a field it does not take: an `error` reply
/// (`bad_request`) that echoes the `id`, names the field and, where a known
/// field is close, suggests it (`maxrate` -> `max_rate`); the connection stays
/// open and answers the next request. The table covers every op the server
/// lists.
#[tokio::test]
async fn every_op_refuses_unknown_fields() {
    let s = Server::start(EMPTY).await;
    let mut c = s.client().await;
    let table = requests_with_an_unknown_field();
    let mut ops = ops_of(&mut c).await;
    ops.sort();
    let mut covered: Vec<String> = table.iter().map(|(op, ..)| op.to_string()).collect();
    covered.sort();
    assert_eq!(ops, covered, "every op the server knows is in the table");
    for (i, (op, mut request, field, near)) in table.into_iter().enumerate() {
        request["op"] = json!(op);
        request["id"] = json!(i);
        request[field] = json!(2);
        c.send(request.clone()).await;
        let e = c.recv_until(|v| v["type"] != "update").await;
        assert_eq!(e["type"], "error", "{request} -> {e}");
        assert_eq!(e["code"], "bad_request", "{request} -> {e}");
        assert_eq!(e["id"], i, "{request} -> {e}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains(&format!("`{field}`")), "{request} -> {msg}");
        if let Some(near) = near {
            assert!(
                msg.contains(&format!("did you mean `{near}`?")),
                "{request} -> {msg}"
            );
        }
        c.send(json!({"op": "ping", "id": "after"})).await;
        assert_eq!(c.recv().await, json!({"type": "pong", "id": "after"}));
    }
}
