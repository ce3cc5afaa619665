//! Issue #30: the `tickerd sub` and `tickerd pub` commands, as real child
//! processes against a real server: `--count --json` output parsed line by
//! line, `--timeout` with too few updates, the live view in a pseudo-terminal
//! (under `script` from util-linux), and `pub` of one value and of stdin lines.

mod support;

use std::process::{Output, Stdio};

use serde_json::{json, Value};
use support::{eventually, topic_rows, within, Server, BIN};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The topic's subscriber count: a started `tickerd sub` has subscribed once
/// it is 1.
async fn subscribed(s: &Server, topic: &str) {
    eventually(&format!("a subscriber of {topic}"), || async {
        topic_rows(s)
            .await
            .get(topic)
            .map(|r| r["subscribers"].clone())
            == Some(json!(1))
    })
    .await;
}

/// `tickerd ARGS` with piped output, started (killed when dropped).
fn start(args: &[&str]) -> tokio::process::Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// `tickerd sub 'c.*' --count 5 --json` prints exactly five lines, each one
/// received frame as JSON (the snapshots first, then the updates), and exits 0.
#[tokio::test]
async fn sub_count_json_prints_one_frame_per_line() {
    let s = Server::start(support::EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("c.a", &json!({"p": 1})).unwrap();
    hub.publish("c.b", &json!({"p": 2})).unwrap();
    let server = s.http("");
    let child = start(&["sub", "c.*", "--server", &server, "--count", "5", "--json"]);
    subscribed(&s, "c.a").await;
    for n in 3..=6 {
        hub.publish("c.a", &json!({ "p": n })).unwrap();
    }
    let out: Output = within(child.wait_with_output()).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON frame"))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines[..2].iter().all(|f| f["snapshot"] == json!(true)),
        "{lines:?}"
    );
    assert_eq!(
        lines[2],
        json!({"type":"update","topic":"c.a","seq":2,"ts":lines[2]["ts"],"data":{"p":3}})
    );
    assert_eq!(lines[4]["seq"], json!(4));
}

/// `--timeout` before `--count` was reached: exit 1, and stderr says how many
/// of how many came. (The timeout counts from the program's start: 5 s leaves
/// a loaded machine time to start it, connect and hand over the snapshot.)
#[tokio::test]
async fn sub_timeout_before_count_exits_1() {
    let s = Server::start(support::EMPTY).await;
    s.ticker.hub().publish("t.a", &json!(1)).unwrap();
    let server = s.http("");
    let child = start(&[
        "sub",
        "t.*",
        "--server",
        &server,
        "--count",
        "3",
        "--timeout",
        "5s",
    ]);
    let out = within(child.wait_with_output()).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("got 1 of the 3 updates"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

/// On a terminal (a pty made by `script`), `tickerd sub` draws a live view:
/// the connection state, one line per topic redrawn in place (cursor up,
/// clear line), a fall coloured red with its size.
#[tokio::test]
async fn sub_on_a_terminal_draws_a_live_view() {
    let s = Server::start(support::EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("v.a", &json!({"price": 10})).unwrap();
    let cmd = format!("{BIN} sub 'v.*' --server {} --count 2", s.http(""));
    let child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs");
    subscribed(&s, "v.a").await;
    hub.publish("v.a", &json!({"price": 9.5})).unwrap();
    let out = within(child.wait_with_output()).await.unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("live"), "{screen:?}");
    // Cursor up over the last drawing, each line cleared and written again.
    let up = screen.contains("\x1b[1A") || screen.contains("\x1b[2A");
    assert!(
        up && screen.contains("\x1b[2K"),
        "redrawn in place: {screen:?}"
    );
    assert!(
        screen.contains("\x1b[31m▼ -0.5"),
        "a fall in red: {screen:?}"
    );
    assert!(screen.contains("#2"), "{screen:?}");
}

/// `tickerd pub TOPIC` reads one JSON value per stdin line (blank lines
/// skipped), publishes them in order and prints one result each; a line that
/// is not JSON is named and the exit is 1. The token comes from TICKERD_TOKEN.
#[tokio::test]
async fn pub_publishes_stdin_lines() {
    let s = Server::start("[server]\npublish_token = \"pt\"\n").await;
    let server = s.http("");
    let mut child = Command::new(BIN)
        .args(["pub", "in.a", "--server", &server])
        .env("TICKERD_TOKEN", "pt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"1\n{\"x\": 2}\n\n\"three\"\nnot json\n")
        .await
        .unwrap();
    drop(stdin);
    let out = within(child.wait_with_output()).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stdin line 5 is not JSON"), "{err}");
    let seqs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let latest = s.ticker.hub().latest("in.a").unwrap();
    assert_eq!(latest.data_as::<Value>().unwrap(), json!("three"));
}

/// `tickerd pub TOPIC JSON` prints the result; with a wrong token it exits 1
/// and says the server's reason.
#[tokio::test]
async fn pub_one_value_and_a_refusal() {
    let s = Server::start("[server]\npublish_token = \"pt\"\n").await;
    let server = s.http("");
    let ok = within(
        start(&[
            "pub",
            "one.a",
            "{\"p\": 1}",
            "--server",
            &server,
            "--token",
            "pt",
        ])
        .wait_with_output(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let done: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        (done["topic"].clone(), done["seq"].clone()),
        (json!("one.a"), json!(1))
    );
    let refused = within(
        start(&["pub", "one.a", "2", "--server", &server, "--token", "nope"]).wait_with_output(),
    )
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("refused (403): wrong publish token"), "{err}");
}

/// `--since SEQ` starts after that seq in every matching topic: the retained
/// updates after it, no snapshot.
#[tokio::test]
async fn sub_since_replays_what_came_after() {
    let s = Server::start(support::EMPTY).await;
    for n in 1..=5 {
        s.ticker.hub().publish("h.a", &json!(n)).unwrap();
    }
    let server = s.http("");
    let child = start(&[
        "sub", "h.*", "--server", &server, "--since", "2", "--count", "3",
    ]);
    let out = within(child.wait_with_output()).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<(u64, bool)> = frames
        .iter()
        .map(|f| (f["seq"].as_u64().unwrap(), f.get("snapshot").is_some()))
        .collect();
    assert_eq!(seqs, [(3, false), (4, false), (5, false)], "{frames:?}");
}

/// A server that refuses the token: `tickerd sub` exits 1 at once with the
/// status and the server's reason.
#[tokio::test]
async fn sub_with_a_refused_token_says_why() {
    let s = Server::start("[server]\ntoken = \"right\"\n").await;
    let server = s.http("");
    let child = start(&["sub", "x.*", "--server", &server, "--token", "wrong"]);
    let out = within(child.wait_with_output()).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused (401)"), "{err}");
}

/// In a terminal too short for every topic, the view shows what fits and
/// says how many more there are (cursor-up cannot climb past the screen's top).
#[tokio::test]
async fn sub_view_fits_a_short_terminal() {
    let s = Server::start(support::EMPTY).await;
    for t in ["a", "b", "c", "d", "e", "f"] {
        s.ticker
            .hub()
            .publish(&format!("f.{t}"), &json!(1))
            .unwrap();
    }
    let cmd = format!(
        "stty rows 5 cols 80; {BIN} sub 'f.*' --server {} --count 6",
        s.http("")
    );
    let out = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = within(out).await.expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("f.b") && !screen.contains("f.c "),
        "{screen:?}"
    );
    assert!(screen.contains("… 4 more"), "{screen:?}");
}
