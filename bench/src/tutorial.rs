//! The Rust peer: the design of the usual tokio-tungstenite broadcast tutorial.
//!
//! `accept_async` with default settings, one `tokio::sync::broadcast` channel, one
//! task per client that `split()`s its socket and `select!`s between the client's
//! messages and the channel, `send().await` per message. Each upstream message is
//! wrapped once in the same envelope tickerd sends. Two generous choices over the
//! tutorial: `TCP_NODELAY` is set (as Node's `ws` does), and a lagging receiver
//! skips ahead instead of ending the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Where to listen and what to follow.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:19001")]
    listen: SocketAddr,
    /// The upstream WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:19000/")]
    upstream: String,
}

#[tokio::main]
pub async fn run(args: Args) {
    crate::sys::raise_nofile();
    let (tx, _) = broadcast::channel::<Utf8Bytes>(1024);
    tokio::spawn(upstream(args.upstream, tx.clone()));
    let listener = TcpListener::bind(args.listen).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(client(stream, tx.clone()));
    }
}

async fn upstream(url: String, tx: broadcast::Sender<Utf8Bytes>) {
    let mut seqs: HashMap<String, u64> = HashMap::new();
    loop {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let Some(sym) = doc.get("sym").and_then(|s| s.as_str()) else {
                continue;
            };
            let topic = format!("bench.{sym}");
            let seq = seqs.entry(topic.clone()).or_default();
            *seq += 1;
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let frame = format!(
                r#"{{"type":"update","topic":"{topic}","seq":{seq},"ts":{ts},"data":{}}}"#,
                text.as_str()
            );
            let _ = tx.send(frame.into());
        }
    }
}

async fn client(stream: TcpStream, tx: broadcast::Sender<Utf8Bytes>) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let mut rx: Option<broadcast::Receiver<Utf8Bytes>> = None;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) if t.as_str().contains(r#""subscribe""#) => {
                    rx = Some(tx.subscribe());
                    let ack = r#"{"type":"ack","id":1,"op":"subscribe","topics":["bench.*"]}"#;
                    if sink.send(Message::text(ack)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            r = async { rx.as_mut().expect("guarded").recv().await }, if rx.is_some() => match r {
                Ok(frame) => {
                    if sink.send(Message::Text(frame)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}
