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
//! `max_subscriptions`, grant checks (all in `crate::connection`), and the
//! same writer (`crate::delivery::run`) over an [`SseWire`]: a client that
//! reads slowly is conflated, and one that takes no chunk for two heartbeats
//! is dropped (counted as `write_timeout`): its subscription and queue are
//! freed at once, and so are its socket and the chunks hyper had queued for
//! it (through the accept loop's `Abort`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::listener::Abort;
use crate::auth::Grant;
use crate::closes::DisplayPeer;
use crate::connection::{Connection, Refused, Subscribe, TOKEN_EXPIRED};
use crate::delivery::{self, Closing, Outbox, Sink, Wire, Writer};
use crate::frame::Frame;
use crate::hub::Leave;
use crate::protocol::{self, ErrorCode};
use crate::state::AppState;
use crate::ws::{self, ConnectionGuard};

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

    let (outbox, id, leave) = conn.attach(conn.outbox());
    // A fresh subscriber holds nothing, so the count `check` passed still
    // holds; were it refused all the same, it is answered like the others.
    if let Err(refused) = conn.join(id, &outbox, None, patterns, query).await {
        return refuse_subscribe(refused);
    }
    // One chunk may wait for hyper: past it the writer waits, and a client
    // that takes nothing for two heartbeats is dropped by its deadline.
    let (tx, rx) = mpsc::channel(1);
    let wire = SseWire {
        tx,
        buf: Vec::new(),
        epoch: shared.hub.epoch(),
        sealed: false,
    };
    let writer = conn.writer(wire, outbox);
    // Hyper dropping the body (the client went away) ends the writer at once.
    let stop = StopOnDrop(writer.outbox.clone());
    shared
        .tasks
        .spawn(serve(writer, expires, guard, leave, abort));
    let body = futures_util::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), (rx, stop)))
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

/// Stops a stream's writer when hyper drops its body: the client went away.
struct StopOnDrop(Arc<Outbox>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop(Closing::Quiet);
    }
}

/// One stream's writer, until it ends: the client went away, the server
/// shuts down, the token (a JWT) ran out (what was queued goes out, then the
/// stream ends: reconnect with a new one), or a limit dropped it (then its
/// HTTP connection is dropped too, socket and queued chunks, like a
/// WebSocket's).
async fn serve(
    writer: Writer<SseWire>,
    expires: Option<Instant>,
    guard: ConnectionGuard,
    leave: Leave,
    abort: Option<Abort>,
) {
    let outbox = writer.outbox.clone();
    let run = delivery::run(writer);
    tokio::pin!(run);
    let stopped_by = match expires {
        None => run.await,
        Some(at) => tokio::select! {
            stopped_by = &mut run => stopped_by,
            _ = tokio::time::sleep_until(at) => {
                outbox.close(TOKEN_EXPIRED);
                run.await
            }
        },
    };
    drop(leave);
    if stopped_by.is_some() {
        if let Some(abort) = &abort {
            abort.abort();
        }
    }
    drop(guard);
}

/// An `/sse` stream as delivery's [`Wire`]: frames become events in a chunk,
/// which a flush hands to hyper's body.
struct SseWire {
    tx: mpsc::Sender<Bytes>,
    /// The events of the next chunk.
    buf: Vec<u8>,
    /// The hub's epoch, for the events' ids.
    epoch: Arc<str>,
    /// The stream is ending: nothing more is owed.
    sealed: bool,
}

impl Sink for SseWire {
    fn feed(&mut self, frame: &Frame) -> usize {
        if !self.sealed {
            let event = frame.encoded(&self.epoch, |f| {
                let mut buf = Vec::new();
                encode_event(&mut buf, &self.epoch, f);
                Bytes::from(buf)
            });
            self.buf.extend_from_slice(&event);
        }
        self.buf.len()
    }
}

impl Wire for SseWire {
    async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .send(chunk)
            .await
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.buf.extend_from_slice(PING);
        self.flush().await
    }

    /// The stream ends once the writer does; nothing more is sent.
    async fn close(&mut self, _how: Closing) {
        self.sealed = true;
    }

    fn seal(&mut self) {
        self.sealed = true;
    }

    fn discard(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::frame::Kind;

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
