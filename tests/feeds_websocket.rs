//! The `websocket` feed against a real local upstream (an axum WebSocket server
//! driven by the test): fan-out, `send` on every connect, bad messages, a dropped
//! connection, refused connections, and staleness on `$sys.feeds` and `/api/topics`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::routing::get;
use serde_json::json;
use support::feeds::{refused_addr, serve, status_until, topic_row};
use support::{eventually, within, Server};
use tokio::sync::{mpsc, Mutex};

/// What the test tells the upstream to do.
enum Cmd {
    /// Send this text message to the connected feed.
    Text(String),
    /// Drop the connection without a Close frame.
    Drop,
}

#[derive(Clone)]
struct Upstream {
    cmds: Arc<Mutex<mpsc::UnboundedReceiver<Cmd>>>,
    got: mpsc::UnboundedSender<String>,
    connections: Arc<AtomicUsize>,
}

/// A test-driven upstream: one connection at a time takes the commands.
struct Handle {
    url: String,
    cmds: mpsc::UnboundedSender<Cmd>,
    got: mpsc::UnboundedReceiver<String>,
    connections: Arc<AtomicUsize>,
}

impl Handle {
    fn send(&self, text: impl Into<String>) {
        self.cmds.send(Cmd::Text(text.into())).unwrap();
    }
}

async fn upstream() -> Handle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (got_tx, got_rx) = mpsc::unbounded_channel();
    let state = Upstream {
        cmds: Arc::new(Mutex::new(cmd_rx)),
        got: got_tx,
        connections: Arc::default(),
    };
    let connections = state.connections.clone();
    let app = axum::Router::new()
        .route(
            "/ws",
            get(
                |ws: WebSocketUpgrade, State(s): State<Upstream>| async move {
                    ws.on_upgrade(move |socket| connection(socket, s))
                },
            ),
        )
        .with_state(state);
    let addr = serve(app).await;
    Handle {
        url: format!("ws://{addr}/ws"),
        cmds: cmd_tx,
        got: got_rx,
        connections,
    }
}

async fn connection(mut socket: WebSocket, s: Upstream) {
    let mut cmds = s.cmds.lock().await;
    s.connections.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Text(t)) => {
                    if socket.send(Message::text(t)).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Drop) | None => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let _ = s.got.send(t.to_string());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

fn config(feed: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\n{feed}\n")
}

/// Each message fans out by `{field}`, `send` goes out on every connect, bad
/// messages are item errors (no reconnect), and a dropped upstream shows as
/// `backoff` with its error, then reconnects and keeps publishing (`running`).
#[tokio::test]
async fn publishes_survives_bad_messages_and_reconnects() {
    let mut up = upstream().await;
    let server = Server::start(&config(&format!(
        "name = \"up\"\nkind = \"websocket\"\ntopic = \"ws.{{s}}\"\nurl = \"{}\"\nsend = [\"hello\"]",
        up.url
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["ws.*", "$sys.feeds"]).await;

    assert_eq!(within(up.got.recv()).await.unwrap(), "hello");
    up.send(json!([{"s": "A", "v": 1}, {"s": "B", "v": 2}]).to_string());
    assert_eq!(c.update_of("ws.A").await["data"]["v"], 1);
    assert_eq!(c.update_of("ws.B").await["data"]["v"], 2);

    up.send("garbage");
    up.send(json!({"v": 3}).to_string()); // lacks {s}
    up.send(json!({"s": "A", "v": 4}).to_string());
    assert_eq!(c.update_of("ws.A").await["data"]["v"], 4);
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "bad items do not reconnect"
    );

    up.cmds.send(Cmd::Drop).unwrap();
    let failed = status_until(&mut c, "up", |s| s["state"] == "backoff").await;
    assert!(
        failed["error"].as_str().unwrap().contains("upstream"),
        "{failed}"
    );
    assert!(failed["errors"].as_u64().unwrap() >= 3, "{failed}");

    assert_eq!(
        within(up.got.recv()).await.unwrap(),
        "hello",
        "send repeats after reconnect"
    );
    status_until(&mut c, "up", |s| s["state"] == "running").await;
    up.send(json!({"s": "A", "v": 5}).to_string());
    assert_eq!(c.update_of("ws.A").await["data"]["v"], 5);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

/// A refused connection is a failed run: `backoff` with the connect error.
#[tokio::test]
async fn refused_connection_backs_off() {
    let refused = refused_addr();
    let server = Server::start(&config(&format!(
        "name = \"gone\"\nkind = \"websocket\"\ntopic = \"gone\"\nurl = \"ws://{}/\"",
        refused.addr
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let s = status_until(&mut c, "gone", |s| s["state"] == "backoff").await;
    assert!(
        s["error"].as_str().unwrap().contains("cannot connect"),
        "{s}"
    );
}

/// A feed whose upstream stops updating turns `"stale":true` on `$sys.feeds`
/// and on its `/api/topics` rows, and fresh again when updates resume.
#[tokio::test]
async fn silent_upstream_turns_stale_and_recovers() {
    let up = upstream().await;
    let server = Server::start(&config(&format!(
        "name = \"quiet\"\nkind = \"websocket\"\ntopic = \"q.{{s}}\"\nurl = \"{}\"\nstale_after = \"2s\"",
        up.url
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["q.*", "$sys.feeds"]).await;
    up.send(json!({"s": "A", "v": 1}).to_string());
    c.update_of("q.A").await;
    // Fresh right after an update (read from the feed's status published then,
    // not from a later poll that a slow machine could make after `stale_after`).
    let s = status_until(&mut c, "quiet", |s| s["updates"].as_u64() >= Some(1)).await;
    assert_eq!(s["stale"], false, "{s}");

    // Nothing more arrives: the reporter marks it stale.
    let s = status_until(&mut c, "quiet", |s| s["stale"] == true).await;
    assert_eq!(s["state"], "running", "a quiet feed is still connected");
    eventually("/api/topics shows q.A stale", || async {
        topic_row(&server, "q.A").await.unwrap()["stale"] == true
    })
    .await;

    up.send(json!({"s": "A", "v": 2}).to_string());
    status_until(&mut c, "quiet", |s| s["stale"] == false).await;
    eventually("/api/topics shows q.A fresh again", || async {
        topic_row(&server, "q.A").await.unwrap()["stale"] == false
    })
    .await;
}
