//! The `tickerd` command (README "Command line"), run as a real child process.

mod support;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{within, Client, BIN};
use tokio::process::{Child, Command};

/// Starts `tickerd ARGS` in `cwd` and returns it with the address it printed.
async fn spawn(cwd: &std::path::Path, args: &[&str]) -> (Child, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    support::spawn_tickerd(cwd, &args).await
}

/// Runs `tickerd check -c PATH`: its exit code and output.
async fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(path)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `tickerd check` passes a valid config (exit 0) and lists every error of a bad one
/// with file, line and feed (exit 1).
#[tokio::test]
async fn check_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"host.m\"\n",
    )
    .unwrap();
    let (code, text) = check(&good).await;
    assert_eq!(code, Some(0), "{text}");

    std::fs::create_dir(dir.path().join("feeds")).unwrap();
    std::fs::write(
        dir.path().join("feeds/extra.toml"),
        "[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"host.n\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"host.m\"\n\n[[feed]]\nname = \"h\"\nkind = \"http\"\ntopic = \"x\"\nurl = \"ftp://nope\"\ninterval = \"often\"\n").unwrap();
    let (code, text) = check(&bad).await;
    assert_eq!(code, Some(1));
    assert!(
        text.contains("bad.toml:10: feed \"h\": url scheme `ftp`"),
        "{text}"
    );
    assert!(
        text.contains("bad.toml:11: feed \"h\": interval: expected a duration like \"500ms\", \"5s\" or \"1m\", not \"often\""),
        "{text}"
    );
    assert!(
        text.contains("feeds/extra.toml:1: feed \"s\": duplicate feed name"),
        "{text}"
    );
}

/// `tickerd check` validates the `postgres` and `prometheus` options and the
/// `transform` steps of any feed, each error with its file and line; a
/// password written into a postgres `url` is refused without being echoed.
#[tokio::test]
async fn check_reports_source_and_transform_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        r#"[[feed]]
name = "p"
kind = "postgres"
topic = "x"
url = "postgres://u:hunter2@127.0.0.1/db"
listen = ["a"]
query = "SELECT 1"
transform = [{ round = "p", digit = 2 }]

[[feed]]
name = "m"
kind = "prometheus"
topic = "y"
url = "ftp://x"
query = ""
querry = "up"
"#,
    )
    .unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(1));
    for needle in [
        "s.toml:8: feed \"p\": transform[0]: `round` takes `as` or `digits`, not `digit`",
        "s.toml:5: feed \"p\": url must not hold a password",
        "s.toml:7: feed \"p\": `listen` and `query` are two modes",
        "s.toml:16: feed \"m\": unknown field `querry`",
        "s.toml:14: feed \"m\": url scheme `ftp`",
        "s.toml:15: feed \"m\": `query` must be a PromQL expression",
        "6 error(s)",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
}

/// `tickerd check` words each mistake as what is wrong, where and what is
/// right: a type error in plain words, a misspelt transform operation, panel
/// kind, threshold level or `[[panel]]` with the nearest valid name, a
/// `history` that is no count or duration, and one above `max_history` at its
/// own line.
#[tokio::test]
async fn check_says_what_is_wrong_and_what_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        r#"[limits]
max_history = 1000

[[feed]]
name = "s"
kind = "synthetic"
topic = "s.{symbol}"
symbols = ["A"]
volatility = "0.1"
history = "lots"
transform = [{ chnage = "price" }]

[[feed]]
name = "t"
kind = "system"
topic = "h.m"
history = 50000
"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("dashboards")).unwrap();
    std::fs::write(
        dir.path().join("dashboards/d.toml"),
        "title = \"D\"\n\n[[panel]]\nkind = \"valu\"\ntopic = \"a.b\"\n\n[[panel]]\nkind = \"value\"\ntopic = \"a.b\"\nthresholds = [{ above = 1, level = \"warning\" }]\n\n[[panels]]\nkind = \"value\"\n",
    )
    .unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(1), "{text}");
    for needle in [
        "c.toml:9: feed \"s\": volatility: expected a number, e.g. 0.1, not the string \"0.1\"",
        "c.toml:10: feed \"s\": `history` must be a count of updates (e.g. 500, at most [limits] max_history = 1000) or a duration (e.g. \"15m\"), not \"lots\"",
        "c.toml:11: feed \"s\": transform[0]: unknown operation `chnage`; did you mean `change`?",
        "c.toml:17: feed \"t\": history = 50000 is above [limits] max_history (1000)",
        "d.toml:4: dashboard \"d\": panel #1: unknown kind \"valu\"; did you mean `value`?",
        "d.toml:10: dashboard \"d\": panel #2: thresholds.level: unknown value `warning`; did you mean `warn`?",
        "d.toml:12: dashboard \"d\": unknown section [[panels]]; did you mean [[panel]]?",
        "7 error(s)",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
}

/// A bad `[cluster]` section is refused with one error per problem, like any
/// other config error; no NATS is contacted.
#[tokio::test]
async fn bad_cluster_config_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[cluster]\nnats = []\nnode = \"Node A\"\nlease = \"10ms\"\nuser = \"u\"\n",
    )
    .unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(1));
    for needle in [
        "node \"Node A\" must match",
        "at least one URL",
        "lease must be at least",
        "user and password go together",
        "4 error(s)",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
}

/// With no config.toml in the working directory, tickerd runs its built-in demo
/// offline: synthetic stocks and host metrics appear.
#[tokio::test]
async fn runs_the_builtin_demo_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path(), &["--listen", "127.0.0.1:0"]).await;
    let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
    c.subscribe(&["stocks.*", "host.metrics"]).await;
    let u = c.recv_until(|v| v["topic"] == "stocks.AAPL").await;
    assert!(u["data"]["price"].as_f64().unwrap() > 0.0);
    let h = c.recv_until(|v| v["topic"] == "host.metrics").await;
    assert!(h["data"]["mem_total_bytes"].as_u64().unwrap() > 0);
    child.kill().await.unwrap();
}

/// SIGTERM: every client gets Close 1001 and the process exits 0 within 5 s.
#[tokio::test]
async fn sigterm_closes_clients_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path(), &["--listen", "127.0.0.1:0"]).await;
    let mut a = Client::connect(&format!("ws://{addr}/ws")).await;
    let mut b = Client::connect(&format!("ws://{addr}/ws")).await;
    a.subscribe(&["stocks.*"]).await;
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(a.closed().await, Some(1001));
    assert_eq!(b.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A config that is invalid at start is printed and the process exits 1.
#[tokio::test]
async fn invalid_config_at_start_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[server]\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = within(Command::new(BIN).current_dir(dir.path()).output())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:2"), "{err}");
}

/// Starts `tickerd ARGS` in `cwd` with its log piped: the child, its address
/// and the log's lines.
async fn spawn_logging(
    cwd: &std::path::Path,
    args: &[&str],
) -> (
    Child,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) {
    use tokio::io::AsyncBufReadExt;
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (mut child, addr) =
        support::spawn_tickerd_logging(cwd, &args, std::process::Stdio::piped()).await;
    let log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    (child, addr, log)
}

/// Reads log lines until one contains `needle`; returns every line read.
async fn log_until(
    log: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    within(async {
        while let Some(line) = log.next_line().await.unwrap() {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return;
            }
        }
        panic!("the log ended without {needle:?}:\n{}", seen.join("\n"));
    })
    .await;
    seen
}

/// SIGHUP under the built-in default logs that there is no config file to
/// reload (and the server keeps serving); the log, not a terminal here, has no
/// ANSI colour codes.
#[tokio::test]
async fn sighup_without_a_file_says_so_and_logs_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, mut log) = spawn_logging(dir.path(), &["--listen", "127.0.0.1:0"]).await;
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGHUP).unwrap();
    let lines = log_until(&mut log, "no config file to reload").await;
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI codes in a piped log:\n{}",
        lines.join("\n")
    );
    let (status, _) = support::get_json(&format!("http://{addr}/healthz")).await;
    assert_eq!(status, 200);
}

/// With NATS unreachable, the link problem is logged at WARN with the URL (not
/// as async_nats' INFO lines without one). A `feeds_dir` that does not exist
/// is a warning in the log too.
#[tokio::test]
async fn an_unreachable_nats_is_a_warning_with_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let refused = support::feeds::refused_addr();
    let nats = format!("nats://{}", refused.addr);
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[server]\nfeeds_dir = \"nope\"\n[cluster]\nnats = \"{nats}\"\nnode = \"a\"\n"),
    )
    .unwrap();
    let (_child, _addr, mut log) = spawn_logging(dir.path(), &["--listen", "127.0.0.1:0"]).await;
    let lines = log_until(&mut log, "NATS link problem").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("no such directory, 0 feeds from it")),
        "{}",
        lines.join("\n")
    );
    let line = lines.last().unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("nats={nats}")), "{line}");
    assert!(
        !lines.iter().any(|l| l.contains("INFO async_nats")),
        "{}",
        lines.join("\n")
    );
}

/// `tickerd check` counts disabled feeds and prints a warning for a
/// `feeds_dir` that does not exist; `--listen` with a host name says what to
/// write instead.
#[tokio::test]
async fn check_counts_disabled_feeds_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[server]\nfeeds_dir = \"nope\"\n\n[[feed]]\nname = \"a\"\nkind = \"system\"\ntopic = \"h.a\"\n\n[[feed]]\nname = \"b\"\nkind = \"system\"\ntopic = \"h.b\"\nenabled = false\n",
    )
    .unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "warning: {}:2: [server] feeds_dir = \"nope\"",
            path.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("no such directory, 0 feeds from it"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "{}: ok (2 feeds, 1 disabled, 0 dashboards)\n",
            path.display()
        )),
        "{text}"
    );
    let out = within(
        Command::new(BIN)
            .args(["--listen", "localhost:8080", "check"])
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"localhost:8080\" is not an IP address and port (a host name is not accepted); write e.g. \"127.0.0.1:8080\""),
        "{err}"
    );
}

/// `--listen` on an address already in use exits 1 naming the address, before
/// any feed starts: the command feed that would create a marker file never ran.
#[tokio::test]
async fn a_port_in_use_exits_before_any_feed_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let marker = dir.path().join("marker");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[feed]]\nname = \"m\"\nkind = \"command\"\ntopic = \"m\"\ninterval = \"100ms\"\n\
             command = [\"sh\", \"-c\", \"touch '{}'; echo 1\"]\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = within(
        Command::new(BIN)
            .args(["--listen", &addr])
            .current_dir(dir.path())
            .output(),
    )
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!err.contains("Feed started"), "a feed started: {err}");
    assert!(!marker.exists(), "the command feed ran");
    drop(taken);
}

/// A dashboard whose panels 1 and 2 (lines 5 and 10) name topics that a
/// synthetic feed of AAPL and MSFT cannot make; panels 3 and 4 are fed.
const UNFED: &str = r#"title = "Wall"

[[panel]]
kind = "value"
topic = "stocks.APPL"
field = "price"

[[panel]]
kind = "tape"
pattern = "stock.*"

[[panel]]
kind = "tile"
pattern = "stocks.*"

[[panel]]
kind = "tile"
topic = "$sys.config"
"#;

/// One synthetic feed: `stocks.{symbol}` for AAPL and MSFT.
const SYNTHETIC: &str = "[[feed]]\nname = \"stocks\"\nkind = \"synthetic\"\ntopic = \"stocks.{symbol}\"\nsymbols = [\"AAPL\", \"MSFT\"]\ninterval = \"1s\"\n";

/// `tickerd check` warns (exit 0, `warning: FILE:LINE: ...`) for each
/// dashboard panel whose `topic` or `pattern` no enabled feed can make
/// (`stocks.APPL` against the symbols AAPL, MSFT; `stock.*`), not for one a
/// feed makes or a `$sys` topic, and not at all when the config has no feed
/// (its topics then come from publishers).
#[tokio::test]
async fn check_warns_about_panels_no_feed_can_feed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dashboards")).unwrap();
    let board = dir.path().join("dashboards/wall.toml");
    std::fs::write(&board, UNFED).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, SYNTHETIC).unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(0), "{text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    let first = format!(
        "warning: {}:5: dashboard \"wall\": panel #1: topic \"stocks.APPL\"",
        board.display()
    );
    assert!(warnings[0].starts_with(&first), "{text}");
    assert!(
        warnings[0].contains("stocks.{symbol} for AAPL, MSFT"),
        "{text}"
    );
    let second = format!(
        "warning: {}:10: dashboard \"wall\": panel #2: pattern \"stock.*\"",
        board.display()
    );
    assert!(warnings[1].starts_with(&second), "{text}");

    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (code, text) = check(&path).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("warning:"), "no feed, no warning: {text}");
}

/// A reload that brings such a panel logs the same warning at WARN (SIGHUP,
/// so the reload does not wait on the file watcher being armed).
#[tokio::test]
async fn reload_logs_panels_no_feed_can_feed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dashboards")).unwrap();
    let board = dir.path().join("dashboards/wall.toml");
    std::fs::write(
        &board,
        "title = \"Wall\"\n\n[[panel]]\nkind = \"tile\"\npattern = \"stocks.*\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("config.toml"), SYNTHETIC).unwrap();
    let (child, _addr, mut log) = spawn_logging(dir.path(), &["--listen", "127.0.0.1:0"]).await;
    support::write_atomic(&board, UNFED);
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGHUP).unwrap();
    let lines = log_until(&mut log, "topic \"stocks.APPL\"").await;
    let line = lines.last().unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("wall.toml:5: dashboard \"wall\": panel #1"),
        "{line}"
    );
}
