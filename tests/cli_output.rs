//! What the `tickerd` command prints for a service manager and a log
//! aggregator (issue #29): `--version` with the git commit, and
//! `--log-format json`, one object per line, from the real binary.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::{markdown::root, start_tickerd, within, BIN, EMPTY};
use tokio::process::{Child, Command};

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id().unwrap() as i32), sig).unwrap();
}

/// `tickerd --version` prints the crate's version and the commit it was
/// built from (`git rev-parse --short HEAD` of this checkout; `unknown`
/// outside one).
#[tokio::test]
async fn version_names_the_commit() {
    let out = within(Command::new(BIN).arg("--version").output())
        .await
        .unwrap();
    assert!(out.status.success());
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output();
    let commit = match git {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_string(),
        _ => "unknown".to_string(),
    };
    let want = format!("tickerd {} ({commit})\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

/// `--log-format json`: every line tickerd writes to stderr, from start
/// through a reload to shutdown, is one JSON object with `time` (RFC 3339),
/// `level`, `target`, `message` and `fields`; a feed's lines carry its name
/// in `fields`.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{EMPTY}\n[[feed]]\nname = \"ticks\"\nkind = \"synthetic\"\ntopic = \"t.{{symbol}}\"\nsymbols = [\"A\"]\n"
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["-c", "config.toml", "--log-format", "json"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped());
    let (mut child, _) = start_tickerd(command).await;
    let stderr = child.stderr.take().unwrap();
    signal(&child, Signal::SIGHUP);
    let mut lines = Vec::new();
    within(async {
        use tokio::io::AsyncBufReadExt;
        let mut log = tokio::io::BufReader::new(stderr).lines();
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("Config reloaded.") {
                signal(&child, Signal::SIGTERM);
            }
            lines.push(line);
        }
    })
    .await;
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status}:\n{}", lines.join("\n"));
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for (v, line) in parsed.iter().zip(&lines) {
        let time = v["time"]
            .as_str()
            .unwrap_or_else(|| panic!("no time: {line}"));
        assert!(
            time.len() > 20 && time.ends_with('Z') && time.contains('T'),
            "{line}"
        );
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap()),
            "{line}"
        );
        assert!(
            v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("tickerd")),
            "{line}"
        );
        assert!(
            v["message"].is_string() && v["fields"].is_object(),
            "{line}"
        );
    }
    let find = |msg: &str| {
        parsed
            .iter()
            .find(|v| v["message"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} in:\n{}", lines.join("\n")))
    };
    assert!(find("Listening.")["fields"]["addr"].is_string());
    assert_eq!(find("Feed started.")["fields"]["feed"], "ticks");
    find("Config reloaded.");
    find("Stopped.");
}
