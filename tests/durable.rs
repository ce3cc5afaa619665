//! `[history] path`: the real binary killed with SIGKILL under a publish flood
//! and started again on the same data directory keeps its epoch, its topics and
//! an intact prefix of every topic's seq sequence, and resuming clients get what
//! they missed without a snapshot.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, get_json, spawn_tickerd, within, Client};
use tokio::process::Child;

const TOKEN: &str = "flood-token";
const TOPICS: [&str; 3] = ["flood.a", "flood.b", "flood.c"];
/// Upper bounds on the flood: it normally ends much earlier, with the kill.
const MAX_PER_TOPIC: u64 = 20_000;
const MAX_FLOOD: Duration = Duration::from_secs(60);

/// History and the outbound queue hold the whole flood, so that a client
/// resuming from 0 gets every stored update (no conflation).
fn config(sync: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"{TOKEN}\"\n\
         [limits]\nqueue = 100000\n\
         [history]\nsize = 100000\npath = \"data\"\n{sync}\n"
    )
}

async fn start(dir: &std::path::Path) -> (Child, String) {
    let cfg = dir.join("config.toml");
    spawn_tickerd(dir, &["-c".as_ref(), cfg.as_os_str()]).await
}

/// The highest seq acknowledged (HTTP 200) per topic, shared by the publishers.
type Acked = Arc<Mutex<HashMap<String, u64>>>;

/// One publisher per topic, POSTing `{"n": i}` until a request fails (the
/// server was killed), or the count or time bound is reached.
fn flood(addr: &str, acked: &Acked) -> Vec<tokio::task::JoinHandle<()>> {
    TOPICS
        .iter()
        .map(|topic| {
            let url = format!("http://{addr}/api/publish/{topic}");
            let acked = acked.clone();
            let topic = topic.to_string();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let start = tokio::time::Instant::now();
                for i in 0..MAX_PER_TOPIC {
                    if start.elapsed() > MAX_FLOOD {
                        break;
                    }
                    let sent = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .body(json!({"n": i}).to_string())
                        .send()
                        .await;
                    let Ok(r) = sent else { break };
                    if r.status() != 200 {
                        break;
                    }
                    let Ok(text) = r.text().await else {
                        break;
                    };
                    let body: Value = serde_json::from_str(&text).expect("a JSON answer");
                    let seq = body["seq"].as_u64().expect("a seq");
                    acked.lock().unwrap().insert(topic.clone(), seq);
                }
            })
        })
        .collect()
}

fn acked_of(acked: &Acked, topic: &str) -> u64 {
    acked.lock().unwrap().get(topic).copied().unwrap_or(0)
}

/// Reads `client` until it has seen seq `upto` of `topic`, checking that the
/// updates it gets are contiguous from `after + 1` and that none is a snapshot.
async fn expect_replay(client: &mut Client, topic: &str, after: u64, upto: u64) {
    let mut next = after + 1;
    while next <= upto {
        let m = client.update_of(topic).await;
        assert!(
            m.get("snapshot").is_none(),
            "{topic}: a resume within the stored history gets no snapshot: {m}"
        );
        assert_eq!(m["seq"], json!(next), "{topic}: updates are contiguous");
        next += 1;
    }
}

/// The seq of every topic as `/api/topics` lists it.
async fn seqs(addr: &str) -> HashMap<String, u64> {
    let (status, list) = get_json(&format!("http://{addr}/api/topics")).await;
    assert_eq!(status, 200);
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_string(),
                t["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Subscribes to `topic` resuming from 0 and checks that what comes back is
/// the whole stored history, 1..=seq with no gap or duplicate.
async fn assert_contiguous(addr: &str, epoch: &Value, topic: &str, seq: u64) {
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    c.send(json!({"op":"subscribe","topics":[topic],"since":{topic: 0},"epoch":epoch}))
        .await;
    expect_replay(&mut c, topic, 0, seq).await;
}

/// Sends SIGKILL to the server and waits for it to be gone.
async fn kill(child: &mut Child) {
    child.start_kill().unwrap();
    within(child.wait()).await.unwrap();
}

/// `sync = "interval"`: SIGKILL in the middle of an HTTP publish flood, then a
/// restart on the same data directory. The server starts, the epoch is the
/// same, every topic comes back with a seq no higher than was acknowledged,
/// its stored history is exactly 1..=seq (no gap, no duplicate: at most a lost
/// tail), and a client that left before the kill resumes with `since` + epoch:
/// when its seq survived it gets exactly the updates after it, no snapshot;
/// when the lost tail reached below it, it gets the snapshot (the topic
/// started over) instead of nothing.
#[tokio::test]
async fn sigkill_mid_flood_keeps_epoch_and_an_intact_prefix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        config("sync = \"interval\"\nsync_interval = \"100ms\""),
    )
    .unwrap();
    let (mut child, addr) = start(dir.path()).await;
    let mut watcher = Client::connect(&format!("ws://{addr}/ws")).await;
    let epoch = watcher.hello["epoch"].clone();
    watcher.subscribe(&["flood.a"]).await;

    let acked: Acked = Arc::default();
    let publishers = flood(&addr, &acked);
    // The watcher follows flood.a for a while, then leaves at `left_at`.
    let first = watcher.update_of("flood.a").await["seq"].as_u64().unwrap();
    let mut left_at = first;
    while left_at < first + 50 {
        left_at = watcher.update_of("flood.a").await["seq"].as_u64().unwrap();
    }
    drop(watcher);
    // Let the flood run well past it (many sync intervals), then kill it mid-flood.
    eventually("the flood passes 1,500 more updates per topic", || async {
        TOPICS.iter().all(|t| acked_of(&acked, t) > left_at + 1_500)
    })
    .await;
    kill(&mut child).await;
    for p in publishers {
        within(p).await.unwrap();
    }

    let (mut child, addr) = start(dir.path()).await;
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    assert_eq!(c.hello["epoch"], epoch, "the epoch survives a restart");
    let restored = seqs(&addr).await;
    for t in TOPICS {
        let seq = restored.get(t).copied().unwrap_or(0);
        assert!(seq >= 1, "{t} survived the kill");
        assert!(
            seq <= acked_of(&acked, t) + 1,
            "{t}: seq {seq} was at most acknowledged (or in flight)"
        );
        assert_contiguous(&addr, &epoch, t, seq).await;
    }
    let a = restored["flood.a"];
    c.send(
        json!({"op":"subscribe","topics":["flood.a"],"since":{"flood.a": left_at},"epoch":epoch}),
    )
    .await;
    if a >= left_at {
        expect_replay(&mut c, "flood.a", left_at, a).await;
    } else {
        let m = c.update_of("flood.a").await;
        assert_eq!(m["snapshot"], json!(true), "{m}");
        assert_eq!(m["seq"], json!(a));
    }
    // Publishing goes on from the restored seq.
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/publish/flood.a"))
        .bearer_auth(TOKEN)
        .body(json!({"after": "restart"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["seq"], json!(a + 1));
    kill(&mut child).await;
}

/// `sync = "always"`: every publish acknowledged before a SIGKILL survives it,
/// and a client that left mid-flood resumes with exactly the updates it had
/// not seen, up to the last acknowledged one, with no snapshot.
#[tokio::test]
async fn sync_always_keeps_every_acknowledged_publish() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config("sync = \"always\"")).unwrap();
    let (mut child, addr) = start(dir.path()).await;
    let mut watcher = Client::connect(&format!("ws://{addr}/ws")).await;
    let epoch = watcher.hello["epoch"].clone();
    watcher.subscribe(&["flood.b"]).await;

    let acked: Acked = Arc::default();
    let publishers = flood(&addr, &acked);
    let left_at = watcher.update_of("flood.b").await["seq"].as_u64().unwrap();
    drop(watcher);
    eventually("the flood passes 50 more updates per topic", || async {
        TOPICS.iter().all(|t| acked_of(&acked, t) > left_at + 50)
    })
    .await;
    kill(&mut child).await;
    for p in publishers {
        within(p).await.unwrap();
    }
    let acked_before: HashMap<&str, u64> =
        TOPICS.iter().map(|t| (*t, acked_of(&acked, t))).collect();

    let (mut child, addr) = start(dir.path()).await;
    let restored = seqs(&addr).await;
    for t in TOPICS {
        let seq = restored.get(t).copied().unwrap_or(0);
        assert!(
            seq >= acked_before[t],
            "{t}: every acknowledged publish survives (acked {}, stored {seq})",
            acked_before[t]
        );
        assert_contiguous(&addr, &epoch, t, seq).await;
    }
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    assert_eq!(c.hello["epoch"], epoch, "the epoch survives a restart");
    c.send(
        json!({"op":"subscribe","topics":["flood.b"],"since":{"flood.b": left_at},"epoch":epoch}),
    )
    .await;
    expect_replay(&mut c, "flood.b", left_at, acked_before["flood.b"]).await;
    kill(&mut child).await;
}

/// A store that cannot be opened is a clear startup error: exit 1, naming the
/// store's path and the reason (here: another tickerd holds it).
#[tokio::test]
async fn a_store_held_by_another_process_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config("")).unwrap();
    let (mut child, _addr) = start(dir.path()).await;
    let out = within(
        tokio::process::Command::new(support::BIN)
            .arg("-c")
            .arg(dir.path().join("config.toml"))
            .current_dir(dir.path())
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tickerd.redb") && err.contains("another tickerd process has it open"),
        "names the store and the reason: {err}"
    );
    kill(&mut child).await;
}

/// `[history] path` with `[cluster]` is a config error: cluster mode keeps
/// history in JetStream.
#[tokio::test]
async fn history_path_with_cluster_is_rejected() {
    let text =
        "[history]\npath = \"data\"\n[cluster]\nnats = \"nats://127.0.0.1:4222\"\nnode = \"a\"\n";
    let err = tickerd::Config::from_toml(text, std::path::Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[history] path cannot be used with [cluster]"),
        "{err}"
    );
}

/// A store file that is not a redb file (corrupt or foreign) is a startup
/// error, exit 1, naming the file and what to do, never a panic.
#[tokio::test]
async fn a_corrupt_store_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config("")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("data/tickerd.redb"), garbage).unwrap();
    let out = within(
        tokio::process::Command::new(support::BIN)
            .arg("-c")
            .arg(dir.path().join("config.toml"))
            .current_dir(dir.path())
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tickerd.redb") && err.contains("move it away") && !err.contains("panicked"),
        "{err}"
    );
}

/// A tmpfs of `size` mounted on `dir` (tests run as root), unmounted when
/// dropped; `None`, with the reason printed, where mounting is not allowed.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr);
                eprintln!("SKIPPED: cannot mount a tmpfs on {} ({why}); this test needs root and mount(8)", dir.display());
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount(8) ({e}); this test needs root and mount(8)");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `path` with a file there: writes until ENOSPC.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 4096];
    while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
}

/// POSTs one bulk publish of every topic in `topics` with `data`; the HTTP
/// status and the per-item results.
async fn publish_bulk(addr: &str, topics: &[String], data: &Value) -> (u16, Value) {
    let items: Vec<Value> = topics
        .iter()
        .map(|t| json!({"topic": t, "data": data}))
        .collect();
    within(async {
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/api/publish"))
            .bearer_auth(TOKEN)
            .body(Value::from(items).to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap(),
        )
    })
    .await
}

/// Every line of the child's stderr (its log), gathered as it comes.
fn gather_log(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    use tokio::io::AsyncBufReadExt;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut reader = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let out = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = reader.next_line().await {
            out.lock().unwrap().push(l);
        }
    });
    lines
}

/// The disk fills while the server runs, then space returns (issue 31, row 3),
/// with `sync`: the store on a 1 MiB tmpfs, 450 topics published until the
/// store reports `degraded` on `$sys.store` and `/healthz` (still 200), with
/// one WARN line; with `always` a publish is answered 503 meanwhile. Deleting
/// the filler brings `$sys.store` back to `ok` with no restart (and `always`
/// answers 200 again), and after a SIGKILL every topic comes back with the
/// seq it had in memory: nothing pending was lost to the failed commits.
async fn full_disk_then_space_returns(sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("data"), "1m") else {
        return;
    };
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"{TOKEN}\"\n\
         [limits]\nmax_frame_bytes = 1048576\n\
         [history]\nsize = 2\npath = \"data\"\nsync = \"{sync}\"\nsync_interval = \"100ms\"\n"
    );
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    let cfg = dir.path().join("config.toml");
    let args = ["-c".as_ref(), cfg.as_os_str()];
    let (mut child, addr) =
        support::spawn_tickerd_logging(dir.path(), &args, std::process::Stdio::piped()).await;
    let log = gather_log(&mut child);
    let mut watcher = Client::connect(&format!("ws://{addr}/ws")).await;
    watcher.subscribe(&["$sys.store"]).await;
    let first = watcher.update_of("$sys.store").await;
    assert_eq!(first["data"]["ok"], json!(true), "{first}");

    let topics: Vec<String> = (0..450).map(|i| format!("disk.t{i}")).collect();
    let filler = dir.path().join("data/filler");
    fill(&filler);
    let health = format!("http://{addr}/healthz");
    let mut round = 0;
    loop {
        round += 1;
        assert!(round < 500, "the store never reported the full disk");
        let data = json!({"round": round, "pad": "x".repeat(50)});
        let (status, _) = publish_bulk(&addr, &topics, &data).await;
        assert_eq!(status, 200);
        let (status, body) = get_json(&health).await;
        assert_eq!(status, 200, "a full disk does not fail /healthz: {body}");
        if body
            .as_str()
            .is_some_and(|b| b.starts_with("degraded: history store: "))
        {
            break;
        }
    }
    let degraded = watcher.update_of("$sys.store").await;
    assert_eq!(degraded["data"]["ok"], json!(false), "{degraded}");
    assert_eq!(degraded["data"]["state"], json!("degraded"), "{degraded}");
    assert!(
        degraded["data"]["error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{degraded}"
    );
    // More publishes while degraded: kept too.
    let (_, results) = publish_bulk(&addr, &topics, &json!({"while": "full"})).await;
    let refused = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("error").is_some());
    if sync == "always" {
        assert_eq!(
            refused.count(),
            topics.len(),
            "always: not stored, not acknowledged"
        );
    } else {
        assert_eq!(
            refused.count(),
            0,
            "interval: publishing never waits for the disk"
        );
    }

    std::fs::remove_file(&filler).unwrap();
    let ok = watcher.update_of("$sys.store").await;
    assert_eq!(ok["data"]["ok"], json!(true), "space returned: {ok}");
    assert_eq!(get_json(&health).await.1, json!("ok"));
    if sync == "always" {
        let (_, results) = publish_bulk(&addr, &topics[..1], &json!({"after": "free"})).await;
        assert!(results[0].get("seq").is_some(), "stored again: {results}");
    }
    let before = seqs(&addr).await;
    let warns = |what: &str| {
        let l = log.lock().unwrap();
        l.iter()
            .filter(|l| l.contains("WARN") && l.contains(what))
            .count()
    };
    assert_eq!(
        warns("Cannot commit to the history store"),
        1,
        "one WARN per state change"
    );
    assert_eq!(warns("commits again"), 1, "one WARN per state change");
    kill(&mut child).await;

    let (mut child, addr) = start(dir.path()).await;
    let after = seqs(&addr).await;
    for t in &topics {
        assert_eq!(
            after.get(t),
            before.get(t),
            "{t} is stored as it was in memory"
        );
    }
    kill(&mut child).await;
}

/// Row 3 with `sync = "interval"` (see [`full_disk_then_space_returns`]).
#[tokio::test]
async fn a_full_disk_degrades_then_commits_everything_when_space_returns() {
    full_disk_then_space_returns("interval").await;
}

/// Row 3 with `sync = "always"`: 503 while degraded, 200 once space returns.
#[tokio::test]
async fn a_full_disk_refuses_always_publishes_until_space_returns() {
    full_disk_then_space_returns("always").await;
}

/// Slack on top of the documented bound for what `sync = "interval"` loses
/// in a crash: the writer's wake-up and the kill's delivery on a loaded
/// machine.
const LOSS_SLACK: Duration = Duration::from_millis(400);

/// Milliseconds since the Unix epoch, the clock of the server's `ts`.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `(seq, ts)` of every acknowledged publish, per topic.
type Acks = Arc<Mutex<HashMap<String, HashMap<u64, u64>>>>;

/// Publishers posting bulk requests of every topic in `topics` until one
/// fails (the server was killed), recording each item's seq and ts.
fn bulk_flood(addr: &str, topics: &[String], acks: &Acks) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|p| {
            let (addr, topics, acks) = (addr.to_string(), topics.to_vec(), acks.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let start = tokio::time::Instant::now();
                for i in 0u64.. {
                    if start.elapsed() > MAX_FLOOD {
                        break;
                    }
                    let items: Vec<Value> = topics
                        .iter()
                        .map(|t| json!({"topic": t, "data": {"p": p, "i": i}}))
                        .collect();
                    let sent = http
                        .post(format!("http://{addr}/api/publish"))
                        .bearer_auth(TOKEN)
                        .body(Value::from(items).to_string())
                        .send()
                        .await;
                    let Ok(r) = sent else { break };
                    let Ok(text) = r.text().await else { break };
                    let Ok(results) = serde_json::from_str::<Vec<Value>>(&text) else {
                        break;
                    };
                    let mut acks = acks.lock().unwrap();
                    for r in results {
                        if let (Some(t), Some(seq), Some(ts)) =
                            (r["topic"].as_str(), r["seq"].as_u64(), r["ts"].as_u64())
                        {
                            acks.entry(t.to_string()).or_default().insert(seq, ts);
                        }
                    }
                }
            })
        })
        .collect()
}

/// The server with its store's commit log (`took_ms` of each commit, as the
/// test saw it arrive), for [`sigkill_under_load_loses_what_the_docs_state`].
async fn start_logging_commits(dir: &std::path::Path) -> (Child, String, CommitLog) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(support::BIN)
        .arg("-c")
        .arg(dir.join("config.toml"))
        .current_dir(dir)
        .env("RUST_LOG", "info,tickerd::hub::store=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(out.next_line())
        .await
        .unwrap()
        .expect("tickerd prints its URL");
    let addr = line
        .split("http://")
        .nth(1)
        .expect("a URL")
        .trim_end_matches('/');
    let commits: CommitLog = Arc::default();
    let mut err = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let seen = commits.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = err.next_line().await {
            if !l.contains("History store commit.") {
                continue;
            }
            let took = l.split("took_ms=").nth(1).and_then(|r| r.split(' ').next());
            if let Some(took) = took.and_then(|t| t.parse().ok()) {
                seen.lock()
                    .unwrap()
                    .push((tokio::time::Instant::now(), took));
            }
        }
    });
    (child, addr.to_string(), commits)
}

/// `(when the test saw it, took_ms)` of each commit.
type CommitLog = Arc<Mutex<Vec<(tokio::time::Instant, u64)>>>;

/// SIGKILL under heavy publishing with `sync = "interval"` (issue 31, row 4),
/// three times on the same store: 200 topics published by four bulk
/// publishers, killed at three phases of the commit cycle after a commit the
/// store logged (one of them where a writer that slept a whole interval after
/// each commit would lose most: 0.8 of a commit into the next one). What is
/// lost is the time from the first lost acknowledged update of any topic to
/// the kill, and must stay within the bound docs/config.md states: the
/// interval plus one commit, or two commits when a commit takes longer than
/// the interval (the longest commit of the run, from the store's debug log),
/// plus [`LOSS_SLACK`]. And the writer keeps up: a commit of an interval of
/// this flood (at most 200 x 100 updates) takes under two intervals (it took
/// 8.9-10.9 s, and lost up to 18 s, when every update was its own row).
#[tokio::test]
async fn sigkill_under_load_loses_what_the_docs_state() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"{TOKEN}\"\n\
         [limits]\nmax_frame_bytes = 1048576\n\
         [history]\nsize = 100\npath = \"data\"\nsync = \"interval\"\nsync_interval = \"1s\"\n"
    );
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    let topics: Vec<String> = (0..200).map(|i| format!("load.t{i}")).collect();
    for round in 0..3 {
        let (mut child, addr, commits) = start_logging_commits(dir.path()).await;
        let acks: Acks = Arc::default();
        let publishers = bulk_flood(&addr, &topics, &acks);
        let flood_start = tokio::time::Instant::now();
        // Two commits under the flood, then a kill at this round's phase
        // after the last one seen (a chosen moment, not a wait for a condition).
        let base = commits.lock().unwrap().len();
        eventually("two commits under the flood", || async {
            commits.lock().unwrap().len() >= base + 2
        })
        .await;
        let (seen, took) = *commits.lock().unwrap().last().unwrap();
        let took = Duration::from_millis(took);
        let at = match round {
            0 => seen + INTERVAL + took.mul_f64(0.8),
            1 => seen + INTERVAL / 2,
            _ => seen + INTERVAL.saturating_sub(took / 2),
        };
        tokio::time::sleep_until(at).await;
        let killed_at = now_ms();
        let flooded = flood_start.elapsed().as_secs_f64();
        kill(&mut child).await;
        for p in publishers {
            within(p).await.unwrap();
        }
        let longest = commits.lock().unwrap().iter().map(|c| c.1).max().unwrap();
        let (mut child, addr) = start(dir.path()).await;
        let stored = seqs(&addr).await;
        kill(&mut child).await;
        let acks = acks.lock().unwrap();
        let lost = topics
            .iter()
            .filter_map(|t| {
                let first_lost = stored.get(t).copied().unwrap_or(0) + 1;
                acks.get(t)?.get(&first_lost).copied()
            })
            .map(|ts| killed_at.saturating_sub(ts))
            .max()
            .unwrap_or(0);
        let published: usize = acks.values().map(HashMap::len).sum();
        let interval = INTERVAL.as_millis() as u64;
        let bound = (interval + longest).max(2 * longest) + LOSS_SLACK.as_millis() as u64;
        eprintln!(
            "round {round}: {:.0} updates/s acknowledged, longest commit {longest} ms, \
             lost the last {lost} ms (bound {bound} ms)",
            published as f64 / flooded
        );
        assert!(
            lost <= bound,
            "round {round}: lost {lost} ms, over {bound} ms"
        );
        assert!(
            longest <= 2 * interval,
            "round {round}: a commit took {longest} ms: the writer does not keep up"
        );
    }
}
