//! Shutdown with a deadline (`[server] shutdown_timeout`, issue #29): SIGTERM
//! closes clients with 1001 and a retry hint, and the real binary exits
//! within the timeout even when a client does not read, and even when nobody
//! reads its stderr.

mod support;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use support::{start_tickerd, within, Client, BIN};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// The timeout the tests configure, short so that a test is quick.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What a loaded machine may add to `TIMEOUT`: starting to exit, the log's
/// last lines (at most about a second for a stuck stderr), the kernel's reaping.
const SLACK: Duration = Duration::from_secs(4);

/// A config with `shutdown_timeout = TIMEOUT`, publishing allowed.
fn config() -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pub\"\nshutdown_timeout = \"{}s\"\n",
        TIMEOUT.as_secs()
    )
}

fn sigterm(child: &Child) {
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
}

/// SIGTERM, then the time until the process exits (it must exit 0).
async fn stop(child: &mut Child) -> Duration {
    let start = Instant::now();
    sigterm(child);
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
    start.elapsed()
}

/// A client that subscribed to `big.*` and then never reads again, while
/// 300 updates of 48 KiB each (far more than socket buffers hold) are
/// published; a client that reads gets them all. On SIGTERM the reading
/// client gets Close 1001 with the reason "server shutting down; retry after
/// 2s", and tickerd exits within `shutdown_timeout`: the stuck one does not
/// hold it.
#[tokio::test]
async fn a_client_that_never_reads_does_not_hold_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config()).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["-c", "config.toml"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null());
    let (mut child, addr) = start_tickerd(command).await;

    let (mut stuck, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    let subscribe = json!({"op": "subscribe", "topics": ["big.*"]}).to_string();
    within(stuck.send(Message::text(subscribe))).await.unwrap();
    let mut reader = Client::connect(&format!("ws://{addr}/ws")).await;
    reader.subscribe(&["big.*"]).await;

    let http = reqwest::Client::new();
    let payload = json!({ "fill": "x".repeat(48 * 1024) }).to_string();
    for i in 0..300 {
        let r = within(
            http.post(format!("http://{addr}/api/publish/big.{i}"))
                .bearer_auth("pub")
                .header("content-type", "application/json")
                .body(payload.clone())
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    reader.recv_until(|v| v["topic"] == "big.299").await;

    let took = stop_and_watch(&mut child, &mut reader).await;
    assert!(took < TIMEOUT + SLACK, "exit took {took:?}");
    drop(stuck);
}

/// SIGTERM; `client` must get Close 1001 with the retry hint. Returns the time
/// from the signal to the exit.
async fn stop_and_watch(child: &mut Child, client: &mut Client) -> Duration {
    let start = Instant::now();
    sigterm(child);
    let close = within(async {
        loop {
            match client.next_message().await {
                Message::Close(frame) => return frame.expect("a Close with a code"),
                _ => continue,
            }
        }
    })
    .await;
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(
        close.reason.as_str(),
        "server shutting down; retry after 2s"
    );
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
    start.elapsed()
}

/// A pipe whose buffer is already full: the write end, blocking again, for a
/// child's stderr, and the read end, which nobody reads (a log shipper that
/// hung, or died while something else still holds the pipe open).
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (read, write) = nix::unistd::pipe().unwrap();
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    let chunk = [b'#'; 4096];
    loop {
        match nix::unistd::write(&write, &chunk) {
            Ok(_) => continue,
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    // Whatever room is left is less than a line; fill it byte by byte.
    while nix::unistd::write(&write, b"#").is_ok() {}
    fcntl(write.as_fd(), FcntlArg::F_SETFL(OFlag::empty())).unwrap();
    (read, write)
}

/// Regression (issue #29): with stderr a pipe that is full and never read,
/// tickerd still starts, serves WebSocket clients and HTTP, and on SIGTERM
/// exits within `shutdown_timeout`. Logging used to write stderr in the
/// server's own threads: the first log line blocked them for good, so it
/// neither served nor stopped.
#[tokio::test]
async fn a_stderr_nobody_reads_blocks_neither_serving_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config()).unwrap();
    let (_unread, write) = full_pipe();
    let mut command = Command::new(BIN);
    command
        .args(["-c", "config.toml"])
        // Every request logged, so the server keeps trying to write stderr.
        .env("RUST_LOG", "trace")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::from(write));
    let (mut child, addr) = start_tickerd(command).await;

    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    c.subscribe(&["news"]).await;
    let r = within(
        reqwest::Client::new()
            .post(format!("http://{addr}/api/publish/news"))
            .bearer_auth("pub")
            .header("content-type", "application/json")
            .body(json!({"headline": "still serving"}).to_string())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.update_of("news").await["data"]["headline"],
        "still serving"
    );

    let took = stop_and_watch(&mut child, &mut c).await;
    assert!(took < TIMEOUT + SLACK, "exit took {took:?}");
}

/// The same with the pipe's read end closed (the shipper died and nothing
/// else holds it): writes fail with EPIPE, and tickerd serves and stops.
#[tokio::test]
async fn a_closed_stderr_blocks_neither_serving_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config()).unwrap();
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut command = Command::new(BIN);
    command
        .args(["-c", "config.toml"])
        .env("RUST_LOG", "debug")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::from(write));
    let (mut child, addr) = start_tickerd(command).await;
    let (status, _) = support::get_json(&format!("http://{addr}/healthz")).await;
    assert_eq!(status, 200);
    let took = stop(&mut child).await;
    assert!(took < TIMEOUT + SLACK, "exit took {took:?}");
}
