//! Conflation of slow readers (the hot path must never queue without bound). In a test binary of
//! its own: it measures this process's memory, which other tests would disturb.

mod support;

use std::collections::HashMap;

use serde_json::json;
use support::{within, Server};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A client that reads nothing while 50+ MB are published at it costs bounded
/// memory, does not slow a reading client, and when it reads again gets the
/// latest value of each topic with seq strictly increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_conflated() {
    let s = Server::start("[limits]\nqueue = 16\n[history]\nsize = 4\n").await;
    let hub = s.ticker.hub().clone();
    let mut stalled = s.client().await;
    stalled.subscribe(&["big.*"]).await;
    let mut reader = s.client().await;
    reader.subscribe(&["big.*"]).await;
    let topics = ["big.a", "big.b", "big.c", "big.d"];
    let payload = "x".repeat(64 * 1024);
    let rounds = 220; // 4 topics × 220 × 64 KiB ≈ 56 MiB
    let before = rss_kib();
    let reading = tokio::spawn(async move {
        let mut last = HashMap::new();
        while last.values().filter(|s| **s == rounds).count() < 4 {
            let u = reader.recv().await;
            let seq = u["seq"].as_u64().unwrap();
            let prev = last
                .insert(u["topic"].as_str().unwrap().to_string(), seq)
                .unwrap_or(0);
            assert!(seq > prev, "seq must increase per topic");
        }
    });
    let mut peak = before;
    for i in 1..=rounds {
        for t in topics {
            hub.publish(t, &json!({"i": i, "pad": payload})).unwrap();
        }
        if i % 20 == 0 {
            peak = peak.max(rss_kib());
            tokio::task::yield_now().await;
        }
    }
    within(reading).await.unwrap();
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 40,
        "memory grew {growth_mib} MiB while 56 MiB were published at a stalled client"
    );
    assert!(
        hub.metrics()
            .frames_conflated
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // The stalled client now reads: seq per topic strictly increases and ends at the last one.
    let mut last: HashMap<String, u64> = HashMap::new();
    while last.values().filter(|s| **s == rounds).count() < 4 {
        let u = stalled.recv().await;
        let seq = u["seq"].as_u64().unwrap();
        let prev = last
            .insert(u["topic"].as_str().unwrap().to_string(), seq)
            .unwrap_or(0);
        assert!(
            seq > prev,
            "seq must increase per topic ({prev} then {seq})"
        );
        if seq == rounds {
            assert_eq!(u["data"]["i"], rounds);
        }
    }
}
