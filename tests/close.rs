//! The closing handshake (RFC 6455 §5.5.1) with real clients: a client that
//! sends a Close frame gets a Close frame back, echoing its code, and then
//! the TCP connection ends, so the client sees a clean close (not 1006).

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{within, Server, EMPTY};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A tokio-tungstenite client that closes with 1000, subscribed or not, gets
/// a Close frame with 1000 back, and then the stream ends without an error.
#[tokio::test]
async fn a_close_from_the_client_is_answered_with_its_code() {
    let s = Server::start(EMPTY).await;
    s.ticker.hub().publish("c.a", &1).unwrap();
    for subscribed in [false, true] {
        let mut c = s.client().await;
        if subscribed {
            c.subscribe(&["c.*"]).await;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        c.ws.send(Message::Close(Some(frame))).await.unwrap();
        let code = within(async {
            loop {
                match c.ws.next().await {
                    Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => panic!("the connection failed instead of closing: {e}"),
                    None => panic!("the stream ended without a Close frame"),
                }
            }
        })
        .await;
        assert_eq!(code, Some(1000), "subscribed: {subscribed}");
        // After the Close the server closes TCP: the stream ends cleanly.
        let end = within(c.ws.next()).await;
        assert!(end.is_none(), "expected the end, got {end:?}");
    }
}

/// Python `websockets`: `await ws.close(1000)` completes the closing
/// handshake, so `ws.close_code` is 1000 (it reads 1006 when no Close frame
/// comes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_sees_a_clean_close() {
    let s = Server::start(EMPTY).await;
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], open_timeout=20, close_timeout=20) as ws:
        await asyncio.wait_for(ws.recv(), 20)
        await ws.send('{"op":"subscribe","topics":["p.*"]}')
        await asyncio.wait_for(ws.recv(), 20)
        await ws.close(1000)
        print(ws.close_code)
asyncio.run(main())
"#;
    let url = s.ws_url();
    let stdout = within(support::python::run(
        script,
        vec![url],
        "the websockets client",
    ))
    .await;
    assert_eq!(stdout.trim(), "1000");
}
