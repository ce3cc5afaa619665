//! `GET /sse`: the WebSocket's updates as a `text/event-stream`, for clients
//! that cannot open a WebSocket (`curl -N`, proxies that strip upgrades,
//! `EventSource`).
//!
//! One request is one subscription: `?topics=a.*,b.>` (the patterns of a
//! WebSocket `subscribe`), resumed from `?since=topic:seq,...&epoch=...` and/or
//! the `Last-Event-ID` header. Each event's `data` is one frame exactly as the
//! WebSocket sends it (`hello`, then the `ack`, then `update` and `gone`
//! frames); an update's event `id` is `{epoch}/{topic}/{seq}`, so a client (or
//! `EventSource` on its own) that reconnects with it resumes that topic like a
//! `since` in a WebSocket subscribe. A comment line (`: ping`) goes out every
//! `[server] heartbeat`.
//!
//! Everything a WebSocket is held to holds here: the same token check (the
//! route sits behind the same middleware: Bearer header or `?token=`), origin
//! allow-list, connection caps (total and per address, the same counts),
//! `max_subscriptions`, grant checks, and the same [`Outbox`]: a client that
//! reads slowly is conflated, and one that reads nothing at all for two
//! heartbeats while updates wait is dropped (counted as `write_timeout`): its
//! subscription and queue are freed at once, and so are its socket and the
//! chunks hyper had queued for it (through the accept loop's `Abort`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::listener::Abort;
use crate::auth::Grant;
use crate::closes::{self, DisplayPeer, Limit};
use crate::connection::{Connection, Refused, Subscribe};
use crate::frame::{Frame, Kind};
use crate::hub::{Closing, Hub, Leave, Outbox, SubscriberId};
use crate::metrics::Metrics;
use crate::protocol::{self, ErrorCode};
use crate::rate::{Frames, Shaping};
use crate::state::AppState;
use crate::ws::{self, ConnectionGuard, BATCH_LIMIT};

/// The heartbeat comment.
const PING: &[u8] = b": ping\n\n";

/// Parses the query (the fields of a WebSocket `subscribe`: `topics`, `since`,
/// `epoch`, `max_rate`, `delta`; and `token`, which the auth middleware reads) and a `Last-Event-ID` (`{epoch}/{topic}/{seq}`; one that
/// is not of that form is ignored, as a browser may send any id back). The
/// header is newer than the URL: its epoch wins, and a `since` of another
/// epoch is dropped.
pub(crate) fn parse_query(
    query: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<Subscribe, String> {
    let mut q = Subscribe::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "topics" => q.topics.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            ),
            "since" => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let parsed = item
                        .rsplit_once(':')
                        .and_then(|(t, s)| Some((t.to_string(), s.parse::<u64>().ok()?)));
                    let Some((topic, seq)) = parsed else {
                        return Err(format!(
                            "`since` item `{item}` is not topic:seq (e.g. since=stocks.AAPL:41)"
                        ));
                    };
                    q.since.insert(topic, seq);
                }
            }
            "epoch" => q.epoch = Some(value.into_owned()),
            "max_rate" => {
                q.max_rate = Some(
                    protocol::max_rate(value.parse().ok())
                        .map_err(|m| format!("{m} (not `{value}`)"))?,
                )
            }
            "delta" => match &*value {
                "true" => q.delta = true,
                "false" => q.delta = false,
                _ => return Err(format!("{} (not `{value}`)", protocol::DELTA)),
            },
            // Any other name was refused before the handler ran: the route
            // takes `protocol::SUBSCRIBE_FIELDS` and `token` (see `params`).
            _ => {}
        }
    }
    if q.topics.is_empty() {
        return Err("`topics` is required: a comma-separated list of patterns, \
                    e.g. /sse?topics=stocks.*,host.%3E (`>` percent-encoded)"
            .into());
    }
    if let Some((epoch, topic, seq)) = last_event_id.and_then(parse_event_id) {
        if q.epoch.as_deref().is_some_and(|e| e != epoch) {
            q.since.clear();
        }
        q.epoch = Some(epoch.to_string());
        q.since.insert(topic.to_string(), seq);
    }
    Ok(q)
}

/// `{epoch}/{topic}/{seq}`: an update event's id.
fn parse_event_id(id: &str) -> Option<(&str, &str, u64)> {
    let (rest, seq) = id.trim().rsplit_once('/')?;
    let (epoch, topic) = rest.split_once('/')?;
    let seq = seq.parse().ok()?;
    (!epoch.is_empty() && !topic.is_empty()).then_some((epoch, topic, seq))
}

/// Appends one frame as an event: `id` for updates, then the frame as `data`
/// (split at line breaks, which JSON allows only as whitespace).
pub(crate) fn encode_event(buf: &mut Vec<u8>, epoch: &str, frame: &Frame) {
    if frame.is_update() {
        let seq = frame.seq().to_string();
        for part in ["id: ", epoch, "/", frame.topic(), "/", &seq, "\n"] {
            buf.extend_from_slice(part.as_bytes());
        }
    }
    for line in (frame.text().split(['\n', '\r'])).filter(|l| !l.is_empty()) {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    buf.push(b'\n');
}

/// An error answer with the JSON shape of every `/api` error.
fn refuse(status: StatusCode, message: String) -> Response {
    tracing::debug!(%status, %message, "SSE request refused.");
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

/// A refused subscribe, answered as `/api` errors are: 403 for a pattern the
/// grant does not allow, else 400; the text is the one a `/ws` subscribe gets.
fn refuse_subscribe(refused: Refused) -> Response {
    let status = match refused.code() {
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    refuse(status, refused.message)
}

/// `GET /sse?topics=...`.
pub(super) async fn stream(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
    req: Request,
) -> Response {
    let settings = shared.settings();
    let headers = req.headers();
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let query = match parse_query(req.uri().query(), last_event_id) {
        Ok(q) => q,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, msg),
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let abort = req.extensions().get::<Abort>().cloned();
    // A JWT's stream ends at its `exp` (plus leeway): reconnect with a new one.
    let expires = grant.expires().map(crate::auth::jwt::deadline);
    let conn = Connection::new(shared.hub.clone(), settings.clone(), grant, peer);
    // Refused before a connection slot is taken.
    let patterns = match conn.check(&query.topics) {
        Ok(p) => p,
        Err(refused) => return refuse_subscribe(refused),
    };
    let guard = match ws::admit(&shared, &settings, headers, peer).await {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    tracing::debug!(id = guard.id, peer = %DisplayPeer(peer), "SSE client connected.");

    let hub = shared.hub.clone();
    let metrics = shared.metrics.clone();
    let limits = &settings.limits;
    let outbox =
        Arc::new(Outbox::new(limits.queue, metrics.clone()).with_budget(limits.max_buffered_bytes));
    let id = hub.add_subscriber(outbox.clone());
    let leave = hub.leave_on_drop(id);
    let heartbeat = settings.heartbeat;
    // A new outbox has room for the hello.
    let hello = protocol::hello(&hub.epoch(), heartbeat.as_millis() as u64);
    let _ = outbox.try_push_control(hello);
    // A fresh subscriber holds nothing, so the count `check` passed still
    // holds; were it refused all the same, it is answered like the others.
    if let Err(refused) = conn.join(id, &outbox, None, patterns, query).await {
        return refuse_subscribe(refused);
    }
    let shaping = conn.shaping.clone();

    let done = shared.cancel.child_token();
    let progress = Arc::new(Progress::new());
    shared.tasks.spawn(watchdog(Watch {
        outbox: outbox.clone(),
        progress: progress.clone(),
        hub: hub.clone(),
        id,
        stuck: heartbeat * 2,
        done: done.clone(),
        guard,
        metrics: metrics.clone(),
        abort,
    }));
    let pump = Pump {
        outbox,
        shaping,
        hub,
        metrics,
        progress,
        heartbeat,
        flush: settings.flush_interval,
        next_ping: Instant::now() + heartbeat,
        expires,
        last_chunk: None,
        pending: VecDeque::new(),
        ended: false,
        _stop: done.clone().drop_guard(),
        done,
        _leave: leave,
    };
    let body = futures_util::stream::unfold(pump, |mut pump| async move {
        let chunk = pump.next().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), pump))
    });
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// When the stream last handed a chunk to hyper, and whether it holds frames
/// it has not yet handed over: what the watchdog reads.
struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last chunk.
    last_ms: AtomicU64,
    /// Frames taken from the outbox and not yet handed over.
    holding: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            holding: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// The body: hands the outbox's frames to hyper as events, at most
/// [`BATCH_LIMIT`] bytes per chunk (hyper queues a few chunks for a socket
/// that does not take them, and polls for more only when it can), at most
/// one chunk of frames per `flush` under a steady stream, and a heartbeat
/// comment every `heartbeat`.
struct Pump {
    outbox: Arc<Outbox>,
    /// `max_rate` and `delta`, as on a WebSocket ([`crate::rate`]).
    shaping: Arc<Shaping>,
    hub: Hub,
    metrics: Arc<Metrics>,
    progress: Arc<Progress>,
    heartbeat: Duration,
    flush: Duration,
    next_ping: Instant,
    /// When the token (a JWT) runs out: the stream ends.
    expires: Option<Instant>,
    last_chunk: Option<Instant>,
    /// Frames taken but not yet handed over (past one chunk's size).
    pending: VecDeque<Frame>,
    ended: bool,
    /// Cancelled when the stream ends or the server shuts down.
    done: CancellationToken,
    /// Cancels `done` when hyper drops the body (the client went away): the
    /// watchdog then ends.
    _stop: DropGuard,
    _leave: Leave,
}

impl Pump {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done.is_cancelled() || self.expires.is_some_and(|at| Instant::now() >= at) {
                return None;
            }
            if let Some(last) = self.last_chunk.take() {
                if !self.flush.is_zero() {
                    tokio::select! {
                        biased;
                        _ = self.done.cancelled() => return None,
                        _ = tokio::time::sleep_until(last + self.flush) => {}
                    }
                }
            }
            let now = Instant::now();
            if now >= self.next_ping {
                self.next_ping = now + self.heartbeat;
                return Some(Bytes::from_static(PING));
            }
            if self.pending.is_empty() {
                if self.ended {
                    return None;
                }
                // Frames held back by `max_rate` are due on the same timer.
                let due = self.shaping.next_due();
                if !self.outbox.has_work() && due.is_none_or(|d| d > Instant::now()) {
                    let mut wake = due.map_or(self.next_ping, |d| d.min(self.next_ping));
                    if let Some(at) = self.expires {
                        wake = wake.min(at);
                    }
                    tokio::select! {
                        biased;
                        _ = self.done.cancelled() => return None,
                        _ = tokio::time::sleep_until(wake) => continue,
                        _ = self.outbox.ready() => {}
                    }
                }
                let taken = self.outbox.take_all();
                let closing = taken.closing;
                if matches!(closing, Some(Closing::Quiet | Closing::OverBudget)) {
                    // Over budget or dropped: nothing more is owed.
                    return None;
                }
                let frames = match self.shaping.is_active() {
                    true => Frames::Shaped(self.shaping.apply(taken.frames()).into_iter()),
                    false => Frames::Plain(taken.frames()),
                };
                for frame in frames {
                    if frame.kind() == Kind::Reply {
                        self.outbox.release(frame.text().len());
                    }
                    self.pending.push_back(frame);
                }
                // A Close with a code (shutdown, a new cluster epoch): what
                // was queued goes out, then the stream ends.
                self.ended = closing.is_some();
            }
            let epoch = self.hub.epoch();
            let mut buf = Vec::new();
            let (mut count, mut bytes) = (0u64, 0u64);
            while let Some(frame) = self.pending.pop_front() {
                count += 1;
                bytes += frame.text().len() as u64;
                encode_event(&mut buf, &epoch, &frame);
                if buf.len() >= BATCH_LIMIT {
                    break;
                }
            }
            self.progress
                .holding
                .store(!self.pending.is_empty(), Ordering::Relaxed);
            self.progress.touch();
            if buf.is_empty() {
                continue;
            }
            self.metrics.frames_sent.fetch_add(count, Ordering::Relaxed);
            self.metrics.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            self.last_chunk = Some(Instant::now());
            return Some(Bytes::from(buf));
        }
    }
}

/// What the watchdog of one stream holds.
struct Watch {
    outbox: Arc<Outbox>,
    progress: Arc<Progress>,
    hub: Hub,
    id: SubscriberId,
    /// No chunk taken for this long while frames wait: the client is dropped.
    stuck: Duration,
    done: CancellationToken,
    /// The connection's slot, given back when the stream ends or is dropped.
    guard: ConnectionGuard,
    metrics: Arc<Metrics>,
    /// Drops the HTTP connection, socket and queued chunks, when the client
    /// is dropped (none when a host serves the router itself: then only the
    /// stream ends).
    abort: Option<Abort>,
}

/// Drops a client whose stream hyper has not polled for `stuck` while frames
/// wait for it (its socket is full: it reads nothing). Its queue is freed,
/// its subscriptions removed and its connection dropped (the socket and what
/// hyper had queued for it) at once, like a WebSocket's.
async fn watchdog(w: Watch) {
    let period = (w.stuck / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = w.done.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
        let waiting = w.outbox.has_work() || w.progress.holding.load(Ordering::Relaxed);
        if waiting && w.progress.idle_for() > w.stuck {
            w.metrics
                .closed_write_timeout
                .fetch_add(1, Ordering::Relaxed);
            closes::log(w.guard.peer, Limit::SseStuck);
            w.outbox.close(Closing::OverBudget);
            w.hub.remove_subscriber(w.id);
            w.done.cancel();
            if let Some(abort) = &w.abort {
                abort.abort();
            }
            break;
        }
    }
    drop(w.guard);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn queries_and_last_event_ids_parse() {
        let q = parse_query(Some("topics=a.*,b.>&since=a.x:4,b.y.z:7&epoch=E"), None).unwrap();
        assert_eq!(q.topics, ["a.*", "b.>"]);
        assert_eq!(
            q.since,
            HashMap::from([("a.x".into(), 4), ("b.y.z".into(), 7)])
        );
        assert_eq!(q.epoch.as_deref(), Some("E"));
        // The header's epoch wins; a since of another epoch is dropped.
        let q = parse_query(Some("topics=a.*&since=a.x:4&epoch=OLD"), Some("NEW/a.y/9")).unwrap();
        assert_eq!(q.since, HashMap::from([("a.y".into(), 9)]));
        assert_eq!(q.epoch.as_deref(), Some("NEW"));
        let q = parse_query(Some("topics=a.*&token=t"), Some("garbage")).unwrap();
        assert!(q.since.is_empty() && q.epoch.is_none());
        assert!(parse_query(Some("since=a:1"), None).is_err());
        assert!(parse_query(Some("topics=a&since=a"), None).is_err());
    }

    #[test]
    fn update_frames_become_events_with_ids() {
        let text = protocol::encode_update("a.b", 42, 7, "{\"x\":1}");
        let f = Frame::new(Kind::Update, 1, "a.b".into(), 42, 7, text.clone());
        let mut buf = Vec::new();
        encode_event(&mut buf, "E", &f);
        let got = String::from_utf8(buf).unwrap();
        assert_eq!(got, format!("id: E/a.b/42\ndata: {text}\n\n"));
        let gone = "{\"type\":\"gone\",\n\"topic\":\"a\"}".into();
        let gone = Frame::new(Kind::Gone, 1, "a".into(), 0, 0, gone);
        let mut buf = Vec::new();
        encode_event(&mut buf, "E", &gone);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "data: {\"type\":\"gone\",\ndata: \"topic\":\"a\"}\n\n"
        );
        assert_eq!(parse_event_id("E/a.b/42"), Some(("E", "a.b", 42)));
        assert_eq!(parse_event_id("a.b/42"), None);
    }
}
