//! One scenario: upstream + server under test + N measuring clients.
//!
//! The upstream runs on its own thread (its own single-threaded runtime) so its
//! pacing does not depend on how busy the clients are; the clients share the main
//! thread's single-threaded runtime, or, with `--threads N`, are dealt over N
//! threads with one such runtime each (to receive more than one core can).
//! Latency is measured end to end: each upstream
//! message carries its send time in µs (`"t"`), and a client subtracts it from the
//! receive time (same process, same clock). Every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpListener, TcpSocket};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::sys;

/// What one scenario does.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The server's label in the results (tickerd, node-ws, tutorial).
    #[arg(long)]
    server: String,
    /// The scenario's label (load, saturation, idle).
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
    /// Threads the clients are dealt over.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server command, run as a child (e.g. `taskset -c 0 node server.js`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Shared with the upstream thread.
#[derive(Default)]
struct Upstream {
    connected: AtomicUsize,
    go: AtomicBool,
    stop: AtomicBool,
    sent: AtomicU64,
}

/// Shared by the client tasks, on every client thread.
struct Clients {
    measuring: AtomicBool,
    connected: AtomicUsize,
    subscribed: AtomicUsize,
    failed: AtomicUsize,
    /// Ends the client threads.
    stop: AtomicBool,
    /// One per client thread: what its clients received while measuring.
    tallies: Vec<Tally>,
}

struct Tally {
    delivered: AtomicU64,
    hist: Mutex<Histogram<u64>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The server child; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) {
    sys::raise_nofile();
    let up = Arc::new(Upstream::default());
    let upstream = {
        let up = up.clone();
        let (addr, rate, symbols, payload) = (args.upstream, args.rate, args.symbols, args.payload);
        std::thread::spawn(move || run_upstream(addr, rate, symbols, payload, up))
    };
    let child = Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", args.command));
    let pid = child.id().to_string();
    let server = Server(child);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, scenario(&args, &up, &pid));
    up.stop.store(true, Ordering::Relaxed);
    drop(server);
    let _ = upstream.join();
    println!("{result}");
}

async fn scenario(args: &Args, up: &Upstream, pid: &str) -> serde_json::Value {
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
    let shared = Arc::new(Clients {
        measuring: AtomicBool::new(false),
        connected: AtomicUsize::new(0),
        subscribed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        tallies: (0..threads)
            .map(|_| Tally {
                delivered: AtomicU64::new(0),
                hist: Mutex::new(
                    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram"),
                ),
            })
            .collect(),
    });
    spawn_clients(args, 0, &shared);
    let others: Vec<_> = (1..threads)
        .map(|t| {
            let (args, shared) = (args.clone(), shared.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async {
                    spawn_clients(&args, t, &shared);
                    while !shared.stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            })
        })
        .collect();
    let result = measure(args, up, pid, &shared, rss_base).await;
    shared.stop.store(true, Ordering::Relaxed);
    for t in others {
        let _ = t.join();
    }
    result
}

/// Starts client thread `t`'s share of the clients on this thread.
fn spawn_clients(args: &Args, t: usize, shared: &Arc<Clients>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for i in (t..args.clients).step_by(args.threads.max(1)) {
        let (shared, gate) = (shared.clone(), gate.clone());
        let url = format!("ws://{}{}", args.target, args.path);
        let target = args.target;
        tokio::task::spawn_local(async move {
            let permit = gate.acquire_owned().await.expect("semaphore");
            client(i, t, target, url, shared, permit).await;
        });
    }
}

/// Waits for the clients to subscribe, then measures (or, idle, weighs) them.
async fn measure(
    args: &Args,
    up: &Upstream,
    pid: &str,
    shared: &Clients,
    rss_base: u64,
) -> serde_json::Value {
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
    if args.idle {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = sys::rss_kib(pid).unwrap_or(0);
        out["rss_base_kib"] = rss_base.into();
        out["rss_kib"] = rss.into();
        out["rss_per_conn_kib"] =
            (rss.saturating_sub(rss_base) as f64 / subscribed.max(1) as f64).into();
        return out;
    }
    up.go.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
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
    let delivered: u64 = (shared.tallies.iter())
        .map(|t| t.delivered.load(Ordering::Relaxed))
        .sum();
    let expected = (sent1 - sent0) * subscribed as u64;
    let mut h = Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram");
    for t in &shared.tallies {
        h.add(&*t.hist.lock().unwrap()).expect("same bounds");
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    out["wall_s"] = wall.into();
    out["sent_per_s"] = ((sent1 - sent0) as f64 / wall).into();
    out["delivered_per_s"] = (delivered as f64 / wall).into();
    out["delivered_pct"] = (100.0 * delivered as f64 / expected.max(1) as f64).into();
    out["p50_ms"] = ms(0.5).into();
    out["p90_ms"] = ms(0.9).into();
    out["p99_ms"] = ms(0.99).into();
    out["max_ms"] = (h.max() as f64 / 1000.0).into();
    out["cpu_ms_per_1k"] = (1e6 * (cpu1 - cpu0) / delivered.max(1) as f64).into();
    out["server_cpu_pct"] = (100.0 * (cpu1 - cpu0) / wall).into();
    out["gen_cpu_pct"] = (100.0 * (gen1 - gen0) / wall).into();
    out["rss_kib"] = sys::rss_kib(pid).unwrap_or(0).into();
    out
}

/// One client: connect (past ~28k connections from more 127.0.0.x source
/// addresses), subscribe to `bench.*`, then count and time every update.
async fn client(
    i: usize,
    t: usize,
    target: SocketAddr,
    url: String,
    shared: Arc<Clients>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let source = Ipv4Addr::new(127, 0, 0, 1 + (i / 25_000) as u8);
    let mut ws = None;
    for _attempt in 0..50 {
        let Ok(sock) = TcpSocket::new_v4() else { break };
        if i >= 25_000 && sock.bind(SocketAddr::from((source, 0))).is_err() {
            break;
        }
        let Ok(stream) = sock.connect(target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0);
        match tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await
        {
            Ok((s, _)) => {
                ws = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let Some(mut ws) = ws else {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let sub = r#"{"op":"subscribe","topics":["bench.*"],"id":1}"#;
    if ws.send(Message::text(sub)).await.is_err() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                if t.as_str().contains(r#""type":"ack""#) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    if acked != Ok(true) {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    shared.subscribed.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let tally = &shared.tallies[t];
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        let t = t.as_str();
        if !t.starts_with(r#"{"type":"update""#) {
            continue;
        }
        tally.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = sent_us(t) {
            let _ = (tally.hist.lock().unwrap()).record(now_us().saturating_sub(sent).max(1));
        }
    }
}

/// The upstream's send time, from `"t":<µs>` inside the update's data.
fn sent_us(frame: &str) -> Option<u64> {
    let at = frame.find(r#""t":"#)? + 4;
    let digits = &frame[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The upstream WebSocket server: after each connect it sends one message per
/// symbol (so the topics exist), then, once `go` is set, `rate` messages per
/// second round-robin over the symbols, paced every millisecond.
fn run_upstream(addr: SocketAddr, rate: u64, symbols: usize, payload: usize, up: Arc<Upstream>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped(&up) => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let _ = stream.set_nodelay(true);
            let up = up.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                up.connected.fetch_add(1, Ordering::Relaxed);
                let _ = feed(ws, rate, symbols, payload, &up).await;
                up.connected.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
}

async fn stopped(up: &Upstream) {
    while !up.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message(sym: usize, payload: usize) -> String {
    let head = format!(r#"{{"sym":"s{sym:02}","t":{},"pad":""#, now_us());
    let pad = payload.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

async fn feed(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    rate: u64,
    symbols: usize,
    payload: usize,
    up: &Upstream,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let (mut tx, mut rx) = ws.split();
    for s in 0..symbols {
        tx.feed(Message::text(message(s, payload))).await?;
    }
    tx.flush().await?;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut start: Option<Instant> = None;
    let mut sent: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            m = rx.next() => match m {
                Some(Ok(_)) => continue,
                _ => return Ok(()),
            },
        }
        if up.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !up.go.load(Ordering::Relaxed) {
            continue;
        }
        let start = *start.get_or_insert_with(Instant::now);
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if due == sent {
            continue;
        }
        while sent < due {
            tx.feed(Message::text(message(sent as usize % symbols, payload)))
                .await?;
            sent += 1;
        }
        tx.flush().await?;
        up.sent.store(sent, Ordering::Relaxed);
    }
}
