//! Every `curl` example a newcomer can copy works as written: each `curl` line
//! of README.md, SECURITY.md and docs/*.md (in a shell block or an inline code
//! span) and each URL the server itself hints at in an error is run with the
//! real `curl` binary against a real tickerd running the built-in default, and
//! must answer 2xx with a body. A pattern's `>` written raw in a URL is refused
//! by curl's server side (hyper) with an empty 400 before tickerd sees it, so
//! an example that forgets `%3E` fails here.

mod support;

use std::path::Path;

use support::markdown::{markdown_files, root};
use support::{eventually, get_json, within, Server};
use tickerd::{Config, Ticker};

/// The address the docs write; each example is pointed at the test's server.
const DOCS_ADDR: &str = "127.0.0.1:8080";

/// How long one streaming example (`curl -N .../sse`) is let run: long enough
/// for the hello and the first frames, on a slow machine too.
const STREAM_SECS: u32 = 3;

/// curl's exit code when `--max-time` ran out (expected for streams).
const CURL_TIMED_OUT: i32 = 28;

/// Every `curl` command of `text`: lines of ```sh/```bash/```shell blocks that
/// start with `curl `, and inline code spans that do. Each with its 1-based line.
fn curl_commands(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_shell = false;
    let mut in_other = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_shell || in_other {
                (in_shell, in_other) = (false, false);
            } else if matches!(info.trim(), "sh" | "bash" | "shell" | "console") {
                in_shell = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if in_shell {
            let cmd = trimmed.trim_start_matches("$ ");
            if cmd.starts_with("curl ") {
                found.push((i + 1, cmd.to_string()));
            }
        } else if !in_other {
            // Inline code spans: every other piece between backticks.
            for span in line.split('`').skip(1).step_by(2) {
                if span.starts_with("curl ") && span.contains("http") {
                    found.push((i + 1, span.to_string()));
                }
            }
        }
    }
    found
}

/// What one `curl` run gave.
struct Ran {
    exit: Option<i32>,
    status: String,
    body: String,
    stderr: String,
}

impl Ran {
    /// A 2xx with a body, and curl exited 0 (or ran out of `--max-time` on a
    /// stream that had sent data).
    fn worked(&self) -> bool {
        let exit_ok = self.exit == Some(0) || self.exit == Some(CURL_TIMED_OUT);
        exit_ok && self.status.starts_with('2') && !self.body.trim().is_empty()
    }
}

/// Runs `command` (a shell line starting with `curl `) through `sh`, with the
/// docs' address replaced by `addr`, a time limit, the body kept and the
/// status written out.
async fn run_curl(command: &str, addr: &str, dir: &Path) -> Ran {
    let body = dir.join("body");
    let _ = std::fs::remove_file(&body);
    let rest = command
        .strip_prefix("curl ")
        .expect("a curl command")
        .replace(DOCS_ADDR, addr);
    // Options first: whatever the line ends with (a quoted URL) stays last.
    let line = format!("curl --max-time {STREAM_SECS} -sS -o \"$BODY\" -w '%{{http_code}}' {rest}");
    let out = within(
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("BODY", &body)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sh and curl run (Debian package `curl`)");
    Ran {
        exit: out.status.code(),
        status: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// A real tickerd with the built-in default (the demo a newcomer runs first),
/// once `stocks.AAPL` has a value for the examples to read.
async fn demo() -> Server {
    let ticker = Ticker::builder()
        .config(Config::builtin())
        .start()
        .await
        .expect("the built-in default starts");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let server = Server::serve(ticker, dir, path).await;
    let url = server.http("/api/topics/stocks.AAPL");
    eventually("stocks.AAPL has a value", || async {
        get_json(&url).await.0 == 200
    })
    .await;
    server
}

/// Every `curl` line of README.md (shell blocks and inline code), SECURITY.md
/// and docs/*.md, copied as written (only the address changed), exits 0 (or
/// times out on a stream that sent data) with a 2xx status and a body: in
/// particular a pattern's `>` is written `%3E`, which curl needs.
#[tokio::test]
async fn every_curl_example_in_the_docs_runs_as_written() {
    let server = demo().await;
    let addr = server.addr.to_string();
    let mut commands = Vec::new();
    for file in markdown_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for (line, cmd) in curl_commands(&text) {
            commands.push((format!("{name}:{line}"), cmd));
        }
    }
    let readme = commands
        .iter()
        .filter(|(at, _)| at.starts_with("README.md"))
        .count();
    assert!(readme >= 3, "README.md's curl examples were not found");
    let mut failed = Vec::new();
    for (at, cmd) in &commands {
        let ran = run_curl(cmd, &addr, server.dir.path()).await;
        if !ran.worked() {
            failed.push(format!(
                "{at}: `{cmd}`: curl exit {:?}, status {:?}, body {:?}, stderr {:?}",
                ran.exit, ran.status, ran.body, ran.stderr
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "curl examples that do not work as written:\n{}",
        failed.join("\n")
    );
}

/// The first `word`-prefixed URL path in `message` (up to whitespace).
fn hinted_path<'a>(message: &'a str, word: &str) -> &'a str {
    let start = message
        .find(word)
        .unwrap_or_else(|| panic!("no {word} hint in {message:?}"));
    message[start..].split_whitespace().next().unwrap()
}

/// The URLs the server suggests in its own 400s (a pattern at
/// `/api/topics/{topic}` points to `?pattern=`; `/sse` without `topics` shows
/// an example) work with curl as written: their `>` is `%3E`.
#[tokio::test]
async fn the_servers_url_hints_run_as_written() {
    let server = demo().await;
    let addr = server.addr.to_string();
    let (status, body) = get_json(&server.http("/api/topics/stocks.%3E")).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or_default().to_string();
    let list = hinted_path(&message, "/api/topics?pattern=");
    let ran = run_curl(
        &format!("curl -s 'http://{addr}{list}'"),
        &addr,
        server.dir.path(),
    )
    .await;
    assert!(
        ran.worked() && ran.body.contains("stocks.AAPL"),
        "hint {list:?} of {message:?}: exit {:?}, status {:?}, body {:?}",
        ran.exit,
        ran.status,
        ran.body
    );

    let (status, body) = get_json(&server.http("/sse")).await;
    assert_eq!(status, 400, "{body}");
    let message = match &body {
        serde_json::Value::String(s) => s.clone(),
        v => v["error"].as_str().unwrap_or_default().to_string(),
    };
    let sse = hinted_path(&message, "/sse?topics=");
    let ran = run_curl(
        &format!("curl -N 'http://{addr}{sse}'"),
        &addr,
        server.dir.path(),
    )
    .await;
    assert!(
        ran.worked() && ran.body.contains("\"hello\""),
        "hint {sse:?} of {message:?}: exit {:?}, status {:?}, body {:?}",
        ran.exit,
        ran.status,
        ran.body
    );
}
