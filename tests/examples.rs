//! The programs in `examples/` run as real child processes and are talked to
//! over real sockets: a host route and the nested ticker on one port, a value
//! published by the app reaching a WebSocket client and an in-process stream, a
//! custom feed kind declared in TOML that runs, is supervised and reloads, and
//! the host's own cancellation shutting everything down cleanly.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::{json, Value};
use support::{eventually, get_json, within, Client};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// An example's binary, built (or found up to date) by `cargo build
/// --examples` once per test run: `cargo test --all-targets` builds examples
/// only as test harnesses, not the programs run here.
///
/// The inner cargo runs without the variables cargo sets for this test crate
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...): build scripts of dependencies that
/// watch such a variable would otherwise see it change and rebuild, and the
/// next outer `cargo test` would rebuild them back.
fn example_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--examples", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let per_crate = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&&*key);
            if per_crate {
                cmd.env_remove(&*key);
            }
        }
        let status = cmd.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// A running example with its stdout.
struct Example {
    child: Child,
    addr: SocketAddr,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Example {
    /// Starts example `name` on a free port and reads the address it prints.
    async fn start(name: &str, env: &[(&str, &str)]) -> Example {
        let mut child = Command::new(example_path(name))
            .env("TICKERD_EXAMPLE_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = within(stdout.next_line())
            .await
            .unwrap()
            .expect("a first line");
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        Example {
            child,
            addr,
            stdout,
        }
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn client(&self, path: &str) -> Client {
        Client::connect(&format!("ws://{}{}", self.addr, path)).await
    }

    /// Reads stdout until a line satisfies `pred`.
    async fn line_where(&mut self, pred: impl Fn(&str) -> bool) -> String {
        within(async {
            loop {
                let line = self
                    .stdout
                    .next_line()
                    .await
                    .unwrap()
                    .expect("stdout ended");
                if pred(&line) {
                    return line;
                }
            }
        })
        .await
    }

    /// Sends SIGTERM and returns the exit code.
    async fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        within(self.child.wait()).await.unwrap().code()
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The host's own routes and the ticker nested under `/live` answer on one
/// port; cancelling the host's token (on SIGTERM) closes WebSocket clients with
/// 1001 and the process exits 0.
#[tokio::test]
async fn embed_axum_serves_host_and_ticker_on_one_port_and_stops_cleanly() {
    let mut ex = Example::start("embed_axum", &[]).await;
    assert_eq!(
        get_text(&ex.http("/")).await,
        (200, "hello from the host app".to_string())
    );
    assert_eq!(get_text(&ex.http("/live/healthz")).await.0, 200);
    let url = ex.http("/live/api/topics");
    eventually("stocks topics listed under /live/api", || async {
        let (status, topics) = get_json(&url).await;
        status == 200
            && topics
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["topic"] == "stocks.AAPL"))
    })
    .await;
    let mut client = ex.client("/live/ws").await;
    client.subscribe(&["stocks.*"]).await;
    let update = client.update_of("stocks.MSFT").await;
    assert!(update["data"]["price"].is_number(), "{update}");

    assert_eq!(ex.terminate().await, Some(0), "clean exit");
    assert_eq!(client.closed().await, Some(1001));
}

/// A value the host app publishes from its own handler reaches a WebSocket
/// client on the nested router, and the app's in-process subscription sees it
/// (and publishes a derived topic from it).
#[tokio::test]
async fn publish_from_app_reaches_websocket_clients_and_the_in_process_stream() {
    let mut ex = Example::start("publish_from_app", &[]).await;
    let mut client = ex.client("/live/ws").await;
    client.subscribe(&["orders.*", "stats.orders"]).await;
    let http = reqwest::Client::new();
    for (id, total) in [(1, 9.5), (2, 0.5)] {
        let r = http
            .post(ex.http("/orders"))
            .header("content-type", "application/json")
            .body(json!({"id": id, "total": total}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let first = client.update_of("orders.new").await;
    assert_eq!(first["data"], json!({"id": 1, "total": 9.5}));
    assert_eq!(first["seq"], 1);
    // The in-process consumer saw both orders, in order...
    ex.line_where(|l| l == "seen orders.new seq=1").await;
    ex.line_where(|l| l == "seen orders.new seq=2").await;
    // ...and its running total reached the WebSocket client.
    let stats = client
        .recv_until(|v| v["topic"] == "stats.orders" && v["data"]["orders"] == 2)
        .await;
    assert_eq!(stats["data"]["revenue"], json!(10.0));
    assert_eq!(ex.terminate().await, Some(0));
    assert_eq!(client.closed().await, Some(1001));
}

/// A custom kind declared in a TOML file runs with its options deserialized
/// into the example's own struct, restarts when the file changes its options
/// (hot reload), and a run that returns `Err` is retried with backoff.
#[tokio::test]
async fn custom_feed_from_toml_runs_is_supervised_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = |step: i64| {
        format!(
            "[[feed]]\nname = \"fast\"\nkind = \"counter\"\ntopic = \"counter.fast\"\ninterval = \"50ms\"\nstep = {step}\n\n\
             [[feed]]\nname = \"flaky\"\nkind = \"counter\"\ntopic = \"counter.flaky\"\ninterval = \"20ms\"\nfail_after = 2\n"
        )
    };
    std::fs::write(&path, config(1)).unwrap();
    let mut ex = Example::start(
        "custom_feed",
        &[("TICKERD_EXAMPLE_CONFIG", path.to_str().unwrap())],
    )
    .await;
    let mut client = ex.client("/ws").await;
    client.subscribe(&["counter.fast", "$sys.feeds"]).await;
    let u = client.update_of("counter.fast").await;
    assert_eq!(u["data"]["step"], 1, "{u}");

    // Supervision: the flaky feed fails after 2 updates, backs off, runs again.
    let failed = client
        .recv_until(|v| {
            v["topic"] == "$sys.feeds"
                && v["data"]["feed"] == "flaky"
                && v["data"]["state"] == "backoff"
        })
        .await;
    assert!(
        failed["data"]["error"]
            .as_str()
            .unwrap()
            .contains("gave up"),
        "{failed}"
    );
    client
        .recv_until(|v| {
            v["topic"] == "$sys.feeds"
                && v["data"]["feed"] == "flaky"
                && v["data"]["state"] == "running"
                && v["data"]["updates"].as_u64() > Some(2)
        })
        .await;

    // Reload: a new step restarts the feed with the new options.
    support::write_atomic(&path, config(5));
    let u = client
        .recv_until(|v| v["topic"] == "counter.fast" && v["data"]["step"] == 5)
        .await;
    assert_eq!(
        u["data"]["value"], 5,
        "the restarted feed counts from zero: {u}"
    );
    let (_, topics): (u16, Value) = get_json(&ex.http("/api/topics")).await;
    assert!(topics
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["feed"] == "fast"));
    assert_eq!(ex.terminate().await, Some(0));
}

/// `examples/subscribe.rs` follows a pattern of a running server with
/// `tickerd::client`: the snapshot first, then each update, one line each.
#[tokio::test]
async fn subscribe_example_prints_snapshots_then_updates() {
    let s = support::Server::start(support::EMPTY).await;
    let hub = s.ticker.hub();
    hub.publish("ex.a", &json!({"p": 1})).unwrap();
    let mut child = Command::new(example_path("subscribe"))
        .args([s.http(""), "ex.*".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn example");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = within(stdout.next_line()).await.unwrap();
    assert_eq!(first.as_deref(), Some(r#"ex.a #1 {"p":1} (snapshot)"#));
    hub.publish("ex.a", &json!({"p": 2})).unwrap();
    let next = within(stdout.next_line()).await.unwrap();
    assert_eq!(next.as_deref(), Some(r#"ex.a #2 {"p":2}"#));
}
