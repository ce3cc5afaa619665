//! The upstream the server under test follows: a WebSocket server emitting
//! timestamped messages at a paced rate, on its own thread (its own
//! single-threaded runtime) so its pacing does not depend on how busy the
//! clients are.
//!
//! Each message carries its send time in µs (`"t"`), which the clients subtract
//! from their receive time (same process, same clock).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Shared between the upstream thread and the scenario.
pub struct Upstream {
    /// Servers connected (the scenario waits for the first).
    pub connected: AtomicUsize,
    /// Set once the clients are subscribed: start sending.
    pub go: AtomicBool,
    /// Ends the upstream thread.
    pub stop: AtomicBool,
    /// Messages sent so far (all phases).
    pub sent: AtomicU64,
    /// Messages per second, round-robin over the first `active` symbols.
    rate: AtomicU64,
    active: AtomicUsize,
    /// Bumped by [`Upstream::set_phase`]: the pacing restarts from zero, so a
    /// new rate does not first "catch up" on the old one's schedule.
    phase: AtomicUsize,
}

impl Upstream {
    /// Sends `rate` messages per second over `symbols` symbols once `go` is set.
    pub fn new(rate: u64, symbols: usize) -> Self {
        Upstream {
            connected: AtomicUsize::new(0),
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            rate: AtomicU64::new(rate),
            active: AtomicUsize::new(symbols.max(1)),
            phase: AtomicUsize::new(0),
        }
    }

    /// From now on, `rate` messages per second over the first `symbols` symbols.
    pub fn set_phase(&self, symbols: usize, rate: u64) {
        self.active.store(symbols.max(1), Ordering::Relaxed);
        self.rate.store(rate, Ordering::Relaxed);
        self.phase.fetch_add(1, Ordering::Release);
    }
}

/// Microseconds since the Unix epoch: the clock of `"t"`.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Serves `addr` until `up.stop`: after each connect it sends one message per
/// symbol (so all `symbols` topics exist), then, once `go` is set, the current
/// phase's rate round-robin over its symbols, paced every millisecond.
pub fn run(addr: SocketAddr, symbols: usize, payload: usize, up: Arc<Upstream>) {
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
                let _ = feed(ws, symbols, payload, &up).await;
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
    // The current phase: when it started and what it has sent.
    let mut phase = usize::MAX;
    let mut start: Option<Instant> = None;
    let mut in_phase: u64 = 0;
    let mut sent = up.sent.load(Ordering::Relaxed);
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
        let now_phase = up.phase.load(Ordering::Acquire);
        if now_phase != phase {
            (phase, start, in_phase) = (now_phase, None, 0);
        }
        let (rate, active) = (
            up.rate.load(Ordering::Relaxed),
            up.active.load(Ordering::Relaxed),
        );
        let start = *start.get_or_insert_with(Instant::now);
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if due == in_phase {
            continue;
        }
        while in_phase < due {
            tx.feed(Message::text(message(in_phase as usize % active, payload)))
                .await?;
            in_phase += 1;
            sent += 1;
        }
        tx.flush().await?;
        up.sent.store(sent, Ordering::Relaxed);
    }
}
