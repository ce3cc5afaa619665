//! `$sys.feeds` reports a running feed's counters as they move, not only on
//! state changes.

mod support;

use support::Server;

/// A feed that keeps publishing shows its `updates` counter rising on
/// `$sys.feeds` while its state stays `running`.
#[tokio::test]
async fn counters_move_while_running() {
    let s = Server::start(
        "[[feed]]\nname = \"m\"\nkind = \"synthetic\"\ntopic = \"m.{symbol}\"\nsymbols = [\"A\"]\ninterval = \"50ms\"\n",
    )
    .await;
    let mut c = s.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let running = c
        .recv_until(|v| v["topic"] == "$sys.feeds" && v["data"]["state"] == "running")
        .await;
    let first = running["data"]["updates"].as_u64().unwrap();
    let later = c
        .recv_until(|v| {
            v["topic"] == "$sys.feeds" && v["data"]["updates"].as_u64().unwrap() > first + 5
        })
        .await;
    assert_eq!(later["data"]["state"], "running");
    assert_eq!(later["data"]["feed"], "m");
    assert!(later["data"]["last_ok"].as_u64().unwrap() > 0);
}
