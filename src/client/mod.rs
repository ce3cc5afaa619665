//! `tickerd::client`: a Rust client of a tickerd server over its WebSocket
//! protocol (docs/protocol.md), with the behaviour of `web/tickerd.js`: it
//! reconnects with exponential backoff and full jitter, resumes every topic
//! from the last seq it saw (`since` + `epoch`: no gap, no duplicate while the
//! server's history reaches back), asks a callback for fresh tokens (before a
//! JWT's `exp`, on each reconnect, and when the server closed the connection
//! because the token expired), and merges `delta` updates back into whole
//! values. [`Publisher`] publishes over HTTP with the publish token. The
//! `tickerd sub` and `tickerd pub` commands are built on it.
//!
//! This module owns the client side of the protocol; the server side lives in
//! the modules below it. Behind the default-on cargo feature `client`.
//!
//! ```
//! use futures_util::StreamExt;
//! use tickerd::client::{Client, ClientOptions, Event, SubscribeOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! // A server to talk to (yours would run elsewhere).
//! let ticker = tickerd::Ticker::builder().config_toml("").start().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}", listener.local_addr()?);
//! let server = ticker.clone();
//! tokio::spawn(async move { server.serve(listener).await });
//! ticker.hub().publish("stocks.AAPL", &serde_json::json!({"price": 101.2}))?;
//!
//! let client = Client::connect(&url, ClientOptions::default()).await?;
//! let mut stocks = client.subscribe(["stocks.*"], SubscribeOptions::default()).await?;
//! // First the snapshot of each topic, then every change.
//! let Some(Event::Update(first)) = stocks.next().await else { panic!("an update") };
//! assert_eq!((first.topic.as_str(), first.seq, first.snapshot), ("stocks.AAPL", 1, true));
//! ticker.hub().publish("stocks.MSFT", &serde_json::json!({"price": 415.0}))?;
//! let Some(Event::Update(next)) = stocks.next().await else { panic!("an update") };
//! assert_eq!(next.data["price"], 415.0);
//!
//! client.close();
//! ticker.shutdown();
//! # Ok(()) }
//! ```

mod driver;
mod error;
mod event;
mod options;
mod publish;
mod token;
mod track;
mod url;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::topic::Pattern;

pub use error::ClientError;
pub use event::{Event, State, Update};
pub use options::{ClientOptions, SubscribeOptions, TokenFuture, TokenSource};
pub use publish::{ItemOutcome, Published, Publisher};

use driver::{Command, Driver, Sub};

/// How many events a subscription holds for a caller that reads slowly;
/// past it the client stops reading and the server conflates.
const BUFFER: usize = 1024;

/// A connection to one tickerd server, shared by its subscriptions. Dropping
/// it (or [`Client::close`]) closes the connection and ends every subscription.
#[derive(Debug)]
pub struct Client {
    cmds: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<State>,
    next_id: AtomicU64,
}

impl Client {
    /// Connects to `url` (`http://host:port`, the server's base, or its
    /// `ws://host:port/ws`, or `host:port`) and waits for the server's `hello`. Only this
    /// first connection's failure is an error; later ones are retried.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let server = url::Server::parse(url)?;
        let (cmds, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(State::Connecting);
        let driver = Driver {
            server,
            token: options.token.clone(),
            options,
            cmds: rx,
            state: state_tx,
            subs: Vec::new(),
            tracker: track::Tracker::default(),
            pending: HashMap::new(),
            retries: Vec::new(),
        };
        let (first_tx, first) = oneshot::channel();
        tokio::spawn(driver.run(first_tx));
        first.await.map_err(|_| ClientError::Closed)??;
        Ok(Client {
            cmds,
            state,
            next_id: AtomicU64::new(1),
        })
    }

    /// Subscribes to `patterns` (`*` one segment, `>` the rest): the snapshot
    /// of each topic they match, then every update, across reconnects.
    /// Answered once the server acknowledged it (an `error` reply, e.g.
    /// `forbidden`, is the error; one answered `rate_limited` is sent again a
    /// second later, as the server asks); while the client is reconnecting it is
    /// sent with the next connection. A subscription the server refuses on a
    /// later connection ends (its stream returns `None`).
    pub async fn subscribe<I, S>(
        &self,
        patterns: I,
        options: SubscribeOptions,
    ) -> Result<Subscription, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let sub = Sub {
            patterns,
            since_pending: options.since.is_some(),
            options,
            tx,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let (reply_tx, reply) = oneshot::channel();
        self.cmds
            .send(Command::Subscribe(sub, reply_tx))
            .map_err(|_| ClientError::Closed)?;
        reply.await.map_err(|_| ClientError::Closed)??;
        Ok(Subscription { rx })
    }

    /// The connection's state: `borrow()` is the current one, `changed()`
    /// waits for the next change after this call.
    pub fn state(&self) -> watch::Receiver<State> {
        let mut rx = self.state.clone();
        rx.mark_unchanged();
        rx
    }

    /// Closes the connection; every subscription ends.
    pub fn close(&self) {
        let _ = self.cmds.send(Command::Close);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// The events of one [`Client::subscribe`]: a [`Stream`] of [`Event`]s that
/// ends when the client is closed.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
}

impl Subscription {
    /// The next event; `None` once the client is closed.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
