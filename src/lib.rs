//! tickerd turns any data source into a live, pushed, browser-ready ticker.
//!
//! Feeds (HTTP polls, upstream WebSockets, SSE, commands, files, host metrics, a
//! synthetic market, or your own Rust code) publish into topics; WebSocket
//! clients subscribe to topics by pattern and get a snapshot, then every change,
//! with sequence numbers, resume after reconnect, and conflation when they read
//! slowly.
//!
//! # Embedding
//!
//! The standalone `tickerd` binary is a thin user of this library; your own
//! program can do everything it does. Build a [`Ticker`] from a config (a file
//! with [`TickerBuilder::config_path`], TOML text with
//! [`TickerBuilder::config_toml`], or a [`Config`] value), mount
//! [`Ticker::router`] in your axum app, publish from your own code with
//! [`Hub::publish`], read values back with [`Hub::latest`] /
//! [`Hub::latest_as`], and consume updates in-process with [`Hub::subscribe`]
//! (a [`Stream`](futures_util::Stream) of [`Update`]s).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Order {
//!     id: u32,
//!     total: f64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let ticker = tickerd::Ticker::builder()
//!     .config_toml("[history]\nsize = 10\n")
//!     .start()
//!     .await?;
//! let hub = ticker.hub();
//!
//! // Server-side consumers subscribe by pattern, like WebSocket clients.
//! let mut orders = hub.subscribe(["orders.*"])?;
//! hub.publish("orders.new", &Order { id: 1, total: 9.5 })?;
//!
//! let update = orders.recv().await.expect("the ticker is running");
//! assert_eq!(update.topic(), "orders.new");
//! assert_eq!(update.seq(), 1);
//! assert_eq!(update.data_as::<Order>()?, Order { id: 1, total: 9.5 });
//!
//! // The latest value of any topic, typed.
//! let latest: Option<Order> = hub.latest_as("orders.new")?;
//! assert_eq!(latest.map(|o| o.id), Some(1));
//!
//! // Mount the ticker next to your own routes: `/live/ws`, `/live/api/topics`, ...
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .nest("/live", ticker.router());
//! # drop(app);
//!
//! // Shut down: feeds stop, WebSocket clients get Close 1001, streams end.
//! ticker.shutdown();
//! ticker.stopped(std::time::Duration::from_secs(3)).await;
//! assert!(orders.recv().await.is_none());
//! # Ok(()) }
//! ```
//!
//! To serve it, pass the app to `axum::serve` with
//! `.with_graceful_shutdown(ticker.shutdown_token().cancelled_owned())`, or
//! give the builder your own token with [`TickerBuilder::cancellation`]:
//! cancelling it shuts the ticker down. A feed kind of your own implements
//! [`Feed`] and is registered with [`TickerBuilder::kind`]; its options come
//! from `[[feed]]` tables in the config, deserialized into your own type. See
//! `examples/` for complete programs (`embed_axum`, `custom_feed`,
//! `publish_from_app`).
//!
//! # Public API
//!
//! The crate root holds what an embedder needs: [`Ticker`], [`TickerBuilder`],
//! the [`Hub`] handle and its [`Subscription`]/[`Update`], [`Feed`] and
//! [`FeedContext`] for kinds of your own, [`Config`] and its errors, and the
//! `$sys` topic names. The public modules add the config's sections and
//! dashboards ([`config`]), a client of a running server ([`client`]), feed statuses ([`feeds`]), the hub's errors
//! ([`hub`]), read-only counters ([`metrics`]), and the wire format and topic
//! rules ([`protocol`], [`topic`]). Everything else is crate-private;
//! `docs/public-api.txt` lists every public declaration and
//! `tests/public_api.rs` fails when it changes unlisted.
//!
//! # Layout
//!
//! One update flows **feed → hub → connection → delivery → sink**:
//!
//! - [`feeds`] turn sources into items and publish them into the [`hub`]
//!   (topics, seq, history), which builds each update's frame once and hands
//!   it to every matching subscriber's outbox; in `[cluster]` mode `cluster`
//!   relays every update through NATS first.
//! - `connection` is what a subscriber is, for `/ws` and `/sse` alike: its
//!   grant, its subscribe checks and their error texts, resume, its requests,
//!   its outbox and writer; it joins the hub by pattern.
//! - `delivery` takes frames out of an outbox (in order, conflated, shaped by
//!   `max_rate`/`delta`) and writes them into the subscriber's sink with one
//!   writer discipline: a WebSocket (`ws`), an `/sse` stream (`server`), an
//!   in-process [`Subscription`].
//! - `server` is the HTTP surface (`/ws`, `/api/*`, `/metrics`, web pages);
//!   [`Ticker`] (`ticker`) ties the pieces together and applies reloads.
//!
//! The modules form one-way layers; each uses only those below it (checked by
//! `tests/layers.rs`; `docs/architecture.md` says where each rule lives):
//!
//! ```text
//! client, ticker → server → ws → connection → state → cluster → feeds → auth → publish → hub
//!        → delivery → config → transform → reload → protocol → frame
//!        → metrics → topic → closes → sync → nearest → systemd
//! ```
//!
//! - [`client`] (cargo feature `client`, on by default): a client of a
//!   tickerd server over its WebSocket and HTTP routes, with reconnect,
//!   resume, token refresh and deltas merged back; `tickerd sub` and
//!   `tickerd pub` are built on it. It stands beside `ticker`, at the top.
//! - `ticker`: [`TickerBuilder`] and [`Ticker`], start, reload and shutdown.
//! - `server`: the axum router (`/ws`, `/sse`, `/api/*`, `/metrics`, web
//!   pages), the client's address behind trusted proxies, and the hardened
//!   HTTP/1.1 accept loop (plain or `[server.tls]`) behind [`Ticker::serve`].
//! - `ws`: the `/ws` upgrade, handshake, the client's frames read and checked
//!   (`read`), every server frame encoded and batched (`transport`), and the
//!   session (a WebSocket as delivery's `Wire`).
//! - `connection`: a subscriber's request side (grants, subscribe checks,
//!   resume, `refresh`, `publish`, the request rate limit), serving `/ws`
//!   and `/sse`.
//! - `state`: what the layers above share (`AppState`, `Settings`).
//! - `cluster`: `[cluster]` mode: updates relayed through a NATS JetStream
//!   stream, feed ownership by KV leases, `$sys.cluster`.
//! - [`feeds`]: feed kinds, the [`Feed`] trait, supervision and `$sys.feeds`.
//! - `auth`: tokens and per-topic read grants (see `SECURITY.md`), and
//!   `auth::jwt` for `[auth.jwt]` tokens.
//! - [`hub`]: topics, seq, snapshots, history, and fan-out to subscribers.
//! - [`config`]: the TOML config, loaded and validated whole, with its feed
//!   files and its dashboards ([`config::dashboard`], published on
//!   `$sys.dashboards` and rendered by `web/board.js`).
//! - `transform`: the per-feed `transform = [...]` steps.
//! - `reload`: watches the config files and signals the ticker to reload.
//! - `delivery`: a subscriber's outbox (bounded, conflating), the pacer, the
//!   `max_rate`/`delta` shaping, and the writer of every transport, behind
//!   the `Sink`/`Wire`/`Direct` traits (with the lock order).
//! - `publish`: bulk publishing (HTTP and the WebSocket `publish` op).
//! - [`protocol`]: the wire format.
//! - `frame`: a frame as a value ([`Update`]s are made from it): its topic,
//!   seq, ts and kind beside its shared JSON text, built once per publish and
//!   shared by every subscriber, so nothing reads them back out of the text.
//! - [`metrics`]: the process's counters.
//! - [`topic`]: topic names, patterns and templates.
//! - `closes`: the rate-limited log line of a client stopped by a limit.
//! - `sync`: the one rule for poisoned locks.
//! - `systemd`: `sd_notify` states (`READY=1`, `RELOADING=1`, `STOPPING=1`,
//!   `WATCHDOG=1`) sent to `$NOTIFY_SOCKET` when it is set.

#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod feeds;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod topic;

mod auth;
mod closes;
mod cluster;
mod connection;
mod delivery;
mod frame;
mod nearest;
mod publish;
mod reload;
mod server;
mod state;
mod sync;
mod systemd;
mod ticker;
mod transform;
mod ws;

pub use cluster::CLUSTER_TOPIC;
pub use config::{Config, ConfigError, ConfigErrors};
pub use feeds::{Feed, FeedContext, FeedStatus, Kinds};
pub use hub::{Hub, PublishError, Published, Subscription, Update};
pub use metrics::Metrics;
pub use ticker::{StartError, Ticker, TickerBuilder, CONFIG_TOPIC, DASHBOARDS_TOPIC};
