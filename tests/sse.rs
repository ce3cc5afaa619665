//! `GET /sse` (docs/protocol.md, "Server-Sent Events") over real sockets:
//! the WebSocket's frames as events, resume by `Last-Event-ID`, the same
//! auth and limits, and a client that never reads is dropped.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::sse::{Event, Sse};
use support::{eventually, within, Server, EMPTY};
use tokio::io::AsyncWriteExt;

/// hello, the ack, the snapshot, then live updates (a topic created later
/// too), each update with its `epoch/topic/seq` id; heartbeat comments; the
/// headers proxies need.
#[tokio::test]
async fn snapshot_then_live_updates_with_ids_and_heartbeats() {
    let s = Server::start("[server]\nheartbeat = \"1s\"\n").await;
    let hub = s.ticker.hub();
    hub.publish("a.x", &json!({"p": 1})).unwrap();
    let mut sse = Sse::open(&s.http("/sse?topics=a.*,b.>"), &[])
        .await
        .unwrap();
    let h = sse.resp.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    let (_, hello) = sse.frame().await;
    assert_eq!(hello["type"], "hello");
    let epoch = hello["epoch"].as_str().unwrap().to_string();
    let (_, ack) = sse.frame().await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["topics"], json!(["a.*", "b.>"]));
    let (id, snap) = sse.frame().await;
    assert_eq!(snap["snapshot"], true);
    assert_eq!(snap["data"], json!({"p": 1}));
    assert_eq!(id.unwrap(), format!("{epoch}/a.x/1"));
    hub.publish("a.x", &json!({"p": 2})).unwrap();
    let (id, live) = sse.frame().await;
    assert_eq!(live["seq"], 2);
    assert!(live.get("snapshot").is_none());
    assert_eq!(id.unwrap(), format!("{epoch}/a.x/2"));
    hub.publish("b.c.d", &json!("new")).unwrap();
    let (id, new) = sse.frame().await;
    assert_eq!(
        (new["topic"].as_str(), new["seq"].as_u64()),
        (Some("b.c.d"), Some(1))
    );
    assert_eq!(id.unwrap(), format!("{epoch}/b.c.d/1"));
    hub.publish("other.x", &json!(0)).unwrap();
    // Nothing more: the next thing is a heartbeat comment.
    match sse.next().await {
        Event::Comment(c) => assert_eq!(c, "ping"),
        e => panic!("expected a heartbeat, got {e:?}"),
    }
}

/// `Last-Event-ID` resumes its topic like `since`: the retained updates after
/// it, no snapshot; `?since=` does the same for several topics; a foreign
/// epoch gets snapshots and says so in the ack.
#[tokio::test]
async fn last_event_id_resumes_like_since() {
    let s = Server::start("[history]\nsize = 10\n").await;
    let hub = s.ticker.hub();
    for i in 1..=5 {
        hub.publish("a.x", &json!(i)).unwrap();
        hub.publish("a.y", &json!(i)).unwrap();
    }
    let epoch = hub.epoch().to_string();
    let last = format!("{epoch}/a.x/3");
    let mut sse = Sse::open(&s.http("/sse?topics=a.x"), &[("Last-Event-ID", &last)])
        .await
        .unwrap();
    sse.frame().await; // hello
    let (_, ack) = sse.frame().await;
    assert_eq!(ack["resume"], json!({"ok": true}), "{ack}");
    for want in [4, 5] {
        let (id, u) = sse.frame().await;
        assert_eq!(u["seq"], want);
        assert!(u.get("snapshot").is_none(), "{u}");
        assert_eq!(id.unwrap(), format!("{epoch}/a.x/{want}"));
    }
    hub.publish("a.x", &json!(6)).unwrap();
    assert_eq!(sse.frame().await.1["seq"], 6);

    let url = s.http(&format!("/sse?topics=a.*&since=a.x:4,a.y:2&epoch={epoch}"));
    let mut sse = Sse::open(&url, &[]).await.unwrap();
    sse.frame().await;
    assert_eq!(sse.frame().await.1["resume"]["ok"], true);
    let mut got = Vec::new();
    for _ in 0..5 {
        let (_, u) = sse.frame().await;
        assert!(u.get("snapshot").is_none(), "{u}");
        got.push(format!("{}:{}", u["topic"].as_str().unwrap(), u["seq"]));
    }
    got.sort();
    assert_eq!(got, ["a.x:5", "a.x:6", "a.y:3", "a.y:4", "a.y:5"]);

    let mut sse = Sse::open(
        &s.http("/sse?topics=a.x"),
        &[("Last-Event-ID", "old/a.x/3")],
    )
    .await
    .unwrap();
    sse.frame().await;
    let (_, ack) = sse.frame().await;
    assert_eq!(ack["resume"]["ok"], false, "{ack}");
    let (_, snap) = sse.frame().await;
    assert_eq!(
        (snap["seq"].as_u64(), snap["snapshot"].as_bool()),
        (Some(6), Some(true))
    );
}

/// The WebSocket's auth and limits: 401 without a token (header or
/// `?token=`), 403 for a pattern outside the token's grant, 400 for a bad
/// pattern, too many patterns or an unknown parameter (named).
#[tokio::test]
async fn the_same_tokens_grants_and_limits_as_the_websocket() {
    let s = Server::start(
        "[server]\ntoken = \"root\"\n[limits]\nmax_subscriptions = 2\n\
         [[access]]\ntoken = \"ro\"\npatterns = [\"a.>\"]\n",
    )
    .await;
    let refused = |r: Result<Sse, (u16, String)>| r.err().expect("refused");
    let (status, _) = refused(Sse::open(&s.http("/sse?topics=a.x"), &[]).await);
    assert_eq!(status, 401);
    let (status, _) = refused(Sse::open(&s.http("/sse?topics=a.x&token=nope"), &[]).await);
    assert_eq!(status, 401);
    let mut ok = Sse::open(&s.http("/sse?topics=a.x&token=root"), &[])
        .await
        .unwrap();
    assert_eq!(ok.frame().await.1["type"], "hello");
    let bearer = [("Authorization", "Bearer ro")];
    let mut ok = Sse::open(&s.http("/sse?topics=a.*"), &bearer)
        .await
        .unwrap();
    assert_eq!(ok.frame().await.1["type"], "hello");
    let (status, body) = refused(Sse::open(&s.http("/sse?topics=b.*"), &bearer).await);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("b.*"), "{body}");
    let (status, body) = refused(Sse::open(&s.http("/sse?topics=a..x"), &bearer).await);
    assert_eq!(status, 400, "{body}");
    let (status, body) = refused(Sse::open(&s.http("/sse?topics=a.x,a.y,a.z"), &bearer).await);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at most 2"), "{body}");
    let (status, body) = refused(Sse::open(&s.http("/sse?topics=a.x&tpoics=1"), &bearer).await);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`tpoics`"), "{body}");
    let (status, _) = refused(Sse::open(&s.http("/sse"), &bearer).await);
    assert_eq!(status, 400);
}

/// Connection caps count SSE streams and WebSockets together.
#[tokio::test]
async fn streams_count_against_the_connection_caps() {
    let s = Server::start("[limits]\nmax_connections = 2\n").await;
    let mut sse = Sse::open(&s.http("/sse?topics=a"), &[]).await.unwrap();
    sse.frame().await;
    let _ws = s.client().await;
    let (status, body) = Sse::open(&s.http("/sse?topics=a"), &[])
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    drop(sse);
    eventually("the stream's slot is given back", || async {
        s.metric("tickerd_connections ").await == 1.0
    })
    .await;
    let mut again = Sse::open(&s.http("/sse?topics=a"), &[]).await.unwrap();
    assert_eq!(again.frame().await.1["type"], "hello");
}

/// A client that never reads: its queue stays bounded (conflation), and once
/// nothing has been taken for two heartbeats it is dropped, counted as
/// `write_timeout`, with its connection slot and subscription given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped() {
    // A short queue: conflation starts within the first stalled write, on
    // however slow a machine.
    let config = format!("{EMPTY}heartbeat = \"1s\"\n[limits]\nqueue = 8\n");
    let s = Server::start(&config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(s.addr).await.unwrap();
    let head = format!("GET /sse?topics=big.* HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    tcp.write_all(head.as_bytes()).await.unwrap();
    eventually("the stream is subscribed", || async {
        s.metric("tickerd_subscriptions ").await == 1.0
    })
    .await;
    let hub = s.ticker.hub().clone();
    let value = json!({"pad": "x".repeat(16 * 1024)});
    let publishing = tokio::spawn(async move {
        loop {
            for t in 0..32 {
                hub.publish(&format!("big.t{t}"), &value).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    eventually("the silent stream is dropped", || async {
        s.metric("tickerd_connections_closed_total{reason=\"write_timeout\"}")
            .await
            >= 1.0
    })
    .await;
    eventually("its slot and subscription are given back", || async {
        s.metric("tickerd_connections ").await == 0.0
            && s.metric("tickerd_subscriptions ").await == 0.0
    })
    .await;
    assert!(s.metric("tickerd_frames_conflated_total ").await > 0.0);
    publishing.abort();
    drop(tcp);
}

/// When the watchdog drops streams that never read, their TCP connections
/// go with them (and whatever the server had queued for them): a client that
/// finally reads gets what was already in the kernel's buffers, then the end
/// of the connection, without the end of the response, rather than a stream
/// that lives on, holding its bytes, until the peer closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_drops_its_socket() {
    use tokio::io::AsyncReadExt;
    // A long header timeout: an idle keep-alive connection is not what ends it.
    let config = format!("{EMPTY}heartbeat = \"1s\"\n[limits]\nheader_timeout = \"120s\"\n");
    let s = Server::start(&config).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(s.addr).await.unwrap();
        let head = format!("GET /sse?topics=big.* HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
        tcp.write_all(head.as_bytes()).await.unwrap();
        streams.push(tcp);
    }
    eventually("the streams are subscribed", || async {
        s.metric("tickerd_subscriptions ").await == 3.0
    })
    .await;
    let hub = s.ticker.hub().clone();
    let value = json!({"pad": "x".repeat(64 * 1024)});
    let publishing = tokio::spawn(async move {
        loop {
            for t in 0..16 {
                hub.publish(&format!("big.t{t}"), &value).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    eventually("the silent streams are dropped", || async {
        s.metric("tickerd_connections_closed_total{reason=\"write_timeout\"}")
            .await
            >= 3.0
    })
    .await;
    publishing.abort();
    eventually("their slots are given back", || async {
        s.metric("tickerd_connections ").await == 0.0
    })
    .await;
    for mut tcp in streams {
        // Reads what the kernel still had, then the end (or a reset).
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        within(async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        let keep = tail.len().saturating_sub(16);
                        tail.drain(..keep);
                    }
                }
            }
        })
        .await;
        assert!(
            !tail.ends_with(b"0\r\n\r\n"),
            "the response was ended and its connection kept, not dropped"
        );
    }
}

/// `max_rate` and `delta` work on a stream as on a WebSocket subscribe, and
/// are checked the same way.
#[tokio::test]
async fn max_rate_and_delta_on_a_stream() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    let v = |p: u64| json!({"name": "a fairly long constant name", "price": p});
    hub.publish("d.x", &v(1)).unwrap();
    let mut sse = Sse::open(&s.http("/sse?topics=d.*&delta=true&max_rate=1000"), &[])
        .await
        .unwrap();
    sse.frame().await;
    sse.frame().await;
    let (_, snap) = sse.frame().await;
    assert_eq!(snap["data"], v(1));
    hub.publish("d.x", &v(2)).unwrap();
    let (id, u) = sse.frame().await;
    assert_eq!(u["delta"], true, "{u}");
    assert_eq!(u["data"], json!({"price": 2}));
    assert!(id.unwrap().ends_with("/d.x/2"));
    for bad in ["max_rate=0", "max_rate=x", "delta=yes"] {
        let url = s.http(&format!("/sse?topics=d.x&{bad}"));
        let (status, body) = Sse::open(&url, &[]).await.err().expect("refused");
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// `/sse` keeps the resume rule of `/ws`: 19 busy topics with 100 retained
/// updates each (past the 1,024 frames queued before conflation) resumed by
/// `?since=` arrive whole and in order, and the ack says `ok`.
#[tokio::test]
async fn a_large_resume_is_delivered_whole() {
    let s = Server::start("[history]\nsize = 100\n").await;
    let hub = s.ticker.hub();
    let topics = support::resume::publish_busy(hub, 19, 150);
    let since = support::resume::since_each(&topics, 50);
    let list: Vec<String> = topics.iter().map(|t| format!("{t}:50")).collect();
    let url = s.http(&format!(
        "/sse?topics=%3E&since={}&epoch={}",
        list.join(","),
        hub.epoch()
    ));
    let mut sse = Sse::open(&url, &[]).await.unwrap();
    sse.frame().await; // hello
    let (_, ack) = sse.frame().await;
    assert_eq!(ack["resume"], json!({"ok": true}), "{ack}");
    let got = support::resume::collect_until_last(&since, 150, async || sse.frame().await.1).await;
    support::resume::assert_whole(&got, &since, 150);
}

/// `/sse` takes a WebSocket `subscribe`'s fields under the same names (the
/// list read from the WebSocket's own error, so a new field cannot be left
/// out), and refuses them with the same texts: an unknown name with the same
/// did-you-mean, a bad `max_rate` or `delta` with the subscribe's words.
#[tokio::test]
async fn the_same_names_and_texts_as_a_subscribe() {
    let s = Server::start(EMPTY).await;
    let mut c = s.client().await;
    c.send(json!({"op": "subscribe", "topics": ["a"], "maxrate": 2, "id": 1}))
        .await;
    let e = c.recv().await;
    let ws_msg = e["message"].as_str().unwrap().to_string();
    assert!(ws_msg.contains("did you mean `max_rate`?"), "{e}");
    let fields: Vec<String> = ws_msg
        .rsplit_once("expected ")
        .unwrap()
        .1
        .trim_end_matches(')')
        .replace(" or ", ", ")
        .split(", ")
        .map(|f| f.trim_matches('`').to_string())
        .filter(|f| f != "op" && f != "id")
        .collect();
    assert!(fields.contains(&"max_rate".to_string()), "{fields:?}");
    for field in &fields {
        let value = match field.as_str() {
            "topics" => "a.b",
            "since" => "a.b:1",
            "epoch" => "E",
            "max_rate" => "2",
            "delta" => "true",
            other => panic!("subscribe takes `{other}`: give it a value here"),
        };
        let url = s.http(&format!("/sse?topics=a.b&{field}={value}"));
        let mut ok = Sse::open(&url, &[])
            .await
            .unwrap_or_else(|e| panic!("/sse refused `{field}`: {e:?}"));
        assert_eq!(ok.frame().await.1["type"], "hello");
    }
    let refused = |r: Result<Sse, (u16, String)>| r.err().expect("refused");
    let (status, body) = refused(Sse::open(&s.http("/sse?topics=a&maxrate=2"), &[]).await);
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    let msg = error["error"].as_str().unwrap();
    assert!(
        msg.contains("`maxrate`") && msg.contains("did you mean `max_rate`?"),
        "{msg}"
    );
    for (query, ws_value) in [("max_rate=-1", json!(-1)), ("delta=yes", json!("yes"))] {
        let name = query.split('=').next().unwrap();
        let mut request = json!({"op": "subscribe", "topics": ["a"], "id": 2});
        request[name] = ws_value;
        c.send(request).await;
        let ws_msg = c.recv().await["message"].as_str().unwrap().to_string();
        let url = s.http(&format!("/sse?topics=a&{query}"));
        let (status, body) = refused(Sse::open(&url, &[]).await);
        assert_eq!(status, 400, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        let msg = error["error"].as_str().unwrap();
        assert!(
            msg.starts_with(&ws_msg),
            "/sse says `{msg}`, a subscribe `{ws_msg}`"
        );
    }
}
