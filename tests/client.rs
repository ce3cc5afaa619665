//! Issue #30: `tickerd::client` against a real server over real sockets:
//! wildcards, snapshot then updates, deltas merged back, resume across a
//! restart of a real `tickerd` child process (`[history] path`) with no gap
//! and no duplicate, JWT refresh past expiry, and a refused publish's reason.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{spawn_tickerd, within, Server, EMPTY};
use tickerd::client::{
    Client, ClientError, ClientOptions, Event, Publisher, State, SubscribeOptions, Subscription,
    Update,
};

/// The next update (a `gone` fails the test), within the deadline.
async fn next_update(sub: &mut Subscription) -> Update {
    match within(sub.recv()).await {
        Some(Event::Update(u)) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

/// Options that reconnect quickly, for tests that restart servers.
fn quick() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

/// A wildcard subscription gets the snapshot of each matching topic (and
/// none of the others), then live updates, each whole and typed; a deleted
/// topic comes as `Gone`.
#[tokio::test]
async fn wildcards_give_snapshots_then_updates() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("w.a", &json!({"p": 1})).unwrap();
    hub.publish("w.b", &json!(2)).unwrap();
    hub.publish("other.c", &json!(3)).unwrap();
    let client = Client::connect(&s.http(""), ClientOptions::default())
        .await
        .unwrap();
    let mut sub = client
        .subscribe(["w.*"], SubscribeOptions::default())
        .await
        .unwrap();
    let mut snaps = [next_update(&mut sub).await, next_update(&mut sub).await];
    snaps.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(
        snaps
            .iter()
            .map(|u| (u.topic.as_str(), u.seq, u.snapshot))
            .collect::<Vec<_>>(),
        [("w.a", 1, true), ("w.b", 1, true)]
    );
    assert_eq!(snaps[0].data, json!({"p": 1}));
    hub.publish("other.c", &json!(4)).unwrap();
    hub.publish("w.a", &json!({"p": 5})).unwrap();
    let u = next_update(&mut sub).await;
    assert_eq!((u.topic.as_str(), u.seq, u.snapshot), ("w.a", 2, false));
    assert_eq!(u.data_as::<Value>().unwrap()["p"], 5);
    assert!(hub.delete_topic("w.b"));
    let gone = within(sub.recv()).await.unwrap();
    assert_eq!(
        gone,
        Event::Gone {
            topic: "w.b".into()
        }
    );
    // The frame as the server sends it, byte for byte (what `sub --json` prints).
    assert_eq!(gone.frame(), r#"{"type":"gone","topic":"w.b"}"#);
    assert!(matches!(*client.state().borrow(), State::Live { .. }));
}

/// With `delta`, the server sends patches (the frame says `"delta":true`) and
/// the caller still sees whole values.
#[tokio::test]
async fn deltas_are_merged_back_into_whole_values() {
    let s = Server::start(EMPTY).await;
    let hub = s.ticker.hub();
    let big = "x".repeat(200);
    hub.publish("d.a", &json!({"name": big, "price": 1, "gone": true}))
        .unwrap();
    let client = Client::connect(&s.http(""), ClientOptions::default())
        .await
        .unwrap();
    let delta = SubscribeOptions {
        delta: true,
        ..SubscribeOptions::default()
    };
    let mut sub = client.subscribe(["d.*"], delta).await.unwrap();
    assert!(next_update(&mut sub).await.snapshot);
    hub.publish("d.a", &json!({"name": big, "price": 2}))
        .unwrap();
    let u = next_update(&mut sub).await;
    assert_eq!(u.data, json!({"name": big, "price": 2}));
    let frame: Value = serde_json::from_str(&Event::Update(u).frame()).unwrap();
    assert_eq!(frame["delta"], json!(true), "{frame}");
    assert_eq!(frame["data"], json!({"price": 2, "gone": null}), "{frame}");
}

/// A free port on 127.0.0.1, for a server that must come back on the same one.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A real `tickerd` child with a durable store is killed and started again on
/// the same port while a client follows a topic; updates published before,
/// and after the restart, arrive exactly once each, in order, with no gap and
/// no second snapshot: the client resumed from its last seq in the same epoch.
#[tokio::test]
async fn resumes_across_a_server_restart_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublish_token = \"pt\"\n\
             [history]\nsize = 1000\npath = \"data\"\nsync = \"always\"\n"
        ),
    )
    .unwrap();
    let args = ["-c".as_ref(), config.as_os_str()];
    let (mut child, addr) = spawn_tickerd(dir.path(), &args).await;
    let url = format!("http://{addr}");
    let publisher = Publisher::new(&url, Some("pt".into())).unwrap();
    for n in 1..=3 {
        publisher.publish("r.a", &json!({ "n": n })).await.unwrap();
    }
    let client = Client::connect(&url, quick()).await.unwrap();
    let mut sub = client
        .subscribe(["r.*"], SubscribeOptions::default())
        .await
        .unwrap();
    let first = next_update(&mut sub).await;
    assert_eq!((first.seq, first.snapshot), (3, true));
    publisher.publish("r.a", &json!({"n": 4})).await.unwrap();
    assert_eq!(next_update(&mut sub).await.seq, 4);

    child.start_kill().unwrap();
    within(child.wait()).await.unwrap();
    let mut state = client.state();
    within(state.wait_for(|s| matches!(s, State::Reconnecting { .. })))
        .await
        .unwrap();
    let (mut child, again) = spawn_tickerd(dir.path(), &args).await;
    assert_eq!(again, addr);
    // Some of these land before the client is back (a resumed backlog), some after.
    for n in 5..=12 {
        publisher.publish("r.a", &json!({ "n": n })).await.unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.last() != Some(&12) {
        let u = next_update(&mut sub).await;
        assert!(
            !u.snapshot,
            "a resume within one epoch sends no snapshot: {u:?}"
        );
        assert_eq!(u.data["n"], json!(u.seq));
        seqs.push(u.seq);
    }
    assert_eq!(seqs, (5..=12).collect::<Vec<_>>());
    child.start_kill().unwrap();
}

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes";

/// An HS256 JWT for `a.>` that expires `secs` from now.
fn jwt(secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "client", "exp": now + secs, "topics": ["a.>"]});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A server with `[auth.jwt]` (the HS256 [`SECRET`], no leeway).
async fn jwt_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt.secret"), SECRET).unwrap();
    Server::start_in(
        dir,
        "[server]\ntoken = \"static\"\n[auth.jwt]\nhs256_secrets = [\"file:jwt.secret\"]\nleeway = \"0s\"\n",
    )
    .await
}

/// Publishes to `a.x` every 100 ms for `secs` seconds, reading each update
/// back: the seqs the subscription saw.
async fn follow(s: &Server, sub: &mut Subscription, secs: u64) -> (u64, Vec<u64>) {
    let hub = s.ticker.hub();
    let start = std::time::Instant::now();
    let mut n = 0u64;
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        n += 1;
        hub.publish("a.x", &json!(n)).unwrap();
        seen.push(next_update(sub).await.seq);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (n, seen)
}

/// Tokens live 4 s (no leeway); the callback hands out fresh ones. Updates
/// published over two such lifetimes all arrive, in order, once each: the
/// client sent `refresh` before each `exp` and asked the callback each time.
#[tokio::test]
async fn refreshes_the_token_past_its_expiry() {
    let s = jwt_server().await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let options = quick().refresh(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::convert::Infallible>(jwt(4)) }
    });
    let client = Client::connect(&s.http(""), options).await.unwrap();
    let mut states = client.state();
    let mut sub = client
        .subscribe(["a.*"], SubscribeOptions::default())
        .await
        .unwrap();
    let (n, seen) = follow(&s, &mut sub, 8).await;
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    let asked = calls.load(Ordering::SeqCst);
    assert!(asked >= 3, "{asked} tokens asked for");
    assert!(
        !states.has_changed().unwrap(),
        "refreshed in place, never reconnected: {:?}",
        *states.borrow_and_update()
    );
}

/// When a refresh in place is refused (the callback's token is no good then)
/// the server closes the connection at `exp` (4001): the client asks the
/// callback again at once, reconnects and resumes, so nothing is missed.
#[tokio::test]
async fn reconnects_with_a_fresh_token_when_the_server_says_it_expired() {
    let s = jwt_server().await;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    // Odd calls (each connection's) are good, even ones (the refreshes) not.
    let options =
        quick().refresh(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, std::convert::Infallible>(if n % 2 == 0 { jwt(2) } else { "bad".into() })
            }
        });
    let client = Client::connect(&s.http(""), options).await.unwrap();
    let mut states = client.state();
    let expired = tokio::spawn(async move {
        states
            .wait_for(|s| matches!(s, State::Reconnecting { error, .. } if error.contains("4001")))
            .await
            .is_ok()
    });
    let mut sub = client
        .subscribe(["a.*"], SubscribeOptions::default())
        .await
        .unwrap();
    let (n, seen) = follow(&s, &mut sub, 6).await;
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    assert!(
        within(expired).await.unwrap(),
        "the server closed it with 4001"
    );
    assert!(calls.load(Ordering::SeqCst) >= 3);
}

/// A refused publish says why, in the server's words: the whole request (a
/// wrong token) or one item of a batch (the others are published).
#[tokio::test]
async fn a_refused_publish_carries_the_servers_reason() {
    let s = Server::start("[server]\npublish_token = \"pt\"\n").await;
    let wrong = Publisher::new(&s.http(""), Some("nope".into())).unwrap();
    match wrong.publish("p.a", &json!(1)).await {
        Err(ClientError::Refused { status, reason, .. }) => {
            assert_eq!((status, reason.as_str()), (403, "wrong publish token"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let right = Publisher::new(&s.http(""), Some("pt".into())).unwrap();
    let items = [
        ("p.a".to_string(), json!(1)),
        ("p..bad".to_string(), json!(2)),
    ];
    let out = right.publish_many(&items).await.unwrap();
    assert_eq!(out[0].as_ref().unwrap().seq, Some(1));
    let reason = out[1].as_ref().unwrap_err();
    assert!(reason.contains("empty segment"), "{reason}");
    let client = Client::connect(&s.http(""), ClientOptions::default())
        .await
        .unwrap();
    let bad = client
        .subscribe(
            ["p.*"],
            SubscribeOptions {
                max_rate: Some(-1.0),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(&bad, Err(ClientError::Server { code, .. }) if code == "bad_request"),
        "{bad:?}"
    );
}

/// More wildcard subscriptions at once than the server's burst of expensive
/// requests: the ones it answers `rate_limited` are sent again later, so every
/// subscribe succeeds and every subscription gets the topic.
#[tokio::test]
async fn rate_limited_subscribes_are_sent_again() {
    let s = Server::start(EMPTY).await;
    let client = Client::connect(&s.http(""), ClientOptions::default())
        .await
        .unwrap();
    let mut subs = Vec::new();
    for i in 0..30 {
        let pattern = if i % 2 == 0 { "many.*" } else { "many.>" };
        subs.push(
            client
                .subscribe([pattern], SubscribeOptions::default())
                .await
                .unwrap_or_else(|e| panic!("subscribe {i}: {e}")),
        );
    }
    s.ticker.hub().publish("many.a", &json!(1)).unwrap();
    for sub in &mut subs {
        assert_eq!(next_update(sub).await.topic, "many.a");
    }
}
