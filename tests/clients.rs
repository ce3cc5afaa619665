//! Issue #17, "Clients beyond the browser tab", past SSE (tests/sse.rs):
//! bulk publishing (HTTP and the WebSocket `publish` op), subscriber counts,
//! per-subscription rates and field-level deltas, over real sockets.

mod support;

use serde_json::{json, Value};
use support::{eventually, get_json, Client, Server, EMPTY};

const PUBLISHER: &str = "[server]\npublish_token = \"pt\"\n";

async fn post_bulk(s: &Server, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(s.http("/api/publish"))
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = support::within(req.send()).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `POST /api/publish` takes an array of `{topic, data}`: one result per item,
/// in order; a bad item does not stop the others; the publish token's checks
/// and the body's are those of the single-topic route.
#[tokio::test]
async fn bulk_publish_gives_one_result_per_item() {
    let s = Server::start(&format!("{PUBLISHER}[limits]\nmax_frame_bytes = 4096\n")).await;
    let mut c = s.client().await;
    c.subscribe(&["bulk.*"]).await;
    let body = json!([
        {"topic": "bulk.a", "data": {"p": 1}},
        {"topic": "bulk..bad", "data": 1},
        {"topic": "$sys.x", "data": 1},
        {"topic": "bulk.b", "data": 2, "extra": true},
        {"topic": "bulk.a", "data": {"p": 2}},
    ]);
    let (status, results) = post_bulk(&s, Some("pt"), &body.to_string()).await;
    assert_eq!(status, 200, "{results}");
    let r = results.as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0]["topic"].as_str(), r[0]["seq"].as_u64()),
        (Some("bulk.a"), Some(1))
    );
    assert!(r[0]["ts"].as_u64().unwrap() > 0);
    assert!(
        r[1]["error"].as_str().unwrap().contains("empty segment"),
        "{}",
        r[1]
    );
    assert!(
        r[2]["error"].as_str().unwrap().contains("server's own"),
        "{}",
        r[2]
    );
    assert!(
        r[3]["error"].as_str().unwrap().contains("`extra`"),
        "{}",
        r[3]
    );
    assert_eq!(r[4]["seq"], 2);
    assert_eq!(c.update_of("bulk.a").await["data"], json!({"p": 1}));
    assert_eq!(c.update_of("bulk.a").await["data"], json!({"p": 2}));

    assert_eq!(post_bulk(&s, None, "[]").await.0, 401);
    assert_eq!(post_bulk(&s, Some("wrong"), "[]").await.0, 403);
    let (status, body) = post_bulk(&s, Some("pt"), "{\"topic\":\"a\"}").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(post_bulk(&s, Some("pt"), "[]").await.0, 400);
    assert_eq!(post_bulk(&s, Some("pt"), "nope").await.0, 400);
    let big = json!([{"topic": "bulk.c", "data": "x".repeat(5000)}]).to_string();
    assert_eq!(post_bulk(&s, Some("pt"), &big).await.0, 413);
    let plain = Server::start(EMPTY).await;
    assert_eq!(post_bulk(&plain, Some("pt"), "[]").await.0, 404);
}

/// The WebSocket `publish` op: only for tokens whose `[[access]]` grants
/// `publish` patterns, and only to topics they match; one result per item;
/// unknown fields are named.
#[tokio::test]
async fn websocket_publish_needs_a_publish_grant() {
    let s = Server::start(
        "[server]\ntoken = \"root\"\n\
         [[access]]\ntoken = \"pub\"\npatterns = [\"orders.>\"]\npublish = [\"orders.*\"]\n",
    )
    .await;
    let mut root = Client::connect(&format!("{}?token=root", s.ws_url())).await;
    root.send(json!({"op": "publish", "topic": "orders.x", "data": 1, "id": 1}))
        .await;
    let e = root.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{e}"
    );
    root.subscribe(&["orders.>"]).await;

    let mut p = Client::connect(&format!("{}?token=pub", s.ws_url())).await;
    p.send(json!({"op": "publish", "topic": "orders.x", "data": {"n": 1}, "id": 2}))
        .await;
    let r = p.recv().await;
    assert_eq!(r["type"], "published", "{r}");
    assert_eq!(r["id"], 2);
    assert_eq!(r["results"][0]["seq"], 1);
    assert_eq!(root.update_of("orders.x").await["data"], json!({"n": 1}));
    p.send(json!({"op": "publish", "items": [
        {"topic": "orders.y", "data": 1},
        {"topic": "orders.y.z", "data": 2},
        {"topic": "other", "data": 3},
    ], "id": 3}))
        .await;
    let r = p.recv().await;
    let results = r["results"].as_array().unwrap();
    assert_eq!(results[0]["seq"], 1, "{r}");
    assert!(
        results[1]["error"].as_str().unwrap().contains("forbidden"),
        "{r}"
    );
    assert!(
        results[2]["error"].as_str().unwrap().contains("forbidden"),
        "{r}"
    );
    p.send(json!({"op": "publish", "topic": "orders.x", "data": 1, "dta": 2, "id": 4}))
        .await;
    let e = p.recv().await;
    assert_eq!(e["code"], "bad_request", "{e}");
    assert!(e["message"].as_str().unwrap().contains("`dta`"), "{e}");
    p.send(json!({"op": "publish", "topic": "orders.x", "id": 5}))
        .await;
    assert_eq!(p.recv().await["code"], "bad_request");
}

/// `/api/topics` rows (and the `topics` reply) count each topic's
/// subscribers, and only count them.
#[tokio::test]
async fn topic_rows_count_subscribers() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("count.a", &json!(1)).unwrap();
    hub.publish("count.b", &json!(1)).unwrap();
    let mut one = s.client().await;
    one.subscribe(&["count.*"]).await;
    let mut two = s.client().await;
    two.subscribe(&["count.a"]).await;
    let row = |list: &Value, topic: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["topic"] == topic)
            .cloned()
            .unwrap()
    };
    let (_, list) = get_json(&s.http("/api/topics")).await;
    assert_eq!(row(&list, "count.a")["subscribers"], 2, "{list}");
    assert_eq!(row(&list, "count.b")["subscribers"], 1, "{list}");
    assert!(row(&list, "count.a").get("subscriber_ids").is_none());
    one.send(json!({"op": "topics", "id": 1})).await;
    let reply = one.recv_until(|v| v["type"] == "topics").await;
    assert_eq!(row(&reply["topics"], "count.a")["subscribers"], 2);
    drop(two);
    eventually("a closed connection is no longer counted", || async {
        let (_, list) = get_json(&s.http("/api/topics")).await;
        row(&list, "count.a")["subscribers"] == 1
    })
    .await;
}

/// `max_rate` and `delta` are checked: a positive number, a boolean.
#[tokio::test]
async fn max_rate_and_delta_are_validated() {
    let s = Server::start(EMPTY).await;
    let mut c = s.client().await;
    for bad in [json!(0), json!(-1), json!("2"), json!(true)] {
        c.send(json!({"op": "subscribe", "topics": ["a"], "max_rate": bad, "id": 1}))
            .await;
        let e = c.recv().await;
        assert_eq!(e["code"], "bad_request", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("`max_rate` must be a positive number"),
            "{e}"
        );
    }
    c.send(json!({"op": "subscribe", "topics": ["a"], "delta": "yes", "id": 2}))
        .await;
    let e = c.recv().await;
    assert!(e["message"].as_str().unwrap().contains("`delta`"), "{e}");
    c.send(json!({"op": "subscribe", "topics": ["a"], "max_rate": 0.5, "delta": true, "id": 3}))
        .await;
    assert_eq!(c.recv().await["type"], "ack");
}

/// A subscription with `max_rate: 4` under a fast publisher gets at most
/// about 4 updates per second of each topic, each the latest at its time
/// (seq jumps), and the very last value once publishing stops; a plain
/// subscriber of the same topic on the same server gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_delivers_the_latest_value_at_most_at_that_rate() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub().clone();
    hub.publish("fast.x", &json!(0)).unwrap();
    let mut slow = s.client().await;
    slow.send(json!({"op": "subscribe", "topics": ["fast.*"], "max_rate": 4, "id": 1}))
        .await;
    assert_eq!(slow.recv().await["type"], "ack");
    assert_eq!(slow.update_of("fast.x").await["snapshot"], true);
    let mut all = s.client().await;
    all.subscribe(&["fast.x"]).await;
    all.update_of("fast.x").await;
    let started = std::time::Instant::now();
    let publisher = tokio::spawn(async move {
        for i in 1..=300u64 {
            hub.publish("fast.x", &json!(i)).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let mut seqs = Vec::new();
    loop {
        let u = slow.update_of("fast.x").await;
        seqs.push(u["seq"].as_u64().unwrap());
        if u["data"] == 300 {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    publisher.await.unwrap();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let bound = (elapsed * 4.0).ceil() as usize + 2;
    assert!(
        seqs.len() <= bound,
        "{} updates in {elapsed:.2} s (at most {bound}): {seqs:?}",
        seqs.len()
    );
    assert!(seqs.len() < 300, "merged: {seqs:?}");
    // The plain subscriber was not slowed down: it got every one.
    let mut got = 0;
    loop {
        let u = all.update_of("fast.x").await;
        got += 1;
        if u["data"] == 300 {
            break;
        }
    }
    assert_eq!(got, 300);
}

/// Applies a JSON merge patch (RFC 7386), as a client does.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// With `"delta": true` the snapshot (and a resume's replayed updates) are
/// whole; later updates carry only what changed, flagged `"delta": true`, and
/// rebuild the published value exactly.
#[tokio::test]
async fn deltas_carry_only_changes_after_a_whole_snapshot() {
    let s = Server::start("[history]\nsize = 10\n").await;
    let hub = s.ticker.hub();
    let value = |price: u64, note: Option<&str>| {
        let mut v = json!({"symbol": "LONGSYMBOLNAME", "price": price, "desk": {"a": 1, "b": 2}, "tags": ["x", null]});
        if let Some(n) = note {
            v["note"] = json!(n);
        }
        v
    };
    hub.publish("d.x", &value(1, Some("hi"))).unwrap();
    let mut c = s.client().await;
    c.send(json!({"op": "subscribe", "topics": ["d.*"], "delta": true, "id": 1}))
        .await;
    assert_eq!(c.recv().await["type"], "ack");
    let snap = c.update_of("d.x").await;
    assert!(snap.get("delta").is_none(), "{snap}");
    let mut held = snap["data"].clone();
    for (i, v) in [value(2, Some("hi")), value(3, None), value(3, Some("back"))]
        .into_iter()
        .enumerate()
    {
        hub.publish("d.x", &v).unwrap();
        let u = c.update_of("d.x").await;
        assert_eq!(u["delta"], true, "{u}");
        assert_eq!(u["seq"], i as u64 + 2);
        assert!(u["data"].get("symbol").is_none(), "only changes: {u}");
        merge(&mut held, &u["data"]);
        assert_eq!(held, v);
    }
    hub.publish("d.x", &json!({"symbol": null})).unwrap();
    let u = c.update_of("d.x").await;
    assert!(u.get("delta").is_none(), "a null member is sent whole: {u}");

    let epoch = c.hello["epoch"].clone();
    let mut r = s.client().await;
    r.send(json!({"op": "subscribe", "topics": ["d.x"], "delta": true, "since": {"d.x": 2}, "epoch": epoch}))
        .await;
    assert_eq!(r.recv().await["resume"]["ok"], true);
    for want in 3..=5 {
        let u = r.update_of("d.x").await;
        assert_eq!(u["seq"], want);
        assert!(u.get("delta").is_none(), "replays are whole: {u}");
    }
}

/// Measures what deltas save on the synthetic market (`stocks.*`, the shipped
/// config's feed) and on a wide object where one field moves: bytes of the
/// same updates with and without `"delta": true`, and every delta rebuilds
/// the full value. The figures are printed (`--nocapture`) and quoted in the
/// README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_bytes_against_full_updates() {
    let s = Server::start(
        "[[feed]]\nname = \"stocks\"\nkind = \"synthetic\"\ntopic = \"stocks.{symbol}\"\n\
         symbols = [\"AAPL\", \"MSFT\", \"GOOG\", \"AMZN\", \"NVDA\", \"TSLA\", \"META\", \"NFLX\"]\n\
         interval = \"20ms\"\nvolatility = 0.004\n",
    )
    .await;
    let hub = s.ticker.hub().clone();
    let wide = tokio::spawn(async move {
        for i in 0..400u64 {
            let mut v = json!({"host": "web-01.example.net", "region": "eu-west-1", "cpu": i % 97});
            for f in 0..20 {
                v[format!("metric_{f:02}")] = json!(1000 + f);
            }
            hub.publish("wide.host", &v).unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let mut full = s.client().await;
    full.subscribe(&["stocks.*", "wide.*"]).await;
    let mut delta = s.client().await;
    delta
        .send(json!({"op": "subscribe", "topics": ["stocks.*", "wide.*"], "delta": true, "id": 1}))
        .await;
    assert_eq!(delta.recv().await["type"], "ack");
    let (a, b) = tokio::join!(collect_updates(&mut full), collect_updates(&mut delta));
    wide.abort();
    let mut sums: std::collections::HashMap<&str, (usize, usize, usize)> = Default::default();
    for (key, (full_bytes, value)) in &a {
        let Some((delta_bytes, rebuilt)) = b.get(key) else {
            continue;
        };
        assert_eq!(rebuilt, value, "{key:?}: the delta rebuilds the value");
        let kind = if key.0.starts_with("stocks.") {
            "synthetic market (stocks.*)"
        } else {
            "wide object, one field moves"
        };
        let e = sums.entry(kind).or_default();
        e.0 += 1;
        e.1 += full_bytes;
        e.2 += delta_bytes;
    }
    for (kind, (n, f, d)) in &sums {
        eprintln!(
            "delta bytes, {kind}: {n} updates, {f} B whole, {d} B with delta ({:.0}% of whole)",
            *d as f64 * 100.0 / *f as f64
        );
        assert!(*n > 50, "{kind}: {n} updates compared");
        assert!(d < f, "{kind}: deltas save bytes");
    }
}

type Seen = std::collections::HashMap<(String, u64), (usize, Value)>;

/// Reads 1600 updates: per (topic, seq), the frame's bytes and the value it
/// leaves the client holding (deltas merged).
async fn collect_updates(c: &mut Client) -> Seen {
    let mut seen = Seen::new();
    let mut held: std::collections::HashMap<String, Value> = Default::default();
    while seen.len() < 1600 {
        let u = c.recv_until(|v| v["type"] == "update").await;
        let bytes = u.to_string().len();
        let topic = u["topic"].as_str().unwrap().to_string();
        let value = held.entry(topic.clone()).or_insert(Value::Null);
        if u["delta"] == true {
            merge(value, &u["data"]);
        } else {
            *value = u["data"].clone();
        }
        seen.insert((topic, u["seq"].as_u64().unwrap()), (bytes, value.clone()));
    }
    seen
}
