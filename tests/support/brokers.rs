//! Real brokers for the broker feed tests: mosquitto, redis-server and
//! nats-server, each a child process (killed when dropped) on 127.0.0.1, with
//! its files and log in its own temp directory. `scripts/test.sh` installs them
//! from Debian when missing.
//!
//! Not all of them can listen on a port they pick themselves, so the port
//! comes from binding 127.0.0.1:0 and releasing it right before the server
//! starts; a clash (the server exits, or its log never says it is ready) is
//! retried on a fresh port. A restart reuses the port, since the
//! feed under test has it in its URL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long a broker may take to listen, on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Which server, and how it is started.
#[derive(Clone)]
enum Kind {
    /// mosquitto with extra lines for its config file.
    Mosquitto(String),
    /// redis-server with extra arguments.
    Redis(Vec<String>),
    /// nats-server with extra arguments.
    Nats(Vec<String>),
}

/// A running broker.
pub struct Broker {
    kind: Kind,
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its config, data and log live here.
    pub dir: TempDir,
    /// How many times it was started (its log file is per start).
    starts: u32,
}

impl Broker {
    /// mosquitto, anonymous access unless `extra` says otherwise (e.g.
    /// `allow_anonymous false` and a `password_file`), persistence on.
    pub async fn mosquitto(extra: &str) -> Broker {
        Broker::start(Kind::Mosquitto(extra.to_string())).await
    }

    /// redis-server with an append-only file (synced on every write, so a
    /// restart keeps every stream entry) and `extra` arguments.
    pub async fn redis(extra: &[&str]) -> Broker {
        Broker::start(Kind::Redis(extra.iter().map(|s| s.to_string()).collect())).await
    }

    /// nats-server with `extra` arguments (e.g. `--user u --pass p`).
    pub async fn nats(extra: &[&str]) -> Broker {
        Broker::start(Kind::Nats(extra.iter().map(|s| s.to_string()).collect())).await
    }

    async fn start(kind: Kind) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        for _attempt in 0..5 {
            let port = free_port().await;
            if let Some(child) = launch(&kind, dir.path(), port, 1).await {
                return Broker {
                    kind,
                    child,
                    port,
                    dir,
                    starts: 1,
                };
            }
        }
        panic!("the broker did not start:\n{}", logs(dir.path()));
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self) -> String {
        let scheme = match self.kind {
            Kind::Mosquitto(_) => "mqtt",
            Kind::Redis(_) => "redis",
            Kind::Nats(_) => "nats",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops it gracefully (SIGTERM, so persistence is written), waiting for
    /// it to exit; killed after the deadline.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(START_DEADLINE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The same server again: same port, same directory (so same data).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.starts += 1;
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        // The port was just released; a new listener may need a moment.
        loop {
            if let Some(child) = launch(&self.kind, self.dir.path(), self.port, self.starts).await {
                self.child = child;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the broker did not restart on port {}:\n{}",
                self.port,
                logs(self.dir.path())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Writes a mosquitto password file for `user`/`password` into `dir` with
/// `mosquitto_passwd -b -c` and returns its path.
pub async fn mosquitto_password_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join("passwords");
    let status = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg("-c")
        .arg(&path)
        .args([user, password])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("mosquitto_passwd is installed (scripts/test.sh installs mosquitto)");
    assert!(status.success(), "mosquitto_passwd failed");
    path
}

/// The broker's log files in `dir`, for a failure message (the directory is
/// gone once the test ends).
fn logs(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "log"));
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("== {}\n{}", p.display(), tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A port on 127.0.0.1 that was free a moment ago.
pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Starts the server on `port`; `None` when it exits or does not listen in time
/// (the port was taken).
async fn launch(kind: &Kind, dir: &Path, port: u16, start: u32) -> Option<Child> {
    let log = std::fs::File::create(dir.join(format!("broker-{start}.log"))).unwrap();
    let mut cmd = match kind {
        Kind::Mosquitto(extra) => {
            let conf = dir.join("mosquitto.conf");
            let data = dir.join("data");
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(
                &conf,
                format!(
                    "# Running as root in a private temp dir: stay root.\nuser root\n\
                     listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n\
                     log_dest stderr\n{}\n",
                    data.display(),
                    if extra.contains("allow_anonymous") {
                        extra.clone()
                    } else {
                        format!("allow_anonymous true\n{extra}")
                    }
                ),
            )
            .unwrap();
            let mut c = Command::new("mosquitto");
            c.arg("-c").arg(&conf);
            c
        }
        Kind::Redis(extra) => {
            let mut c = Command::new("redis-server");
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(dir)
                .args(extra);
            c
        }
        Kind::Nats(extra) => {
            let mut c = Command::new("nats-server");
            c.args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .args(extra);
            c
        }
    };
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the broker is installed (scripts/test.sh installs mosquitto, redis-server, nats-server)");
    // Ready when its own log says so: a TCP connect alone could reach a
    // stranger that took the port first.
    let ready = match kind {
        Kind::Mosquitto(_) => " running",
        Kind::Redis(_) => "Ready to accept connections",
        Kind::Nats(_) => "Server is ready",
    };
    let log_path = dir.join(format!("broker-{start}.log"));
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains(ready) {
            return Some(child);
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test-side MQTT publisher (rumqttc) that waits for the broker's PUBACK of
/// each QoS 1 message, so "sent" means "the broker has it".
pub struct MqttPublisher {
    client: rumqttc::AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttPublisher {
    /// Connects to the broker on `port` as `client_id`.
    pub async fn connect(port: u16, client_id: &str) -> MqttPublisher {
        let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 16);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll; pace the retries.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        MqttPublisher { client, acks, task }
    }

    /// Publishes `payload` to `topic` at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
        super::within(self.acks.recv()).await.expect("PUBACK");
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
