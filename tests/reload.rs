//! Hot reload over real files, a real notify watcher and real sockets: feeds
//! added, changed and removed by difference; editors that save by rename;
//! feed files created, deleted and a feeds directory replaced; half-written
//! and invalid files refused then followed; bursts coalesced with never two
//! instances of a feed; unchanged feeds without a seq gap; clients staying
//! connected; settings for new connections; SIGHUP on the real binary.
//!
//! The `probe` kind registered here counts its live runs per feed name in a
//! static map, so a test can prove a feed was not restarted, stopped, or run
//! twice at once.

mod support;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use support::{eventually, get_json, topic_rows, within, write_atomic, Client, Server};
use tickerd::{Feed, FeedContext, TickerBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Per feed name: runs alive now, most alive at once, runs started.
#[derive(Debug, Default, Clone, Copy)]
struct Runs {
    live: usize,
    max_live: usize,
    started: usize,
}

static RUNS: LazyLock<Mutex<HashMap<String, Runs>>> = LazyLock::new(Mutex::default);

fn runs(name: &str) -> Runs {
    RUNS.lock().unwrap().get(name).copied().unwrap_or_default()
}

/// Counts one live run of a feed for as long as it exists.
struct LiveRun(String);

impl LiveRun {
    fn enter(name: &str) -> LiveRun {
        let mut all = RUNS.lock().unwrap();
        let r = all.entry(name.to_string()).or_default();
        r.live += 1;
        r.started += 1;
        r.max_live = r.max_live.max(r.live);
        LiveRun(name.to_string())
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        RUNS.lock().unwrap().get_mut(&self.0).unwrap().live -= 1;
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeOptions {
    tag: String,
}

/// Publishes `{"tag", "n"}` every 20 ms.
struct Probe(ProbeOptions);

impl Feed for Probe {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let _live = LiveRun::enter(ctx.name());
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
            n += 1;
            ctx.publish(&json!({"tag": self.0.tag, "n": n}))?;
        }
    }
}

fn with_probe(b: TickerBuilder) -> TickerBuilder {
    b.kind("probe", |o: ProbeOptions| Ok(Probe(o)))
}

/// A `[[feed]]` table of kind probe publishing to `probe.NAME`.
fn probe(name: &str, tag: &str) -> String {
    format!("[[feed]]\nname = \"{name}\"\nkind = \"probe\"\ntopic = \"probe.{name}\"\ntag = \"{tag}\"\n\n")
}

const HEADER: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\n";

/// Starts a server with the probe kind and waits until its watcher follows the
/// config file.
async fn start(config: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir, config, with_probe).await;
    watching(&s).await;
    s
}

fn config_seq(s: &Server) -> u64 {
    s.ticker.hub().latest("$sys.config").map_or(0, |u| u.seq())
}

/// The watcher is spawned by the harness: later edits of the config are
/// known to be seen once this returns.
async fn watching(s: &Server) {
    support::watching(s, &s.config_path).await;
}

/// Writes `text` to `rel` under the server's directory (creating directories),
/// by temp file and rename.
fn write(s: &Server, rel: &str, text: &str) {
    let path = s.dir.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_atomic(&path, text);
}

/// Waits for the `$sys.config` update that satisfies `pred` (published after
/// seq `after`), returning its data.
async fn config_where(s: &Server, after: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let start = tokio::time::Instant::now();
    loop {
        let u = s.ticker.hub().latest("$sys.config");
        match &u {
            Some(u) if u.seq() > after && pred(u.data()) => return u.data().clone(),
            _ => {}
        }
        assert!(
            start.elapsed() < support::DEADLINE,
            "no matching $sys.config after seq {after}; latest: {u:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The feed names in force.
async fn feed_names(s: &Server) -> Vec<String> {
    let mut names: Vec<String> = s
        .ticker
        .config()
        .await
        .feeds
        .iter()
        .map(|f| f.name.clone())
        .collect();
    names.sort();
    names
}

/// Is `v` a reload's result on `$sys.config` (not the snapshot a subscribe gets)?
fn is_reload_result(v: &Value) -> bool {
    v["type"] == "update" && v["topic"] == "$sys.config" && v.get("snapshot").is_none()
}

/// Reads `t`'s frames until a reload result whose data satisfies `pred`; it
/// must be a success (`what` names the step).
async fn reload_result(t: &mut Tracker, what: &str, pred: impl Fn(&Value) -> bool) {
    // Other frames keep coming, so the deadline is on the whole wait.
    let v = within(t.recv_until(|v| is_reload_result(v) && pred(&v["data"]))).await;
    assert_eq!(v["data"]["ok"], true, "{what}: {v}");
}

/// A client that reads frames while checking one topic's seq never skips.
struct Tracker {
    client: Client,
    topic: &'static str,
    last: Option<u64>,
    seen: u64,
}

impl Tracker {
    async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.client.recv().await;
            if v["type"] == "update" && v["topic"] == self.topic {
                let seq = v["seq"].as_u64().unwrap();
                if let Some(last) = self.last {
                    assert_eq!(seq, last + 1, "seq gap on {}: {v}", self.topic);
                }
                self.last = Some(seq);
                self.seen += 1;
            }
            if pred(&v) {
                return v;
            }
        }
    }
}

/// Added feeds start (and a wildcard subscriber receives their new topics),
/// changed feeds restart with the new options, removed feeds stop and their
/// topics keep the last value; an unchanged feed runs on in the same task
/// with no seq gap, and the client stays connected throughout.
#[tokio::test]
async fn add_change_remove_by_difference_without_touching_unchanged_feeds() {
    let s = start(&format!(
        "{HEADER}{}{}",
        probe("acr_steady", "1"),
        probe("acr_a", "1")
    ))
    .await;
    let mut t = Tracker {
        client: s.client().await,
        topic: "probe.acr_steady",
        last: None,
        seen: 0,
    };
    t.client.subscribe(&["probe.>"]).await;
    t.recv_until(|v| v["topic"] == "probe.acr_a").await;

    // Add.
    let seq = config_seq(&s);
    write_atomic(
        &s.config_path,
        format!(
            "{HEADER}{}{}{}",
            probe("acr_steady", "1"),
            probe("acr_a", "1"),
            probe("acr_b", "1")
        ),
    );
    let d = config_where(&s, seq, |d| d["added"] == json!(["acr_b"])).await;
    assert_eq!(
        (d["ok"].clone(), d["changed"].clone(), d["removed"].clone()),
        (json!(true), json!([]), json!([]))
    );
    let first = t.recv_until(|v| v["topic"] == "probe.acr_b").await;
    assert_eq!(
        first["seq"], 1,
        "a new topic reaches the wildcard from its first update"
    );

    // Change.
    let seq = config_seq(&s);
    write_atomic(
        &s.config_path,
        format!(
            "{HEADER}{}{}{}",
            probe("acr_steady", "1"),
            probe("acr_a", "1"),
            probe("acr_b", "2")
        ),
    );
    config_where(&s, seq, |d| {
        d["changed"] == json!(["acr_b"]) && d["added"] == json!([])
    })
    .await;
    t.recv_until(|v| v["topic"] == "probe.acr_b" && v["data"]["tag"] == "2")
        .await;
    assert_eq!(runs("acr_b").started, 2, "a changed feed restarts once");

    // Remove.
    let seq = config_seq(&s);
    write_atomic(
        &s.config_path,
        format!(
            "{HEADER}{}{}",
            probe("acr_steady", "1"),
            probe("acr_b", "2")
        ),
    );
    config_where(&s, seq, |d| d["removed"] == json!(["acr_a"])).await;
    eventually("the removed feed stops", || {
        std::future::ready(runs("acr_a").live == 0)
    })
    .await;
    let (status, kept) = get_json(&s.http("/api/topics/probe.acr_a")).await;
    assert_eq!(status, 200, "a removed feed's topic keeps its last value");
    // Its topic stops updating while the others go on.
    let until = t.seen + 10;
    while t.seen < until {
        t.recv_until(|v| v["topic"] == "probe.acr_steady").await;
    }
    let (_, still) = get_json(&s.http("/api/topics/probe.acr_a")).await;
    assert_eq!(still["seq"], kept["seq"], "no update after removal");
    let (_, topics) = get_json(&s.http("/api/topics")).await;
    assert!(topics
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["topic"] == "probe.acr_a"));

    // The unchanged feed: one run, never restarted; the client is still here.
    let steady = runs("acr_steady");
    assert_eq!((steady.started, steady.live), (1, 1), "{steady:?}");
    assert!(t.seen > 10);
    t.client.send(json!({"op": "ping", "id": 9})).await;
    t.recv_until(|v| v["type"] == "pong").await;
}

/// Limits, tokens and origins apply to new connections; a connected client
/// stays connected and keeps receiving.
#[tokio::test]
async fn settings_apply_to_new_connections_and_old_clients_stay() {
    let s = start(&format!("{HEADER}{}", probe("set_a", "1"))).await;
    let mut old = s.client().await;
    old.subscribe(&["probe.set_a"]).await;
    let seq = config_seq(&s);
    write_atomic(
        &s.config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n\n{}",
            probe("set_a", "1")
        ),
    );
    let d = config_where(&s, seq, |d| d["ok"] == true).await;
    assert_eq!(
        d["changed"],
        json!([]),
        "a server setting is not a feed change"
    );
    let (status, _) = get_json(&s.http("/api/topics")).await;
    assert_eq!(status, 401, "the new token guards new requests");
    let (status, _) = get_json(&s.http("/api/topics?token=s3cret")).await;
    assert_eq!(status, 200);
    let a = old.update_of("probe.set_a").await["seq"].as_u64().unwrap();
    let b = old.update_of("probe.set_a").await["seq"].as_u64().unwrap();
    assert!(b > a, "the old client still receives");
    assert_eq!(runs("set_a").started, 1);
}

/// Saving by writing a temp file and renaming it over the config works; feed
/// files created and deleted in `feeds_dir` (which did not exist at start)
/// are followed; a feeds directory removed and created again is followed too,
/// including edits after it was replaced.
#[tokio::test]
async fn rename_saves_feed_files_and_a_replaced_feeds_dir_are_followed() {
    let s = start(&format!("{HEADER}{}", probe("ren_a", "1"))).await;

    // Editor-style save: temp file, then rename over the original.
    let seq = config_seq(&s);
    let tmp = s.dir.path().join(".config.toml.swp");
    std::fs::write(&tmp, format!("{HEADER}{}", probe("ren_a", "2"))).unwrap();
    std::fs::rename(&tmp, &s.config_path).unwrap();
    config_where(&s, seq, |d| d["changed"] == json!(["ren_a"])).await;
    // And again: the watch survived the rename.
    let seq = config_seq(&s);
    std::fs::write(&tmp, format!("{HEADER}{}", probe("ren_a", "3"))).unwrap();
    std::fs::rename(&tmp, &s.config_path).unwrap();
    config_where(&s, seq, |d| d["changed"] == json!(["ren_a"])).await;

    // A file created in a feeds_dir that did not exist at start.
    let seq = config_seq(&s);
    write(&s, "feeds/extra.toml", &probe("ren_b", "1"));
    config_where(&s, seq, |d| d["added"] == json!(["ren_b"])).await;
    // Deleted.
    let seq = config_seq(&s);
    std::fs::remove_file(s.dir.path().join("feeds/extra.toml")).unwrap();
    config_where(&s, seq, |d| d["removed"] == json!(["ren_b"])).await;

    // The directory replaced whole.
    let seq = config_seq(&s);
    write(&s, "feeds/c.toml", &probe("ren_c", "1"));
    config_where(&s, seq, |d| d["added"] == json!(["ren_c"])).await;
    std::fs::remove_dir_all(s.dir.path().join("feeds")).unwrap();
    write(&s, "feeds/d.toml", &probe("ren_d", "1"));
    eventually("the new directory's feeds replace the old", || async {
        feed_names(&s).await == ["ren_a", "ren_d"]
    })
    .await;
    // The new directory is watched: an edit in it is applied.
    let seq = config_seq(&s);
    write(&s, "feeds/d.toml", &probe("ren_d", "2"));
    config_where(&s, seq, |d| d["changed"] == json!(["ren_d"])).await;
    eventually("ren_c stopped", || {
        std::future::ready(runs("ren_c").live == 0)
    })
    .await;
    assert_eq!(runs("ren_d").max_live, 1);
    assert_eq!(runs("ren_a").max_live, 1);
}

/// A half-written feed file is refused (the old config keeps running, the
/// error is published with its file) and the rest of the file, written after
/// the debounce, is applied; an invalid config names file, line and feed on
/// `$sys.config`, changes nothing, and the fixed file is applied.
#[tokio::test]
async fn half_written_and_invalid_configs_are_refused_then_followed() {
    let s = start(&format!("{HEADER}{}", probe("hw_a", "1"))).await;
    let mut c = s.client().await;
    c.subscribe(&["probe.hw_a"]).await;

    let full = probe("hw_b", "1");
    let seq = config_seq(&s);
    write(&s, "feeds/new.toml", &full[..full.len() / 2 + 3]);
    let d = config_where(&s, seq, |d| d["ok"] == false).await;
    assert!(d["error"].as_str().unwrap().contains("new.toml:"), "{d}");
    let seq = config_seq(&s);
    write(&s, "feeds/new.toml", &full);
    config_where(&s, seq, |d| {
        d["ok"] == true && d["added"] == json!(["hw_b"])
    })
    .await;

    // Invalid main config: a typo in a built-in kind's table.
    let seq = config_seq(&s);
    let bad = format!("{HEADER}{}[[feed]]\nname = \"hw_c\"\nkind = \"synthetic\"\ntopic = \"s.{{symbol}}\"\nsymbols = [\"X\"]\nintervl = \"1s\"\n", probe("hw_a", "2"));
    write_atomic(&s.config_path, &bad);
    let d = config_where(&s, seq, |d| d["ok"] == false).await;
    let error = d["error"].as_str().unwrap();
    let line = 1 + bad.lines().position(|l| l.starts_with("intervl")).unwrap();
    assert!(
        error.contains(&format!("config.toml:{line}: feed \"hw_c\"")) && error.contains("intervl"),
        "{error}"
    );
    // Nothing changed: hw_a was not restarted with tag 2, hw_c does not exist.
    assert_eq!(feed_names(&s).await, ["hw_a", "hw_b"]);
    assert_eq!(c.update_of("probe.hw_a").await["data"]["tag"], "1");
    assert_eq!(runs("hw_a").started, 1);

    let seq = config_seq(&s);
    write_atomic(
        &s.config_path,
        format!("{HEADER}{}{}", probe("hw_a", "2"), probe("hw_c", "1")),
    );
    let d = config_where(&s, seq, |d| d["ok"] == true).await;
    assert_eq!(
        (d["added"].clone(), d["changed"].clone()),
        (json!(["hw_c"]), json!(["hw_a"]))
    );
    c.recv_until(|v| v["topic"] == "probe.hw_a" && v["data"]["tag"] == "2")
        .await;

    // A custom kind's options are validated with the whole config too.
    let seq = config_seq(&s);
    let typo = probe("hw_c", "2").replace("tag =", "tga =");
    write_atomic(
        &s.config_path,
        format!("{HEADER}{}{typo}", probe("hw_a", "3")),
    );
    let d = config_where(&s, seq, |d| d["ok"] == false).await;
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("feed \"hw_c\": invalid options: unknown field `tga`"),
        "{d}"
    );
    assert_eq!(runs("hw_a").started, 2, "nothing was applied");
}

/// Many edits in a burst end in exactly the final state, with fewer reloads
/// than edits and never two runs of one feed at once.
#[tokio::test]
async fn a_burst_of_edits_ends_in_the_final_state_without_double_runs() {
    let s = start(&format!("{HEADER}{}", probe("bu_x", "init"))).await;
    let reloads = || {
        s.ticker
            .metrics()
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reloads();
    const EDITS: usize = 40;
    for i in 0..EDITS {
        let mut text = format!("{HEADER}{}", probe("bu_x", &i.to_string()));
        if i % 2 == 0 {
            text.push_str(&probe("bu_y", &i.to_string()));
        }
        write_atomic(&s.config_path, &text);
    }
    let last = (EDITS - 1).to_string();
    eventually("the final edit is in force and published", || async {
        s.ticker
            .hub()
            .latest("probe.bu_x")
            .is_some_and(|u| u.data()["tag"] == last.as_str())
            && feed_names(&s).await == ["bu_x"]
    })
    .await;
    eventually("bu_y stopped", || {
        std::future::ready(runs("bu_y").live == 0)
    })
    .await;
    let x = runs("bu_x");
    assert_eq!((x.live, x.max_live), (1, 1), "{x:?}");
    assert!(runs("bu_y").max_live <= 1, "{:?}", runs("bu_y"));
    let done = reloads() - before;
    assert!(
        done >= 1 && done < EDITS as u64 / 2,
        "{done} reloads for {EDITS} edits"
    );
}

/// SIGHUP makes the real binary reload (a new `$sys.config` result with no
/// file change), clients stay connected, and SIGTERM still exits 0.
#[tokio::test]
async fn sighup_reloads_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[[feed]]\nname = \"s\"\nkind = \"synthetic\"\ntopic = \"s.{symbol}\"\nsymbols = [\"X\"]\ninterval = \"50ms\"\n").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(out.next_line()).await.unwrap().unwrap();
    let url = line.split("http://").nth(1).unwrap().trim_end_matches('/');
    let mut c = Client::connect(&format!("ws://{url}/ws")).await;
    c.subscribe(&["$sys.config"]).await;
    let first = c.update_of("$sys.config").await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let next = c.update_of("$sys.config").await;
    assert!(
        next["seq"].as_u64() > first["seq"].as_u64(),
        "{first} {next}"
    );
    assert_eq!(next["data"]["ok"], true);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(c.closed().await, Some(1001));
    assert_eq!(within(child.wait()).await.unwrap().code(), Some(0));
}

/// A config file that is a symlink through a swapped directory link (the way
/// Kubernetes updates a mounted ConfigMap) is followed.
#[tokio::test]
async fn a_config_behind_a_swapped_symlink_is_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let version = |name: &str, text: &str| {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("config.toml"), text).unwrap();
    };
    version("v1", &format!("{HEADER}{}", probe("lnk_a", "1")));
    symlink("v1", root.join("..data")).unwrap();
    symlink("..data/config.toml", root.join("config.toml")).unwrap();
    let path = root.join("config.toml");
    let ticker = with_probe(tickerd::Ticker::builder().config_path(&path))
        .start()
        .await
        .unwrap();
    let s = Server::serve(ticker, dir, path).await;

    let before = config_seq(&s);
    let mut n = 1;
    // Swap until the watcher (spawned by the harness) has seen one swap.
    within(async {
        loop {
            n += 1;
            version(
                &format!("v{n}"),
                &format!("{HEADER}{}", probe("lnk_a", &n.to_string())),
            );
            symlink(format!("v{n}"), s.dir.path().join("..data_tmp")).unwrap();
            std::fs::rename(s.dir.path().join("..data_tmp"), s.dir.path().join("..data")).unwrap();
            for _ in 0..50 {
                if config_seq(&s) > before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    let tag = n.to_string();
    eventually("the swapped-in config is in force", || async {
        s.ticker
            .hub()
            .latest("probe.lnk_a")
            .is_some_and(|u| u.data()["tag"] == tag.as_str())
    })
    .await;
}

/// A reload that changes `[server] listen` is applied (the rest of it) and
/// `$sys.config` says a restart is needed for `server.listen`; a reload that
/// changes nothing of the kind carries no `restart_needed`.
#[tokio::test]
async fn a_listen_change_says_a_restart_is_needed() {
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\n").await;
    let mut c = s.client().await;
    c.subscribe(&["$sys.config"]).await;
    let first = c.update_of("$sys.config").await;
    assert!(first["data"].get("restart_needed").is_none(), "{first}");
    // The watcher may reload too: whichever reload applies the change says so.
    std::fs::write(&s.config_path, "[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    s.ticker.reload().await.unwrap();
    let reply = c
        .recv_until(|v| v["topic"] == "$sys.config" && v["data"].get("restart_needed").is_some())
        .await;
    assert_eq!(reply["data"]["ok"], true, "{reply}");
    assert_eq!(
        reply["data"]["restart_needed"],
        json!(["server.listen"]),
        "{reply}"
    );
    // Nothing changed since: the next reply carries no restart_needed.
    s.ticker.reload().await.unwrap();
    let next = c.update_of("$sys.config").await;
    assert!(next["data"].get("restart_needed").is_none(), "{next}");
}

/// `TickerBuilder::adjust` (how the binary applies `--web-dir` and `--listen`)
/// is applied again to every reloaded config, so an override survives a reload.
#[tokio::test]
async fn adjustments_survive_reload() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir, "[dashboard]\ntitle = \"From file\"\n", |b| {
        b.adjust(|c| c.dashboard.title = format!("{} (adjusted)", c.dashboard.title))
    })
    .await;
    let page = || async {
        reqwest::get(s.http("/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(page().await.contains("From file (adjusted)"));
    write_atomic(&s.config_path, "[dashboard]\ntitle = \"Edited\"\n");
    s.ticker.reload().await.unwrap();
    assert!(page().await.contains("Edited (adjusted)"));
}

/// An editor that truncates the config before writing it: the empty (then
/// whitespace-only) file is "not ready yet", so the running config stays (no
/// `$sys.config` result, the feed keeps its task and its seq has no gap), and
/// once content is written it is applied.
#[tokio::test]
async fn an_empty_config_file_is_not_ready_yet_and_changes_nothing() {
    let s = start(&format!("{HEADER}{}", probe("em_a", "1"))).await;
    let mut t = Tracker {
        client: s.client().await,
        topic: "probe.em_a",
        last: None,
        seen: 0,
    };
    t.client.subscribe(&["probe.em_a", "$sys.config"]).await;
    t.recv_until(|v| v["topic"] == "probe.em_a").await;

    let not_a_reload = |v: &Value| {
        assert!(!is_reload_result(v), "the empty file was applied: {v}");
        false
    };
    for blank in ["", " \n\t\n"] {
        // In place, as the editor does: truncate, then (here) nothing more yet.
        std::fs::write(&s.config_path, blank).unwrap();
        // Well past the debounce: 100 probe updates take at least 2 s.
        let until = t.seen + 100;
        while t.seen < until {
            t.recv_until(|v| not_a_reload(v) || v["topic"] == "probe.em_a")
                .await;
        }
    }
    assert_eq!(feed_names(&s).await, ["em_a"]);
    assert_eq!(runs("em_a").started, 1, "the feed was never restarted");

    std::fs::write(&s.config_path, format!("{HEADER}{}", probe("em_a", "2"))).unwrap();
    let d = within(t.recv_until(is_reload_result)).await;
    assert_eq!(d["data"]["changed"], json!(["em_a"]), "{d}");
    assert_eq!(d["data"]["removed"], json!([]), "{d}");
}

/// Changing `feeds_dir` at runtime moves the watch: a feed file added to the
/// new directory starts, and edits in the old one no longer reload anything.
#[tokio::test]
async fn a_changed_feeds_dir_is_watched_instead_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    for (d, feed) in [("dir_a", "fd_a"), ("dir_b", "fd_b")] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        write_atomic(
            &dir.path().join(d).join(format!("{feed}.toml")),
            probe(feed, "1"),
        );
    }
    let config = |feeds_dir: &str| {
        format!("[server]\nlisten = \"127.0.0.1:0\"\nfeeds_dir = \"{feeds_dir}\"\n\n")
    };
    let s = Server::start_with(dir, &config("dir_a"), with_probe).await;
    watching(&s).await;
    assert_eq!(feed_names(&s).await, ["fd_a"]);
    // Every reload result in order, and the new directory's feed.
    let mut t = Tracker {
        client: s.client().await,
        topic: "probe.fd_b",
        last: None,
        seen: 0,
    };
    t.client.subscribe(&["$sys.config", "probe.fd_b"]).await;
    write_atomic(&s.config_path, config("dir_b"));
    reload_result(&mut t, "moved", |d| {
        d["added"] == json!(["fd_b"]) && d["removed"] == json!(["fd_a"])
    })
    .await;
    // A file added to the new directory starts, and an edit of it is followed.
    write_atomic(&s.dir.path().join("dir_b/fd_c.toml"), probe("fd_c", "1"));
    reload_result(&mut t, "added", |d| d["added"] == json!(["fd_c"])).await;
    write_atomic(&s.dir.path().join("dir_b/fd_c.toml"), probe("fd_c", "2"));
    reload_result(&mut t, "changed", |d| d["changed"] == json!(["fd_c"])).await;

    // An edit in the old directory reloads nothing: no `$sys.config` result
    // while the new directory's feed publishes 50 updates (over a second).
    write_atomic(&s.dir.path().join("dir_a/fd_d.toml"), probe("fd_d", "1"));
    let until = t.seen + 50;
    while t.seen < until {
        t.recv_until(|v| {
            assert!(!is_reload_result(v), "the old directory reloaded: {v}");
            v["topic"] == "probe.fd_b"
        })
        .await;
    }
    assert_eq!(feed_names(&s).await, ["fd_b", "fd_c"]);
}

/// A tail-mode `file` feed whose config changes (only `stale_after`, three
/// times) while a writer appends a numbered line every millisecond continues
/// from where its old task stopped: every line 1..=3000 arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tail_feed_continues_where_it_stopped() {
    const LINES: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lines.log");
    std::fs::write(&log, "").unwrap();
    let config = |stale: u32| {
        format!(
            "{HEADER}[[feed]]\nname = \"tl\"\nkind = \"file\"\ntopic = \"lines\"\npath = \"lines.log\"\nstale_after = \"{stale}s\"\n"
        )
    };
    let s = Server::start_in(dir, &config(100)).await;
    watching(&s).await;
    eventually("the tail is open", || async {
        s.ticker.feed_statuses().await[0].state.as_str() == "running"
    })
    .await;
    // (seq, n) of every update, taken by a task of its own so it keeps up.
    let got: std::sync::Arc<Mutex<Vec<(u64, u64)>>> = Default::default();
    let mut sub = s.ticker.hub().subscribe(["lines"]).unwrap();
    let collector = tokio::spawn({
        let got = got.clone();
        async move {
            while let Some(u) = sub.recv().await {
                let n = u.data()["n"].as_u64().unwrap();
                got.lock().unwrap().push((u.seq(), n));
                if n == LINES {
                    return;
                }
            }
        }
    });
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for n in 1..=LINES {
            f.write_all(format!("{{\"n\":{n}}}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let taken = || got.lock().unwrap().len();
    eventually("the first lines arrive", || {
        std::future::ready(taken() >= 300)
    })
    .await;
    let mut changes = 0;
    while !writer.is_finished() && changes < 3 {
        changes += 1;
        let seq = config_seq(&s);
        write_atomic(&s.config_path, config(100 + changes));
        let d = config_where(&s, seq, |_| true).await;
        assert_eq!(d["changed"], json!(["tl"]), "{d}");
    }
    writer.join().unwrap();
    assert!(changes > 0, "the feed was changed while lines were written");
    // Without the last line in time, the checks below say which never came.
    let _ = tokio::time::timeout(support::DEADLINE, collector).await;
    let got = got.lock().unwrap().clone();
    let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
    let ns: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    let missing: Vec<u64> = (1..=LINES).filter(|n| !ns.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost: {missing:?}",
        missing.len()
    );
    assert_eq!(
        ns,
        (1..=LINES).collect::<Vec<u64>>(),
        "each line once, in order"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one update per line, none conflated"
    );
}

/// Two synthetic feeds whose topic templates are `t1` and `t2`: `idx` keeps
/// its topics on removal (the default), `dix` deletes them.
fn templated(t1: &str, t2: &str) -> String {
    format!(
        "{HEADER}{}\
         [[feed]]\nname = \"idx\"\nkind = \"synthetic\"\ntopic = \"{t1}\"\nsymbols = [\"A\", \"B\"]\ninterval = \"50ms\"\n\n\
         [[feed]]\nname = \"dix\"\nkind = \"synthetic\"\ntopic = \"{t2}\"\nsymbols = [\"D\"]\ninterval = \"50ms\"\non_remove = \"delete\"\n",
        probe("tt_steady", "1")
    )
}

/// A reload that changes a feed's topic template treats the topics the new
/// template cannot produce as a removed feed's, by its `on_remove`: `idx`
/// (`index.{symbol}` to `idx2.{symbol}`) keeps `index.A`/`index.B` listed
/// with `"feed_removed": true`, `dix` (`on_remove = "delete"`) deletes
/// `dix.D` (its subscriber gets `gone`); the new topics are live and not
/// marked, and an unchanged feed is neither restarted nor marked.
#[tokio::test]
async fn topics_a_changed_template_no_longer_produces_get_on_remove() {
    let s = start(&templated("index.{symbol}", "dix.{symbol}")).await;
    let mut c = s.client().await;
    c.subscribe(&["dix.D"]).await;
    c.update_of("dix.D").await;
    eventually("the first topics are published", || async {
        let r = topic_rows(&s).await;
        ["index.A", "index.B", "probe.tt_steady"]
            .iter()
            .all(|t| r.contains_key(*t))
    })
    .await;

    let seq = config_seq(&s);
    write_atomic(&s.config_path, templated("idx2.{symbol}", "dix2.{symbol}"));
    let d = config_where(&s, seq, |d| d["ok"] == true).await;
    assert_eq!(d["changed"], json!(["idx", "dix"]), "{d}");
    let gone = c.recv_until(|v| v["type"] != "update").await;
    assert_eq!(gone, json!({"type": "gone", "topic": "dix.D"}));
    eventually("the new topics are published", || async {
        let r = topic_rows(&s).await;
        ["idx2.A", "idx2.B", "dix2.D"]
            .iter()
            .all(|t| r.contains_key(*t))
    })
    .await;
    let r = topic_rows(&s).await;
    for old in ["index.A", "index.B"] {
        assert_eq!(r[old]["feed_removed"], true, "{old}: {:?}", r[old]);
        assert_eq!(r[old]["feed"], "idx");
    }
    assert!(!r.contains_key("dix.D"), "{r:?}");
    for live in ["idx2.A", "idx2.B", "dix2.D", "probe.tt_steady"] {
        assert!(
            r[live].get("feed_removed").is_none(),
            "{live}: {:?}",
            r[live]
        );
    }
    assert_eq!(runs("tt_steady").started, 1, "the unchanged feed runs on");
}
