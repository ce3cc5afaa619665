//! The `file` feed on real temp files: tail (appends, partial lines, bad lines,
//! truncation, rotation by rename), whole (fan-out, text, replace by rename),
//! and a file that does not exist yet.

mod support;

use std::io::Write;
use std::path::Path;

use support::feeds::{status_until, topic_row};
use support::Server;

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Replaces `path` the way editors do: write a temp file, rename it over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A tail starts at the end, publishes each appended line (fanned out by
/// `{s}`, partial lines completed, bad lines dropped as item errors), and keeps
/// following through truncation and rotation by rename.
#[tokio::test]
async fn tail_follows_appends_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("quotes.log");
    std::fs::write(&log, "{\"s\":\"OLD\"}\n").unwrap();
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"tail\"\nkind = \"file\"\ntopic = \"f.{{s}}\"\npath = \"{}\"\n",
        log.display()
    ))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["f.*", "$sys.feeds"]).await;
    status_until(&mut c, "tail", |s| s["state"] == "running").await;

    append(
        &log,
        "{\"s\":\"A\",\"v\":1}\n{\"s\":\"B\",\"v\":2}\n{\"s\":\"A\",",
    );
    assert_eq!(c.update_of("f.A").await["data"]["v"], 1);
    assert_eq!(c.update_of("f.B").await["data"]["v"], 2);
    append(&log, "\"v\":3}\ngarbage\n{\"s\":\"A\",\"v\":4}\n");
    assert_eq!(c.update_of("f.A").await["data"]["v"], 3);
    assert_eq!(c.update_of("f.A").await["data"]["v"], 4);

    // Truncated in place, then a shorter line written.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "{\"s\":\"A\",\"v\":5}\n");
    assert_eq!(c.update_of("f.A").await["data"]["v"], 5);

    // Rotated: the writer finishes the old file, then a new one appears.
    let rotated = dir.path().join("quotes.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, "{\"s\":\"A\",\"v\":6}\n");
    append(&log, "{\"s\":\"A\",\"v\":7}\n");
    assert_eq!(c.update_of("f.A").await["data"]["v"], 6);
    assert_eq!(c.update_of("f.A").await["data"]["v"], 7);
    append(&log, "{\"s\":\"B\",\"v\":8}\n");
    assert_eq!(c.update_of("f.B").await["data"]["v"], 8);
    assert!(
        topic_row(&server, "f.OLD").await.is_none(),
        "lines before start are not published"
    );
    let s = &server.ticker.feed_statuses().await[0];
    assert!(s.errors >= 1, "the garbage line counts: {s:?}");
}

/// A missing file is waited for (still `starting`, no errors, the error field
/// saying what it waits for) and read from
/// its start once it appears; `whole` publishes the content on every change
/// (fanned out through `extract`, or as text), also when replaced by rename.
#[tokio::test]
async fn whole_mode_and_a_file_that_appears_later() {
    let dir = tempfile::tempdir().unwrap();
    let (later, doc, note) = (
        dir.path().join("later.log"),
        dir.path().join("doc.json"),
        dir.path().join("note.txt"),
    );
    std::fs::write(&doc, r#"{"rows":[{"s":"X","v":1},{"s":"Y","v":2}]}"#).unwrap();
    std::fs::write(&note, "hello").unwrap();
    let server = Server::start(&format!(
        r#"[server]
listen = "127.0.0.1:0"

[[feed]]
name = "later"
kind = "file"
topic = "later"
path = "{}"

[[feed]]
name = "doc"
kind = "file"
mode = "whole"
topic = "w.{{s}}"
path = "{}"
extract = "/rows"

[[feed]]
name = "note"
kind = "file"
mode = "whole"
format = "text"
topic = "note"
path = "{}"
"#,
        later.display(),
        doc.display(),
        note.display()
    ))
    .await;
    let mut c = server.client().await;
    // One pattern at a time: snapshots of several patterns come in any order.
    c.subscribe(&["w.*"]).await;
    let mut rows = std::collections::BTreeMap::new();
    while rows.len() < 2 {
        let u = c.recv_until(|v| v["type"] == "update").await;
        rows.insert(
            u["topic"].as_str().unwrap().to_string(),
            u["data"]["v"].clone(),
        );
    }
    assert_eq!(
        serde_json::json!(rows),
        serde_json::json!({"w.X": 1, "w.Y": 2})
    );
    c.subscribe(&["note"]).await;
    assert_eq!(
        c.update_of("note").await["data"],
        serde_json::json!({"value": "hello"})
    );
    c.subscribe(&["later", "$sys.feeds"]).await;

    // Waiting is not an error, but the status says what it waits for.
    let waiting_for = format!("waiting for {} to exist", later.display());
    let status = || async {
        let all = server.ticker.feed_statuses().await;
        all.into_iter().find(|s| s.feed == "later").unwrap()
    };
    support::eventually("the waiting feed says what it waits for", || async {
        status().await.error.as_deref() == Some(waiting_for.as_str())
    })
    .await;
    let waiting = status().await;
    assert_eq!(
        serde_json::to_value(waiting.state).unwrap(),
        "starting",
        "{waiting:?}"
    );
    assert_eq!(waiting.errors, 0, "{waiting:?}");

    replace(&doc, r#"{"rows":[{"s":"X","v":3}]}"#);
    assert_eq!(c.update_of("w.X").await["data"]["v"], 3);
    std::fs::write(&note, "bye").unwrap();
    assert_eq!(c.update_of("note").await["data"]["value"], "bye");

    append(&later, "{\"first\":true}\n");
    status_until(&mut c, "later", |s| s["state"] == "running").await;
    assert_eq!(c.update_of("later").await["data"]["first"], true);
}
