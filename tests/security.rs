//! Security and hardening over real sockets: tokens and grants, origins,
//! metrics, limits, and hostile bytes on the raw TCP socket.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use support::{get_json, within, Client, Server, EMPTY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// Connects to `url` with extra headers; the HTTP status on refusal.
async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match within(tokio_tungstenite::connect_async(req)).await {
        Ok((ws, _)) => {
            let mut c = Client {
                ws,
                hello: serde_json::Value::Null,
            };
            c.hello = c.recv().await;
            assert_eq!(c.hello["type"], "hello");
            Ok(c)
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

/// GET with optional bearer token; the status.
async fn status_of(url: &str, bearer: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    within(req.send()).await.unwrap().status().as_u16()
}

/// Sends raw bytes on a fresh TCP connection and reads until the server closes
/// it (or resets it); returns what was read.
async fn raw_exchange(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    within(async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// `server.token` guards `/ws` and `/api` by header or query, answering 401
/// before any upgrade, and leaves `/healthz` open.
#[tokio::test]
async fn token_guards_ws_and_api() {
    let s = Server::start("[server]\ntoken = \"s3cret\"\n").await;
    let ws = s.ws_url();
    assert_eq!(ws_connect(&ws, &[]).await.err(), Some(401));
    assert_eq!(
        ws_connect(&format!("{ws}?token=nope"), &[]).await.err(),
        Some(401)
    );
    assert_eq!(
        ws_connect(&ws, &[("authorization", "Bearer nope")])
            .await
            .err(),
        Some(401)
    );
    assert!(ws_connect(&format!("{ws}?token=s3cret"), &[]).await.is_ok());
    assert!(ws_connect(&ws, &[("authorization", "Bearer s3cret")])
        .await
        .is_ok());

    let api = s.http("/api/topics");
    assert_eq!(status_of(&api, None).await, 401);
    assert_eq!(status_of(&api, Some("nope")).await, 401);
    assert_eq!(status_of(&api, Some("s3cret")).await, 200);
    assert_eq!(status_of(&format!("{api}?token=s3cret"), None).await, 200);
    assert_eq!(status_of(&format!("{api}?token=s3cre"), None).await, 401);
    assert_eq!(status_of(&s.http("/healthz"), None).await, 200);
    assert!(s.metric("tickerd_auth_failures_total").await >= 6.0);
}

const ACCESS: &str = r#"
[server]
token = "root"

[[access]]
token = "stocks-ro"
patterns = ["stocks.>", "$sys.feeds"]

[[access]]
token = "one"
patterns = ["stocks.AAPL"]
"#;

/// An `[[access]]` token may subscribe only within its patterns (`forbidden`
/// otherwise, connection kept), and `topics` and `/api/*` show only what it
/// may read.
#[tokio::test]
async fn access_grants_limit_what_a_token_reads() {
    let s = Server::start(ACCESS).await;
    s.ticker
        .hub()
        .publish("stocks.AAPL", &json!({"p": 1}))
        .unwrap();
    s.ticker
        .hub()
        .publish("host.cpu", &json!({"pct": 3}))
        .unwrap();
    let url = format!("{}?token=stocks-ro", s.ws_url());
    let mut c = ws_connect(&url, &[]).await.unwrap();

    for forbidden in [">", "host.cpu", "*.AAPL", "$sys.*", "$sys.config"] {
        c.send(json!({"op": "subscribe", "topics": [forbidden], "id": forbidden}))
            .await;
        let e = c.recv().await;
        assert_eq!(e["type"], "error", "{forbidden}: {e}");
        assert_eq!(e["code"], "forbidden", "{forbidden}: {e}");
        assert_eq!(e["id"], forbidden);
    }
    c.subscribe(&["stocks.*", "$sys.feeds"]).await;
    assert_eq!(c.update_of("stocks.AAPL").await["snapshot"], true);

    c.send(json!({"op": "topics", "id": 9})).await;
    let t = c.recv_until(|v| v["type"] == "topics").await;
    let names: Vec<&str> = t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stocks.AAPL"], "{t}");

    let (code, body) = get_json(&s.http("/api/topics?token=stocks-ro")).await;
    assert_eq!(code, 200);
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    let (code, body) = get_json(&s.http("/api/topics?token=root")).await;
    assert_eq!(code, 200);
    assert!(body.as_array().unwrap().len() >= 3, "{body}");
    assert_eq!(
        status_of(&s.http("/api/topics/host.cpu"), Some("stocks-ro")).await,
        403
    );
    assert_eq!(
        status_of(&s.http("/api/topics/stocks.AAPL"), Some("stocks-ro")).await,
        200
    );
    assert_eq!(
        status_of(&s.http("/api/feeds"), Some("stocks-ro")).await,
        200
    );
    assert_eq!(status_of(&s.http("/api/feeds"), Some("one")).await, 403);

    let mut one = ws_connect(&format!("{}?token=one", s.ws_url()), &[])
        .await
        .unwrap();
    one.send(json!({"op": "subscribe", "topics": ["stocks.*"]}))
        .await;
    assert_eq!(one.recv().await["code"], "forbidden");
    one.subscribe(&["stocks.AAPL"]).await;

    let mut root = ws_connect(&format!("{}?token=root", s.ws_url()), &[])
        .await
        .unwrap();
    root.subscribe(&[">", "$sys.config"]).await;
}

/// `allowed_origins` refuses a foreign browser Origin with 403 and lets a
/// listed Origin and a request without Origin through.
#[tokio::test]
async fn origin_allow_list_is_enforced() {
    let s = Server::start("[server]\nallowed_origins = [\"https://good.example\"]\n").await;
    let ws = s.ws_url();
    assert_eq!(
        ws_connect(&ws, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(&ws, &[("origin", "null")]).await.err(),
        Some(403)
    );
    assert!(ws_connect(&ws, &[("origin", "https://good.example")])
        .await
        .is_ok());
    assert!(ws_connect(&ws, &[]).await.is_ok());
    assert!(s.metric("tickerd_connections_rejected_total").await >= 2.0);
}

/// `/metrics` names every figure ops needs, and they move with traffic,
/// feeds, conflation and reloads.
#[tokio::test]
async fn metrics_are_present_and_moving() {
    let config = "[limits]\nqueue = 2\n\n[[feed]]\nname = \"stocks\"\nkind = \"synthetic\"\ntopic = \"stocks.{symbol}\"\nsymbols = [\"A\"]\ninterval = \"20ms\"\n";
    let s = Server::start(config).await;
    for name in [
        "tickerd_connections ",
        "tickerd_subscriptions ",
        "tickerd_updates_published_total ",
        "tickerd_frames_sent_total ",
        "tickerd_frames_conflated_total ",
        "tickerd_bytes_out_total ",
        "tickerd_reloads_total ",
        "tickerd_reload_failures_total ",
        "tickerd_feed_updates_total{feed=\"stocks\"",
        "tickerd_feed_errors_total{feed=\"stocks\"",
        "tickerd_feed_state{feed=\"stocks\"",
    ] {
        s.metric(name).await;
    }
    let sent0 = s.metric("tickerd_frames_sent_total ").await;
    let mut c = s.client().await;
    c.subscribe(&["stocks.*", "x.y"]).await;
    c.update_of("stocks.A").await;
    assert_eq!(s.metric("tickerd_connections ").await, 1.0);
    assert_eq!(s.metric("tickerd_subscriptions ").await, 2.0);
    assert!(s.metric("tickerd_frames_sent_total ").await > sent0);
    assert!(s.metric("tickerd_bytes_out_total ").await > 0.0);
    let feed0 = s.metric("tickerd_feed_updates_total{feed=\"stocks\"").await;
    support::eventually("the feed's update counter moves", || async {
        s.metric("tickerd_feed_updates_total{feed=\"stocks\"").await > feed0
    })
    .await;

    // Publishing in a loop without yielding overflows the 2-frame queue.
    let conflated0 = s.metric("tickerd_frames_conflated_total ").await;
    for i in 0..50 {
        s.ticker.hub().publish("x.y", &json!(i)).unwrap();
    }
    assert!(s.metric("tickerd_frames_conflated_total ").await > conflated0);
    let last = c
        .recv_until(|v| v["topic"] == "x.y" && v["data"] == 49)
        .await;
    assert_eq!(last["seq"], 50);

    support::write_atomic(&s.config_path, config.replace("20ms", "30ms"));
    s.ticker.reload().await.unwrap();
    support::write_atomic(&s.config_path, "[limits]\nqueue = 0\n");
    assert!(s.ticker.reload().await.is_err());
    assert!(s.metric("tickerd_reloads_total ").await >= 1.0);
    assert!(s.metric("tickerd_reload_failures_total ").await >= 1.0);
    drop(c);
    support::eventually("the connection gauge falls", || async {
        s.metric("tickerd_connections ").await == 0.0
    })
    .await;
}

/// Hostile bytes on the raw socket (a TLS ClientHello, random bytes, a 100 KB
/// header, a WebSocket request without upgrade headers) get an error or a
/// closed socket, never a success, and the server keeps serving.
#[tokio::test]
async fn junk_on_the_socket_is_refused_and_the_server_keeps_serving() {
    let s = Server::start(EMPTY).await;
    // The start of a real TLS 1.2 ClientHello record.
    let hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x5e, 0x2a, 0x11, 0x00,
        0xff, 0x13, 0x01, 0x13, 0x02, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00, 0x09,
    ];
    let out = raw_exchange(&s, hello).await;
    assert!(out.starts_with(b"HTTP/1.1 400"), "{out:?}");

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = raw_exchange(&s, &random).await;
    assert!(out.starts_with(b"HTTP/1.1 400"), "{out:?}");

    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    // hyper answers 431; the kernel may turn the close into a reset first.
    let out = raw_exchange(&s, &big).await;
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    let out = raw_exchange(
        &s,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = String::from_utf8_lossy(&out);
    assert!(head.starts_with("HTTP/1.1 4"), "{head}");

    let mut c = s.client().await;
    c.send(json!({"op": "ping", "id": 1})).await;
    assert_eq!(c.recv().await["type"], "pong");
    assert_eq!(status_of(&s.http("/healthz"), None).await, 200);
}

/// A client that never finishes its headers (slowloris) does not block
/// others, and is dropped after `limits.header_timeout`.
#[tokio::test]
async fn slowloris_is_dropped_after_the_header_timeout() {
    let s = Server::start("[limits]\nheader_timeout = \"300ms\"\n").await;
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Others are served while it dangles.
    let mut c = s.client().await;
    c.send(json!({"op": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
    // The server gives up on it (EOF, a reset, or a 408 then EOF).
    let mut buf = Vec::new();
    let _ = within(slow.read_to_end(&mut buf)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout"
    );
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "{buf:?}"
    );
}

/// `limits.max_connections_per_ip` answers 503 to one connection too many from
/// the same address, and the slot comes back when one closes.
#[tokio::test]
async fn per_ip_cap_refuses_the_extra_connection() {
    let s = Server::start("[limits]\nmax_connections_per_ip = 3\n").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(s.client().await);
    }
    assert_eq!(ws_connect(&s.ws_url(), &[]).await.err(), Some(503));
    drop(open.pop());
    support::eventually("the slot is released", || async {
        ws_connect(&s.ws_url(), &[]).await.is_ok()
    })
    .await;
}

/// A binary frame is answered `bad_request` and the connection stays open.
#[tokio::test]
async fn binary_frame_gets_bad_request_and_connection_stays() {
    let s = Server::start(EMPTY).await;
    let mut c = s.client().await;
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let e = c.recv().await;
    assert_eq!(e["code"], "bad_request", "{e}");
    c.send(json!({"op": "ping", "id": 2})).await;
    let pong = c.recv().await;
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_i64()),
        (Some("pong"), Some(2))
    );
}

/// A subscribe naming more patterns than `max_subscriptions` is refused with
/// `too_many_subscriptions` and the connection stays usable.
#[tokio::test]
async fn oversized_subscribe_is_refused() {
    let s = Server::start("[limits]\nmax_subscriptions = 4\n").await;
    let mut c = s.client().await;
    let many: Vec<String> = (0..5000).map(|i| format!("t.n{i}")).collect();
    c.send(json!({"op": "subscribe", "topics": many, "id": 1}))
        .await;
    assert_eq!(c.recv().await["code"], "too_many_subscriptions");
    c.subscribe(&["a", "b", "c", "d"]).await;
    c.send(json!({"op": "subscribe", "topics": ["e"], "id": 2}))
        .await;
    assert_eq!(c.recv().await["code"], "too_many_subscriptions");
}

/// `limits.max_topics` refuses a topic past the cap with 507 and a message
/// saying the server holds its maximum (the topic itself is valid), while
/// topics that exist keep taking updates.
#[tokio::test]
async fn topic_count_is_capped() {
    let s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n[limits]\nmax_topics = 2\n",
    )
    .await;
    let publish = |topic: &'static str| {
        let url = s.http(&format!("/api/publish/{topic}"));
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth("pt")
                .body("1")
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // `$sys.config` exists too: `$` topics do not count against the cap.
    assert_eq!(publish("a.one").await.0, 200);
    assert_eq!(publish("a.two").await.0, 200);
    let (status, body) = publish("a.three").await;
    assert_eq!(status, 507, "{body}");
    assert!(
        body.contains("already holds its maximum of 2 topics ([limits] max_topics)"),
        "{body}"
    );
    assert!(!body.contains("invalid topic"), "{body}");
    assert_eq!(
        publish("a.one").await.0,
        200,
        "an existing topic still updates"
    );
}
