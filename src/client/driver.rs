//! The task behind a [`Client`](super::Client): one WebSocket at a time,
//! reconnected with backoff and full jitter, every subscription sent again on
//! each new connection with `since` (resume from the last seq seen), the
//! token refreshed before it expires, and each update handed to every
//! subscription whose patterns match it. The same rules as `web/tickerd.js`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::feeds::doubling_window;
use crate::topic::Pattern;

use super::error::{reason_of, ClientError};
use super::event::{Event, State};
use super::options::{ClientOptions, SubscribeOptions};
use super::token::{jwt_expiry, refresh_in};
use super::track::Tracker;
use super::url::Server;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;

/// A link that lived this long resets the backoff; one that dies at once does not.
const STEADY: Duration = Duration::from_secs(5);
/// How long a request the server answered `rate_limited` waits to be sent
/// again (the server refills its budget of expensive requests at 5 a second).
const RATE_LIMITED_RETRY: Duration = Duration::from_secs(1);

/// What the handle asks of its task.
pub(super) enum Command {
    /// Add a subscription; answered once the server acked it (or at once
    /// while offline: it is sent on the next connection).
    Subscribe(Sub, oneshot::Sender<Result<(), ClientError>>),
    /// Close the connection and end every subscription.
    Close,
}

/// One subscription: its patterns, options and where its events go.
pub(super) struct Sub {
    pub(super) patterns: Vec<Pattern>,
    pub(super) options: SubscribeOptions,
    pub(super) tx: mpsc::Sender<Event>,
    /// The subscription's `since` still has to be applied to the topics its
    /// patterns match (asked of the server with the `topics` op first).
    pub(super) since_pending: bool,
    pub(super) id: u64,
}

/// How a connection ended.
enum Ended {
    Closed,
    Lost { error: String, expired: bool },
}

/// The task's state.
pub(super) struct Driver {
    pub(super) server: Server,
    pub(super) options: ClientOptions,
    pub(super) token: Option<String>,
    pub(super) cmds: mpsc::UnboundedReceiver<Command>,
    pub(super) state: watch::Sender<State>,
    pub(super) subs: Vec<Sub>,
    pub(super) tracker: Tracker,
    /// Subscribe requests waiting for their ack, by subscription id.
    pub(super) pending: HashMap<u64, oneshot::Sender<Result<(), ClientError>>>,
    /// Subscriptions to send again, and when: the server answered them
    /// `rate_limited` (nothing was done; "send it again later").
    pub(super) retries: Vec<(Instant, u64)>,
}

impl Driver {
    /// Connects until closed; `first` gets the outcome of the first attempt
    /// (a failure there ends the task: the caller gets the error).
    pub(super) async fn run(mut self, first: oneshot::Sender<Result<(), ClientError>>) {
        let mut first = Some(first);
        let mut attempt = 0u32;
        loop {
            let error = match self.open().await {
                Ok((ws, epoch, heartbeat)) => {
                    if let Some(f) = first.take() {
                        let _ = f.send(Ok(()));
                    }
                    let opened = Instant::now();
                    match self.live(ws, epoch, heartbeat).await {
                        Ended::Closed => break,
                        Ended::Lost { error, expired } => {
                            // An expired token is no reason to wait: a fresh one comes next.
                            if expired || opened.elapsed() > STEADY {
                                attempt = 0;
                            }
                            error
                        }
                    }
                }
                Err(e) => match first.take() {
                    Some(f) => {
                        let _ = f.send(Err(e));
                        return;
                    }
                    None => e.to_string(),
                },
            };
            let window =
                doubling_window(self.options.backoff_base, self.options.backoff_cap, attempt);
            let delay = window.mul_f64(rand::rng().random_range(0.0..=1.0));
            attempt += 1;
            self.state
                .send_replace(State::Reconnecting { attempt, error });
            if !self.wait(delay).await {
                break;
            }
            self.state.send_replace(State::Connecting);
        }
        self.state.send_replace(State::Closed);
    }

    /// Waits `delay` while taking commands; false when closed meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = sleep(delay);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return true,
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => return false,
                    Some(Command::Subscribe(sub, reply)) => {
                        self.subs.push(sub);
                        let _ = reply.send(Ok(()));
                    }
                },
            }
        }
    }

    /// One connection: a fresh token (with a callback), the upgrade, `hello`.
    async fn open(&mut self) -> Result<(Ws, String, Duration), ClientError> {
        let url = self.server.ws.to_string();
        let failed = |reason: String| ClientError::Connect {
            url: url.clone(),
            reason,
        };
        if let Some(source) = &self.options.refresh {
            let token = source()
                .await
                .map_err(|e| failed(format!("the token callback failed: {e}")))?;
            self.token = Some(token);
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| failed("the token is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let handshake = async {
            let (mut ws, _) =
                tokio_tungstenite::connect_async(request)
                    .await
                    .map_err(|e| match e {
                        tungstenite::Error::Http(r) => ClientError::Refused {
                            url: url.clone(),
                            status: r.status().as_u16(),
                            reason: reason_of(&String::from_utf8_lossy(
                                r.body().as_deref().unwrap_or_default(),
                            )),
                        },
                        e => failed(e.to_string()),
                    })?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let hello: Value = serde_json::from_str(&t).unwrap_or_default();
                        let epoch = hello["epoch"].as_str().unwrap_or_default().to_string();
                        let beat = hello["heartbeat_ms"].as_u64().unwrap_or(20_000);
                        return Ok((ws, epoch, Duration::from_millis(beat)));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(failed(e.to_string())),
                    None => return Err(failed("closed before hello".into())),
                }
            }
        };
        tokio::time::timeout(self.options.connect_timeout, handshake)
            .await
            .map_err(|_| {
                failed(format!(
                    "no hello within {:?}",
                    self.options.connect_timeout
                ))
            })?
    }

    /// Serves one open connection until it ends.
    async fn live(&mut self, ws: Ws, epoch: String, heartbeat: Duration) -> Ended {
        let (mut sink, mut stream): (Sink, SplitStream<Ws>) = ws.split();
        self.tracker.hello(&epoch);
        self.state.send_replace(State::Live { epoch });
        // Every subscription is sent below: earlier retries are moot.
        self.retries.clear();
        for i in 0..self.subs.len() {
            self.begin(i, &mut sink).await;
        }
        let (token_tx, mut token_rx) = mpsc::unbounded_channel();
        let mut refresh_at = self.refresh_due();
        let mut new_token: Option<String> = None;
        let mut last_rx = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let silent = heartbeat * 2 + Duration::from_secs(5);
        let far = || Instant::now() + Duration::from_secs(86_400);
        loop {
            let retry_at = self.next_retry();
            tokio::select! {
                msg = stream.next() => {
                    last_rx = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            self.frame(&t, &mut sink, &mut new_token, &mut refresh_at).await;
                        }
                        Some(Ok(Message::Close(f))) => {
                            let code = f.as_ref().map(|f| u16::from(f.code));
                            let error = match code {
                                Some(4001) => "the token expired (4001)".to_string(),
                                Some(c) => format!("the server closed the connection ({c})"),
                                None => "the server closed the connection".to_string(),
                            };
                            return Ended::Lost { error, expired: code == Some(4001) };
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return lost(format!("connection lost: {e}")),
                        None => return lost("connection lost".into()),
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => {
                        let _ = sink.send(Message::Close(None)).await;
                        return Ended::Closed;
                    }
                    Some(Command::Subscribe(sub, reply)) => {
                        self.pending.insert(sub.id, reply);
                        self.subs.push(sub);
                        self.begin(self.subs.len() - 1, &mut sink).await;
                    }
                },
                _ = tick.tick() => {
                    if last_rx.elapsed() > silent {
                        return lost(format!("no frame from the server in {silent:?}"));
                    }
                }
                _ = sleep_until(retry_at.unwrap_or_else(far)), if retry_at.is_some() => {
                    let now = Instant::now();
                    let (due, later) = self.retries.drain(..).partition(|(at, _)| *at <= now);
                    self.retries = later;
                    for (_, id) in due {
                        if let Some(i) = self.subs.iter().position(|s| s.id == id) {
                            self.begin(i, &mut sink).await;
                        }
                    }
                }
                _ = sleep_until(refresh_at.unwrap_or_else(far)), if refresh_at.is_some() => {
                    refresh_at = None;
                    if let Some(source) = self.options.refresh.clone() {
                        let tx = token_tx.clone();
                        tokio::spawn(async move { let _ = tx.send(source().await); });
                    }
                }
                Some(token) = token_rx.recv() => {
                    // A failed callback leaves the token to expire (4001); the
                    // reconnect asks for one again.
                    if let Ok(token) = token {
                        let op = json!({"op": "refresh", "token": token, "id": "refresh"});
                        let _ = sink.send(Message::text(op.to_string())).await;
                        new_token = Some(token);
                    }
                }
            }
        }
    }

    /// When the first retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|(at, _)| *at).min()
    }

    /// When to refresh the current token: with a callback and a JWT only.
    fn refresh_due(&self) -> Option<Instant> {
        self.options.refresh.as_ref()?;
        let exp = jwt_expiry(self.token.as_deref()?)?;
        Some(Instant::now() + refresh_in(exp))
    }

    /// Sends subscription `i`: its `since` topics first asked for (`topics`),
    /// else its `subscribe`, resuming every topic it matches that was seen.
    async fn begin(&mut self, i: usize, sink: &mut Sink) {
        let sub = &self.subs[i];
        let op = if sub.since_pending {
            json!({"op": "topics", "id": format!("t{}", sub.id)})
        } else {
            let topics: Vec<&str> = sub.patterns.iter().map(Pattern::as_str).collect();
            let mut op = json!({"op": "subscribe", "topics": topics, "id": format!("s{}", sub.id)});
            let since = self.tracker.since(&sub.patterns);
            if !since.is_empty() {
                op["since"] = json!(since);
                op["epoch"] = json!(self.tracker.epoch());
            }
            if let Some(rate) = sub.options.max_rate {
                op["max_rate"] = json!(rate);
            }
            if sub.options.delta {
                op["delta"] = json!(true);
            }
            op
        };
        let _ = sink.send(Message::text(op.to_string())).await;
    }

    /// One text frame from the server.
    async fn frame(
        &mut self,
        text: &str,
        sink: &mut Sink,
        new_token: &mut Option<String>,
        refresh_at: &mut Option<Instant>,
    ) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let id = v["id"].as_str().unwrap_or_default();
        let sub_id = |prefix: char| id.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok());
        match v["type"].as_str().unwrap_or_default() {
            "update" => {
                if let Some(u) = self.tracker.update(text) {
                    self.deliver(Event::Update(u)).await;
                }
            }
            "gone" => {
                let topic = v["topic"].as_str().unwrap_or_default().to_string();
                self.tracker.gone(&topic);
                self.deliver(Event::Gone { topic }).await;
            }
            "ack" if id == "refresh" => {
                if let Some(t) = new_token.take() {
                    self.token = Some(t);
                }
                *refresh_at = self.refresh_due();
            }
            "ack" => {
                if let Some(reply) = sub_id('s').and_then(|n| self.pending.remove(&n)) {
                    let _ = reply.send(Ok(()));
                }
            }
            "topics" => {
                let Some(n) = sub_id('t') else { return };
                let Some(i) = self.subs.iter().position(|s| s.id == n) else {
                    return;
                };
                let sub = &mut self.subs[i];
                sub.since_pending = false;
                let (patterns, since) = (sub.patterns.clone(), sub.options.since);
                for row in v["topics"].as_array().into_iter().flatten() {
                    let topic = row["topic"].as_str().unwrap_or_default();
                    if let Some(seq) = since.filter(|_| patterns.iter().any(|p| p.matches(topic))) {
                        self.tracker.start_at(topic, seq);
                    }
                }
                self.begin(i, sink).await;
            }
            "error" if id == "refresh" => *new_token = None,
            "error" => {
                // A refused subscription ends (its stream closes), unless it
                // was only rate-limited: then it is sent again later.
                let Some(n) = sub_id('s').or_else(|| sub_id('t')) else {
                    return;
                };
                if v["code"] == "rate_limited" {
                    self.retries.push((Instant::now() + RATE_LIMITED_RETRY, n));
                    return;
                }
                self.subs.retain(|s| s.id != n);
                if let Some(reply) = self.pending.remove(&n) {
                    let _ = reply.send(Err(ClientError::Server {
                        code: v["code"].as_str().unwrap_or_default().to_string(),
                        message: v["message"].as_str().unwrap_or_default().to_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// Hands `event` to every subscription whose patterns match its topic; a
    /// subscription whose stream was dropped is forgotten.
    async fn deliver(&mut self, event: Event) {
        let mut dropped = Vec::new();
        for sub in &self.subs {
            if sub.patterns.iter().any(|p| p.matches(event.topic()))
                && sub.tx.send(event.clone()).await.is_err()
            {
                dropped.push(sub.id);
            }
        }
        self.subs.retain(|s| !dropped.contains(&s.id));
    }
}

fn lost(error: String) -> Ended {
    Ended::Lost {
        error,
        expired: false,
    }
}
