//! The measuring clients: connect (each from its 127.0.0.x source address),
//! subscribe to `bench.*`, then count every update and time the sampled ones.
//!
//! Two clients do this: the ordinary one on tokio-tungstenite, and, with
//! `--raw`, a cheap one reading frames straight off the socket
//! ([`crate::frames`]) for the `scale` scenario, where one generator core
//! must keep up with millions of deliveries per second.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::frames::{self, FrameReader};
use crate::upstream::now_us;

/// What every client sends once connected.
const SUBSCRIBE: &str = r#"{"op":"subscribe","topics":["bench.*"],"id":1}"#;
/// How long a client waits for the ack of its subscribe.
const ACK_WITHIN: Duration = Duration::from_secs(30);

/// Where and how the clients connect.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server under test.
    pub target: SocketAddr,
    /// Its WebSocket path.
    pub path: String,
    /// Clients per 127.0.0.x source address.
    pub per_source: usize,
    /// Latency is timed on every `sample_every`-th client.
    pub sample_every: usize,
    /// Use the cheap client ([`raw`]) instead of tungstenite.
    pub raw: bool,
}

/// Shared by the client tasks, on every client thread.
pub struct Clients {
    /// Count and time deliveries only while set.
    pub measuring: AtomicBool,
    /// Clients whose subscribe was acked.
    pub subscribed: AtomicUsize,
    /// Clients that could not connect or subscribe.
    pub failed: AtomicUsize,
    /// Ends the client threads.
    pub stop: AtomicBool,
    /// One per client thread: what its clients received while measuring.
    pub tallies: Vec<Tally>,
}

/// What one client thread's clients received while measuring.
pub struct Tally {
    /// Updates received.
    pub delivered: AtomicU64,
    /// Latency in µs of the sampled clients' updates.
    pub hist: Mutex<Histogram<u64>>,
}

/// A latency histogram: 1 µs to 120 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram")
}

impl Clients {
    /// For `threads` client threads.
    pub fn new(threads: usize) -> Self {
        Clients {
            measuring: AtomicBool::new(false),
            subscribed: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            tallies: (0..threads)
                .map(|_| Tally {
                    delivered: AtomicU64::new(0),
                    hist: Mutex::new(histogram()),
                })
                .collect(),
        }
    }
}

impl Tally {
    /// Times one update from its upstream send time (if it carries one).
    fn time(&self, frame: &[u8]) {
        if let Some(sent) = sent_us(frame) {
            let _ = (self.hist.lock().unwrap()).record(now_us().saturating_sub(sent).max(1));
        }
    }
}

/// Client `i` on client thread `t`: connects, subscribes, then measures until
/// the server closes. `permit` (the bound on clients connecting at once) is
/// released once subscribed.
pub async fn client(
    i: usize,
    t: usize,
    plan: Plan,
    shared: Arc<Clients>,
    permit: OwnedSemaphorePermit,
) {
    let sampled = i.is_multiple_of(plan.sample_every.max(1));
    let subscribed = || {
        shared.subscribed.fetch_add(1, Ordering::Relaxed);
    };
    let ok = if plan.raw {
        raw(
            i,
            &plan,
            sampled,
            &shared.tallies[t],
            &shared,
            subscribed,
            permit,
        )
        .await
    } else {
        tungstenite(
            i,
            &plan,
            sampled,
            &shared.tallies[t],
            &shared,
            subscribed,
            permit,
        )
        .await
    };
    if !ok {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One TCP connection to the server from 127.0.0.(1 + i / per_source), so that
/// no source address runs out of ephemeral ports. `IP_BIND_ADDRESS_NO_PORT`
/// leaves the port to `connect`, which may reuse one per destination.
async fn connect(i: usize, plan: &Plan) -> std::io::Result<TcpStream> {
    let host = u8::try_from(1 + i / plan.per_source.max(1))
        .ok()
        .filter(|h| *h < 255)
        .ok_or_else(|| std::io::Error::other("past 127.0.0.254: raise --per-source"))?;
    let sock = TcpSocket::new_v4()?;
    crate::sys::bind_address_no_port(sock.as_raw_fd());
    sock.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))?;
    let stream = sock.connect(plan.target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs `attempt` up to 50 times, 100 ms apart, until it gives something.
async fn retried<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> Option<T> {
    for _ in 0..50 {
        if let Some(v) = attempt().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The tokio-tungstenite client; false if it never subscribed.
async fn tungstenite(
    i: usize,
    plan: &Plan,
    sampled: bool,
    tally: &Tally,
    shared: &Clients,
    subscribed: impl FnOnce(),
    permit: OwnedSemaphorePermit,
) -> bool {
    let url = format!("ws://{}{}", plan.target, plan.path);
    let url = url.as_str();
    let ws = retried(move || async move {
        let stream = connect(i, plan).await.ok()?;
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .ok()?;
        Some(ws)
    })
    .await;
    let Some(mut ws) = ws else { return false };
    if ws.send(Message::text(SUBSCRIBE)).await.is_err() {
        return false;
    }
    let acked = tokio::time::timeout(ACK_WITHIN, async {
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
        return false;
    }
    subscribed();
    drop(permit);
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        if !shared.measuring.load(Ordering::Relaxed)
            || !t.as_bytes().starts_with(frames::UPDATE_PREFIX)
        {
            continue;
        }
        tally.delivered.fetch_add(1, Ordering::Relaxed);
        if sampled {
            tally.time(t.as_bytes());
        }
    }
    true
}

/// The cheap client: the upgrade and the subscribe by hand, then frames read
/// off the socket into one buffer per thread, counted by [`FrameReader`];
/// only a sampled client keeps payloads (to read their send time).
async fn raw(
    i: usize,
    plan: &Plan,
    sampled: bool,
    tally: &Tally,
    shared: &Clients,
    subscribed: impl FnOnce(),
    permit: OwnedSemaphorePermit,
) -> bool {
    let stream = retried(move || async move {
        let mut stream = connect(i, plan).await.ok()?;
        let leftover = tokio::time::timeout(ACK_WITHIN, upgrade(&mut stream, plan))
            .await
            .ok()??;
        Some((stream, leftover))
    })
    .await;
    let Some((mut stream, leftover)) = stream else {
        return false;
    };
    // Until the ack, every payload is kept (to find the ack); frames that came
    // with the upgrade's answer (none from the servers benchmarked) are parsed
    // for their boundaries only.
    let mut reader = FrameReader::new(true);
    reader.feed(&leftover, |_| {});
    let sub = frames::client_frame(frames::TEXT, SUBSCRIBE.as_bytes());
    if stream.write_all(&sub).await.is_err() {
        return false;
    }
    let mut acked = false;
    let mut subscribed = Some(subscribed);
    let mut permit = Some(permit);
    let ack_by = tokio::time::Instant::now() + ACK_WITHIN;
    loop {
        let ready = if acked {
            stream.readable().await
        } else {
            match tokio::time::timeout_at(ack_by, stream.readable()).await {
                Ok(r) => r,
                Err(_) => return false,
            }
        };
        if ready.is_err() {
            return acked;
        }
        let (mut pongs, mut delivered) = (Vec::new(), 0u64);
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let open = READ_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            loop {
                match stream.try_read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => reader.feed(&buf[..n], |f| match f.opcode {
                        frames::PING => {
                            pongs.extend(frames::client_frame(0xA, f.payload.unwrap_or(&[])))
                        }
                        frames::TEXT if !acked => {
                            acked = f.payload.is_some_and(|p| contains(p, br#""type":"ack""#));
                        }
                        _ if f.update && measuring => {
                            delivered += 1;
                            if let Some(p) = f.payload {
                                tally.time(p);
                            }
                        }
                        _ => {}
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
        if delivered > 0 {
            tally.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        if acked {
            if let Some(subscribed) = subscribed.take() {
                reader.keep = sampled;
                subscribed();
                drop(permit.take());
            }
        }
        let answered = pongs.is_empty() || stream.write_all(&pongs).await.is_ok();
        if !open || !answered {
            return acked;
        }
    }
}

thread_local! {
    /// The raw clients' read buffer, one per client thread: a client reads
    /// into it and parses it before it awaits again, so they can share it.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
}

/// Sends the HTTP upgrade and reads the answer; returns the bytes that came
/// after its header (frames already), or `None` if it is not a 101.
async fn upgrade(stream: &mut TcpStream, plan: &Plan) -> Option<Vec<u8>> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        plan.path, plan.target
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .ok()?;
        if n == 0 {
            return None;
        }
        answer.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&answer, b"\r\n\r\n") {
            let ok = answer.starts_with(b"HTTP/1.1 101");
            return ok.then(|| answer[end + 4..].to_vec());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// The upstream's send time, from `"t":<µs>` inside the update's data.
fn sent_us(frame: &[u8]) -> Option<u64> {
    let at = find(frame, br#""t":"#)? + 4;
    let digits = &frame[at..];
    let end = (digits.iter().position(|c| !c.is_ascii_digit())).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}
