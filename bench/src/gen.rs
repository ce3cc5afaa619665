//! One scenario: upstream + server under test + N measuring clients.
//!
//! The upstream ([`crate::upstream`]) runs on its own thread; the clients
//! ([`crate::clients`]) share the main thread's single-threaded runtime, or,
//! with `--threads N`, are dealt over N threads with one such runtime each (to
//! receive more than one core can). Latency is measured end to end: upstream
//! send time to client receive time, same process, same clock. Every wait is
//! bounded. With `--phases`, one set of connections is measured at several
//! rates in turn, one JSON line per phase (the `scale` scenario).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clients::{self, Clients, Plan};
use crate::sys;
use crate::upstream::{self, Upstream};

/// What one scenario does.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The server's label in the results (tickerd, node-ws, tutorial).
    #[arg(long)]
    server: String,
    /// The scenario's label (load, saturation, idle, scale).
    #[arg(long)]
    scenario: String,
    /// Where the upstream listens.
    #[arg(long, default_value = "127.0.0.1:19000")]
    upstream: SocketAddr,
    /// Where the server under test listens.
    #[arg(long, default_value = "127.0.0.1:19001")]
    target: SocketAddr,
    /// The server's WebSocket path.
    #[arg(long, default_value = "/ws")]
    path: String,
    /// Number of clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Upstream messages per second (over all symbols).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Number of symbols (topics `bench.{sym}`).
    #[arg(long, default_value_t = 16)]
    symbols: usize,
    /// Size of each upstream message in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Idle mode: no load; measure RSS per subscribed connection.
    #[arg(long)]
    idle: bool,
    /// Measure these phases in turn on the same connections, each
    /// `TOPICSxRATE`: that many topics at that many updates/s each (e.g.
    /// `1x1,16x10`); replaces `--rate`. RSS per connection is weighed first.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<Phase>,
    /// Threads the clients are dealt over.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Clients per 127.0.0.x source address (client i binds 127.0.0.(1 + i / N)).
    #[arg(long, default_value_t = 25_000)]
    per_source: usize,
    /// Time the latency of every Nth client only (all of them count deliveries).
    #[arg(long, default_value_t = 1)]
    sample_every: usize,
    /// The cheap client: frames read straight off the socket, not through
    /// tungstenite (for the generator to keep up with millions of deliveries/s).
    #[arg(long)]
    raw: bool,
    /// The server command, run as a child (e.g. `taskset -c 0 node server.js`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// One phase of `--phases`: `topics` topics at `rate` updates/s each.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    topics: usize,
    rate: u64,
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "phase {s:?}: expected TOPICSxRATE, e.g. 16x10 (16 topics at 10 updates/s each)"
            )
        };
        let (topics, rate) = s.split_once('x').ok_or_else(wrong)?;
        let phase = Phase {
            topics: topics.parse().map_err(|_| wrong())?,
            rate: rate.parse().map_err(|_| wrong())?,
        };
        if phase.topics == 0 || phase.rate == 0 {
            return Err(wrong());
        }
        Ok(phase)
    }
}

/// Runs the scenario and prints its JSON line(s).
pub fn run(args: Args) {
    sys::raise_nofile();
    let up = Arc::new(Upstream::new(args.rate, args.symbols));
    let upstream = {
        let up = up.clone();
        let (addr, symbols, payload) = (args.upstream, args.symbols, args.payload);
        std::thread::spawn(move || upstream::run(addr, symbols, payload, up))
    };
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    sys::die_with_parent(&mut command);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", args.command));
    let pid = child.id().to_string();
    let server = Server(child);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&rt, scenario(&args, &up, &pid));
    up.stop.store(true, Ordering::Relaxed);
    drop(server);
    let _ = upstream.join();
    for result in results {
        println!("{result}");
    }
}

/// The server child; killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn scenario(args: &Args, up: &Upstream, pid: &str) -> Vec<serde_json::Value> {
    // The server connects to the upstream once it is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.connected.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never connected to the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the server settle (its feed publishes the first message per symbol).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_base = sys::rss_kib(pid).unwrap_or(0);
    let threads = args.threads.max(1);
    let shared = Arc::new(Clients::new(threads));
    let plan = Plan {
        target: args.target,
        path: args.path.clone(),
        per_source: args.per_source,
        sample_every: args.sample_every,
        raw: args.raw,
    };
    spawn_clients(args, &plan, 0, &shared);
    let others: Vec<_> = (1..threads)
        .map(|t| {
            let (args, plan, shared) = (args.clone(), plan.clone(), shared.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async {
                    spawn_clients(&args, &plan, t, &shared);
                    while !shared.stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            })
        })
        .collect();
    let results = measure(args, up, pid, &shared, rss_base).await;
    shared.stop.store(true, Ordering::Relaxed);
    for t in others {
        let _ = t.join();
    }
    results
}

/// Starts client thread `t`'s share of the clients on this thread, at most
/// 256 connecting at once.
fn spawn_clients(args: &Args, plan: &Plan, t: usize, shared: &Arc<Clients>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for i in (t..args.clients).step_by(args.threads.max(1)) {
        let (plan, shared, gate) = (plan.clone(), shared.clone(), gate.clone());
        tokio::task::spawn_local(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            clients::client(i, t, plan, shared, permit).await;
        });
    }
}

/// Waits for the clients to subscribe, then measures (or, idle, weighs) them:
/// one result per phase.
async fn measure(
    args: &Args,
    up: &Upstream,
    pid: &str,
    shared: &Clients,
    rss_base: u64,
) -> Vec<serde_json::Value> {
    let connect_limit = Duration::from_secs(20 + args.clients as u64 / 200);
    let deadline = Instant::now() + connect_limit;
    let done = || shared.subscribed.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
    while done() < args.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let subscribed = shared.subscribed.load(Ordering::Relaxed);
    let mut out = serde_json::json!({
        "server": args.server,
        "scenario": args.scenario,
        "clients": args.clients,
        "subscribed": subscribed,
        "failed": shared.failed.load(Ordering::Relaxed),
        "gen_threads": args.threads.max(1),
        "rate": args.rate,
        "symbols": args.symbols,
        "payload": args.payload,
    });
    if args.idle || !args.phases.is_empty() {
        // Weighed before any load: what the connections themselves cost.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = sys::rss_kib(pid).unwrap_or(0);
        out["rss_base_kib"] = rss_base.into();
        out["rss_connected_kib"] = rss.into();
        out["rss_per_conn_kib"] =
            (rss.saturating_sub(rss_base) as f64 / subscribed.max(1) as f64).into();
        if args.idle {
            out["rss_kib"] = rss.into();
            return vec![out];
        }
    }
    if args.phases.is_empty() {
        return vec![window(args, up, pid, shared, out, args.rate, 0.0).await];
    }
    let mut results = Vec::new();
    for phase in &args.phases {
        let rate = phase.rate * phase.topics as u64;
        up.set_phase(phase.topics, rate);
        let mut row = out.clone();
        row["phase"] = format!("{} topic(s) x {}/s", phase.topics, phase.rate).into();
        row["rate"] = rate.into();
        row["sample_every"] = args.sample_every.into();
        // Half a message period later, so that at a low rate the window's
        // edges fall between sends and hold a whole number of messages.
        results.push(window(args, up, pid, shared, row, rate, 0.5 / rate as f64).await);
    }
    results
}

/// Sends `rate` messages/s, warms up (plus `offset` seconds), and measures
/// one window into `out`.
async fn window(
    args: &Args,
    up: &Upstream,
    pid: &str,
    shared: &Clients,
    mut out: serde_json::Value,
    rate: u64,
    offset: f64,
) -> serde_json::Value {
    up.go.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup + offset)).await;
    for t in &shared.tallies {
        t.delivered.store(0, Ordering::Relaxed);
        *t.hist.lock().unwrap() = clients::histogram();
    }
    let (wait0, gen_wait0) = (sys::wait_secs(pid), sys::wait_secs("self"));
    let (cpu0, gen0, sent0, t0) = (
        sys::cpu_secs(pid).unwrap_or(0.0),
        sys::cpu_secs("self").unwrap_or(0.0),
        up.sent.load(Ordering::Relaxed),
        Instant::now(),
    );
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let (cpu1, gen1, sent1, wall) = (
        sys::cpu_secs(pid).unwrap_or(0.0),
        sys::cpu_secs("self").unwrap_or(0.0),
        up.sent.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    let (wait1, gen_wait1) = (sys::wait_secs(pid), sys::wait_secs("self"));
    let subscribed = out["subscribed"].as_u64().unwrap_or(0);
    let delivered: u64 = (shared.tallies.iter())
        .map(|t| t.delivered.load(Ordering::Relaxed))
        .sum();
    let expected = (sent1 - sent0) * subscribed;
    let mut h = clients::histogram();
    for t in &shared.tallies {
        h.add(&*t.hist.lock().unwrap()).expect("same bounds");
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    out["offered_per_s"] = (rate * subscribed).into();
    out["wall_s"] = wall.into();
    out["sent_per_s"] = ((sent1 - sent0) as f64 / wall).into();
    out["delivered_per_s"] = (delivered as f64 / wall).into();
    out["delivered_pct"] = (100.0 * delivered as f64 / expected.max(1) as f64).into();
    out["latency_samples"] = h.len().into();
    out["p50_ms"] = ms(0.5).into();
    out["p90_ms"] = ms(0.9).into();
    out["p99_ms"] = ms(0.99).into();
    out["max_ms"] = (h.max() as f64 / 1000.0).into();
    out["cpu_ms_per_1k"] = (1e6 * (cpu1 - cpu0) / delivered.max(1) as f64).into();
    out["server_cpu_pct"] = (100.0 * (cpu1 - cpu0) / wall).into();
    out["gen_cpu_pct"] = (100.0 * (gen1 - gen0) / wall).into();
    if let (Some(a), Some(b), Some(c), Some(d)) = (wait0, wait1, gen_wait0, gen_wait1) {
        out["server_wait_pct"] = (100.0 * (b - a) / wall).into();
        out["gen_wait_pct"] = (100.0 * (d - c) / wall).into();
    }
    out["rss_kib"] = sys::rss_kib(pid).unwrap_or(0).into();
    out
}
