//! `$sys.feeds` reports a running feed's counters as they move, not only on
//! state changes, and says what is wrong as soon as it is known.

mod support;

use support::feeds::status_until;
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

/// A feed whose items lack the field its topic template names shows at once
/// that it runs but drops them, with an error naming the field and template,
/// instead of staying `starting`.
#[tokio::test]
async fn a_missing_template_field_is_shown_at_once() {
    let s = Server::start(
        "[[feed]]\nname = \"tm\"\nkind = \"synthetic\"\ntopic = \"tm.{ticker}\"\nsymbols = [\"A\"]\ninterval = \"50ms\"\n",
    )
    .await;
    let mut c = s.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let status = status_until(&mut c, "tm", |s| s["state"] == "running").await;
    assert_eq!(
        status["error"], "item has no field `ticker` for topic `tm.{ticker}`",
        "{status}"
    );
    assert_eq!(status["updates"], 0, "{status}");
}

/// A command past its `timeout` shows `backoff` with "timed out", and its
/// retries stay `backoff` (never back to `starting`) while they keep failing.
#[tokio::test]
async fn a_command_past_its_timeout_stays_in_backoff() {
    let s = Server::start(
        "[[feed]]\nname = \"slow\"\nkind = \"command\"\ntopic = \"slow\"\ncommand = [\"sleep\", \"30\"]\ninterval = \"100ms\"\ntimeout = \"200ms\"\n",
    )
    .await;
    let mut c = s.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let first = status_until(&mut c, "slow", |s| s["state"] == "backoff").await;
    assert_eq!(first["error"], "timed out after 200ms", "{first}");
    // Two more failed runs: every status in between is `backoff`.
    let errors = first["errors"].as_u64().unwrap();
    let later = status_until(&mut c, "slow", |s| {
        assert_eq!(s["state"], "backoff", "a failing retry shows backoff: {s}");
        s["errors"].as_u64().unwrap() >= errors + 2
    })
    .await;
    assert_eq!(later["error"], "timed out after 200ms", "{later}");
}

/// The `system` feed publishes its first sample once: the second update comes
/// an interval later, not at once with the same data.
#[tokio::test]
async fn the_first_system_sample_is_published_once() {
    let s = Server::start(
        "[[feed]]\nname = \"host\"\nkind = \"system\"\ntopic = \"host\"\ninterval = \"1s\"\n",
    )
    .await;
    let mut c = s.client().await;
    c.subscribe(&["host"]).await;
    let first = c.update_of("host").await;
    let second = c.update_of("host").await;
    let gap = second["ts"].as_u64().unwrap() - first["ts"].as_u64().unwrap();
    assert!(gap >= 500, "{gap} ms apart: {first} then {second}");
}
