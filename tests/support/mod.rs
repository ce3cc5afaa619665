//! Shared test harness: a real tickerd on 127.0.0.1:0 and a real WebSocket
//! client (tokio-tungstenite), with deadlines instead of sleeps.
#![allow(dead_code, unreachable_pub)]

pub mod brokers;
pub mod databases;
pub mod feeds;
pub mod markdown;
pub mod python;
pub mod remote_write;
pub mod resume;
pub mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tickerd::Ticker;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expectation may take before the test fails: generous,
/// so a slow, loaded 2-core machine passes; a condition that never comes
/// still fails with a clear message instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running server with its config in a temp directory.
pub struct Server {
    pub addr: SocketAddr,
    pub ticker: Ticker,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl Server {
    /// Writes `config` to `<tmp>/config.toml` and serves it (hot reload on).
    pub async fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, config).await
    }

    /// Like [`Server::start`] in a directory prepared by the caller.
    pub async fn start_in(dir: TempDir, config: &str) -> Server {
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let ticker = Ticker::builder()
            .config_path(&config_path)
            .start()
            .await
            .expect("config is valid");
        Server::serve(ticker, dir, config_path).await
    }

    /// Like [`Server::start_in`], with the builder adjusted by `build` first
    /// (e.g. to register a custom feed kind with `.kind(..)`).
    pub async fn start_with(
        dir: TempDir,
        config: &str,
        build: impl FnOnce(tickerd::TickerBuilder) -> tickerd::TickerBuilder,
    ) -> Server {
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let ticker = build(Ticker::builder().config_path(&config_path))
            .start()
            .await
            .expect("config is valid");
        Server::serve(ticker, dir, config_path).await
    }

    /// Serves an already-built ticker.
    pub async fn serve(ticker: Ticker, dir: TempDir, config_path: PathBuf) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let t = ticker.clone();
        tokio::spawn(async move { t.serve(listener).await });
        let t = ticker.clone();
        tokio::spawn(async move { t.watch().await });
        Server {
            addr,
            ticker,
            dir,
            config_path,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// One metric's value from `/metrics`: the first sample whose line starts
    /// with `prefix` (end it with a space to name a metric without labels).
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(prefix) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {prefix} missing in:\n{text}"))
    }

    /// Connects a client and reads its `hello`.
    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.ticker.shutdown();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client that reads JSON frames with a deadline.
pub struct Client {
    pub ws: Ws,
    pub hello: Value,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = within(tokio_tungstenite::connect_async(url))
            .await
            .expect("connect");
        let mut c = Client {
            ws,
            hello: Value::Null,
        };
        c.hello = c.recv().await;
        assert_eq!(c.hello["type"], "hello", "first frame is hello");
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next text frame as JSON (Pings and Pongs are skipped).
    pub async fn recv(&mut self) -> Value {
        match self.next_message().await {
            Message::Text(t) => serde_json::from_str(&t).expect("server frames are JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next non-Ping/Pong message, within [`DEADLINE`].
    pub async fn next_message(&mut self) -> Message {
        within(async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(m)) => return m,
                    Some(Err(e)) => panic!("websocket error: {e}"),
                    None => panic!("websocket ended"),
                }
            }
        })
        .await
    }

    /// Reads frames until one satisfies `pred`, returning it; fails after
    /// [`DEADLINE`] overall, even while other frames keep arriving.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        within(async {
            loop {
                let v = self.recv().await;
                if pred(&v) {
                    return v;
                }
            }
        })
        .await
    }

    /// Subscribes and returns the ack.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Value {
        self.send(json!({"op": "subscribe", "topics": topics, "id": "sub"}))
            .await;
        let ack = self.recv_until(|v| v["type"] != "update").await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack
    }

    /// The next update of `topic`.
    pub async fn update_of(&mut self, topic: &str) -> Value {
        self.recv_until(|v| v["type"] == "update" && v["topic"] == topic)
            .await
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        within(async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }
}

/// Runs `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("timed out waiting")
}

/// Writes `text` to `path` the way editors save: a temp file in the same
/// directory, then a rename over `path`. A watcher never sees the file
/// truncated or half written.
pub fn write_atomic(path: &std::path::Path, text: impl AsRef<[u8]>) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `cond` every 20 ms until it holds, failing after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !cond().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The watcher is spawned by the harness: rewrites `path` (a file the config
/// reads, or the config itself) unchanged until a reload is published on
/// `$sys.config`, so later edits of it are known to be seen.
pub async fn watching(s: &Server, path: &std::path::Path) {
    let text = std::fs::read(path).unwrap();
    let seq = || s.ticker.hub().latest("$sys.config").map_or(0, |u| u.seq());
    let before = seq();
    within(async {
        loop {
            write_atomic(path, &text);
            for _ in 0..50 {
                if seq() > before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
}

/// A config with no feeds, for tests that publish themselves.
pub const EMPTY: &str = "[server]\nlisten = \"127.0.0.1:0\"\n";

/// GET `url` as JSON (a body that is not JSON comes back as a string).
pub async fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = within(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The rows of `GET /api/topics`, by topic name.
pub async fn topic_rows(s: &Server) -> std::collections::HashMap<String, Value> {
    let (_, list) = get_json(&s.http("/api/topics")).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["topic"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// The `tickerd` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_tickerd");

/// Starts `tickerd ARGS` in `cwd` as a child process (killed when dropped) and
/// returns it with the address it printed (`host:port`).
pub async fn spawn_tickerd(
    cwd: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> (tokio::process::Child, String) {
    spawn_tickerd_logging(cwd, args, std::process::Stdio::null()).await
}

/// [`spawn_tickerd`] with its stderr (the log) going to `stderr`, e.g.
/// `Stdio::piped()` to read it from `child.stderr`.
pub async fn spawn_tickerd_logging(
    cwd: &std::path::Path,
    args: &[&std::ffi::OsStr],
    stderr: std::process::Stdio,
) -> (tokio::process::Child, String) {
    start_tickerd(tickerd_command(cwd, args, stderr)).await
}

/// `tickerd ARGS` in `cwd`, its stderr going to `stderr`.
fn tickerd_command(
    cwd: &std::path::Path,
    args: &[&std::ffi::OsStr],
    stderr: std::process::Stdio,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).current_dir(cwd).stderr(stderr);
    command
}

/// [`spawn_tickerd_logging`], returning the whole URL tickerd printed
/// (`http://host:port/`, or `https://` with `[server.tls]`).
pub async fn spawn_tickerd_url(
    cwd: &std::path::Path,
    args: &[&std::ffi::OsStr],
    stderr: std::process::Stdio,
) -> (tokio::process::Child, String) {
    start_tickerd_url(tickerd_command(cwd, args, stderr)).await
}

/// Spawns `command` (a `tickerd` command line, with whatever environment and
/// stderr the test gives it) with its stdout piped, killed when dropped, and
/// waits for the address it prints (`host:port`).
pub async fn start_tickerd(command: tokio::process::Command) -> (tokio::process::Child, String) {
    let (child, url) = start_tickerd_url(command).await;
    let addr = url
        .split("://")
        .nth(1)
        .expect("a URL")
        .trim_end_matches('/')
        .to_string();
    (child, addr)
}

/// [`start_tickerd`], returning the whole URL tickerd printed.
pub async fn start_tickerd_url(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(lines.next_line())
        .await
        .unwrap()
        .expect("tickerd prints its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.contains("://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}
