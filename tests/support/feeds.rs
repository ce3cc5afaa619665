//! Helpers for feed tests: serve a local upstream, and wait for a feed's state
//! on `$sys.feeds`.

use std::net::SocketAddr;

use serde_json::Value;

use super::{get_json, Client, Server};

/// Serves `app` on 127.0.0.1:0 until the test's runtime ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An address that refuses connections for as long as this value lives: a
/// socket bound to a port without listening, so the kernel answers every
/// connect with a reset and no other process can take the port meanwhile.
pub struct Refused {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

/// A [`Refused`] address on 127.0.0.1.
pub fn refused_addr() -> Refused {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    Refused {
        _socket: socket,
        addr,
    }
}

/// Reads `$sys.feeds` updates (the client must be subscribed to it) until one
/// about `feed` satisfies `pred`; returns its data.
/// A feed status update: on `$sys.feeds` (every feed, one topic) or on a
/// feed's own `$sys.feeds.{name}`. Subscribe to `$sys.feeds.*` to wait for
/// several feeds' states: it gives each feed's latest status as a snapshot,
/// where `$sys.feeds` gives only the last feed's (a feed that reached its
/// state before the subscribe would never be seen).
fn is_status(v: &Value) -> bool {
    v["topic"]
        .as_str()
        .is_some_and(|t| t == "$sys.feeds" || t.starts_with("$sys.feeds."))
}

pub async fn status_until(
    client: &mut Client,
    feed: &str,
    mut pred: impl FnMut(&Value) -> bool,
) -> Value {
    let v = client
        .recv_until(|v| {
            v["type"] == "update" && is_status(v) && v["data"]["feed"] == feed && pred(&v["data"])
        })
        .await;
    v["data"].clone()
}

/// The `/api/topics` row of `topic`, if any.
pub async fn topic_row(server: &Server, topic: &str) -> Option<Value> {
    let (status, rows) = get_json(&server.http("/api/topics")).await;
    assert_eq!(status, 200);
    rows.as_array()?
        .iter()
        .find(|r| r["topic"] == topic)
        .cloned()
}

/// Reads `$sys.feeds` updates until each `(feed, state)` of `wanted` was seen
/// (in any order: feeds report independently); returns the matching statuses
/// in the order of `wanted`.
pub async fn states_until(client: &mut Client, wanted: &[(&str, &str)]) -> Vec<Value> {
    let mut found: Vec<Option<Value>> = vec![None; wanted.len()];
    while found.iter().any(Option::is_none) {
        let v = client
            .recv_until(|v| v["type"] == "update" && is_status(v))
            .await;
        let data = &v["data"];
        for (slot, (feed, state)) in found.iter_mut().zip(wanted) {
            if slot.is_none() && data["feed"] == *feed && data["state"] == *state {
                *slot = Some(data.clone());
            }
        }
    }
    found.into_iter().flatten().collect()
}
