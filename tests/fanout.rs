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

/// Every update reaches every subscriber once and in order, whichever side
/// writes it: the publisher (a connection quiet for `flush_interval`), the
/// pacer (updates within the interval), or the connection's writer (a reply
/// in the middle of a stream). The publisher's pauses shape the stream into
/// quiet spells and bursts; nothing waits on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_update_arrives_once_in_order_whoever_writes_it() {
    let s = Server::start("[server]\nflush_interval = \"25ms\"\n").await;
    let topics = ["w.a", "w.b", "w.c"];
    let bursts: Vec<usize> = (0..40).map(|r| (r % 4) * 5 + 1).collect();
    let total: usize = bursts.iter().sum();
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut c = s.client().await;
        c.subscribe(&["w.*"]).await;
        readers.spawn(async move {
            let mut last = std::collections::HashMap::new();
            let (mut updates, mut acked) = (0, false);
            while updates < total || !acked {
                let v = c.recv().await;
                if v["type"] == "ack" {
                    assert_eq!(v["id"], "mid", "{v}");
                    acked = true;
                    continue;
                }
                assert_eq!(v["type"], "update", "{v}");
                let topic = v["topic"].as_str().unwrap().to_string();
                let seq = v["seq"].as_u64().unwrap();
                let prev = last.insert(topic, seq).unwrap_or(0);
                assert_eq!(seq, prev + 1, "once and in order: {v}");
                updates += 1;
                if updates == total / 2 {
                    // A reply while updates are paced.
                    c.send(json!({"op": "subscribe", "topics": ["x.none"], "id": "mid"}))
                        .await;
                }
            }
            updates
        });
    }
    let hub = s.ticker.hub().clone();
    let mut n = 0;
    for (round, burst) in bursts.iter().enumerate() {
        for _ in 0..*burst {
            hub.publish(topics[n % 3], &json!({ "n": n })).unwrap();
            n += 1;
        }
        if round % 3 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }
    while let Some(got) = support::within(readers.join_next()).await {
        assert_eq!(got.unwrap(), total);
    }
}
