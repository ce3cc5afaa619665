//! Real PostgreSQL and Prometheus servers for feed tests, each in its own temp
//! directory on a free loopback port, stopped (and waited for) when dropped.
//!
//! Neither server can take port 0 and tell us the port, so [`free_port`] binds
//! 127.0.0.1:0, reads the port and releases it right before the server starts;
//! a server that then loses the port to someone else exits, and the start is
//! retried on a new port. PostgreSQL refuses to run as root, so as root its
//! programs run as the `postgres` user (set on the child itself, with no
//! wrapper process such as `runuser` in between, so the signal that stops it
//! reaches the server).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// How long a server may take to start (Prometheus: until it has data).
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// Where Debian puts PostgreSQL 15's programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server child process, stopped politely when dropped: `signal`, then up to
/// 15 s to exit, then SIGKILL.
pub struct Process {
    child: Child,
    signal: nix::sys::signal::Signal,
}

impl Process {
    fn spawn(mut cmd: Command, log: &Path, signal: nix::sys::signal::Signal) -> Process {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Process { child, signal }
    }

    /// Has it exited (e.g. because its port was taken)?
    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Signals it and waits for it to exit.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, self.signal);
        for _ in 0..1500 {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited() {
            self.stop_now();
        }
    }
}

/// Runs `cmd` as the `postgres` user when we are root (PostgreSQL refuses
/// root); as ourselves otherwise.
fn as_postgres(cmd: &mut Command) -> &mut Command {
    match postgres_ids() {
        Some((uid, gid)) => cmd.uid(uid).gid(gid),
        None => cmd,
    }
}

/// The `postgres` user's uid and gid when we are root, else `None`.
fn postgres_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root.then(|| ids_of("postgres"))
}

/// The uid and gid of a system user.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().unwrap();
        assert!(out.status.success(), "no user {user}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// A PostgreSQL 15 server: superuser `postgres` with [`Postgres::PASSWORD`],
/// password (SCRAM) authentication over TCP.
pub struct Postgres {
    /// Declared first so it is dropped (stopped) before `dir` is removed.
    process: Option<Process>,
    pub dir: TempDir,
    pub port: u16,
}

impl Postgres {
    /// The superuser's password.
    pub const PASSWORD: &'static str = "s3cret-pw";

    /// Initializes a cluster in a temp dir and starts it.
    pub async fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), Self::PASSWORD).unwrap();
        if let Some((uid, gid)) = postgres_ids() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(dir.path().join("pw"), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_postgres(&mut Command::new(format!("{PG_BIN}/initdb")))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .args(["-E", "UTF8", "--no-sync"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            port: 0,
            process: None,
        };
        for _ in 0..5 {
            pg.port = free_port();
            if pg.launch().await {
                return pg;
            }
        }
        panic!("PostgreSQL did not start; see {}", pg.log().display());
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Starts the server on `self.port`; false if it exited (port clash).
    async fn launch(&mut self) -> bool {
        let mut cmd = Command::new(format!("{PG_BIN}/postgres"));
        as_postgres(&mut cmd)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .current_dir(self.dir.path());
        let mut process = Process::spawn(cmd, &self.log(), nix::sys::signal::Signal::SIGINT);
        let start = tokio::time::Instant::now();
        while start.elapsed() < START_DEADLINE {
            if process.exited() {
                return false;
            }
            if self.try_connect().await.is_some() {
                self.process = Some(process);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "PostgreSQL not ready after {START_DEADLINE:?}; see {}",
            self.log().display()
        );
    }

    async fn try_connect(&self) -> Option<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={}",
                self.port,
                Self::PASSWORD
            ),
            tokio_postgres::NoTls,
        )
        .await
        .ok()?;
        tokio::spawn(connection);
        Some(client)
    }

    /// A superuser connection for the test's own statements.
    pub async fn client(&self) -> tokio_postgres::Client {
        self.try_connect()
            .await
            .expect("PostgreSQL accepts the superuser")
    }

    /// The URL a feed uses (no password: it comes from `password_env`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Fast shutdown (clients are disconnected), waiting for the exit.
    pub fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the stopped server again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        launch_again(port, async || self.launch().await).await;
    }
}

/// A Prometheus server scraping one target every second.
pub struct Prometheus {
    /// Declared first so it is dropped (stopped) before `dir` is removed.
    process: Option<Process>,
    pub dir: TempDir,
    pub port: u16,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://{target}/metrics` (job `app`).
    pub async fn start(target: SocketAddr) -> Prometheus {
        Prometheus::start_with(target, "").await
    }

    /// Like [`Prometheus::start`], with `extra` (top-level YAML, e.g. a
    /// `remote_write:` section) added to its config.
    pub async fn start_with(target: SocketAddr, extra: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n{extra}"
            ),
        )
        .unwrap();
        let mut prom = Prometheus {
            dir,
            port: 0,
            process: None,
        };
        for _ in 0..5 {
            prom.port = free_port();
            if prom.launch().await {
                return prom;
            }
        }
        panic!("Prometheus did not start; see {}", prom.log().display());
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    /// The base URL a feed uses.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> bool {
        let d = self.dir.path();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            d.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
        .current_dir(d);
        let mut process = Process::spawn(cmd, &self.log(), nix::sys::signal::Signal::SIGTERM);
        let ready = format!("{}/-/ready", self.url());
        let start = tokio::time::Instant::now();
        while start.elapsed() < START_DEADLINE {
            if process.exited() {
                return false;
            }
            if let Ok(r) = reqwest::get(&ready).await {
                if r.status().is_success() {
                    self.process = Some(process);
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Prometheus not ready after {START_DEADLINE:?}; see {}",
            self.log().display()
        );
    }

    /// Waits until `query` returns at least one series (the first scrapes).
    pub async fn wait_for(&self, query: &str) {
        let url = format!("{}/api/v1/query", self.url());
        let start = tokio::time::Instant::now();
        loop {
            let answer: Option<serde_json::Value> = async {
                let r = reqwest::Client::new()
                    .get(&url)
                    .query(&[("query", query)])
                    .send()
                    .await
                    .ok()?;
                serde_json::from_str(&r.text().await.ok()?).ok()
            }
            .await;
            if answer.is_some_and(|a| {
                a["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            }) {
                return;
            }
            assert!(
                start.elapsed() < START_DEADLINE,
                "Prometheus has no data for {query:?}; see {}",
                self.log().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server (SIGTERM), waiting for the exit.
    pub fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the stopped server again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        launch_again(port, async || self.launch().await).await;
    }
}

/// Calls `launch` until it succeeds: a restarted server may find its port
/// still held for a moment by the one that just stopped.
async fn launch_again(port: u16, mut launch: impl AsyncFnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !launch().await {
        assert!(start.elapsed() < START_DEADLINE, "port {port} stays taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
