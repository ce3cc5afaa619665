//! Fan-out at scale: thousands of real WebSocket clients on one server. In a
//! file of its own so its load never shares the machine with the timing of
//! another test binary's tests (cargo runs test binaries one at a time).

mod support;

use serde_json::json;
use support::{Client, Server};

/// 2,000 concurrent clients each receive a published update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_each_get_the_update() {
    let s =
        Server::start("[limits]\nmax_connections = 5000\nmax_connections_per_ip = 5000\n").await;
    let url = s.ws_url();
    let mut clients = Vec::new();
    for chunk in 0..20 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let url = url.clone();
            set.spawn(async move {
                let mut c = Client::connect(&url).await;
                c.subscribe(&["fan.out"]).await;
                c
            });
        }
        while let Some(c) = set.join_next().await {
            clients.push(c.unwrap());
        }
        assert_eq!(clients.len(), (chunk + 1) * 100);
    }
    s.ticker
        .hub()
        .publish("fan.out", &json!({"hello": "all"}))
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for mut c in clients {
        set.spawn(async move { c.update_of("fan.out").await["data"]["hello"] == "all" });
    }
    let mut got = 0;
    while let Some(ok) = set.join_next().await {
        got += usize::from(ok.unwrap());
    }
    assert_eq!(got, 2000);
}
