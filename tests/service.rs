//! tickerd under systemd (issue #29, docs/deploy.md "systemd"): the notify
//! protocol heard on a socket the test binds, against the real binary, and
//! the unit of docs/deploy.md checked by `systemd-analyze verify`.

mod support;

use std::collections::HashMap;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{markdown::root, start_tickerd, within, write_atomic, BIN, EMPTY};
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

/// A notify socket bound in a temp dir, as systemd would give one.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path }
    }

    /// The next datagram, as text (within the deadline).
    async fn next(&self) -> String {
        let mut buf = vec![0u8; 4096];
        let n = within(self.socket.recv(&mut buf)).await.unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// Datagrams until one equals `last`; every one read, `last` included.
    async fn until(&self, last: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let msg = self.next().await;
            seen.push(msg.clone());
            if msg == last {
                return seen;
            }
        }
    }
}

/// `tickerd -c config.toml` in `dir` with `env` set.
async fn spawn_with_env(dir: &Path, env: &[(&str, &std::ffi::OsStr)]) -> (Child, String) {
    let mut command = Command::new(BIN);
    command
        .arg("-c")
        .arg(dir.join("config.toml"))
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    for (k, v) in env {
        command.env(k, v);
    }
    start_tickerd(command).await
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id().unwrap() as i32), sig).unwrap();
}

/// `CLOCK_MONOTONIC` now, in microseconds (what `MONOTONIC_USEC=` is).
fn monotonic_usec() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
}

/// Checks a `RELOADING=1` datagram: it carries `MONOTONIC_USEC=` of this
/// machine's monotonic clock, taken during the test.
fn assert_reloading(msg: &str, since: u64) {
    let usec = msg
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("not RELOADING=1 with MONOTONIC_USEC=: {msg:?}"));
    let usec: u64 = usec.trim().parse().unwrap();
    assert!(
        (since..=monotonic_usec()).contains(&usec),
        "MONOTONIC_USEC={usec} is not a time of this test"
    );
}

/// Under `NOTIFY_SOCKET`, systemd hears, in order: `READY=1` once tickerd
/// serves; `RELOADING=1` (with `MONOTONIC_USEC=`) then `READY=1` around a
/// reload of the file watcher and around a SIGHUP reload; `STOPPING=1` on
/// SIGTERM, after which tickerd exits 0. Nothing else is sent without
/// `WATCHDOG_USEC`.
#[tokio::test]
async fn systemd_hears_ready_reloading_and_stopping_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, EMPTY).unwrap();
    let notify = NotifySocket::bind(dir.path());
    let since = monotonic_usec();
    let (mut child, addr) =
        spawn_with_env(dir.path(), &[("NOTIFY_SOCKET", notify.path.as_os_str())]).await;
    assert_eq!(notify.next().await, "READY=1");
    let (status, _) = support::get_json(&format!("http://{addr}/healthz")).await;
    assert_eq!(status, 200, "READY=1 means serving");

    // The file watcher may not be armed yet: edit until a reload begins.
    let mut edits = 0;
    let first = within(async {
        loop {
            edits += 1;
            write_atomic(&config, format!("{EMPTY}# edit {edits}\n"));
            let wait = std::time::Duration::from_millis(500);
            let mut buf = vec![0u8; 4096];
            if let Ok(n) = tokio::time::timeout(wait, notify.socket.recv(&mut buf)).await {
                return String::from_utf8(buf[..n.unwrap()].to_vec()).unwrap();
            }
        }
    })
    .await;
    assert_reloading(&first, since);
    let mut seen = vec!["READY=1".to_string(), first];
    seen.extend(notify.until("READY=1").await);

    signal(&child, Signal::SIGHUP);
    // A late event of an earlier edit may reload once more first: any number
    // of complete RELOADING/READY pairs, the SIGHUP's among them.
    let reloads_before = seen.len();
    seen.extend(notify.until("READY=1").await);
    assert!(seen.len() > reloads_before);

    signal(&child, Signal::SIGTERM);
    seen.extend(notify.until("STOPPING=1").await);
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status}");

    // READY, then pairs of RELOADING and READY, then STOPPING.
    assert_eq!(seen.first().map(String::as_str), Some("READY=1"));
    assert_eq!(seen.last().map(String::as_str), Some("STOPPING=1"));
    let pairs = &seen[1..seen.len() - 1];
    assert!(pairs.len() >= 4 && pairs.len() % 2 == 0, "{seen:?}");
    for pair in pairs.chunks(2) {
        assert_reloading(&pair[0], since);
        assert_eq!(pair[1], "READY=1", "{seen:?}");
    }
}

/// With `WATCHDOG_USEC` (systemd's `WatchdogSec=`), tickerd pings
/// `WATCHDOG=1` again and again after `READY=1`, on an abstract-namespace
/// socket (`@name`) too, and still ends with `STOPPING=1`.
#[tokio::test]
async fn watchdog_pings_while_serving() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), EMPTY).unwrap();
    let name = format!("tickerd-test-watchdog-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    std_socket.set_nonblocking(true).unwrap();
    let notify = NotifySocket {
        socket: UnixDatagram::from_std(std_socket).unwrap(),
        path: dir.path().join("unused"),
    };
    let at = format!("@{name}");
    // 300 ms: a ping every 150 ms.
    let (child, _) = spawn_with_env(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", at.as_ref()),
            ("WATCHDOG_USEC", "300000".as_ref()),
        ],
    )
    .await;
    assert_eq!(notify.next().await, "READY=1");
    for _ in 0..3 {
        assert_eq!(notify.next().await, "WATCHDOG=1");
    }
    signal(&child, Signal::SIGTERM);
    let rest = notify.until("STOPPING=1").await;
    assert!(
        rest[..rest.len() - 1].iter().all(|m| m == "WATCHDOG=1"),
        "{rest:?}"
    );
}

/// The ```ini unit of docs/deploy.md "systemd".
fn deploy_unit() -> String {
    let doc = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let section = doc
        .split("\n## systemd\n")
        .nth(1)
        .expect("docs/deploy.md has a `## systemd` section");
    let unit = section
        .split("```ini\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the systemd section holds an ```ini unit");
    unit.to_string()
}

/// The unit in docs/deploy.md is one `systemd-analyze verify` accepts without
/// a warning (with its ExecStart pointed at this build), and it sets what the
/// notify code and the shutdown deadline rely on: `Type=notify`, SIGHUP as
/// the reload, a watchdog, a stop timeout above `shutdown_timeout`'s default,
/// AF_UNIX for the notify socket, and the hardening the doc promises.
#[tokio::test]
async fn the_documented_unit_verifies_and_sets_what_tickerd_needs() {
    let unit = deploy_unit();
    let keys: HashMap<&str, &str> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "tickerd"),
        ("NoNewPrivileges", "yes"),
    ] {
        assert_eq!(keys.get(key), Some(&value), "{key}= in the unit");
    }
    assert!(keys["ExecStart"].starts_with("/usr/local/bin/tickerd "));
    assert!(keys["RestrictAddressFamilies"].contains("AF_UNIX"));
    let secs = |key: &str| -> u64 {
        let v = keys
            .get(key)
            .unwrap_or_else(|| panic!("{key}= in the unit"));
        humantime::parse_duration(v).unwrap().as_secs()
    };
    assert!(secs("WatchdogSec") > 0);
    let default_timeout = tickerd::config::ServerConfig::default().shutdown_timeout;
    assert!(secs("TimeoutStopSec") > default_timeout.as_secs());

    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze not found: the unit's keys were checked, not the unit");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tickerd.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tickerd", BIN)).unwrap();
    let out = within(
        Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(&path)
            .output(),
    )
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

/// The first `name` on `$PATH`.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").ok_or(())?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
