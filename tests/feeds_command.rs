//! The `command` feed with real child processes (`sh -c`, `printf`): interval
//! and stream modes, `env`, text format, a timeout that kills the whole process
//! group, a stream that exits and is restarted, and children killed on stop.

mod support;

use std::path::Path;

use support::feeds::status_until;
use support::{eventually, Server};

fn config(feeds: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{feeds}")
}

/// The pids a script appended to `file`, one per line.
fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The state letter of `/proc/<pid>/stat` (`None`: no such process, reaped).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}

/// Our direct child must be reaped (gone); a grandchild must at least be dead
/// (it is re-parented to init, which reaps it on its own schedule).
async fn assert_gone(child: i32, grandchild: i32) {
    eventually("the child is killed and reaped", || async {
        proc_state(child).is_none()
    })
    .await;
    eventually("the grandchild is killed", || async {
        matches!(proc_state(grandchild), None | Some('Z'))
    })
    .await;
}

/// Interval mode publishes stdout per run: JSON fanned out by `{s}` with `env`
/// passed, and `format = "text"` as `{"value": "<stdout>"}`.
#[tokio::test]
async fn interval_mode_publishes_stdout() {
    let server = Server::start(&config(
        r#"
[[feed]]
name = "json"
kind = "command"
topic = "c.{s}"
command = ["sh", "-c", "printf '[{\"s\":\"A\",\"v\":\"%s\"},{\"s\":\"B\"}]' \"$VAL\""]
env = { VAL = "x1" }
interval = "200ms"

[[feed]]
name = "text"
kind = "command"
topic = "c.text"
command = ["printf", "hello"]
format = "text"
interval = "200ms"
"#,
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["c.*"]).await;
    assert_eq!(c.update_of("c.A").await["data"]["v"], "x1");
    assert_eq!(c.update_of("c.B").await["data"]["s"], "B");
    assert_eq!(
        c.update_of("c.text").await["data"],
        serde_json::json!({"value": "hello"})
    );
}

/// A run that outlives `timeout` is an error (`backoff`, "timed out"), and its
/// whole process group dies with it: the child and what it forked.
#[tokio::test]
async fn interval_timeout_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let server = Server::start(&config(&format!(
        r#"
[[feed]]
name = "slow"
kind = "command"
topic = "slow"
command = ["sh", "-c", "echo $$ >> {p}; sleep 30 & echo $! >> {p}; wait"]
interval = "10s"
timeout = "1s"
"#,
        p = pidfile.display()
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let s = status_until(&mut c, "slow", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains("timed out"), "{s}");
    let p = pids(&pidfile);
    assert!(p.len() >= 2, "{p:?}");
    assert_gone(p[0], p[1]).await;
}

/// Stream mode publishes each line (a bad line is an item error); when the
/// program exits (even leaving a child that holds stdout open) the feed shows
/// `backoff` with the exit status, and is restarted.
#[tokio::test]
async fn stream_mode_restarts_an_exited_program() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let server = Server::start(&config(&format!(
        r#"
[[feed]]
name = "lines"
kind = "command"
mode = "stream"
topic = "l.{{s}}"
command = ["sh", "-c", "echo $$ >> {p}; printf '{{\"s\":\"A\"}}\nnot json\n{{\"s\":\"B\"}}\n'; sleep 30 & exit 3"]
"#,
        p = pidfile.display()
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["l.*", "$sys.feeds"]).await;
    c.update_of("l.B").await;
    let s = status_until(&mut c, "lines", |s| s["state"] == "backoff").await;
    assert!(
        s["error"].as_str().unwrap().contains("exit status: 3"),
        "{s}"
    );
    assert!(
        s["errors"].as_u64().unwrap() >= 2,
        "the bad line counts: {s}"
    );
    status_until(&mut c, "lines", |s| s["state"] == "running").await;
    c.update_of("l.B").await;
    assert!(pids(&pidfile).len() >= 2, "restarted");
}

/// Stopping a stream feed (removed by reload) kills its process group and
/// reaps the child: no zombie, no orphan.
#[tokio::test]
async fn stop_kills_and_reaps_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let server = Server::start(&config(&format!(
        r#"
[[feed]]
name = "forever"
kind = "command"
mode = "stream"
topic = "f.{{s}}"
command = ["sh", "-c", "echo $$ >> {p}; sleep 60 & echo $! >> {p}; echo '{{\"s\":\"A\"}}'; wait"]
"#,
        p = pidfile.display()
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["f.*"]).await;
    c.update_of("f.A").await;
    let p = pids(&pidfile);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(proc_state(p[0]).is_some(), "running before the stop");

    support::write_atomic(&server.config_path, config(""));
    let diff = server.ticker.reload().await.unwrap();
    // The file watcher may have applied the removal first.
    assert!(
        diff.removed.is_empty() || diff.removed == ["forever"],
        "{diff:?}"
    );
    assert_gone(p[0], p[1]).await;
    assert!(server.ticker.feed_statuses().await.is_empty());
}
